//! Requests racing each other: a refused request changes nothing and holds nothing.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{TestApp, TestDb, User, model_spec, spawn_on};

async fn app_with_mock() -> (TestApp, MockUpstream) {
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

async fn credits_left(app: &TestApp, user: &User) -> Value {
    for _ in 0..200 {
        let (_, usage) = app
            .call(Method::GET, "/v1/me/usage", Some(&user.token), None)
            .await;
        if usage["meters"][0]["reserved"] == 0 {
            return usage["meters"][0]["remaining"].clone();
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("a reservation stayed open");
}

fn send_body(thread: &str, message_id: &str) -> Value {
    json!({
        "id": thread,
        "messages": [{"id": message_id, "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
        "model": "slow",
    })
}

/// Sends `n` messages to `thread` at once; returns each answer's status and problem code.
async fn race_sends(app: &TestApp, user: &User, thread: &str, n: usize) -> Vec<(u16, String)> {
    join_all((0..n).map(|i| {
        let body = send_body(thread, &format!("race-{i}"));
        async move {
            let res = app
                .request(Method::POST, "/v1/chat", Some(&user.token), Some(body))
                .await;
            let status = res.status().as_u16();
            let code = if status == 200 {
                String::new()
            } else {
                let problem: Value = res.json().await.unwrap();
                problem["code"].as_str().unwrap_or_default().to_owned()
            };
            (status, code)
        }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_sends_on_one_thread_hold_no_credits_and_leave_no_messages() {
    let (app, _mock) = app_with_mock().await;
    let user = app.registered("admin@example.com").await;
    app.define_model(
        &user,
        "slow",
        model_spec("openai", "mock:len=3,ttft_ms=1500", 1),
    )
    .await;
    app.define_model(&user, "quick", model_spec("openai", "mock:len=2", 1))
        .await;
    app.chat_all(&user.token, "busy", "first", "hi", Some("quick"))
        .await;
    assert_eq!(credits_left(&app, &user).await, 19);

    let answers = race_sends(&app, &user, "busy", 30).await;
    let won = answers.iter().filter(|(s, _)| *s == 200).count();
    let busy = answers
        .iter()
        .filter(|(s, c)| *s == 409 && c == "reply_in_progress")
        .count();
    assert_eq!((won, busy), (1, 29), "{answers:?}");

    app.wait_reply_done(&user.token, "busy").await;
    assert_eq!(credits_left(&app, &user).await, 18, "only the winner paid");
    let (_, thread) = app.get_thread(&user.token, "busy").await;
    let path = thread["messages"].as_array().unwrap();
    assert_eq!(path.len(), 4, "{thread}");
    assert_eq!(
        path[2]["metadata"]["sibling_ids"].as_array().unwrap().len(),
        1,
        "the refused sends posted no message: {thread}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_first_sends_on_a_new_thread_are_told_a_reply_streams_never_not_found() {
    let (app, _mock) = app_with_mock().await;
    let user = app.registered("admin@example.com").await;
    app.define_model(
        &user,
        "slow",
        model_spec("openai", "mock:len=3,ttft_ms=1500", 0),
    )
    .await;
    let answers = race_sends(&app, &user, "newrace-9", 20).await;
    assert_eq!(
        answers.iter().filter(|(s, _)| *s == 200).count(),
        1,
        "{answers:?}"
    );
    assert!(
        answers
            .iter()
            .all(|(s, c)| *s == 200 || (*s == 409 && c == "reply_in_progress")),
        "{answers:?}"
    );
    app.wait_reply_done(&user.token, "newrace-9").await;
    let (_, thread) = app.get_thread(&user.token, "newrace-9").await;
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2, "{thread}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_refused_for_its_quota_posts_nothing() {
    let (app, _mock) = app_with_mock().await;
    let user = app.registered("admin@example.com").await;
    app.define_model(&user, "dear", model_spec("openai", "mock:len=2", 25))
        .await;
    let res = app.chat(&user.token, "t1", "m1", "hi", Some("dear")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let (status, thread) = app.get_thread(&user.token, "t1").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "no thread was created: {thread}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_registrations_with_one_anonymous_token_create_one_account() {
    let (app, _mock) = app_with_mock().await;
    let anonymous = app.anonymous().await;
    let answers = join_all((0..5).map(|i| {
        let (app, token) = (&app, anonymous.token.clone());
        async move {
            app.register(
                &format!("racer{i}@example.com"),
                "correct horse battery",
                Some(&token),
            )
            .await
        }
    }))
    .await;
    let created: Vec<usize> = (0..5)
        .filter(|i| answers[*i].0 == StatusCode::CREATED)
        .collect();
    assert_eq!(created.len(), 1, "{answers:?}");
    for (i, (status, body)) in answers.iter().enumerate() {
        if *status != StatusCode::CREATED {
            assert!(
                *status == StatusCode::CONFLICT || *status == StatusCode::UNAUTHORIZED,
                "{body}"
            );
            // The refused registration reserved no email: it can be registered now.
            let (again, body) = app
                .register(
                    &format!("racer{i}@example.com"),
                    "correct horse battery",
                    None,
                )
                .await;
            assert_eq!(again, StatusCode::CREATED, "racer{i}: {body}");
        }
    }
    // Exactly one registered account absorbed the anonymous one; the others never existed
    // before their retry above.
    let db = app.db.connect().await;
    let accounts: i64 = threadline_projections::on_read!(&db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_type = 'AccountCreated'")
            .fetch_one(pool).await)
    .unwrap();
    assert_eq!(
        accounts,
        1 + 5,
        "the anonymous account and five registered ones"
    );
    let links: i64 = threadline_projections::on_read!(&db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_type = 'AnonymousAccountLinked'")
            .fetch_one(pool).await)
    .unwrap();
    assert_eq!(links, 1);
}
