//! Time travel: a thread exactly as it was at a moment, from the log
//! (`GET /v1/admin/threads/{id}?at=`, `threadline audit thread ID --at`). At each step of a
//! thread's life the live view is kept; read back later at that moment's time (or log
//! position), the past view is the same — before and after a rename, a branch switch and a
//! deletion.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem, spawn_app};

/// The live view of thread `t` now, and the moment right after it.
async fn snapshot(app: &TestApp, user: &User) -> (Value, String) {
    let (status, live) = app.get_thread(&user.token, "t").await;
    assert_eq!(status, StatusCode::OK, "{live}");
    assert!(live["active_generation_id"].is_null(), "{live}");
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    // The next event is recorded after this instant.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    (live, at)
}

async fn past(app: &TestApp, admin: &User, at: &str) -> (StatusCode, Value) {
    let at = at.replace(':', "%3A").replace('+', "%2B");
    app.call(
        Method::GET,
        &format!("/v1/admin/threads/t?at={at}"),
        Some(&admin.token),
        None,
    )
    .await
}

/// The past view's thread and path match the live view kept at that moment.
fn assert_same(past: &Value, live: &Value) {
    let mut thread = live.clone();
    let messages = thread.as_object_mut().unwrap().remove("messages").unwrap();
    assert_eq!(past["thread"], thread, "thread row: {past}");
    assert_eq!(past["messages"], messages, "current path: {past}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_reads_as_it_was_before_and_after_a_rename_a_branch_switch_and_a_deletion() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    let ada = app.registered("ada@example.com").await;
    let before_anything = chrono::Utc::now().to_rfc3339();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;

    let (status, _) = app
        .create_thread(&ada.token, json!({"id": "t", "title": "Trip plans"}))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    app.chat_all(&ada.token, "t", "u1", "where to in spring", None)
        .await;
    app.wait_reply_done(&ada.token, "t").await;
    let (first, at_first) = snapshot(&app, &ada).await;

    let (status, _) = app
        .patch_thread(&ada.token, "t", json!({"title": "Lisbon in April"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (renamed, at_renamed) = snapshot(&app, &ada).await;

    // An edit of the message: a second branch, which becomes the path.
    app.chat_all(&ada.token, "t", "u1", "where to in May", None)
        .await;
    app.wait_reply_done(&ada.token, "t").await;
    let (branched, at_branched) = snapshot(&app, &ada).await;
    assert_eq!(branched["messages"][0]["metadata"]["sibling_count"], 2);

    let (status, _) = app
        .call(
            Method::PUT,
            "/v1/threads/t/current",
            Some(&ada.token),
            Some(json!({"message_id": "u1"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (switched, at_switched) = snapshot(&app, &ada).await;
    assert_ne!(switched["messages"], branched["messages"]);

    assert_eq!(
        app.delete_thread(&ada.token, "t").await,
        StatusCode::NO_CONTENT
    );
    let at_deleted = chrono::Utc::now().to_rfc3339();

    // Each moment reads as it was.
    for (live, at) in [
        (&first, &at_first),
        (&renamed, &at_renamed),
        (&branched, &at_branched),
        (&switched, &at_switched),
    ] {
        let (status, body) = past(&app, &admin, at).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["state"], "active");
        assert_same(&body, live);
    }
    let (_, at_first_view) = past(&app, &admin, &at_first).await;
    assert_eq!(at_first_view["thread"]["title"], "Trip plans");
    assert_eq!(at_first_view["owner"], ada.account_id.as_str());
    let (_, renamed_view) = past(&app, &admin, &at_renamed).await;
    let titles: Vec<&str> = renamed_view["titles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["title"].as_str().unwrap())
        .collect();
    assert_eq!(titles.first(), Some(&"Trip plans"));
    assert_eq!(titles.last(), Some(&"Lisbon in April"));
    // The branches: both versions of the message are in the tree, one of them current.
    let (_, branched_view) = past(&app, &admin, &at_branched).await;
    let tree = branched_view["tree"].as_array().unwrap();
    let roots: Vec<&Value> = tree.iter().filter(|n| n["parent_id"].is_null()).collect();
    assert_eq!(roots.len(), 2, "{branched_view}");
    assert_eq!(
        roots.iter().filter(|n| n["current"] == true).count(),
        1,
        "{branched_view}"
    );

    // Deleted: gone from the live API, shown as it was when deleted.
    let (status, _) = app.get_thread(&ada.token, "t").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, gone) = past(&app, &admin, &at_deleted).await;
    assert_eq!(status, StatusCode::OK, "{gone}");
    assert_eq!(gone["state"], "deleted");
    assert!(gone["deleted_at"].is_string());
    assert_same(&gone, &switched);

    // Before it was created there was nothing.
    let (status, body) = past(&app, &admin, &before_anything).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");

    // A log position names a moment too: the renamed view's own position reads the same.
    let cursor = renamed_view["as_of"]["cursor"].as_str().unwrap();
    let position = cursor.split_once('.').unwrap().1;
    for at in [cursor, position] {
        let (status, body) = past(&app, &admin, at).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_same(&body, &renamed);
    }

    // The command line prints the same view.
    let db = &app.db;
    let json_out = db
        .cli(&[
            "audit",
            "thread",
            "t",
            "--at",
            &at_renamed,
            "--format",
            "json",
        ])
        .await;
    let cli: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(cli, renamed_view);
    let text = db
        .cli(&["audit", "thread", "t", "--at", &at_branched])
        .await;
    assert!(text.contains("\"Lisbon in April\""), "{text}");
    assert!(text.contains("where to in May"), "{text}");
    assert!(text.contains("other branches:"), "{text}");
    let text = db.cli(&["audit", "thread", "t"]).await;
    assert!(text.contains("state: deleted"), "{text}");

    // Only admins; a malformed moment is the caller's mistake.
    let (status, body) = past(&app, &ada, &at_first).await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = past(&app, &admin, "last tuesday").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/admin/threads/nope",
            Some(&admin.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
}
