//! PostgreSQL: a transaction that takes its log position early and commits late is still seen
//! by the projector (the xid8 snapshot rule), instead of being skipped by a checkpoint that
//! already moved past its position.

use std::time::Duration;

use chrono::Utc;
use sqlx::Connection;
use threadline_domain::thread::ThreadEvent;
use threadline_domain::values::AccountId;

use crate::helpers::spawn_app;

fn created(owner: &str) -> serde_json::Value {
    serde_json::to_value(ThreadEvent::ThreadCreated {
        owner: AccountId::parse(owner).unwrap(),
        title: None,
        at: Utc::now(),
    })
    .unwrap()
}

const INSERT: &str = "INSERT INTO events \
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
    VALUES ('Thread', $1, 1, 'ThreadCreated', '1.0', $2::json, '{}'::json) RETURNING position";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_committing_transaction_is_not_skipped_by_the_projector() {
    let app = spawn_app().await;
    let Some(url) = app.db.database_url.clone() else {
        eprintln!("global order is a PostgreSQL property; SQLite has one writer");
        return;
    };
    let user = app.anonymous().await;

    let mut slow = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut fast = sqlx::PgConnection::connect(&url).await.unwrap();
    let mut tx = slow.begin().await.unwrap();
    let late_position: i64 = sqlx::query_scalar(INSERT)
        .bind("late")
        .bind(created(&user.account_id))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    let early_position: i64 = sqlx::query_scalar(INSERT)
        .bind("early")
        .bind(created(&user.account_id))
        .fetch_one(&mut fast)
        .await
        .unwrap();
    assert!(
        late_position < early_position,
        "the open transaction took the earlier position"
    );

    // While the slow transaction is open the projector must wait rather than move past it.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(app.all_thread_ids(&user.token, "").await.is_empty());

    tx.commit().await.unwrap();
    let mut ids = Vec::new();
    for _ in 0..100 {
        ids = app.all_thread_ids(&user.token, "").await;
        if ids.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ids.sort();
    assert_eq!(ids, vec!["early".to_owned(), "late".to_owned()]);
}
