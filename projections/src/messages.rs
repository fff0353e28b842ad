//! The message tree of each thread (the thread view), and each reply's progress.
//!
//! Tables: `messages` (user and assistant messages with their parent; an assistant message's
//! text and reasoning grow as its generation's chunk batches are folded) and `generations`
//! (status, chunk count and usage of every reply: what resume, stop and crash recovery read).

use serde::Serialize;
use threadline_domain::generation::{Chunk, GenerationEvent, GenerationStatus};
use threadline_domain::thread::ThreadEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};
use crate::{micros, on_read};

/// Where a reply stands, as the read models store it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Still producing.
    Running,
    /// Ended, and how.
    Ended(GenerationStatus),
}

impl ReplyStatus {
    /// In the `generations` table: `running`, or how it ended.
    pub fn generation_str(self) -> &'static str {
        match self {
            ReplyStatus::Running => "running",
            ReplyStatus::Ended(status) => status.as_str(),
        }
    }

    /// In the `messages` table and an assistant message's `metadata.status`: `streaming`, or
    /// how it ended.
    pub fn message_str(self) -> &'static str {
        match self {
            ReplyStatus::Running => "streaming",
            ReplyStatus::Ended(status) => status.as_str(),
        }
    }
}

/// The status of a user message (it is complete when posted).
pub const USER_MESSAGE_DONE: &str = "done";

/// A change to the message tables, produced by the pure folds.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    InsertMessage {
        thread_id: String,
        id: String,
        parent_id: Option<String>,
        role: &'static str,
        text: String,
        model: Option<String>,
        generation_id: Option<String>,
        status: &'static str,
        position: i64,
        at: i64,
    },
    DeleteThread {
        thread_id: String,
    },
    InsertGeneration {
        id: String,
        thread_id: String,
        message_id: String,
        model: String,
        provider: String,
        node_id: String,
        at: i64,
    },
    AppendText {
        generation_id: String,
        text: String,
        reasoning: String,
        chunks: i64,
    },
    Finish {
        generation_id: String,
        status: GenerationStatus,
        finish_reason: Option<String>,
        error: Option<String>,
        usage: Option<[i64; 4]>,
        provider_ms: Option<i64>,
        cost_micros: Option<i64>,
        at: i64,
    },
}

/// Folds one thread event (thread `thread_id`, at log position `position`).
pub fn apply_thread(thread_id: &str, position: i64, event: ThreadEvent) -> Vec<Change> {
    let thread_id = thread_id.to_owned();
    match event {
        ThreadEvent::UserMessagePosted {
            message_id,
            parent_id,
            text,
            at,
        } => vec![Change::InsertMessage {
            thread_id,
            id: message_id,
            parent_id,
            role: "user",
            text,
            model: None,
            generation_id: None,
            status: USER_MESSAGE_DONE,
            position,
            at: micros(at),
        }],
        ThreadEvent::ReplyStarted {
            generation_id,
            message_id,
            parent_id,
            model,
            at,
        } => vec![Change::InsertMessage {
            thread_id,
            id: message_id,
            parent_id: Some(parent_id),
            role: "assistant",
            text: String::new(),
            model: Some(model),
            generation_id: Some(generation_id),
            status: ReplyStatus::Running.message_str(),
            position,
            at: micros(at),
        }],
        ThreadEvent::ThreadDeleted { .. } => vec![Change::DeleteThread { thread_id }],
        _ => vec![],
    }
}

/// Folds one generation event (generation `generation_id`).
pub fn apply_generation(generation_id: &str, event: GenerationEvent) -> Vec<Change> {
    let generation_id = generation_id.to_owned();
    let status = event.terminal_status();
    match event {
        GenerationEvent::GenerationStarted {
            thread_id,
            message_id,
            model,
            provider,
            node_id,
            at,
            ..
        } => vec![Change::InsertGeneration {
            id: generation_id,
            thread_id,
            message_id,
            model,
            provider,
            node_id,
            at: micros(at),
        }],
        GenerationEvent::ChunksAppended {
            first_index,
            chunks,
        } => {
            let (mut text, mut reasoning) = (String::new(), String::new());
            for chunk in &chunks {
                match chunk {
                    Chunk::Text { text: t } => text.push_str(t),
                    Chunk::Reasoning { text: t } => reasoning.push_str(t),
                    Chunk::ToolInputStart { .. } | Chunk::ToolInputDelta { .. } => {}
                }
            }
            vec![Change::AppendText {
                generation_id,
                text,
                reasoning,
                chunks: (first_index + chunks.len() as u64) as i64,
            }]
        }
        GenerationEvent::GenerationCompleted {
            finish_reason,
            usage,
            provider_ms,
            cost_micros,
            at,
        } => vec![Change::Finish {
            generation_id,
            status: status.unwrap_or(GenerationStatus::Completed),
            finish_reason: Some(finish_reason),
            error: None,
            usage: Some([
                usage.input_tokens as i64,
                usage.output_tokens as i64,
                usage.reasoning_tokens as i64,
                usage.cached_input_tokens as i64,
            ]),
            provider_ms: Some(provider_ms as i64),
            cost_micros: Some(cost_micros as i64),
            at: micros(at),
        }],
        GenerationEvent::GenerationFailed { error, at } => vec![Change::Finish {
            generation_id,
            status: status.unwrap_or(GenerationStatus::Failed),
            finish_reason: Some("error".into()),
            error: Some(error),
            usage: None,
            provider_ms: None,
            cost_micros: None,
            at: micros(at),
        }],
        GenerationEvent::GenerationStopped { at }
        | GenerationEvent::GenerationInterrupted { at } => {
            vec![Change::Finish {
                generation_id,
                status: status.unwrap_or(GenerationStatus::Stopped),
                finish_reason: None,
                error: None,
                usage: None,
                provider_ms: None,
                cost_micros: None,
                at: micros(at),
            }]
        }
    }
}

fn sql(change: Change, t: &Tables) -> Vec<Stmt> {
    let messages = t.name("messages");
    let generations = t.name("generations");
    match change {
        Change::InsertMessage {
            thread_id,
            id,
            parent_id,
            role,
            text,
            model,
            generation_id,
            status,
            position,
            at,
        } => vec![Stmt::new(
            format!(
                "INSERT INTO {messages} (thread_id, id, parent_id, role, text, reasoning, model, \
                 generation_id, status, position, created_at) \
                 VALUES ($1, $2, $3, $4, $5, '', $6, $7, $8, $9, $10)"
            ),
            vec![
                thread_id.into(),
                id.into(),
                parent_id.into(),
                role.into(),
                text.into(),
                model.into(),
                generation_id.into(),
                status.into(),
                position.into(),
                at.into(),
            ],
        )],
        Change::DeleteThread { thread_id } => vec![Stmt::new(
            format!("DELETE FROM {messages} WHERE thread_id = $1"),
            vec![thread_id.into()],
        )],
        Change::InsertGeneration {
            id,
            thread_id,
            message_id,
            model,
            provider,
            node_id,
            at,
        } => vec![Stmt::new(
            format!(
                "INSERT INTO {generations} (id, thread_id, message_id, model, provider, node_id, \
                 status, chunks, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)"
            ),
            vec![
                id.into(),
                thread_id.into(),
                message_id.into(),
                model.into(),
                provider.into(),
                node_id.into(),
                ReplyStatus::Running.generation_str().into(),
                at.into(),
            ],
        )],
        Change::AppendText {
            generation_id,
            text,
            reasoning,
            chunks,
        } => vec![
            Stmt::new(
                format!(
                    "UPDATE {messages} SET text = text || $1, reasoning = reasoning || $2 \
                     WHERE generation_id = $3"
                ),
                vec![text.into(), reasoning.into(), generation_id.clone().into()],
            ),
            Stmt::new(
                format!("UPDATE {generations} SET chunks = $1 WHERE id = $2"),
                vec![chunks.into(), generation_id.into()],
            ),
        ],
        Change::Finish {
            generation_id,
            status,
            finish_reason,
            error,
            usage,
            provider_ms,
            cost_micros,
            at,
        } => {
            let [input, output, reasoning, cached] = usage.map_or([None; 4], |u| u.map(Some));
            vec![
                Stmt::new(
                    format!("UPDATE {messages} SET status = $1 WHERE generation_id = $2"),
                    vec![
                        ReplyStatus::Ended(status).message_str().into(),
                        generation_id.clone().into(),
                    ],
                ),
                Stmt::new(
                    format!(
                        "UPDATE {generations} SET status = $1, finish_reason = $2, error = $3, \
                         input_tokens = $4, output_tokens = $5, reasoning_tokens = $6, \
                         cached_input_tokens = $7, provider_ms = $8, finished_at = $9, \
                         cost_micros = $10 WHERE id = $11"
                    ),
                    vec![
                        ReplyStatus::Ended(status).generation_str().into(),
                        finish_reason.into(),
                        error.into(),
                        input.into(),
                        output.into(),
                        reasoning.into(),
                        cached.into(),
                        provider_ms.into(),
                        at.into(),
                        cost_micros.into(),
                        generation_id.into(),
                    ],
                ),
            ]
        }
    }
}

/// The messages projection.
pub struct Messages;

impl Projection for Messages {
    fn name(&self) -> &'static str {
        "messages"
    }

    fn version(&self) -> i64 {
        // 2: the reply's cost.
        2
    }

    fn tables(&self) -> &'static [&'static str] {
        &["messages", "generations"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let (messages, generations) = (t.name("messages"), t.name("generations"));
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {messages} (
                    thread_id TEXT NOT NULL,
                    id TEXT NOT NULL,
                    parent_id TEXT,
                    role TEXT NOT NULL,
                    text TEXT NOT NULL,
                    reasoning TEXT NOT NULL,
                    model TEXT,
                    generation_id TEXT,
                    status TEXT NOT NULL,
                    position BIGINT NOT NULL,
                    created_at BIGINT NOT NULL,
                    PRIMARY KEY (thread_id, id)
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {messages} (generation_id)",
                t.index("messages", "generation")
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {generations} (
                    id TEXT PRIMARY KEY,
                    thread_id TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    model TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    node_id TEXT NOT NULL,
                    status TEXT NOT NULL,
                    chunks BIGINT NOT NULL,
                    finish_reason TEXT,
                    error TEXT,
                    input_tokens BIGINT,
                    output_tokens BIGINT,
                    reasoning_tokens BIGINT,
                    cached_input_tokens BIGINT,
                    provider_ms BIGINT,
                    cost_micros BIGINT,
                    started_at BIGINT NOT NULL,
                    finished_at BIGINT
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {generations} (thread_id, status)",
                t.index("generations", "thread")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {generations} (status)",
                t.index("generations", "status")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        let changes = match event.aggregate_type.as_str() {
            "Thread" => apply_thread(&event.aggregate_id, event.position, decode(event)?),
            "Generation" => apply_generation(&event.aggregate_id, decode(event)?),
            _ => return Ok(vec![]),
        };
        Ok(changes.into_iter().flat_map(|c| sql(c, tables)).collect())
    }
}

/// A message as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct MessageRow {
    pub thread_id: String,
    pub id: String,
    pub parent_id: Option<String>,
    pub role: String,
    pub text: String,
    pub reasoning: String,
    pub model: Option<String>,
    pub generation_id: Option<String>,
    pub status: String,
    pub position: i64,
    pub created_at: i64,
}

/// A reply's progress as stored.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct GenerationRow {
    pub id: String,
    pub thread_id: String,
    pub message_id: String,
    pub model: String,
    pub provider: String,
    pub node_id: String,
    pub status: String,
    pub chunks: i64,
    pub finish_reason: Option<String>,
    pub error: Option<String>,
    pub input_tokens: Option<i64>,
    pub output_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cached_input_tokens: Option<i64>,
    pub provider_ms: Option<i64>,
    pub cost_micros: Option<i64>,
    pub started_at: i64,
    pub finished_at: Option<i64>,
}

impl GenerationRow {
    /// Whether the reply is still producing.
    pub fn is_running(&self) -> bool {
        self.status == ReplyStatus::Running.generation_str()
    }
}

const MESSAGE_COLUMNS: &str = "thread_id, id, parent_id, role, text, reasoning, model, \
    generation_id, status, position, created_at";
const GENERATION_COLUMNS: &str = "id, thread_id, message_id, model, provider, node_id, status, \
    chunks, finish_reason, error, input_tokens, output_tokens, reasoning_tokens, \
    cached_input_tokens, provider_ms, cost_micros, started_at, finished_at";

/// Every message of a thread, oldest first.
pub async fn all_of(db: &Db, thread_id: &str) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 ORDER BY position, id"
    );
    on_read!(db, pool => sqlx::query_as(&sql).bind(thread_id).fetch_all(pool).await)
}

/// A message with its siblings (messages with the same parent and role, oldest first).
#[derive(Debug, Clone, PartialEq)]
pub struct PathMessage {
    pub message: MessageRow,
    pub sibling_ids: Vec<String>,
}

/// The current path of a thread: from the root to its newest message, each with its siblings.
pub fn current_path(all: &[MessageRow]) -> Vec<PathMessage> {
    current_path_to(all, all.last().map(|m| m.id.as_str()))
}

/// The path from the root to `leaf`.
pub fn current_path_to(all: &[MessageRow], leaf: Option<&str>) -> Vec<PathMessage> {
    let by_id: std::collections::HashMap<&str, &MessageRow> =
        all.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut path = Vec::new();
    let mut next = leaf;
    while let Some(id) = next {
        let Some(message) = by_id.get(id) else { break };
        if path.len() > all.len() {
            break; // a cycle cannot happen, but never loop forever on bad data
        }
        path.push(*message);
        next = message.parent_id.as_deref();
    }
    path.reverse();
    path.into_iter()
        .map(|m| PathMessage {
            sibling_ids: all
                .iter()
                .filter(|s| s.parent_id == m.parent_id && s.role == m.role)
                .map(|s| s.id.clone())
                .collect(),
            message: m.clone(),
        })
        .collect()
}

/// One generation.
pub async fn generation(db: &Db, id: &str) -> Result<Option<GenerationRow>, sqlx::Error> {
    let sql = format!("SELECT {GENERATION_COLUMNS} FROM generations WHERE id = $1");
    on_read!(db, pool => sqlx::query_as(&sql).bind(id).fetch_optional(pool).await)
}

/// The running generation of a thread, if any.
pub async fn running_in_thread(
    db: &Db,
    thread_id: &str,
) -> Result<Option<GenerationRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {GENERATION_COLUMNS} FROM generations WHERE thread_id = $1 AND status = $2 \
         ORDER BY started_at DESC LIMIT 1"
    );
    let running = ReplyStatus::Running.generation_str();
    on_read!(db, pool => sqlx::query_as(&sql).bind(thread_id).bind(running).fetch_optional(pool).await)
}

/// Every running generation (for crash recovery).
pub async fn running(db: &Db) -> Result<Vec<GenerationRow>, sqlx::Error> {
    let sql = format!("SELECT {GENERATION_COLUMNS} FROM generations WHERE status = $1");
    let running = ReplyStatus::Running.generation_str();
    on_read!(db, pool => sqlx::query_as(&sql).bind(running).fetch_all(pool).await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use threadline_domain::generation::TokenUsage;

    fn row(id: &str, parent: Option<&str>, role: &str, position: i64) -> MessageRow {
        MessageRow {
            thread_id: "t".into(),
            id: id.into(),
            parent_id: parent.map(Into::into),
            role: role.into(),
            text: String::new(),
            reasoning: String::new(),
            model: None,
            generation_id: None,
            status: "done".into(),
            position,
            created_at: 0,
        }
    }

    #[test]
    fn the_current_path_follows_the_newest_message_and_lists_siblings() {
        let all = vec![
            row("u1", None, "user", 1),
            row("a1", Some("u1"), "assistant", 2),
            row("a2", Some("u1"), "assistant", 3),
            row("u2", Some("a2"), "user", 4),
        ];
        let path = current_path(&all);
        let ids: Vec<&str> = path.iter().map(|p| p.message.id.as_str()).collect();
        assert_eq!(ids, ["u1", "a2", "u2"]);
        assert_eq!(path[1].sibling_ids, ["a1", "a2"]);
    }

    #[test]
    fn chunk_batches_append_their_text_and_count() {
        let changes = apply_generation(
            "g",
            GenerationEvent::ChunksAppended {
                first_index: 3,
                chunks: vec![
                    Chunk::Reasoning { text: "r".into() },
                    Chunk::Text { text: "a".into() },
                    Chunk::Text { text: "b".into() },
                ],
            },
        );
        assert_eq!(
            changes,
            vec![Change::AppendText {
                generation_id: "g".into(),
                text: "ab".into(),
                reasoning: "r".into(),
                chunks: 6
            }]
        );
    }

    #[test]
    fn a_completed_generation_records_status_and_usage() {
        let changes = apply_generation(
            "g",
            GenerationEvent::GenerationCompleted {
                finish_reason: "stop".into(),
                usage: TokenUsage {
                    input_tokens: 1,
                    output_tokens: 2,
                    reasoning_tokens: 3,
                    cached_input_tokens: 4,
                },
                provider_ms: 9,
                cost_micros: 0,
                at: DateTime::UNIX_EPOCH,
            },
        );
        assert!(matches!(
            &changes[..],
            [Change::Finish {
                status: GenerationStatus::Completed,
                usage: Some([1, 2, 3, 4]),
                ..
            }]
        ));
    }

    #[test]
    fn posting_and_starting_a_reply_insert_messages() {
        let changes = apply_thread(
            "t",
            7,
            ThreadEvent::ReplyStarted {
                generation_id: "g".into(),
                message_id: "a1".into(),
                parent_id: "u1".into(),
                model: "echo".into(),
                at: DateTime::UNIX_EPOCH,
            },
        );
        assert!(matches!(
            &changes[..],
            [Change::InsertMessage {
                role: "assistant",
                status: "streaming",
                position: 7,
                ..
            }]
        ));
    }
}
