//! The message tree of each thread (the thread view), and each reply's progress.
//!
//! Tables: `messages` (user and assistant messages with their parent; an assistant message's
//! text and reasoning grow as its generation's chunk batches are folded) and `generations`
//! (status, chunk count and usage of every reply: what resume, stop and crash recovery read).

use serde::Serialize;
use threadline_domain::generation::{Chunk, GenerationEvent, GenerationStatus, Origin};
use threadline_domain::thread::{CopiedRole, ThreadEvent};

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
        reasoning: String,
        model: Option<String>,
        generation_id: Option<String>,
        status: &'static str,
        position: i64,
        at: i64,
    },
    DeleteThread {
        thread_id: String,
    },
    /// The files a user message carries (JSON, as `Attachment`s).
    SetAttachments {
        thread_id: String,
        id: String,
        json: String,
    },
    /// The message the thread's current path goes through (its newest visible descendant is
    /// the leaf).
    SetHead {
        thread_id: String,
        message_id: Option<String>,
    },
    /// `message_id` and its subtree are hidden; a head inside it falls back to `fallback`.
    Hide {
        thread_id: String,
        message_id: String,
        fallback: Option<String>,
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
        /// The batch's tool calls, results, steps and data parts: `\t<JSON [[offset, part]…]>\n`
        /// (offsets in characters from the batch's start), or empty.
        parts: String,
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

/// Messages one event may insert: a message's `position` is its event's log position times
/// this, plus its index in the event, so copied histories keep their order.
pub const POSITIONS_PER_EVENT: i64 = 1 << 20;

/// Folds one thread event (thread `thread_id`, at log position `log_position`).
pub fn apply_thread(thread_id: &str, log_position: i64, event: ThreadEvent) -> Vec<Change> {
    let thread_id = thread_id.to_owned();
    let position = log_position.saturating_mul(POSITIONS_PER_EVENT);
    let head = |thread_id: &String, id: &String| Change::SetHead {
        thread_id: thread_id.clone(),
        message_id: Some(id.clone()),
    };
    match event {
        ThreadEvent::UserMessagePosted {
            message_id,
            parent_id,
            text,
            attachments,
            at,
        } => {
            let mut changes = vec![
                head(&thread_id, &message_id),
                Change::InsertMessage {
                    thread_id: thread_id.clone(),
                    id: message_id.clone(),
                    parent_id,
                    role: "user",
                    text,
                    reasoning: String::new(),
                    model: None,
                    generation_id: None,
                    status: USER_MESSAGE_DONE,
                    position,
                    at: micros(at),
                },
            ];
            if !attachments.is_empty() {
                changes.push(Change::SetAttachments {
                    thread_id,
                    id: message_id,
                    json: serde_json::to_string(&attachments).unwrap_or_default(),
                });
            }
            changes
        }
        ThreadEvent::ReplyStarted {
            generation_id,
            message_id,
            parent_id,
            model,
            at,
        } => vec![
            head(&thread_id, &message_id),
            Change::InsertMessage {
                thread_id,
                id: message_id,
                parent_id: Some(parent_id),
                role: "assistant",
                text: String::new(),
                reasoning: String::new(),
                model: Some(model),
                generation_id: Some(generation_id),
                status: ReplyStatus::Running.message_str(),
                position,
                at: micros(at),
            },
        ],
        ThreadEvent::HistoryCopied {
            messages,
            current_message_id,
            at,
            ..
        } => {
            let current = current_message_id.or_else(|| messages.last().map(|m| m.id.clone()));
            let mut changes: Vec<Change> = messages
                .into_iter()
                .enumerate()
                .map(|(i, m)| {
                    let (role, status) = match m.role {
                        CopiedRole::User => ("user", USER_MESSAGE_DONE),
                        CopiedRole::Assistant => {
                            ("assistant", GenerationStatus::Completed.as_str())
                        }
                    };
                    Change::InsertMessage {
                        thread_id: thread_id.clone(),
                        id: m.id,
                        parent_id: m.parent_id,
                        role,
                        text: m.text,
                        reasoning: m.reasoning,
                        model: m.model,
                        generation_id: None,
                        status,
                        position: position + i as i64,
                        at: micros(m.created_at.unwrap_or(at)),
                    }
                })
                .collect();
            changes.push(Change::SetHead {
                thread_id,
                message_id: current,
            });
            changes
        }
        ThreadEvent::CurrentMessageChosen { message_id, .. } => vec![Change::SetHead {
            thread_id,
            message_id: Some(message_id),
        }],
        ThreadEvent::MessageHidden {
            message_id,
            parent_id,
            ..
        } => vec![Change::Hide {
            thread_id,
            message_id,
            fallback: parent_id,
        }],
        ThreadEvent::ThreadDeleted { .. } => vec![Change::DeleteThread { thread_id }],
        ThreadEvent::ThreadCreated { .. }
        | ThreadEvent::ThreadRenamed { .. }
        | ThreadEvent::ThreadArchived { .. }
        | ThreadEvent::ThreadUnarchived { .. }
        | ThreadEvent::ThreadPinned { .. }
        | ThreadEvent::ThreadUnpinned { .. }
        | ThreadEvent::ReplyFinished { .. }
        | ThreadEvent::ReplyStopRequested { .. }
        | ThreadEvent::ThreadShared { .. }
        | ThreadEvent::ShareRevoked { .. } => vec![],
    }
}

/// The `thread_id` of a generation of the stateless API (no thread id is empty).
pub const NO_THREAD: &str = "";

/// Folds one generation event (generation `generation_id`).
pub fn apply_generation(generation_id: &str, event: GenerationEvent) -> Vec<Change> {
    let generation_id = generation_id.to_owned();
    let status = event.terminal_status();
    match event {
        // A reply of the stateless API is no message of any thread: its row (for recovery
        // and its status) names no thread, and its chunks update no message.
        GenerationEvent::GenerationStarted {
            origin,
            message_id,
            model,
            provider,
            node_id,
            at,
            ..
        } => vec![Change::InsertGeneration {
            id: generation_id,
            thread_id: match origin {
                Origin::Thread { thread_id, .. } => thread_id,
                Origin::Api => NO_THREAD.to_owned(),
            },
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
            let mut parts: Vec<(usize, ReplyPart)> = Vec::new();
            let mut offset = 0;
            for chunk in chunks.iter().cloned() {
                let part = match chunk {
                    Chunk::Text { text: t } => {
                        offset += t.chars().count();
                        text.push_str(&t);
                        continue;
                    }
                    Chunk::Reasoning { text: t } => {
                        reasoning.push_str(&t);
                        continue;
                    }
                    Chunk::ToolInputStart { .. } | Chunk::ToolInputDelta { .. } => continue,
                    Chunk::ToolInputAvailable {
                        tool_call_id,
                        tool_name,
                        input,
                    } => ReplyPart::Call {
                        id: tool_call_id,
                        name: tool_name,
                        input,
                    },
                    Chunk::ToolOutput {
                        tool_call_id,
                        output,
                    } => ReplyPart::Output {
                        id: tool_call_id,
                        output,
                    },
                    Chunk::ToolError {
                        tool_call_id,
                        error_text,
                    } => ReplyPart::Error {
                        id: tool_call_id,
                        error: error_text,
                    },
                    Chunk::StepFinished { .. } => ReplyPart::Step,
                    Chunk::Data { name, id, data } => ReplyPart::Data { name, id, data },
                };
                parts.push((offset, part));
            }
            let parts = if parts.is_empty() {
                String::new()
            } else {
                format!("\t{}\n", serde_json::json!(parts))
            };
            vec![Change::AppendText {
                generation_id,
                text,
                reasoning,
                parts,
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
    let heads = t.name("thread_heads");
    match change {
        Change::InsertMessage {
            thread_id,
            id,
            parent_id,
            role,
            text,
            reasoning,
            model,
            generation_id,
            status,
            position,
            at,
        } => vec![Stmt::new(
            format!(
                "INSERT INTO {messages} (thread_id, id, parent_id, role, text, reasoning, model, \
                 generation_id, status, position, created_at, hidden) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, FALSE)"
            ),
            vec![
                thread_id.into(),
                id.into(),
                parent_id.into(),
                role.into(),
                text.into(),
                reasoning.into(),
                model.into(),
                generation_id.into(),
                status.into(),
                position.into(),
                at.into(),
            ],
        )],
        Change::SetAttachments {
            thread_id,
            id,
            json,
        } => vec![Stmt::new(
            format!("UPDATE {messages} SET attachments = $1 WHERE thread_id = $2 AND id = $3"),
            vec![json.into(), thread_id.into(), id.into()],
        )],
        Change::DeleteThread { thread_id } => vec![
            Stmt::new(
                format!("DELETE FROM {messages} WHERE thread_id = $1"),
                vec![thread_id.clone().into()],
            ),
            Stmt::new(
                format!("DELETE FROM {heads} WHERE thread_id = $1"),
                vec![thread_id.into()],
            ),
        ],
        Change::SetHead {
            thread_id,
            message_id,
        } => vec![Stmt::new(
            format!(
                "INSERT INTO {heads} (thread_id, message_id) VALUES ($1, $2) \
                 ON CONFLICT (thread_id) DO UPDATE SET message_id = excluded.message_id"
            ),
            vec![thread_id.into(), message_id.into()],
        )],
        Change::Hide {
            thread_id,
            message_id,
            fallback,
        } => vec![
            Stmt::new(
                format!(
                    "UPDATE {messages} SET hidden = TRUE WHERE thread_id = $1 AND id IN ( \
                     WITH RECURSIVE subtree(id) AS ( \
                       SELECT CAST($2 AS TEXT) \
                       UNION ALL SELECT m.id FROM {messages} m JOIN subtree s ON m.parent_id = s.id \
                       WHERE m.thread_id = $1) \
                     SELECT id FROM subtree)"
                ),
                vec![thread_id.clone().into(), message_id.into()],
            ),
            Stmt::new(
                format!(
                    "UPDATE {heads} SET message_id = $1 WHERE thread_id = $2 AND message_id IN \
                     (SELECT id FROM {messages} WHERE thread_id = $2 AND hidden)"
                ),
                vec![fallback.into(), thread_id.into()],
            ),
        ],
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
            parts,
            chunks,
        } => vec![
            if parts.is_empty() {
                Stmt::new(
                    format!(
                        "UPDATE {messages} SET text = text || $1, reasoning = reasoning || $2 \
                         WHERE generation_id = $3"
                    ),
                    vec![text.into(), reasoning.into(), generation_id.clone().into()],
                )
            } else {
                // Each line of `parts` starts with the length of the text before the batch
                // (the right-hand sides see the row before this update).
                Stmt::new(
                    format!(
                        "UPDATE {messages} SET text = text || $1, reasoning = reasoning || $2, \
                         parts = COALESCE(parts, '') || CAST(LENGTH(text) AS TEXT) || $4 \
                         WHERE generation_id = $3"
                    ),
                    vec![
                        text.into(),
                        reasoning.into(),
                        generation_id.clone().into(),
                        parts.into(),
                    ],
                )
            },
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
        // 2: the reply's cost. 3: hidden messages, the current path's head, copied histories,
        // positions scaled by POSITIONS_PER_EVENT. 4: user messages' attachments. 5: replies'
        // tool calls, steps and data parts.
        5
    }

    fn tables(&self) -> &'static [&'static str] {
        &["messages", "generations", "thread_heads"]
    }

    fn ddl(&self, backend: Backend, t: &Tables) -> Vec<String> {
        let (messages, generations) = (t.name("messages"), t.name("generations"));
        let heads = t.name("thread_heads");
        let flag = crate::projection::bool_type(backend);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {heads} (
                    thread_id TEXT PRIMARY KEY,
                    message_id TEXT
                )"
            ),
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
                    hidden {flag} NOT NULL,
                    attachments TEXT,
                    parts TEXT,
                    PRIMARY KEY (thread_id, id)
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {messages} (generation_id)",
                t.index("messages", "generation")
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {messages} (thread_id, parent_id)",
                t.index("messages", "parent")
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
    /// Hidden with its subtree: no read shows it (reads of visible messages filter it out).
    pub hidden: bool,
    /// The files a user message carries, as JSON `Attachment`s (None without any).
    pub attachments: Option<String>,
    /// A reply's tool calls, results, steps and data parts, with where each sits in `text`
    /// (see [`MessageRow::reply_parts`]); None without any.
    pub parts: Option<String>,
}

/// What a reply holds besides its text and reasoning, in order.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ReplyPart {
    /// A tool call with its whole input.
    Call {
        id: String,
        name: String,
        input: serde_json::Value,
    },
    /// The result of call `id`.
    Output {
        id: String,
        output: serde_json::Value,
    },
    /// Call `id` failed.
    Error { id: String, error: String },
    /// A new step begins.
    Step,
    /// A data part (`data-{name}`).
    Data {
        name: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        data: serde_json::Value,
    },
}

impl MessageRow {
    /// The reply's parts besides text and reasoning, each with the number of characters of
    /// `text` that come before it.
    pub fn reply_parts(&self) -> Vec<(usize, ReplyPart)> {
        let mut out = Vec::new();
        for line in self.parts.as_deref().unwrap_or_default().lines() {
            let Some((base, batch)) = line.split_once('\t') else {
                continue;
            };
            let base: usize = base.parse().unwrap_or(0);
            let batch: Vec<(usize, ReplyPart)> = serde_json::from_str(batch).unwrap_or_default();
            out.extend(batch.into_iter().map(|(at, part)| (base + at, part)));
        }
        out
    }

    /// The files the message carries.
    pub fn attachments(&self) -> Vec<threadline_domain::thread::Attachment> {
        self.attachments
            .as_deref()
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default()
    }
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
    generation_id, status, position, created_at, hidden, attachments, parts";
const GENERATION_COLUMNS: &str = "id, thread_id, message_id, model, provider, node_id, status, \
    chunks, finish_reason, error, input_tokens, output_tokens, reasoning_tokens, \
    cached_input_tokens, provider_ms, cost_micros, started_at, finished_at";

/// Every message of a thread, oldest first.
pub async fn all_of(db: &Db, thread_id: &str) -> Result<Vec<MessageRow>, sqlx::Error> {
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE thread_id = $1 AND NOT hidden \
         ORDER BY position, id"
    );
    on_read!(db, pool => sqlx::query_as(&sql).bind(thread_id).fetch_all(pool).await)
}

/// The message a thread's current path goes through (see [`leaf_of`]), if one was recorded.
pub async fn head_of(db: &Db, thread_id: &str) -> Result<Option<String>, sqlx::Error> {
    let head: Option<Option<String>> = on_read!(db, pool =>
        sqlx::query_scalar("SELECT message_id FROM thread_heads WHERE thread_id = $1")
            .bind(thread_id)
            .fetch_optional(pool)
            .await)?;
    Ok(head.flatten())
}

/// A thread's visible messages and the head of its current path.
pub async fn tree_of(db: &Db, thread_id: &str) -> Result<Tree, sqlx::Error> {
    Ok(Tree {
        messages: all_of(db, thread_id).await?,
        head: head_of(db, thread_id).await?,
    })
}

/// A thread's visible messages (oldest first) and the head of its current path.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tree {
    pub messages: Vec<MessageRow>,
    pub head: Option<String>,
}

impl Tree {
    /// The current path, root first.
    pub fn current_path(&self) -> Vec<PathMessage> {
        current_path_to(
            &self.messages,
            leaf_of(&self.messages, self.head.as_deref()),
        )
    }
}

/// A message of a path with its siblings: the visible messages with the same parent and
/// role, oldest first (what a client draws as "‹ 2/3 ›").
#[derive(Debug, Clone, PartialEq)]
pub struct PathMessage {
    pub message: MessageRow,
    pub sibling_ids: Vec<String>,
    /// The message's place among `sibling_ids` (0-based).
    pub sibling_index: usize,
}

/// The leaf of the path through `head`: its newest descendant (itself when it has none). With
/// no head, or one that is not among `all` (hidden, say), the newest message.
pub fn leaf_of<'a>(all: &'a [MessageRow], head: Option<&str>) -> Option<&'a str> {
    let newest = || all.iter().max_by_key(|m| m.position).map(|m| m.id.as_str());
    let Some(head) = head.and_then(|h| all.iter().find(|m| m.id == h)) else {
        return newest();
    };
    let mut children: std::collections::HashMap<&str, Vec<&MessageRow>> = Default::default();
    for m in all {
        if let Some(parent) = m.parent_id.as_deref() {
            children.entry(parent).or_default().push(m);
        }
    }
    let mut best = head;
    let mut stack = vec![head];
    let mut seen = 0;
    while let Some(m) = stack.pop() {
        seen += 1;
        if seen > all.len() {
            break; // never loop on bad data
        }
        if m.position > best.position {
            best = m;
        }
        stack.extend(children.get(m.id.as_str()).into_iter().flatten());
    }
    Some(best.id.as_str())
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
    path.into_iter().map(|m| with_siblings(all, m)).collect()
}

/// `m` with its siblings among `all`.
pub fn with_siblings(all: &[MessageRow], m: &MessageRow) -> PathMessage {
    let sibling_ids: Vec<String> = all
        .iter()
        .filter(|s| s.parent_id == m.parent_id && s.role == m.role)
        .map(|s| s.id.clone())
        .collect();
    PathMessage {
        sibling_index: sibling_ids.iter().position(|id| *id == m.id).unwrap_or(0),
        sibling_ids,
        message: m.clone(),
    }
}

/// Every generation of a thread, by id.
pub async fn generations_of(
    db: &Db,
    thread_id: &str,
) -> Result<std::collections::HashMap<String, GenerationRow>, sqlx::Error> {
    let sql = format!("SELECT {GENERATION_COLUMNS} FROM generations WHERE thread_id = $1");
    let rows: Vec<GenerationRow> =
        on_read!(db, pool => sqlx::query_as(&sql).bind(thread_id).fetch_all(pool).await)?;
    Ok(rows.into_iter().map(|g| (g.id.clone(), g)).collect())
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
            hidden: false,
            attachments: None,
            parts: None,
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
        let tree = Tree {
            messages: all.clone(),
            head: None,
        };
        let path = tree.current_path();
        let ids: Vec<&str> = path.iter().map(|p| p.message.id.as_str()).collect();
        assert_eq!(ids, ["u1", "a2", "u2"]);
        assert_eq!(path[1].sibling_ids, ["a1", "a2"]);
        assert_eq!(path[1].sibling_index, 1);
    }

    #[test]
    fn a_chosen_head_leads_to_its_newest_descendant() {
        // u1 ─ a1 ─ u2 ─ a3
        //    └ a2 ─ u3
        let all = vec![
            row("u1", None, "user", 1),
            row("a1", Some("u1"), "assistant", 2),
            row("a2", Some("u1"), "assistant", 3),
            row("u3", Some("a2"), "user", 4),
            row("u2", Some("a1"), "user", 5),
            row("a3", Some("u2"), "assistant", 6),
        ];
        let path = |head: Option<&str>| -> Vec<String> {
            Tree {
                messages: all.clone(),
                head: head.map(Into::into),
            }
            .current_path()
            .into_iter()
            .map(|p| p.message.id)
            .collect()
        };
        assert_eq!(path(Some("a2")), ["u1", "a2", "u3"]);
        assert_eq!(path(Some("a1")), ["u1", "a1", "u2", "a3"]);
        assert_eq!(
            path(Some("u1")),
            ["u1", "a1", "u2", "a3"],
            "the newest below u1"
        );
        assert_eq!(
            path(Some("gone")),
            ["u1", "a1", "u2", "a3"],
            "an unknown head: the newest"
        );
        let first = Tree {
            messages: all.clone(),
            head: Some("a2".into()),
        }
        .current_path();
        assert_eq!((first[1].sibling_index, first[1].sibling_ids.len()), (1, 2));
    }

    #[test]
    fn posting_and_choosing_move_the_head_and_hiding_falls_back() {
        let at = DateTime::UNIX_EPOCH;
        let heads = |changes: Vec<Change>| -> Vec<Option<String>> {
            changes
                .into_iter()
                .filter_map(|c| match c {
                    Change::SetHead { message_id, .. } => Some(message_id),
                    _ => None,
                })
                .collect()
        };
        let posted = ThreadEvent::UserMessagePosted {
            message_id: "u1".into(),
            parent_id: None,
            text: "hi".into(),
            attachments: Vec::new(),
            at,
        };
        assert_eq!(heads(apply_thread("t", 5, posted)), [Some("u1".into())]);
        let chosen = ThreadEvent::CurrentMessageChosen {
            message_id: "a1".into(),
            at,
        };
        assert_eq!(heads(apply_thread("t", 6, chosen)), [Some("a1".into())]);
        assert_eq!(
            apply_thread(
                "t",
                7,
                ThreadEvent::MessageHidden {
                    message_id: "a1".into(),
                    parent_id: Some("u1".into()),
                    at
                }
            ),
            [Change::Hide {
                thread_id: "t".into(),
                message_id: "a1".into(),
                fallback: Some("u1".into())
            }]
        );
    }

    #[test]
    fn a_user_message_with_files_records_them_after_its_row() {
        let at = DateTime::from_timestamp(1, 0).unwrap();
        let file = threadline_domain::thread::Attachment {
            file_id: "f1".into(),
            sha256: "00".repeat(32),
            media_type: "text/plain".into(),
            filename: "a.txt".into(),
            size: 2,
        };
        let changes = apply_thread(
            "t",
            5,
            ThreadEvent::UserMessagePosted {
                message_id: "u1".into(),
                parent_id: None,
                text: "see".into(),
                attachments: vec![file.clone()],
                at,
            },
        );
        let Some(Change::SetAttachments { id, json, .. }) = changes.last() else {
            panic!("{changes:?}")
        };
        assert_eq!(id, "u1");
        let with_files = MessageRow {
            attachments: Some(json.clone()),
            ..row("u1", None, "user", 0)
        };
        assert_eq!(with_files.attachments(), vec![file]);
        assert!(row("u2", None, "user", 1).attachments().is_empty());
    }

    #[test]
    fn a_copied_history_inserts_its_messages_in_order_and_sets_the_head() {
        use threadline_domain::thread::{CopiedMessage, HistoryOrigin};
        let copied = |id: &str, parent: Option<&str>, role| CopiedMessage {
            id: id.into(),
            parent_id: parent.map(Into::into),
            role,
            text: id.into(),
            reasoning: String::new(),
            model: None,
            created_at: None,
        };
        let changes = apply_thread(
            "t",
            10,
            ThreadEvent::HistoryCopied {
                origin: HistoryOrigin::Import {
                    source: "chatgpt".into(),
                    external_id: "c1".into(),
                },
                messages: vec![
                    copied("u1", None, CopiedRole::User),
                    copied("a1", Some("u1"), CopiedRole::Assistant),
                ],
                current_message_id: None,
                at: DateTime::UNIX_EPOCH,
            },
        );
        let positions: Vec<(String, i64, &str)> = changes
            .iter()
            .filter_map(|c| match c {
                Change::InsertMessage {
                    id,
                    position,
                    status,
                    ..
                } => Some((id.clone(), *position, *status)),
                _ => None,
            })
            .collect();
        assert_eq!(
            positions,
            [
                ("u1".into(), 10 * POSITIONS_PER_EVENT, "done"),
                ("a1".into(), 10 * POSITIONS_PER_EVENT + 1, "completed")
            ]
        );
        assert_eq!(
            changes.last(),
            Some(&Change::SetHead {
                thread_id: "t".into(),
                message_id: Some("a1".into())
            })
        );
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
                parts: String::new(),
                chunks: 6
            }]
        );
    }

    #[test]
    fn tool_calls_results_steps_and_data_keep_their_place_in_the_text() {
        let changes = apply_generation(
            "g",
            GenerationEvent::ChunksAppended {
                first_index: 0,
                chunks: vec![
                    Chunk::Text {
                        text: "héllo ".into(),
                    },
                    Chunk::ToolInputStart {
                        tool_call_id: "c1".into(),
                        tool_name: "web_search".into(),
                    },
                    Chunk::ToolInputAvailable {
                        tool_call_id: "c1".into(),
                        tool_name: "web_search".into(),
                        input: serde_json::json!({"query": "q"}),
                    },
                    Chunk::ToolError {
                        tool_call_id: "c1".into(),
                        error_text: "down".into(),
                    },
                    Chunk::StepFinished {
                        usage: Default::default(),
                        finish_reason: "tool-calls".into(),
                    },
                    Chunk::Text {
                        text: "done".into(),
                    },
                    Chunk::Data {
                        name: "research-start".into(),
                        id: None,
                        data: serde_json::json!({"question": "q"}),
                    },
                ],
            },
        );
        let [Change::AppendText { text, parts, .. }] = &changes[..] else {
            panic!("{changes:?}")
        };
        assert_eq!(text, "héllo done");
        // The row's `parts` gets the text length before the batch (here 3) as the prefix.
        let row = MessageRow {
            thread_id: "t".into(),
            id: "a".into(),
            parent_id: None,
            role: "assistant".into(),
            text: format!("abc{text}"),
            reasoning: String::new(),
            model: None,
            generation_id: Some("g".into()),
            status: "completed".into(),
            position: 0,
            created_at: 0,
            hidden: false,
            attachments: None,
            parts: Some(format!("3{parts}")),
        };
        let found = row.reply_parts();
        let at: Vec<usize> = found.iter().map(|(at, _)| *at).collect();
        assert_eq!(at, [9, 9, 9, 13]);
        assert!(matches!(&found[0].1, ReplyPart::Call { id, .. } if id == "c1"));
        assert!(matches!(&found[1].1, ReplyPart::Error { error, .. } if error == "down"));
        assert_eq!(found[2].1, ReplyPart::Step);
        assert!(matches!(&found[3].1, ReplyPart::Data { name, .. } if name == "research-start"));
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
            [
                Change::SetHead { .. },
                Change::InsertMessage {
                    role: "assistant",
                    status: "streaming",
                    position: 7_340_032, // 7 × POSITIONS_PER_EVENT
                    ..
                }
            ]
        ));
    }
}
