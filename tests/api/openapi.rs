//! `api-spec/openapi.yaml` is true: its routes are exactly the server's, and real responses
//! match its schemas (required keys present, no undocumented keys, primitive types right).

use std::collections::BTreeSet;
use std::sync::Arc;

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use threadline::billing::signature::{sign_standard_webhook, sign_stripe};
use threadline::mock_upstream::MockUpstream;
use threadline::mock_upstream::identity::{TestKey, sign_test_token};
use threadline_domain::plans::{Plans, Product};

use crate::helpers::{LiveStream, SseEvent, TestApp, TestDb, spawn_on};

fn spec() -> Value {
    serde_yaml_ng::from_str(threadline::routes::health::OPENAPI_YAML).unwrap()
}

#[test]
fn the_document_lists_exactly_the_servers_routes() {
    let spec = spec();
    let documented: BTreeSet<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|k| ["get", "post", "put", "patch", "delete"].contains(&k.as_str()))
                .map(|m| (m.to_uppercase(), path.clone()))
                .collect::<Vec<_>>()
        })
        .collect();
    let served: BTreeSet<(String, String)> = threadline::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_uppercase(), (*p).to_owned()))
        .collect();
    let missing: Vec<_> = served.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&served).collect();
    assert!(
        missing.is_empty(),
        "routes missing from openapi.yaml: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented routes the server lacks: {extra:?}"
    );
}

/// Resolves `$ref`s into the document.
fn resolve<'a>(spec: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let pointer = r.trim_start_matches('#');
            resolve(
                spec,
                spec.pointer(pointer)
                    .unwrap_or_else(|| panic!("bad $ref {r}")),
            )
        }
        None => schema,
    }
}

fn type_matches(ty: &str, value: &Value) -> bool {
    match ty {
        "null" => value.is_null(),
        "string" => value.is_string(),
        "boolean" => value.is_boolean(),
        "integer" => value.is_i64() || value.is_u64(),
        "number" => value.is_number(),
        "array" => value.is_array(),
        "object" => value.is_object(),
        _ => false,
    }
}

/// Checks `value` against `schema`; returns the problems found.
fn check(spec: &Value, schema: &Value, value: &Value, at: &str, problems: &mut Vec<String>) {
    let schema = resolve(spec, schema);
    if let Some(options) = schema
        .get("oneOf")
        .or(schema.get("anyOf"))
        .and_then(Value::as_array)
    {
        let fits = options.iter().any(|o| {
            let mut p = Vec::new();
            check(spec, o, value, at, &mut p);
            p.is_empty()
        });
        if !fits {
            problems.push(format!("{at}: matches none of the alternatives: {value}"));
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for s in all {
            check(spec, s, value, at, problems);
        }
    }
    let types: Vec<&str> = match schema.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() && !types.iter().any(|t| type_matches(t, value)) {
        problems.push(format!("{at}: expected {types:?}, got {value}"));
        return;
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        problems.push(format!("{at}: {value} not in {allowed:?}"));
    }
    if let (Some(obj), Some(props)) = (value.as_object(), schema.get("properties")) {
        let props = props.as_object().unwrap();
        for req in schema["required"].as_array().into_iter().flatten() {
            let key = req.as_str().unwrap();
            if !obj.contains_key(key) {
                problems.push(format!("{at}: missing required key {key:?}"));
            }
        }
        for (key, v) in obj {
            match props.get(key) {
                Some(s) => check(spec, s, v, &format!("{at}.{key}"), problems),
                None if schema.get("additionalProperties") == Some(&Value::Bool(false)) => {
                    problems.push(format!("{at}: undocumented key {key:?}"))
                }
                None => {}
            }
        }
    }
    // JSON Schema 2020-12: `prefixItems` for the first items, `items` for the rest.
    let prefix = schema
        .get("prefixItems")
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice);
    if let Some(items) = value.as_array() {
        for (i, v) in items.iter().enumerate() {
            if let Some(s) = prefix.get(i).or(schema.get("items")) {
                check(spec, s, v, &format!("{at}[{i}]"), problems);
            }
        }
    }
}

/// Asserts that a response of `method path` with `status` matches the documented schema.
fn assert_documented(spec: &Value, method: &str, path: &str, status: StatusCode, body: &Value) {
    let op = &spec["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = resolve(spec, &op["responses"][status.as_str()]);
    assert!(
        response.is_object(),
        "{method} {path} does not document status {status}"
    );
    let content = &response["content"];
    if body.is_null() {
        assert!(
            content.is_null(),
            "{method} {path} {status} documents a body but none came"
        );
        return;
    }
    let schema = content
        .as_object()
        .and_then(|c| c.values().next())
        .map(|m| &m["schema"])
        .unwrap_or_else(|| panic!("{method} {path} {status} documents no body"));
    let mut problems = Vec::new();
    check(spec, schema, body, "$", &mut problems);
    assert!(
        problems.is_empty(),
        "{method} {path} {status}: {problems:#?}\nbody: {body}"
    );
}

/// The webhook secret of both providers in [`real_responses_match_the_documented_schemas`].
const WEBHOOK_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The HS256 secret external JWTs are signed with there.
const JWT_SECRET: &str = "doc-jwt-secret-doc-jwt-secret-32b";

fn unix_now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Posts `body` to `path` with `headers` (no bearer token) and returns the status and JSON body.
async fn post_raw(
    app: &TestApp,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (StatusCode, Value) {
    let mut req = app
        .client
        .post(format!("{}{path}", app.address))
        .header(CONTENT_TYPE, "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        req = req.header(*name, value);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"));
    (status, json)
}

/// The Standard Webhooks headers of a Polar delivery `id` of `body`, signed now.
fn polar_headers(id: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let now = unix_now();
    vec![
        ("webhook-id", id.to_owned()),
        ("webhook-timestamp", now.to_string()),
        (
            "webhook-signature",
            sign_standard_webhook(WEBHOOK_SECRET, id, now, body).unwrap(),
        ),
    ]
}

/// Asserts that the head of an SSE response of `method path` is documented: its status,
/// `text/event-stream` for that status, and the documented constant headers.
fn assert_documented_stream(spec: &Value, method: &str, path: &str, res: &Response) {
    let status = res.status();
    let op = &spec["paths"][path][method.to_lowercase()];
    assert!(op.is_object(), "{method} {path} is not documented");
    let response = resolve(spec, &op["responses"][status.as_str()]);
    assert!(
        response.is_object(),
        "{method} {path} does not document status {status}"
    );
    let content_type = res
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/event-stream"),
        "{method} {path} {status} answered {content_type:?}, not an event stream"
    );
    assert!(
        response["content"]["text/event-stream"].is_object(),
        "{method} {path} {status} does not document text/event-stream"
    );
    for (name, header) in response["headers"].as_object().into_iter().flatten() {
        if let Some(expected) = resolve(spec, header)["schema"]["const"].as_str() {
            let got = res
                .headers()
                .get(name.as_str())
                .and_then(|v| v.to_str().ok());
            assert_eq!(
                got,
                Some(expected),
                "{method} {path} {status}: header {name}"
            );
        }
    }
}

/// Asserts that every event has an id of two dot-separated integers and data matching the
/// component schema `schema`.
fn assert_events_documented(spec: &Value, schema: &str, events: &[SseEvent], at: &str) {
    let schema = json!({"$ref": format!("#/components/schemas/{schema}")});
    for event in events {
        let id = event.id.as_deref().unwrap_or_default();
        assert!(
            id.split_once('.')
                .is_some_and(|(a, b)| a.parse::<i64>().is_ok() && b.parse::<i64>().is_ok()),
            "{at}: event id {id:?} is not `a.b`: {event:?}"
        );
        let mut problems = Vec::new();
        check(spec, &schema, &event.json(), "$", &mut problems);
        assert!(
            problems.is_empty(),
            "{at}: {problems:#?}\nevent: {}",
            event.data
        );
    }
}

/// Asserts that a UI message stream response of `method path` is documented (see
/// [`assert_documented_stream`]), reads it to its end and checks every part against
/// `UIMessageStreamPart` and the closing `[DONE]`. Returns the events.
async fn assert_documented_ui_stream(
    spec: &Value,
    method: &str,
    path: &str,
    res: Response,
) -> Vec<SseEvent> {
    assert_documented_stream(spec, method, path, &res);
    let events = LiveStream::new(res).read_all().await;
    let (done, parts) = events
        .split_last()
        .unwrap_or_else(|| panic!("{method} {path}: an empty stream"));
    assert_eq!(done.kind(), "[DONE]", "{method} {path}: {events:?}");
    assert_events_documented(
        spec,
        "UIMessageStreamPart",
        parts,
        &format!("{method} {path}"),
    );
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_responses_match_the_documented_schemas() {
    let spec = spec();
    // Billing: both webhooks on, checkouts and portals through the mock's Polar API, one
    // product to sell; external JWTs signed with a shared secret.
    let polar = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let polar_base = polar.base_url().trim_end_matches("/v1").to_owned();
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.billing.polar_webhook_secret = Some(WEBHOOK_SECRET.into());
        s.billing.stripe_webhook_secret = Some(WEBHOOK_SECRET.into());
        s.billing.polar_access_token = Some("polar_oat_doc".into());
        s.billing.polar_base_url = polar_base;
        s.plans = Arc::new(Plans {
            products: vec![Product {
                id: "pro".into(),
                polar_product_id: Some("prod_pro".into()),
                stripe_price_id: None,
                credits: 0,
            }],
            ..Plans::default()
        });
        s.jwt.hs256_secret = Some(JWT_SECRET.into());
    })
    .await;
    let mut seen = Vec::new();
    // Routes checked outside `call`: streams (by `assert_documented_stream`), non-JSON
    // answers, and requests with their own headers (webhooks).
    let mut streamed = Vec::new();
    let mut call = async |method: Method,
                          path: &str,
                          template: &str,
                          token: Option<&str>,
                          body: Option<Value>| {
        let (status, value) = app.call(method.clone(), path, token, body).await;
        assert_documented(&spec, method.as_str(), template, status, &value);
        seen.push((method.to_string(), template.to_owned()));
        value
    };

    call(Method::GET, "/healthz", "/healthz", None, None).await;
    call(Method::GET, "/readyz", "/readyz", None, None).await;
    call(Method::GET, "/openapi.json", "/openapi.json", None, None).await;
    let anon = call(
        Method::POST,
        "/v1/auth/anonymous",
        "/v1/auth/anonymous",
        None,
        None,
    )
    .await;
    let anon_token = anon["token"].as_str().unwrap().to_owned();
    let thread = call(
        Method::POST,
        "/v1/threads",
        "/v1/threads",
        Some(&anon_token),
        Some(json!({"title": "doc"})),
    )
    .await;
    let id = thread["id"].as_str().unwrap().to_owned();
    let reg = call(
        Method::POST,
        "/v1/auth/register",
        "/v1/auth/register",
        Some(&anon_token),
        Some(
            json!({"email": "doc@example.com", "password": "correct horse battery", "name": "Doc"}),
        ),
    )
    .await;
    let token = reg["token"].as_str().unwrap().to_owned();
    let login = call(
        Method::POST,
        "/v1/auth/login",
        "/v1/auth/login",
        None,
        Some(json!({"email": "doc@example.com", "password": "correct horse battery"})),
    )
    .await;
    let second = login["session_id"].as_str().unwrap().to_owned();
    call(Method::GET, "/v1/me", "/v1/me", Some(&token), None).await;
    call(
        Method::GET,
        "/v1/me/sessions",
        "/v1/me/sessions",
        Some(&token),
        None,
    )
    .await;
    call(
        Method::DELETE,
        &format!("/v1/me/sessions/{second}"),
        "/v1/me/sessions/{id}",
        Some(&token),
        None,
    )
    .await;
    call(
        Method::GET,
        "/v1/threads?limit=1",
        "/v1/threads",
        Some(&token),
        None,
    )
    .await;
    let thread_path = format!("/v1/threads/{id}");
    call(
        Method::GET,
        &thread_path,
        "/v1/threads/{id}",
        Some(&token),
        None,
    )
    .await;
    call(
        Method::PATCH,
        &thread_path,
        "/v1/threads/{id}",
        Some(&token),
        Some(json!({"pinned": true})),
    )
    .await;
    call(
        Method::DELETE,
        &thread_path,
        "/v1/threads/{id}",
        Some(&token),
        None,
    )
    .await;

    // The caller's live feed, opened before the chat below (its items are checked after it).
    let res = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_documented_stream(&spec, "GET", "/v1/events", &res);
    streamed.push(("GET".to_owned(), "/v1/events".to_owned()));
    let mut feed = LiveStream::new(res);
    // The feed is subscribed once its `: connected` comment arrived.
    tokio::time::timeout(std::time::Duration::from_secs(20), async {
        while let Some(bytes) = feed.response.chunk().await.unwrap() {
            if String::from_utf8_lossy(&bytes).contains("\"type\":\"ready\"") {
                break;
            }
        }
    })
    .await
    .expect("the feed never said it was connected");

    // The chat transport, with the echo model: a reply streamed to its end…
    let chat_id = "doc-chat";
    let res = app
        .chat(&token, chat_id, "doc-m1", "hello there", None)
        .await;
    let events = assert_documented_ui_stream(&spec, "POST", "/v1/chat", res).await;
    assert!(
        events.iter().any(|e| e.kind() == "finish"),
        "the reply did not finish: {events:?}"
    );
    streamed.push(("POST".to_owned(), "/v1/chat".to_owned()));
    app.wait_reply_done(&token, chat_id).await;
    // …then nothing left to resume or stop…
    let resumed = call(
        Method::GET,
        &format!("/v1/chat/{chat_id}/stream"),
        "/v1/chat/{id}/stream",
        Some(&token),
        None,
    )
    .await;
    assert!(resumed.is_null(), "expected 204, got {resumed}");
    let stopped = call(
        Method::POST,
        &format!("/v1/chat/{chat_id}/stop"),
        "/v1/chat/{id}/stop",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(stopped["code"], "no_active_reply", "{stopped}");
    // …the thread with its user message and reply…
    let chat = call(
        Method::GET,
        &format!("/v1/threads/{chat_id}"),
        "/v1/threads/{id}",
        Some(&token),
        None,
    )
    .await;
    let messages = chat["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2, "{chat}");
    let generation = messages[1]["metadata"]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    // The tree: pages of the path, branches, the current branch, shares, typing, hiding.
    let page = call(
        Method::GET,
        &format!("/v1/threads/{chat_id}/messages?limit=1"),
        "/v1/threads/{id}/messages",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let reply_id = messages[1]["id"].as_str().unwrap().to_owned();
    let branched = call(
        Method::POST,
        &format!("/v1/threads/{chat_id}/branch"),
        "/v1/threads/{id}/branch",
        Some(&token),
        Some(json!({"message_id": "doc-m1", "title": "a branch"})),
    )
    .await;
    assert_eq!(branched["origin"]["kind"], "branch", "{branched}");
    call(
        Method::PUT,
        &format!("/v1/threads/{chat_id}/current"),
        "/v1/threads/{id}/current",
        Some(&token),
        Some(json!({"message_id": reply_id})),
    )
    .await;
    let share = call(
        Method::POST,
        &format!("/v1/threads/{chat_id}/shares"),
        "/v1/threads/{id}/shares",
        Some(&token),
        Some(json!({})),
    )
    .await;
    let share_id = share["id"].as_str().unwrap().to_owned();
    call(
        Method::GET,
        &format!("/v1/threads/{chat_id}/shares"),
        "/v1/threads/{id}/shares",
        Some(&token),
        None,
    )
    .await;
    let public = call(
        Method::GET,
        &format!("/v1/shares/{share_id}"),
        "/v1/shares/{id}",
        None,
        None,
    )
    .await;
    assert_eq!(public["messages"].as_array().unwrap().len(), 2, "{public}");
    let copy = call(
        Method::POST,
        &format!("/v1/shares/{share_id}/copy"),
        "/v1/shares/{id}/copy",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(copy["origin"]["kind"], "share", "{copy}");
    call(
        Method::DELETE,
        &format!("/v1/shares/{share_id}"),
        "/v1/shares/{id}",
        Some(&token),
        None,
    )
    .await;
    call(
        Method::POST,
        &format!("/v1/threads/{chat_id}/typing"),
        "/v1/threads/{id}/typing",
        Some(&token),
        None,
    )
    .await;
    let found = call(
        Method::GET,
        "/v1/search?q=hello",
        "/v1/search",
        Some(&token),
        None,
    )
    .await;
    assert!(!found["data"].as_array().unwrap().is_empty(), "{found}");
    let checked = call(
        Method::POST,
        "/v1/chat/check",
        "/v1/chat/check",
        Some(&token),
        Some(json!({"model": "echo", "tool": "research"})),
    )
    .await;
    assert_eq!(checked["allowed"], false, "{checked}");
    let completion = call(
        Method::POST,
        "/v1/chat/completions",
        "/v1/chat/completions",
        Some(&token),
        Some(json!({"model": "echo", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(completion["object"], "chat.completion", "{completion}");
    let refused = call(
        Method::POST,
        "/v1/chat/completions",
        "/v1/chat/completions",
        Some(&token),
        Some(json!({"model": "nope", "messages": [{"role": "user", "content": "hi"}]})),
    )
    .await;
    assert_eq!(refused["error"]["code"], "model_not_found", "{refused}");
    call(
        Method::PATCH,
        "/v1/me",
        "/v1/me",
        Some(&token),
        Some(json!({"name": "Doc", "image_url": "https://img.example.com/doc.png"})),
    )
    .await;
    let sample = std::fs::read(format!(
        "{}/tests/fixtures/imports/chatbotui-export.json",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let imported = call(
        Method::POST,
        "/v1/me/import",
        "/v1/me/import",
        Some(&token),
        Some(serde_json::from_slice(&sample).unwrap()),
    )
    .await;
    assert_eq!(imported["imported"], 2, "{imported}");
    let exported = call(
        Method::GET,
        &format!("/v1/threads/{chat_id}/export"),
        "/v1/threads/{id}/export",
        Some(&token),
        None,
    )
    .await;
    assert_eq!(exported["format"], "threadline.thread");
    let res = app
        .request(Method::GET, "/v1/me/export", Some(&token), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let documented = &spec["paths"]["/v1/me/export"]["get"]["responses"]["200"]["content"];
    assert!(documented["application/zip"].is_object());
    assert_eq!(res.headers()["content-type"], "application/zip");
    streamed.push(("GET".to_owned(), "/v1/me/export".to_owned()));
    // Files: a multipart upload, its metadata, the list, the bytes, the delete.
    let boundary = "doc-boundary";
    let upload = app
        .client
        .post(format!("{}/v1/files", app.address))
        .bearer_auth(&token)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .body(format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.md\"\r\n\r\n# doc\r\n--{boundary}--\r\n"
        ))
        .send()
        .await
        .unwrap();
    let status = upload.status();
    let file: Value = upload.json().await.unwrap();
    assert_documented(&spec, "POST", "/v1/files", status, &file);
    streamed.push(("POST".to_owned(), "/v1/files".to_owned()));
    let file_id = file["id"].as_str().unwrap().to_owned();
    call(Method::GET, "/v1/files", "/v1/files", Some(&token), None).await;
    call(
        Method::GET,
        &format!("/v1/files/{file_id}"),
        "/v1/files/{id}",
        Some(&token),
        None,
    )
    .await;
    let res = app
        .request(
            Method::GET,
            &format!("/v1/files/{file_id}/content"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let documented = &spec["paths"]["/v1/files/{id}/content"]["get"]["responses"]["200"]["content"];
    assert!(documented["text/markdown"].is_object());
    assert_eq!(
        res.headers()["content-type"],
        "text/markdown; charset=utf-8"
    );
    streamed.push(("GET".to_owned(), "/v1/files/{id}/content".to_owned()));
    call(
        Method::DELETE,
        &format!("/v1/files/{file_id}"),
        "/v1/files/{id}",
        Some(&token),
        None,
    )
    .await;
    let branch_id = branched["id"].as_str().unwrap().to_owned();
    call(
        Method::DELETE,
        &format!("/v1/threads/{branch_id}/messages/doc-m1"),
        "/v1/threads/{id}/messages/{message_id}",
        Some(&token),
        None,
    )
    .await;
    // …and the finished reply replayed, whole and after a part.
    let events_path = format!("/v1/generations/{generation}/events");
    for query in ["", "?after=1.1", "?speed=max"] {
        let res = app
            .client
            .get(format!("{}{events_path}{query}", app.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        let replay =
            assert_documented_ui_stream(&spec, "GET", "/v1/generations/{id}/events", res).await;
        // The same parts with the same ids (`start` and `start-step`, 1.0 and 1.1, skipped).
        let skipped = if query.starts_with("?after") { 2 } else { 0 };
        let ids = |events: &[SseEvent]| -> Vec<Option<String>> {
            events.iter().map(|e| e.id.clone()).collect()
        };
        assert_eq!(ids(&replay), ids(&events[skipped..]), "the replay differs");
    }
    streamed.push(("GET".to_owned(), "/v1/generations/{id}/events".to_owned()));
    for bad in ["?after=nope", "?speed=fast"] {
        call(
            Method::GET,
            &format!("{events_path}{bad}"),
            "/v1/generations/{id}/events",
            Some(&token),
            None,
        )
        .await;
    }

    // The feed showed the chat: the thread created, the message posted, the reply started and
    // finished (and the thread titled, at some point).
    let items = feed.read_events(4).await;
    assert_events_documented(&spec, "FeedEvent", &items, "GET /v1/events");
    let kinds: Vec<String> = items.iter().map(SseEvent::kind).collect();
    assert_eq!(
        kinds[..3],
        ["thread.created", "message.posted", "reply.started"],
        "{items:?}"
    );
    drop(feed);
    let res = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(&token)
        .header("last-event-id", "forged")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "invalid_cursor", "{body}");
    assert_documented(&spec, "GET", "/v1/events", status, &body);

    call(
        Method::POST,
        "/v1/auth/logout",
        "/v1/auth/logout",
        Some(&token),
        None,
    )
    .await;

    // Documented errors match too.
    call(Method::GET, "/v1/me", "/v1/me", None, None).await;
    let stranger = app.anonymous().await;
    let (status, _) = app.get_thread(&stranger.token, &id).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    call(
        Method::GET,
        &thread_path,
        "/v1/threads/{id}",
        Some(&stranger.token),
        None,
    )
    .await;
    call(
        Method::POST,
        "/v1/auth/register",
        "/v1/auth/register",
        None,
        Some(json!({"email": "bad", "password": "x"})),
    )
    .await;

    call(
        Method::GET,
        "/v1/me/usage",
        "/v1/me/usage",
        Some(&stranger.token),
        None,
    )
    .await;

    call(
        Method::GET,
        "/v1/me/preferences",
        "/v1/me/preferences",
        Some(&stranger.token),
        None,
    )
    .await;
    call(
        Method::PATCH,
        "/v1/me/preferences",
        "/v1/me/preferences",
        Some(&stranger.token),
        Some(json!({"nickname": "Doc", "theme": "dark"})),
    )
    .await;

    let key = call(
        Method::POST,
        "/v1/me/api-keys",
        "/v1/me/api-keys",
        Some(&stranger.token),
        Some(json!({"name": "doc"})),
    )
    .await;
    call(
        Method::GET,
        "/v1/me/api-keys",
        "/v1/me/api-keys",
        Some(&stranger.token),
        None,
    )
    .await;
    call(
        Method::DELETE,
        &format!("/v1/me/api-keys/{}", key["id"].as_str().unwrap()),
        "/v1/me/api-keys/{id}",
        Some(&stranger.token),
        None,
    )
    .await;

    // The model catalog: the caller's view, and the admin endpoints.
    call(
        Method::GET,
        "/v1/models",
        "/v1/models",
        Some(&stranger.token),
        None,
    )
    .await;
    let admin = app.registered("admin@example.com").await;
    let entry = call(
        Method::GET,
        "/v1/admin/models/echo",
        "/v1/admin/models/{id}",
        Some(&admin.token),
        None,
    )
    .await;
    let mut model_spec = entry.clone();
    model_spec.as_object_mut().unwrap().remove("id");
    call(
        Method::PUT,
        "/v1/admin/models/echo",
        "/v1/admin/models/{id}",
        Some(&admin.token),
        Some(model_spec),
    )
    .await;
    call(
        Method::GET,
        "/v1/admin/models/echo",
        "/v1/admin/models/{id}",
        Some(&stranger.token),
        None,
    )
    .await;

    // MCP servers: registered, listed, a real server's tools and a down one's 502, removed.
    let mcp = crate::mcp_server::McpTestServer::start().await;
    for (name, url) in [
        ("test", mcp.url.clone()),
        ("down", "http://127.0.0.1:1/mcp".into()),
    ] {
        call(
            Method::PUT,
            &format!("/v1/admin/mcp-servers/{name}"),
            "/v1/admin/mcp-servers/{name}",
            Some(&admin.token),
            Some(json!({"url": url, "secret": "s", "enabled": true})),
        )
        .await;
    }
    call(
        Method::PUT,
        "/v1/admin/mcp-servers/test",
        "/v1/admin/mcp-servers/{name}",
        Some(&admin.token),
        Some(json!({"url": "gopher://x", "enabled": true})),
    )
    .await;
    call(
        Method::GET,
        "/v1/admin/mcp-servers",
        "/v1/admin/mcp-servers",
        Some(&admin.token),
        None,
    )
    .await;
    for name in ["test", "down"] {
        call(
            Method::GET,
            &format!("/v1/admin/mcp-servers/{name}/tools"),
            "/v1/admin/mcp-servers/{name}/tools",
            Some(&admin.token),
            None,
        )
        .await;
    }
    for _ in 0..2 {
        call(
            Method::DELETE,
            "/v1/admin/mcp-servers/down",
            "/v1/admin/mcp-servers/{name}",
            Some(&admin.token),
            None,
        )
        .await;
    }

    // Admin reports: usage totals (grouped and not, JSON and CSV) and an account's ledger
    // after a credit grant.
    let report = call(
        Method::GET,
        "/v1/admin/usage?group_by=day,model,provider,tier,account",
        "/v1/admin/usage",
        Some(&admin.token),
        None,
    )
    .await;
    assert!(!report["rows"].as_array().unwrap().is_empty(), "{report}");
    call(
        Method::GET,
        "/v1/admin/usage",
        "/v1/admin/usage",
        Some(&admin.token),
        None,
    )
    .await;
    call(
        Method::GET,
        "/v1/admin/usage?from=yesterday",
        "/v1/admin/usage",
        Some(&admin.token),
        None,
    )
    .await;
    call(
        Method::GET,
        "/v1/admin/usage",
        "/v1/admin/usage",
        Some(&stranger.token),
        None,
    )
    .await;
    let res = app
        .request(
            Method::GET,
            "/v1/admin/usage?format=csv&group_by=model",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/csv"), "{content_type}");
    assert!(
        spec["paths"]["/v1/admin/usage"]["get"]["responses"]["200"]["content"]["text/csv"]
            .is_object(),
        "/v1/admin/usage documents text/csv"
    );
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("model,messages,"), "{csv}");

    let doc_account = reg["account_id"].as_str().unwrap().to_owned();
    let credits_path = format!("/v1/admin/accounts/{doc_account}/credits");
    let granted = call(
        Method::POST,
        &credits_path,
        "/v1/admin/accounts/{id}/credits",
        Some(&admin.token),
        Some(json!({"amount": 25, "reason": "documentation"})),
    )
    .await;
    assert_eq!(granted["purchased_credits"], 25, "{granted}");
    call(
        Method::POST,
        &credits_path,
        "/v1/admin/accounts/{id}/credits",
        Some(&admin.token),
        Some(json!({"amount": 0, "reason": "nothing"})),
    )
    .await;
    call(
        Method::POST,
        &credits_path,
        "/v1/admin/accounts/{id}/credits",
        Some(&stranger.token),
        Some(json!({"amount": 1, "reason": "me"})),
    )
    .await;
    let unknown = "00000000-0000-4000-8000-000000000000";
    call(
        Method::POST,
        &format!("/v1/admin/accounts/{unknown}/credits"),
        "/v1/admin/accounts/{id}/credits",
        Some(&admin.token),
        Some(json!({"amount": 1, "reason": "nobody"})),
    )
    .await;
    let statement = call(
        Method::GET,
        &format!("/v1/admin/accounts/{doc_account}/ledger"),
        "/v1/admin/accounts/{id}/ledger",
        Some(&admin.token),
        None,
    )
    .await;
    let kinds: Vec<&str> = statement["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    // (The echo model costs no credits: the grant is the account's only movement.)
    assert_eq!(kinds, ["added"], "{statement}");
    call(
        Method::GET,
        &format!("/v1/admin/accounts/{unknown}/ledger"),
        "/v1/admin/accounts/{id}/ledger",
        Some(&admin.token),
        None,
    )
    .await;
    call(
        Method::GET,
        &format!("/v1/admin/accounts/{doc_account}/ledger"),
        "/v1/admin/accounts/{id}/ledger",
        Some(&stranger.token),
        None,
    )
    .await;
    // The admin audit trail lists the grant (the projection may trail the grant's answer).
    let mut trail = Value::Null;
    for _ in 0..100 {
        trail = call(
            Method::GET,
            &format!("/v1/admin/audit?actor={}&limit=1", admin.account_id),
            "/v1/admin/audit",
            Some(&admin.token),
            None,
        )
        .await;
        if trail["data"].as_array().is_some_and(|d| !d.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(trail["data"][0]["event_type"], "CreditsAdded", "{trail}");
    for (query, who) in [
        ("?from=tomorrow", &admin),
        ("?cursor=forged", &admin),
        ("?limit=0", &admin),
        ("", &stranger),
    ] {
        call(
            Method::GET,
            &format!("/v1/admin/audit{query}"),
            "/v1/admin/audit",
            Some(&who.token),
            None,
        )
        .await;
    }
    // Time travel: a thread of the documentation account as it is now and at a bad moment.
    let doc_thread = &id;
    for query in ["", "?at=2000-01-01T00:00:00Z", "?at=soon"] {
        call(
            Method::GET,
            &format!("/v1/admin/threads/{doc_thread}{query}"),
            "/v1/admin/threads/{id}",
            Some(&admin.token),
            None,
        )
        .await;
    }
    call(
        Method::GET,
        &format!("/v1/admin/threads/{doc_thread}"),
        "/v1/admin/threads/{id}",
        Some(&stranger.token),
        None,
    )
    .await;
    // The grant shows in the account's own usage (signed in again: its token was logged out).
    let again = call(
        Method::POST,
        "/v1/auth/login",
        "/v1/auth/login",
        None,
        Some(json!({"email": "doc@example.com", "password": "correct horse battery"})),
    )
    .await;
    let usage = call(
        Method::GET,
        "/v1/me/usage",
        "/v1/me/usage",
        again["token"].as_str(),
        None,
    )
    .await;
    assert_eq!(usage["purchased_credits"], 25, "{usage}");

    // Webhooks: an ignored event, its redelivery, a subscription for a real account, and
    // refusals.
    let payer = app.registered("payer@example.com").await;
    let to_body = |value: Value| serde_json::to_vec(&value).unwrap();
    let mut webhook = async |path: &str, headers: &[(&str, String)], body: &[u8]| {
        let (status, value) = post_raw(&app, path, headers, body).await;
        assert_documented(&spec, "POST", path, status, &value);
        streamed.push(("POST".to_owned(), path.to_owned()));
        value
    };
    let ignored = to_body(json!({"type": "checkout.created", "data": {}}));
    let answer = webhook(
        "/v1/webhooks/polar",
        &polar_headers("msg_doc_1", &ignored),
        &ignored,
    )
    .await;
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    let answer = webhook(
        "/v1/webhooks/polar",
        &polar_headers("msg_doc_1", &ignored),
        &ignored,
    )
    .await;
    assert_eq!(answer["outcome"], "duplicate", "{answer}");
    let subscribed = to_body(
        json!({"type": "subscription.active", "timestamp": "2026-12-01T00:00:00Z", "data": {
        "id": "sub_doc", "status": "active", "current_period_end": "2099-01-01T00:00:00Z",
        "ended_at": null, "customer": {"id": "cus_doc", "external_id": payer.account_id}}}),
    );
    let answer = webhook(
        "/v1/webhooks/polar",
        &polar_headers("msg_doc_2", &subscribed),
        &subscribed,
    )
    .await;
    assert_eq!(answer["outcome"], "subscription", "{answer}");
    let stranger_sub = to_body(
        json!({"type": "subscription.active", "timestamp": "2026-12-01T00:00:00Z", "data": {
        "id": "sub_x", "status": "active", "customer": {"external_id": unknown}}}),
    );
    let answer = webhook(
        "/v1/webhooks/polar",
        &polar_headers("msg_doc_3", &stranger_sub),
        &stranger_sub,
    )
    .await;
    assert_eq!(answer["code"], "validation_failed", "{answer}");
    let answer = webhook("/v1/webhooks/polar", &[], &ignored).await;
    assert_eq!(answer["code"], "signature_missing", "{answer}");
    let answer = webhook(
        "/v1/webhooks/polar",
        &polar_headers("msg_doc_4", b"not json"),
        b"not json",
    )
    .await;
    assert_eq!(answer["code"], "invalid_json", "{answer}");
    let stripe_body = to_body(json!({"id": "evt_1", "type": "invoice.created",
        "data": {"object": {}}}));
    let answer = webhook(
        "/v1/webhooks/stripe",
        &[(
            "stripe-signature",
            sign_stripe(WEBHOOK_SECRET, unix_now(), &stripe_body),
        )],
        &stripe_body,
    )
    .await;
    assert_eq!(answer["outcome"], "ignored", "{answer}");
    let answer = webhook(
        "/v1/webhooks/stripe",
        &[(
            "stripe-signature",
            sign_stripe("whsec_wrong", unix_now(), &stripe_body),
        )],
        &stripe_body,
    )
    .await;
    assert_eq!(answer["code"], "signature_mismatch", "{answer}");

    // The subscriber's profile, and billing links through the mock's Polar API.
    let me = call(Method::GET, "/v1/me", "/v1/me", Some(&payer.token), None).await;
    assert_eq!(me["tier"], "pro", "{me}");
    assert_eq!(me["subscription_status"], "active", "{me}");
    let link = call(
        Method::POST,
        "/v1/billing/checkout",
        "/v1/billing/checkout",
        Some(&payer.token),
        Some(json!({"product": "pro", "success_url": "https://app.example/thanks"})),
    )
    .await;
    assert_eq!(link["provider"], "polar", "{link}");
    for (body, code) in [
        (json!({"product": "gold"}), "validation_failed"),
        (
            json!({"product": "pro", "provider": "stripe"}),
            "billing_not_configured",
        ),
    ] {
        let answer = call(
            Method::POST,
            "/v1/billing/checkout",
            "/v1/billing/checkout",
            Some(&payer.token),
            Some(body),
        )
        .await;
        assert_eq!(answer["code"], code, "{answer}");
    }
    let answer = call(
        Method::POST,
        "/v1/billing/checkout",
        "/v1/billing/checkout",
        Some(&stranger.token),
        Some(json!({"product": "pro"})),
    )
    .await;
    assert_eq!(answer["code"], "account_required", "{answer}");
    let portal = call(
        Method::GET,
        "/v1/billing/portal?return_url=https://app.example/settings",
        "/v1/billing/portal",
        Some(&payer.token),
        None,
    )
    .await;
    assert_eq!(portal["provider"], "polar", "{portal}");
    call(
        Method::GET,
        "/v1/billing/portal",
        "/v1/billing/portal",
        Some(&stranger.token),
        None,
    )
    .await;

    // An external identity's JWT: its account is created on first use.
    let jwt = sign_test_token(
        &json!({"sub": "doc-user", "email": "ext@example.com", "name": "Ext",
            "exp": unix_now() + 600}),
        TestKey::Hs256(JWT_SECRET),
    );
    let me = call(Method::GET, "/v1/me", "/v1/me", Some(&jwt), None).await;
    assert_eq!(me["kind"], "external", "{me}");
    let forged = sign_test_token(
        &json!({"sub": "doc-user", "exp": unix_now() + 600}),
        TestKey::Hs256("another-secret-another-secret-32"),
    );
    let answer = call(Method::GET, "/v1/me", "/v1/me", Some(&forged), None).await;
    assert_eq!(answer["code"], "token_signature_invalid", "{answer}");

    // Erasing an account: refused without the password, then done.
    let leaving = app.registered("leaving@example.com").await;
    let refused = call(
        Method::DELETE,
        "/v1/me",
        "/v1/me",
        Some(&leaving.token),
        Some(json!({})),
    )
    .await;
    assert_eq!(refused["code"], "reauthentication_required", "{refused}");
    call(
        Method::DELETE,
        "/v1/me",
        "/v1/me",
        Some(&leaving.token),
        Some(json!({"password": "correct horse battery"})),
    )
    .await;

    // Plain-text metrics (two replies so far: the chat send and the completion).
    let res = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let op = &spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"];
    assert!(
        op["text/plain"].is_object(),
        "/metrics documents text/plain"
    );
    let text = res.text().await.unwrap();
    assert!(
        text.contains("threadline_reply_overhead_seconds_count 2"),
        "{text}"
    );
    streamed.push(("GET".to_owned(), "/metrics".to_owned()));

    let covered: BTreeSet<_> = seen.into_iter().chain(streamed).collect();
    let all: BTreeSet<_> = threadline::routes::ROUTES
        .iter()
        .map(|(m, p)| (m.to_uppercase(), (*p).to_owned()))
        .collect();
    let untested: Vec<_> = all.difference(&covered).collect();
    assert!(
        untested.is_empty(),
        "routes whose responses this test does not check: {untested:?}"
    );
}

#[test]
fn the_documented_problem_codes_are_exactly_the_servers() {
    use threadline::error::ErrorCode;
    let spec = spec();
    let documented: std::collections::BTreeSet<&str> =
        spec["components"]["schemas"]["Problem"]["properties"]["code"]["enum"]
            .as_array()
            .expect("Problem.code has an enum")
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
    let served: std::collections::BTreeSet<&str> =
        ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    assert_eq!(
        served.difference(&documented).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "codes the server answers but the document does not list"
    );
    assert_eq!(
        documented.difference(&served).collect::<Vec<_>>(),
        Vec::<&&str>::new(),
        "codes the document lists but the server never answers"
    );
}
