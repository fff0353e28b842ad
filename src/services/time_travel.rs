//! A thread as it was at a moment of the past, answered from the log: its events (and its
//! replies' and its owner's links) up to that moment are folded by the same `threads` and
//! `messages` projections the API reads, into a private in-memory SQLite database, and read
//! back with the same queries. `threadline audit thread ID --at …` and
//! `GET /v1/admin/threads/{id}?at=…` print it.
//!
//! A thread deleted by then is shown as it was when it was deleted, with `state: deleted`.

use chrono::DateTime;
use serde::Serialize;
use serde_json::Value;
use sqlx::sqlite::SqlitePoolOptions;
use threadline_projections::messages::{self, Tree};
use threadline_projections::threads::{self, ThreadRow};
use threadline_projections::{Backend, Db, Projection, StoredEvent, Tables, rfc3339};

use crate::store::keys::KeyRing;
use crate::store::log::{self, Cursor};

/// The moment: every event up to a log position, or recorded up to an instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moment {
    /// `POSITION` (SQLite) or `TX.POSITION` (PostgreSQL); on PostgreSQL a bare position
    /// stands for the cursor of the event at that position.
    Position(Cursor),
    /// Microseconds since the epoch.
    Time(i64),
    /// Now: every event of the log.
    Now,
}

/// Why a moment could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TimeTravelError {
    #[error("expected an RFC 3339 time or a log position (POSITION or TX.POSITION)")]
    BadMoment,
    #[error("no event at position {0}")]
    NoSuchPosition(i64),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Projection(#[from] threadline_projections::ProjectionError),
    #[error(transparent)]
    Keys(#[from] crate::store::keys::KeyError),
}

impl Moment {
    /// Parses `2026-12-01T10:00:00Z`, `1532` or `812.1532`.
    pub async fn parse(db: &Db, text: &str) -> Result<Self, TimeTravelError> {
        let text = text.trim();
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Ok(Moment::Time(at.timestamp_micros()));
        }
        if let Some(cursor) = log::parse_cursor(text) {
            return Ok(Moment::Position(cursor));
        }
        let position = log::unsigned(text).ok_or(TimeTravelError::BadMoment)?;
        let cursor = log::cursor_at(db, position)
            .await?
            .ok_or(TimeTravelError::NoSuchPosition(position))?;
        Ok(Moment::Position(cursor))
    }

    fn includes(&self, event: &StoredEvent) -> bool {
        match self {
            Moment::Position(cursor) => event.cursor() <= *cursor,
            Moment::Time(at) => event.recorded_at <= *at,
            Moment::Now => true,
        }
    }
}

/// A thread at a moment.
#[derive(Debug, Serialize)]
pub struct ThreadAt {
    pub thread: crate::services::thread_view::ThreadJson,
    pub owner: String,
    /// `active`, or `deleted` (shown as it was when it was deleted).
    pub state: &'static str,
    pub deleted_at: Option<String>,
    /// The newest event of the thread folded: what the view is as of.
    pub as_of: AsOf,
    /// Every title it had until then, oldest first.
    pub titles: Vec<TitleAt>,
    /// The current path, root first, as the API's thread view shows it (AI SDK `UIMessage`s).
    pub messages: Vec<Value>,
    /// Every visible message with its parent: the branches the path chose among.
    pub tree: Vec<TreeNode>,
}

#[derive(Debug, Serialize)]
pub struct AsOf {
    pub cursor: String,
    pub recorded_at: String,
}

#[derive(Debug, Serialize)]
pub struct TitleAt {
    pub title: String,
    /// `user`, `generated`, `imported`…: who gave it.
    pub source: Option<String>,
    pub at: String,
}

#[derive(Debug, Serialize)]
pub struct TreeNode {
    pub id: String,
    pub parent_id: Option<String>,
    pub role: String,
    pub status: String,
    pub model: Option<String>,
    pub created_at: String,
    /// Whether the current path goes through it.
    pub current: bool,
    pub text: String,
}

/// Thread `id` as it was at `moment`; `None` when it did not exist yet (or never did).
pub async fn thread_at(
    db: &Db,
    keys: &KeyRing,
    id: &str,
    moment: Moment,
) -> Result<Option<ThreadAt>, TimeTravelError> {
    let thread_events: Vec<StoredEvent> = log::read_streams(db, "Thread", &[id.to_owned()])
        .await?
        .into_iter()
        .filter(|e| moment.includes(e))
        .collect();
    let Some(created) = thread_events.first() else {
        return Ok(None);
    };
    let creator = created.payload["ThreadCreated"]["owner"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let generation_ids: Vec<String> = thread_events
        .iter()
        .filter(|e| e.event_type == "ReplyStarted")
        .filter_map(|e| e.payload["ReplyStarted"]["generation_id"].as_str())
        .map(str::to_owned)
        .collect();
    let mut events = thread_events;
    for ids in generation_ids.chunks(1_000) {
        events.extend(
            log::read_streams(db, "Generation", ids)
                .await?
                .into_iter()
                .filter(|e| moment.includes(e)),
        );
    }
    // The owner's link into a registered account moves the thread to it.
    if let Some(target) = linked_target(db, &creator).await? {
        events.extend(
            log::read_streams(db, "Account", &[target])
                .await?
                .into_iter()
                .filter(|e| e.event_type == "AnonymousAccountLinked" && moment.includes(e)),
        );
    }
    events.sort_by_key(StoredEvent::cursor);
    keys.open_events(&mut events).await?;
    let deleted = events.iter().find(|e| e.event_type == "ThreadDeleted");
    let deleted_at = deleted.map(|e| rfc3339(e.recorded_at));
    let last = events
        .iter()
        .rfind(|e| e.aggregate_type == "Thread")
        .map(|e| (e.cursor(), e.recorded_at))
        .unwrap_or_default();
    let titles = titles(&events);
    let kept: Vec<StoredEvent> = events
        .into_iter()
        .filter(|e| e.event_type != "ThreadDeleted")
        .collect();
    let scratch = fold(&kept).await?;
    let Some(row) = thread_row(&scratch, id).await? else {
        return Ok(None);
    };
    let tree = messages::tree_of(&scratch, id).await?;
    let generations = messages::generations_of(&scratch, id).await?;
    let path = tree.current_path();
    let messages = crate::services::thread_view::ui_messages(&path, &generations);
    let on_path: std::collections::HashSet<String> =
        path.iter().map(|p| p.message.id.clone()).collect();
    if let Db::Sqlite { writer, .. } = &scratch {
        writer.close().await;
    }
    Ok(Some(ThreadAt {
        owner: row.owner.clone(),
        thread: row.into(),
        state: if deleted_at.is_some() {
            "deleted"
        } else {
            "active"
        },
        deleted_at,
        as_of: AsOf {
            cursor: log::cursor_id(last.0),
            recorded_at: rfc3339(last.1),
        },
        titles,
        messages,
        tree: nodes(tree, &on_path),
    }))
}

/// The registered account the anonymous account `account` was linked into, if it was.
async fn linked_target(db: &Db, account: &str) -> Result<Option<String>, sqlx::Error> {
    threadline_projections::on_read!(db, pool =>
        sqlx::query_scalar("SELECT target_id FROM account_links WHERE anonymous_id = $1")
            .bind(account)
            .fetch_optional(pool)
            .await)
}

/// The thread's titles in order: the one it was created with, then each rename.
fn titles(events: &[StoredEvent]) -> Vec<TitleAt> {
    let mut out = Vec::new();
    for e in events {
        let (title, source) = match e.event_type.as_str() {
            "ThreadCreated" => (&e.payload["ThreadCreated"]["title"], &Value::Null),
            "ThreadRenamed" => (
                &e.payload["ThreadRenamed"]["title"],
                &e.payload["ThreadRenamed"]["source"],
            ),
            _ => continue,
        };
        if let Some(title) = title.as_str() {
            out.push(TitleAt {
                title: title.to_owned(),
                source: source.as_str().map(str::to_owned),
                at: rfc3339(e.recorded_at),
            });
        }
    }
    out
}

fn nodes(tree: Tree, on_path: &std::collections::HashSet<String>) -> Vec<TreeNode> {
    tree.messages
        .into_iter()
        .map(|m| TreeNode {
            current: on_path.contains(&m.id),
            id: m.id,
            parent_id: m.parent_id,
            role: m.role,
            status: m.status,
            model: m.model,
            created_at: rfc3339(m.created_at),
            text: m.text,
        })
        .collect()
}

/// Folds `events` with the `threads` and `messages` projections into a new in-memory
/// database (one connection: it lives as long as the pool).
async fn fold(events: &[StoredEvent]) -> Result<Db, TimeTravelError> {
    let pool = SqlitePoolOptions::new()
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect("sqlite::memory:")
        .await?;
    let db = Db::Sqlite {
        writer: pool.clone(),
        reader: pool,
    };
    let tables = Tables::live().on(Backend::Sqlite);
    let projections: [&dyn Projection; 2] = [&threads::Threads, &messages::Messages];
    let mut tx = db.begin().await?;
    for projection in projections {
        for ddl in projection.ddl(Backend::Sqlite, &tables) {
            tx.execute(&threadline_projections::Stmt::new(ddl, vec![]))
                .await?;
        }
        for event in events {
            for stmt in projection.statements(event, &tables)? {
                tx.execute(&stmt).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(db)
}

/// The thread's row, whoever owns it.
async fn thread_row(db: &Db, id: &str) -> Result<Option<ThreadRow>, sqlx::Error> {
    match threads::owner_of(db, id).await? {
        Some(owner) => threads::get(db, &owner, id).await,
        None => Ok(None),
    }
}
