//! The per-account live feed keeps other devices in sync, and resumes without gaps.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{LiveStream, spawn_app};

async fn open(app: &crate::helpers::TestApp, token: &str, last: Option<&str>) -> LiveStream {
    let mut req = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(token);
    if let Some(id) = last {
        req = req.header("last-event-id", id);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = LiveStream::new(res);
    stream.expect_ready().await;
    stream
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_device_sees_thread_changes_and_replies_and_can_resume() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let stranger = app.anonymous().await;
    let mut feed = open(&app, &user.token, None).await;
    let mut strangers_feed = open(&app, &stranger.token, None).await;
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    app.chat_all(&user.token, "f1", "u1", "hello feed", None)
        .await;
    app.wait_title(&user.token, "f1").await;
    app.patch_thread(&user.token, "f1", json!({"pinned": true}))
        .await;
    app.create_thread(&stranger.token, json!({"id": "theirs"}))
        .await;

    let events = feed.read_events(6).await;
    let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        [
            "thread.created",
            "message.posted",
            "reply.started",
            "reply.finished",
            "thread.titled",
            "thread.updated"
        ]
    );
    assert!(
        events.iter().all(|e| e.json()["thread_id"] == "f1"),
        "only the caller's threads"
    );
    assert_eq!(events[3].json()["status"], "completed");
    let theirs = strangers_feed.read_events(1).await;
    assert_eq!(theirs[0].json()["thread_id"], "theirs");

    // A reconnect with Last-Event-ID gets exactly what came after.
    let mut resumed = open(&app, &user.token, events[2].id.as_deref()).await;
    let again = resumed.read_events(3).await;
    let ids: Vec<_> = again.iter().map(|e| e.id.clone()).collect();
    let expected: Vec<_> = events[3..].iter().map(|e| e.id.clone()).collect();
    assert_eq!(ids, expected);
    app.delete_thread(&user.token, "f1").await;
    let more = resumed.read_events(4).await;
    assert_eq!(more[3].kind(), "thread.deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_feed_announces_is_already_readable() {
    // Given a second device listening to the feed
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let mut feed = open(&app, &user.token, None).await;

    // When the first device starts a thread (its request still streaming)
    let (reply, ()) = tokio::join!(
        app.chat(&user.token, "fresh", "m1", "read me back", None),
        async {
            // Then each item, read the moment it arrives, finds what it announces
            let events = feed.read_events(1).await;
            assert_eq!(events[0].kind(), "thread.created");
            let (status, _) = app.get_thread(&user.token, "fresh").await;
            assert_eq!(status, StatusCode::OK, "the thread of thread.created");

            let events = feed.read_events(2).await;
            assert_eq!(events[1].kind(), "message.posted");
            let (_, page) = app
                .call(
                    reqwest::Method::GET,
                    "/v1/threads/fresh/messages",
                    Some(&user.token),
                    None,
                )
                .await;
            let ids: Vec<&Value> = page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|m| &m["id"])
                .collect();
            assert!(
                ids.contains(&&json!("m1")),
                "the message of message.posted: {page}"
            );
        }
    );
    assert_eq!(reply.status(), StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_feed_cursor_is_a_400() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let res = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(&user.token)
        .header("last-event-id", "nope")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feed_cursors_beyond_the_log_or_out_of_shape_are_400s() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let mut watched = open(&app, &user.token, None).await;
    app.create_thread(&user.token, json!({"id": "one"})).await;
    let issued = watched.read_events(1).await[0].id.clone().unwrap();
    let (tx, pos) = issued.split_once('.').unwrap();
    let beyond = format!("{tx}.{}", pos.parse::<i64>().unwrap() + 1_000_000);
    for forged in [
        "0.99999999",
        "5.1",
        "0.-5",
        "-1.0",
        "1",
        "a.b",
        beyond.as_str(),
    ] {
        let res = app
            .client
            .get(format!("{}/v1/events", app.address))
            .bearer_auth(&user.token)
            .header("last-event-id", forged)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::BAD_REQUEST, "{forged}");
        let problem: serde_json::Value = res.json().await.unwrap();
        assert_eq!(problem["code"], "invalid_cursor", "{forged}");
    }
    // The cursor it did issue still works and carries what comes next.
    let mut resumed = open(&app, &user.token, Some(&issued)).await;
    app.create_thread(&user.token, json!({"id": "two"})).await;
    assert_eq!(resumed.read_events(1).await[0].json()["thread_id"], "two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_feed_carries_usage_and_preference_changes() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    app.define_model(
        &admin,
        "paid",
        crate::helpers::model_spec("echo", "echo", 2),
    )
    .await;
    let mut feed = open(&app, &admin.token, None).await;
    app.call(
        reqwest::Method::PATCH,
        "/v1/me/preferences",
        Some(&admin.token),
        Some(json!({"nickname": "Boss"})),
    )
    .await;
    app.chat_all(&admin.token, "u", "u1", "spend", Some("paid"))
        .await;
    let mut kinds: Vec<String> = Vec::new();
    while !(kinds.contains(&"preferences.changed".to_owned())
        && kinds.iter().filter(|k| *k == "usage.changed").count() >= 2)
    {
        let n = kinds.len() + 1;
        kinds = feed.read_events(n).await.iter().map(|e| e.kind()).collect();
    }
    let events = feed.read_events(kinds.len()).await;
    let usage = events.iter().find(|e| e.kind() == "usage.changed").unwrap();
    assert_eq!(usage.json()["meter"], "credits", "{usage:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_link_the_anonymous_accounts_threads_are_in_the_registered_backlog() {
    let app = spawn_app().await;
    let anon = app.anonymous().await;
    let res = app
        .client
        .get(format!("{}/v1/events", app.address))
        .bearer_auth(&anon.token)
        .send()
        .await
        .unwrap();
    let mut anon_feed = LiveStream::new(res);
    // The head before the anonymous thread exists.
    let earlier = anon_feed.expect_ready().await.id.unwrap();
    app.create_thread(&anon.token, json!({"id": "from-anon"}))
        .await;
    anon_feed.read_events(1).await;
    drop(anon_feed);
    let (_, reg) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    let token = reg["token"].as_str().unwrap();
    // A cursor from before the anonymous thread: its creation is in the backlog.
    let mut feed = open(&app, token, Some(&earlier)).await;
    let events = feed.read_events(1).await;
    assert_eq!(events[0].json()["thread_id"], "from-anon", "{events:?}");
}
