//! A revoked credential's open streams end within moments, cleanly.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{LiveStream, TestApp, TestDb, User, model_spec, spawn_on};

async fn feed(app: &TestApp, token: &str) -> LiveStream {
    let res = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = LiveStream::new(res);
    stream.expect_ready().await;
    stream
}

/// Reads the stream to its end (which must come within ten seconds) and returns its events.
async fn ends_soon(stream: LiveStream) -> Vec<crate::helpers::SseEvent> {
    tokio::time::timeout(Duration::from_secs(10), stream.read_all())
        .await
        .expect("the stream did not end")
}

async fn second_session(app: &TestApp, email: &str) -> User {
    let (status, body) = app.login(email, "correct horse battery", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    User::from(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_of_a_revoked_session_ends_and_carries_nothing_after() {
    let app = spawn_on(TestDb::fresh().await, |_| {}).await;
    let phone = app.registered("ada@example.com").await;
    let laptop = second_session(&app, "ada@example.com").await;
    let mut watched = feed(&app, &phone.token).await;
    app.create_thread(&laptop.token, json!({"id": "before"}))
        .await;
    assert_eq!(
        watched.read_events(1).await[0].json()["thread_id"],
        "before"
    );

    assert_eq!(
        app.revoke_session(&laptop.token, &phone.session_id).await,
        StatusCode::NO_CONTENT
    );
    app.create_thread(&laptop.token, json!({"id": "after"}))
        .await;
    let events = ends_soon(watched).await;
    let last = events.last().unwrap();
    assert_eq!(last.kind(), "session.revoked", "{events:?}");
    assert!(
        events.iter().all(|e| e.json()["thread_id"] != "after"),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_out_ends_the_replies_streaming_to_that_session() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    let user = app.registered("admin@example.com").await;
    app.define_model(
        &user,
        "slow",
        model_spec("openai", "mock:len=200,tps=20", 0),
    )
    .await;
    let other = second_session(&app, "admin@example.com").await;
    let res = app
        .chat(&user.token, "long", "m1", "hi", Some("slow"))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut sending = LiveStream::new(res);
    sending.read_events(3).await;
    let resumed = app.resume(&user.token, "long", None).await;
    assert_eq!(resumed.status(), StatusCode::OK);

    assert_eq!(app.logout(&user.token).await, StatusCode::NO_CONTENT);
    for stream in [sending, LiveStream::new(resumed)] {
        let events = ends_soon(stream).await;
        let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(&kinds[kinds.len() - 2..], ["error", "[DONE]"], "{kinds:?}");
        assert!(
            !kinds.contains(&"finish".to_owned()),
            "it ended early: {kinds:?}"
        );
    }
    // The reply itself goes on (a client disconnecting never stops it): another session can
    // still follow it.
    let (_, thread) = app.get_thread(&other.token, "long").await;
    assert!(thread["active_generation_id"].is_string(), "{thread}");
    app.stop_reply(&other.token, "long").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_api_keys_feed_ends() {
    let app = spawn_on(TestDb::fresh().await, |_| {}).await;
    let user = app.registered("ada@example.com").await;
    let (_, key) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&user.token),
            Some(json!({"name": "bot"})),
        )
        .await;
    let watched = feed(&app, key["secret"].as_str().unwrap()).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{}", key["id"].as_str().unwrap()),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let events = ends_soon(watched).await;
    assert_eq!(events.last().unwrap().kind(), "session.revoked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_an_anonymous_account_ends_its_feed() {
    let app = spawn_on(TestDb::fresh().await, |_| {}).await;
    let anonymous = app.anonymous().await;
    let watched = feed(&app, &anonymous.token).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (status, _) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anonymous.token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let events = ends_soon(watched).await;
    assert_eq!(events.last().unwrap().kind(), "session.revoked");
}
