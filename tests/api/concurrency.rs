//! Concurrent commands never fail with "database is locked" or lose writes.

use futures::future::join_all;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::spawn_app;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_thread_creations_for_one_account_all_succeed() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let results = join_all((0..50).map(|i| {
        let app = &app;
        let token = user.token.clone();
        async move {
            app.create_thread(
                &token,
                json!({"id": format!("c{i}"), "title": format!("n{i}")}),
            )
            .await
        }
    }))
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::CREATED, "{body}");
    }
    let mut ids = app.all_thread_ids(&user.token, "").await;
    ids.sort();
    let mut expected: Vec<String> = (0..50).map(|i| format!("c{i}")).collect();
    expected.sort();
    assert_eq!(ids, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_updates_of_one_thread_all_land() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let id = app.new_thread(&user.token, "start").await;
    let results = join_all((0..20).map(|i| {
        let (app, id, token) = (&app, id.clone(), user.token.clone());
        async move {
            app.patch_thread(&token, &id, json!({"title": format!("title {i}")}))
                .await
        }
    }))
    .await;
    for (status, body) in &results {
        assert_eq!(*status, StatusCode::OK, "{body}");
    }
    let (_, thread) = app.get_thread(&user.token, &id).await;
    assert!(thread["title"].as_str().unwrap().starts_with("title "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_in_two_processes_racing_on_one_stream_retry_and_all_land() {
    use threadline::store::bus::{CommandBus, CommandMeta};
    use threadline_domain::thread::{Thread, ThreadCommand, TitleSource};
    use threadline_domain::values::{AccountId, Title};

    let app = spawn_app().await;
    // Two buses do not share the per-stream lock, like two nodes (or two processes).
    let db = app.db.connect().await;
    let (a, b) = (
        CommandBus::new(db.clone(), app.db.keys(&db)),
        CommandBus::new(db.clone(), app.db.keys(&db)),
    );
    let meta = CommandMeta::system();
    a.execute::<Thread>(
        "raced",
        ThreadCommand::Create {
            owner: AccountId::generate(),
            title: None,
            at: chrono::Utc::now(),
        },
        &meta,
    )
    .await
    .unwrap();
    let results = join_all((0..20).map(|i| {
        let bus = if i % 2 == 0 { a.clone() } else { b.clone() };
        let meta = meta.clone();
        async move {
            bus.execute::<Thread>(
                "raced",
                ThreadCommand::Rename {
                    title: Title::parse(&format!("t{i}")).unwrap(),
                    source: TitleSource::User,
                    at: chrono::Utc::now(),
                },
                &meta,
            )
            .await
        }
    }))
    .await;
    for r in results {
        r.unwrap();
    }
    // Count the stream's rows directly: the projector's reader would (rightly) hold back rows
    // while any older PostgreSQL transaction is still open.
    let db = app.db.connect().await;
    let sql = "SELECT COUNT(*) FROM events WHERE aggregate_type = 'Thread' \
               AND aggregate_id = 'raced' AND event_type = 'ThreadRenamed'";
    let renames: i64 = threadline_projections::on_read!(&db, pool =>
        sqlx::query_scalar(sql).fetch_one(pool).await)
    .unwrap();
    assert_eq!(renames, 20);
}
