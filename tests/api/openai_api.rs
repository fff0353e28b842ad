//! `POST /v1/chat/completions`: OpenAI's request and response shapes, streamed and not, its
//! error objects, and that its calls are charged through the same ledger as chat replies.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{TestApp, TestDb, model_spec, parse_sse, spawn_on};

async fn app_with_openai() -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    (app, mock)
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": text}
    ]})
}

/// An OpenAI error object with this status, type and code; returns its message.
fn assert_openai_error(
    status: StatusCode,
    body: &Value,
    expected: StatusCode,
    kind: &str,
    code: &str,
) -> String {
    assert_eq!(status, expected, "{body}");
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error.get("param").is_some(), "{body}");
    assert_eq!(body.as_object().unwrap().len(), 1, "only `error`: {body}");
    error["message"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_answers_in_openai_shape_with_its_usage_and_in_no_thread() {
    let (app, _mock) = app_with_openai().await;
    let user = app.registered("ada@example.com").await;
    let res = app
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(&user.token),
            Some(ask("echo", "hello there")),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let generation = res.headers()["x-threadline-generation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["object"], "chat.completion");
    assert!(
        body["id"].as_str().unwrap().starts_with("chatcmpl-"),
        "{body}"
    );
    assert_eq!(body["model"], "echo");
    let choice = &body["choices"][0];
    assert_eq!(choice["message"]["role"], "assistant");
    assert_eq!(choice["message"]["content"], "Echo: hello there");
    assert_eq!(choice["finish_reason"], "stop");
    let usage = &body["usage"];
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + usage["completion_tokens"].as_u64().unwrap()
    );
    // A call of the stateless API is in no thread.
    let (_, threads) = app.list_threads(&user.token, "").await;
    assert_eq!(threads["data"], json!([]), "{threads}");

    // Its caller replays it from the log like any reply; nobody else sees it.
    let events = format!("/v1/generations/{generation}/events");
    let res = app
        .request(Method::GET, &events, Some(&user.token), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let replay = parse_sse(&res.text().await.unwrap());
    let text: String = replay
        .iter()
        .filter(|e| e.data != "[DONE]")
        .map(|e| e.json())
        .filter(|e| e["type"] == "text-delta")
        .map(|e| e["delta"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Echo: hello there");
    let other = app.registered("bob@example.com").await;
    let (status, _) = app
        .call(Method::GET, &events, Some(&other.token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_streamed_completion_is_chunks_then_usage_then_done() {
    let (app, _mock) = app_with_openai().await;
    let user = app.registered("ada@example.com").await;
    let mut body = ask("gpt-4o-mini", "Tell me something");
    body["stream"] = json!(true);
    body["stream_options"] = json!({"include_usage": true});
    let res = app
        .request(
            Method::POST,
            "/v1/chat/completions",
            Some(&user.token),
            Some(body),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "text/event-stream");
    let events = parse_sse(&res.text().await.unwrap());
    assert_eq!(events.last().unwrap().data, "[DONE]");
    let chunks: Vec<Value> = events[..events.len() - 1]
        .iter()
        .map(|e| e.json())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk"),
        "{chunks:?}"
    );
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    let finish = &chunks[chunks.len() - 2];
    assert_eq!(finish["choices"][0]["finish_reason"], "stop", "{finish}");
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(
        usage["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{usage}"
    );
    assert!(
        chunks[..chunks.len() - 1]
            .iter()
            .all(|c| c["usage"].is_null())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mistakes_are_openai_errors_and_the_ledger_charges_each_call() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    app.define_model(&admin, "costly", model_spec("openai", "mock:len=2", 7))
        .await;
    let path = "/v1/chat/completions";

    let (status, body) = app
        .call(Method::POST, path, None, Some(ask("echo", "x")))
        .await;
    assert_openai_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "authentication_error",
        "unauthenticated",
    );
    let (status, body) = app
        .call(
            Method::POST,
            path,
            Some(&admin.token),
            Some(ask("no-such-model", "x")),
        )
        .await;
    let message = assert_openai_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "not_found_error",
        "model_not_found",
    );
    assert!(message.contains("no-such-model"), "{message}");
    let (status, body) = app
        .call(
            Method::POST,
            path,
            Some(&admin.token),
            Some(json!({"model": "echo", "messages": [{"role": "robot"}]})),
        )
        .await;
    assert_openai_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_request_error",
        "validation_failed",
    );
    assert_eq!(body["error"]["param"], "messages[0].role");
    let res = app
        .client
        .post(format!("{}{path}", app.address))
        .bearer_auth(&admin.token)
        .header("content-type", "application/json")
        .body("{nope")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_openai_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request_error",
        "invalid_json",
    );

    // 20 credits a day on the free plan, 7 a call: two calls, then a 429 with when to retry.
    for _ in 0..2 {
        let (status, body) = app
            .call(
                Method::POST,
                path,
                Some(&admin.token),
                Some(ask("costly", "hi")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let res = app
        .request(
            Method::POST,
            path,
            Some(&admin.token),
            Some(ask("costly", "hi")),
        )
        .await;
    assert!(res.headers().contains_key("retry-after"));
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_openai_error(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "insufficient_quota",
        "quota_exceeded",
    );
    let (_, usage) = app
        .call(Method::GET, "/v1/me/usage", Some(&admin.token), None)
        .await;
    assert_eq!(usage["meters"][0]["used"], 14, "{usage}");
}
