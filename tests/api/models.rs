//! The model catalog: offered models per caller, access enforced on the server, admin changes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{TestApp, TestDb, assert_problem, spawn_app, spawn_on};

async fn app_with_openai() -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "test-key".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    (app, mock)
}

fn model<'a>(list: &'a Value, id: &str) -> &'a Value {
    list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == id)
        .unwrap_or_else(|| panic!("{id} not offered: {list}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_provider_keys_only_echo_is_offered() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let (status, list) = app
        .call(Method::GET, "/v1/models", Some(&user.token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["echo"]);
    assert_eq!(list["data"][0]["available"], true);
    assert_eq!(list["data"][0]["default"], true);
    // What the `openai` SDKs read: the list and model object types, owner and creation time
    // (the catalog was seeded when this server first started).
    assert_eq!(list["object"], "list");
    let echo = &list["data"][0];
    assert_eq!(echo["object"], "model");
    assert_eq!(echo["owned_by"], "echo");
    let created = echo["created"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!((now - 600..=now).contains(&created), "{created} vs {now}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_provider_offers_its_catalog_models_with_access_per_caller() {
    let (app, _mock) = app_with_openai().await;
    let anon = app.anonymous().await;
    let (_, list) = app
        .call(Method::GET, "/v1/models", Some(&anon.token), None)
        .await;
    assert_eq!(model(&list, "gpt-4o-mini")["available"], true);
    assert_eq!(model(&list, "gpt-4o-mini")["default"], true);
    assert_eq!(model(&list, "gpt-4o")["access"], "account_required");
    assert_eq!(model(&list, "gpt-4o")["available"], false);
    assert_eq!(model(&list, "gpt-5")["available"], false);
    assert!(
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["provider"] == "openai" || m["provider"] == "echo")
    );

    let user = app.registered("ada@example.com").await;
    let (_, list) = app
        .call(Method::GET, "/v1/models", Some(&user.token), None)
        .await;
    assert_eq!(model(&list, "gpt-4o")["available"], true);
    assert_eq!(
        model(&list, "gpt-5")["available"],
        false,
        "premium needs a subscription"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_access_is_enforced_on_the_server_for_every_tier_and_level() {
    let (app, _mock) = app_with_openai().await;
    let anon = app.anonymous().await;
    let free = app.registered("free@example.com").await;
    // (caller, model, expected) — gpt-4o-mini public, gpt-4o account_required, gpt-5 premium.
    let cases = [
        (&anon, "gpt-4o-mini", None),
        (
            &anon,
            "gpt-4o",
            Some((StatusCode::FORBIDDEN, "account_required")),
        ),
        (
            &anon,
            "gpt-5",
            Some((StatusCode::FORBIDDEN, "premium_required")),
        ),
        (&free, "gpt-4o-mini", None),
        (&free, "gpt-4o", None),
        // A plan gate: a subscription would open it.
        (
            &free,
            "gpt-5",
            Some((StatusCode::PAYMENT_REQUIRED, "premium_required")),
        ),
    ];
    for (i, (user, model, refusal)) in cases.into_iter().enumerate() {
        let thread = format!("access-{i}");
        let res = app
            .chat(&user.token, &thread, "u1", "hi", Some(model))
            .await;
        match refusal {
            None => {
                assert_eq!(res.status(), StatusCode::OK, "{model}");
                crate::helpers::LiveStream::new(res).read_all().await;
            }
            Some((expected, code)) => {
                let status = res.status();
                let body: Value = res.json().await.unwrap();
                assert_problem(status, &body, expected, code);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_change_the_catalog_and_everyone_else_gets_403() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    let user = app.registered("ada@example.com").await;
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/admin/models/gpt-5",
            Some(&user.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, mut entry) = app
        .call(
            Method::GET,
            "/v1/admin/models/gpt-5",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["access"], "premium_required");
    entry["access"] = json!("public");
    entry["credits"] = json!(3);
    let id = entry.as_object_mut().unwrap().remove("id").unwrap();
    assert_eq!(id, "gpt-5");
    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/admin/models/gpt-5",
            Some(&user.token),
            Some(entry.clone()),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, updated) = app
        .call(
            Method::PUT,
            "/v1/admin/models/gpt-5",
            Some(&admin.token),
            Some(entry),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(updated["credits"], 3);

    let anon = app.anonymous().await;
    let (_, list) = app
        .call(Method::GET, "/v1/models", Some(&anon.token), None)
        .await;
    assert_eq!(
        model(&list, "gpt-5")["available"],
        true,
        "the change takes effect"
    );
    let res = app
        .chat(&anon.token, "now-public", "u1", "hi", Some("gpt-5"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    crate::helpers::LiveStream::new(res).read_all().await;

    let (status, body) = app
        .call(
            Method::PUT,
            "/v1/admin/models/x",
            Some(&admin.token),
            Some(json!({"provider": "openai"})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/admin/models/nope",
            Some(&admin.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
}

/// Each provider reports usage its own way; the recorded counts are exactly the provider's
/// and the cost counts each token once (cached prompt tokens not billed twice, reasoning not
/// billed twice, running totals not summed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_and_cost_are_recorded_exactly_per_provider() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let root = format!("http://127.0.0.1:{}", mock.port());
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (format!("{root}/v1")).into()),
            ("ANTHROPIC_API_KEY".into(), "k".into()),
            ("ANTHROPIC_BASE_URL".into(), (root.clone()).into()),
            ("GEMINI_API_KEY".into(), "k".into()),
            ("GEMINI_BASE_URL".into(), (root).into()),
        ]);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    // (provider, [input, output, reasoning, cached] as the mock reports them, cost in µ$)
    let cases = [
        ("openai", [6, 7, 2, 3], 20),
        ("anthropic", [3, 7, 0, 3], 18),
        ("gemini", [6, 5, 2, 3], 20),
    ];
    for (provider, usage, cost) in cases {
        let id = format!("priced-{provider}");
        let spec = json!({
            "provider": provider,
            "upstream": "mock:len=5,reasoning=2,cached=3",
            "capabilities": ["reasoning"],
            "access": "public",
            "credits": 1,
            "prices": {"input": 1_000_000, "output": 2_000_000, "cached_input": 100_000, "reasoning": 3_000_000},
            "enabled": true,
        });
        let (status, body) = app
            .call(
                Method::PUT,
                &format!("/v1/admin/models/{id}"),
                Some(&admin.token),
                Some(spec),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let thread = format!("usage-{provider}");
        app.chat_all(&admin.token, &thread, "u1", "one two three", Some(&id))
            .await;
        let t = app.wait_reply_done(&admin.token, &thread).await;
        let meta = &t["messages"][1]["metadata"];
        assert_eq!(
            meta["usage"],
            json!({"input_tokens": usage[0], "output_tokens": usage[1], "reasoning_tokens": usage[2], "cached_input_tokens": usage[3]}),
            "{provider}"
        );
        assert_eq!(meta["cost_micros"], cost, "{provider}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_provider_falls_back_to_the_next_one_listed() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base.clone()).into()),
            ("OPENROUTER_API_KEY".into(), "k".into()),
            ("OPENROUTER_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    let define = |primary: &str| {
        json!({
            "provider": "openai",
            "upstream": primary,
            "capabilities": [],
            "access": "public",
            "credits": 1,
            "prices": {"input": 0, "output": 0, "cached_input": 0, "reasoning": 0},
            "enabled": true,
            "fallbacks": [{"provider": "openrouter", "upstream": "mock:len=3"}],
        })
    };
    let (status, entry) = app
        .call(
            Method::PUT,
            "/v1/admin/models/with-fallback",
            Some(&admin.token),
            Some(define("mock:status=503,retry_after=0")),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entry}");
    assert_eq!(entry["fallbacks"][0]["provider"], "openrouter");
    let events = app
        .chat_all(&admin.token, "fb", "u1", "hi", Some("with-fallback"))
        .await;
    assert_eq!(crate::helpers::streamed_text(&events), "w0 w1 w2 ");
    assert_eq!(
        mock.requests(),
        4,
        "three attempts at the primary, then the fallback"
    );

    // A client error (400) is not the provider being down: no fallback.
    app.call(
        Method::PUT,
        "/v1/admin/models/with-fallback",
        Some(&admin.token),
        Some(define("mock:status=400")),
    )
    .await;
    let events = app
        .chat_all(&admin.token, "fb2", "u1", "hi", Some("with-fallback"))
        .await;
    assert!(events.iter().any(|e| e.kind() == "error"));
    assert_eq!(mock.requests(), 5);
}
