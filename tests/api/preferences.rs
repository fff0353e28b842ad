//! Preferences: defaults, partial updates, limits, and custom instructions in the prompt.

use reqwest::{Method, StatusCode};
use serde_json::json;
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{TestDb, assert_problem, spawn_app, spawn_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preferences_start_with_defaults_and_take_partial_updates() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let (status, prefs) = app
        .call(Method::GET, "/v1/me/preferences", Some(&user.token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(prefs["pinned_models"], json!(["echo"]));
    assert_eq!(prefs["nickname"], json!(null));

    let (status, prefs) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&user.token),
            Some(
                json!({"nickname": " Ada ", "theme": "dark", "pinned_models": ["echo", "gpt-4o"]}),
            ),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{prefs}");
    assert_eq!(prefs["nickname"], "Ada");
    let (_, prefs) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&user.token),
            Some(json!({"theme": null})),
        )
        .await;
    assert_eq!(prefs["theme"], json!(null), "null clears");
    assert_eq!(prefs["nickname"], "Ada", "absent fields stay");
    let (_, again) = app
        .call(Method::GET, "/v1/me/preferences", Some(&user.token), None)
        .await;
    assert_eq!(again, prefs);

    for bad in [
        json!({"pinned_models": []}),
        json!({"nickname": "x".repeat(51)}),
        json!({"pinned_models": [""]}),
        json!({"custom_instructions": 5}),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                "/v1/me/preferences",
                Some(&user.token),
                Some(bad),
            )
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_instructions_are_sent_as_the_system_prompt() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    let user = app.anonymous().await;
    app.chat_all(&user.token, "plain", "u1", "hi", Some("openai/mock:len=1"))
        .await;
    let plain = app.wait_reply_done(&user.token, "plain").await;
    assert_eq!(plain["messages"][1]["metadata"]["usage"]["input_tokens"], 1);

    app.call(
        Method::PATCH,
        "/v1/me/preferences",
        Some(&user.token),
        Some(json!({"custom_instructions": "answer very briefly"})),
    )
    .await;
    app.chat_all(&user.token, "styled", "u1", "hi", Some("openai/mock:len=1"))
        .await;
    let styled = app.wait_reply_done(&user.token, "styled").await;
    assert_eq!(
        styled["messages"][1]["metadata"]["usage"]["input_tokens"], 4,
        "the three words of the instructions went to the model"
    );
}
