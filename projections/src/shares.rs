//! Share links: a read-only snapshot of a thread's path up to one message, served without
//! authentication until revoked.
//!
//! Table `shares`: one row per share, live or revoked. The snapshot needs no copy: the path up
//! to a message is its ancestors, which never change (edits and regenerations add siblings),
//! so the public read computes it from the messages projection. Hiding a message hides it from
//! shares too.

use serde::Serialize;
use threadline_domain::thread::ThreadEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// A change to the shares table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Insert {
        id: String,
        thread_id: String,
        message_id: String,
        at: i64,
    },
    Revoke {
        id: String,
        at: i64,
    },
    DeleteThread {
        thread_id: String,
    },
}

/// Folds one event of thread `thread_id`.
pub fn apply_thread(thread_id: &str, event: ThreadEvent) -> Vec<Change> {
    match event {
        ThreadEvent::ThreadShared {
            share_id,
            message_id,
            at,
        } => vec![Change::Insert {
            id: share_id,
            thread_id: thread_id.to_owned(),
            message_id,
            at: micros(at),
        }],
        ThreadEvent::ShareRevoked { share_id, at } => vec![Change::Revoke {
            id: share_id,
            at: micros(at),
        }],
        ThreadEvent::ThreadDeleted { .. } => vec![Change::DeleteThread {
            thread_id: thread_id.to_owned(),
        }],
        _ => vec![],
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let shares = t.name("shares");
    match change {
        Change::Insert {
            id,
            thread_id,
            message_id,
            at,
        } => Stmt::new(
            format!(
                "INSERT INTO {shares} (id, thread_id, message_id, created_at) \
                 VALUES ($1, $2, $3, $4)"
            ),
            vec![id.into(), thread_id.into(), message_id.into(), at.into()],
        ),
        Change::Revoke { id, at } => Stmt::new(
            format!("UPDATE {shares} SET revoked_at = $1 WHERE id = $2"),
            vec![at.into(), id.into()],
        ),
        Change::DeleteThread { thread_id } => Stmt::new(
            format!("DELETE FROM {shares} WHERE thread_id = $1"),
            vec![thread_id.into()],
        ),
    }
}

/// The shares projection.
pub struct Shares;

impl Projection for Shares {
    fn name(&self) -> &'static str {
        "shares"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["shares"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let shares = t.name("shares");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {shares} (
                    id TEXT PRIMARY KEY,
                    thread_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    created_at BIGINT NOT NULL,
                    revoked_at BIGINT
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {shares} (thread_id, created_at)",
                t.index("shares", "thread")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        if event.aggregate_type != "Thread" {
            return Ok(vec![]);
        }
        if !matches!(
            event.event_type.as_str(),
            "ThreadShared" | "ShareRevoked" | "ThreadDeleted"
        ) {
            return Ok(vec![]);
        }
        let changes = apply_thread(&event.aggregate_id, decode(event)?);
        Ok(changes.into_iter().map(|c| sql(c, tables)).collect())
    }
}

/// A share as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct ShareRow {
    pub id: String,
    pub thread_id: String,
    pub message_id: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

const COLUMNS: &str = "id, thread_id, message_id, created_at, revoked_at";

/// A live (not revoked) share.
pub async fn live(db: &Db, id: &str) -> Result<Option<ShareRow>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM shares WHERE id = $1 AND revoked_at IS NULL");
    on_read!(db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)
}

/// The live shares of a thread, newest first.
pub async fn of_thread(db: &Db, thread_id: &str) -> Result<Vec<ShareRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {COLUMNS} FROM shares WHERE thread_id = $1 AND revoked_at IS NULL \
         ORDER BY created_at DESC, id DESC"
    );
    on_read!(db, pool => sqlx::query_as(&sql).bind(thread_id).fetch_all(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;

    #[test]
    fn a_share_is_recorded_revoked_and_gone_with_its_thread() {
        let at = DateTime::from_timestamp(2, 0).unwrap();
        assert_eq!(
            apply_thread(
                "t",
                ThreadEvent::ThreadShared {
                    share_id: "s".into(),
                    message_id: "m".into(),
                    at
                }
            ),
            [Change::Insert {
                id: "s".into(),
                thread_id: "t".into(),
                message_id: "m".into(),
                at: 2_000_000
            }]
        );
        assert_eq!(
            apply_thread(
                "t",
                ThreadEvent::ShareRevoked {
                    share_id: "s".into(),
                    at
                }
            ),
            [Change::Revoke {
                id: "s".into(),
                at: 2_000_000
            }]
        );
        assert_eq!(
            apply_thread("t", ThreadEvent::ThreadDeleted { at }),
            [Change::DeleteThread {
                thread_id: "t".into()
            }]
        );
        assert!(apply_thread("t", ThreadEvent::ThreadPinned { at }).is_empty());
    }
}
