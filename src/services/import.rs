//! Importing conversations exported by other chat apps (and by Threadline) into the caller's
//! threads: each conversation becomes one thread, written as one `CreateWithHistory` command
//! (its tree kept, the export's current node as the current path).
//!
//! Re-importing the same file creates no duplicates: a conversation's thread id is derived
//! from the account, the source app and the conversation's own id, so the second import finds
//! the id taken and reports the conversation as already imported.

use chrono::Utc;
use serde::Serialize;
use threadline_domain::thread::{CopiedMessage, CopiedRole, HistoryOrigin, Thread, ThreadCommand};
use threadline_domain::values::{AccountId, Title};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::import::{self, Conversation, ImportError, Role};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// What happened to one conversation.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Imported,
    /// An earlier import of the same conversation holds its thread.
    AlreadyImported,
    /// The conversation could not be read; the rest of the file was imported.
    Skipped,
}

/// One conversation of the file.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its place in the file (0-based).
    pub index: usize,
    pub status: Status,
    pub source: Option<&'static str>,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub thread_id: Option<String>,
    pub messages: usize,
    /// Why it was skipped.
    pub reason: Option<String>,
}

/// The import's report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub imported: usize,
    pub already_imported: usize,
    pub skipped: usize,
    pub conversations: Vec<Item>,
}

/// The thread id of `conversation` for `account` (a UUIDv5, stable across imports).
pub fn thread_id_of(account: &str, source: &str, external_id: &str) -> String {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x3f1e_8a2c_5b7d_4e90_a1c3_6d2b_9f80_e417);
    let key = format!("{account}\u{0}{source}\u{0}{external_id}");
    uuid::Uuid::new_v5(&NAMESPACE, key.as_bytes()).to_string()
}

fn copied(c: &Conversation) -> Vec<CopiedMessage> {
    c.messages
        .iter()
        .map(|m| CopiedMessage {
            id: m.id.clone(),
            parent_id: m.parent_id.clone(),
            role: match m.role {
                Role::User => CopiedRole::User,
                Role::Assistant => CopiedRole::Assistant,
            },
            text: m.text.clone(),
            reasoning: m.reasoning.clone(),
            model: m.model.clone(),
            created_at: m.created_at,
        })
        .collect()
}

/// Imports every readable conversation of `bytes` into the caller's threads.
pub async fn import(
    state: &AppState,
    caller: &Caller,
    bytes: Vec<u8>,
    meta: &CommandMeta,
) -> Result<Report, ApiError> {
    // Reading a 50 MB export takes a while: off the request threads.
    let parsed = tokio::task::spawn_blocking(move || import::parse_file(&bytes))
        .await
        .map_err(|e| ApiError::Internal(format!("the import's parser stopped: {e}")))?;
    let parsed = parsed.map_err(|e| match e {
        too_large @ (ImportError::TooMany { .. } | ImportError::TooLarge { .. }) => {
            ApiError::Http {
                status: actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
                code: crate::error::ErrorCode::PayloadTooLarge,
                detail: too_large.to_string(),
            }
        }
        other => ApiError::invalid_field("file", other.to_string()),
    })?;
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut items: Vec<Item> = parsed
        .skipped
        .into_iter()
        .map(|s| Item {
            index: s.index,
            status: Status::Skipped,
            source: None,
            external_id: s.external_id,
            title: s.title,
            thread_id: None,
            messages: 0,
            reason: Some(s.reason),
        })
        .collect();
    // The conversations keep the file's order, without the skipped entries.
    let skipped: std::collections::BTreeSet<usize> = items.iter().map(|i| i.index).collect();
    let mut file_index = (0..).filter(|i| !skipped.contains(i));
    let mut last_cursor = None;
    for conversation in &parsed.conversations {
        let index = file_index.next().unwrap_or_default();
        let source = conversation.source.as_str();
        let thread_id = thread_id_of(caller.id(), source, &conversation.external_id);
        let title = conversation
            .title
            .as_deref()
            .and_then(|t| Title::parse(t).ok());
        let history = copied(conversation);
        let messages = history.len();
        let command = ThreadCommand::CreateWithHistory {
            owner,
            title: title.clone(),
            origin: HistoryOrigin::Import {
                source: source.to_owned(),
                external_id: conversation.external_id.clone(),
            },
            messages: history,
            current_message_id: conversation.current_id.clone(),
            at: conversation.created_at.unwrap_or_else(Utc::now),
        };
        let status = match state.send::<Thread>(&thread_id, command, meta).await {
            Ok(cursor) => {
                last_cursor = cursor.or(last_cursor);
                Status::Imported
            }
            Err(ApiError::Conflict {
                code: crate::error::ErrorCode::ThreadExists,
                ..
            }) => Status::AlreadyImported,
            Err(ApiError::Validation(errors)) => {
                items.push(Item {
                    index,
                    status: Status::Skipped,
                    source: Some(source),
                    external_id: Some(conversation.external_id.clone()),
                    title: title.map(|t| t.as_str().to_owned()),
                    thread_id: None,
                    messages,
                    reason: Some(
                        errors
                            .into_values()
                            .flatten()
                            .collect::<Vec<_>>()
                            .join("; "),
                    ),
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        items.push(Item {
            index,
            status,
            source: Some(source),
            external_id: Some(conversation.external_id.clone()),
            title: title.map(|t| t.as_str().to_owned()),
            thread_id: Some(thread_id),
            messages,
            reason: None,
        });
    }
    // Read-your-writes: the caller's next read shows the imported threads.
    state.settle(last_cursor).await;
    items.sort_by_key(|i| i.index);
    let count = |s: Status| items.iter().filter(|i| i.status == s).count();
    Ok(Report {
        imported: count(Status::Imported),
        already_imported: count(Status::AlreadyImported),
        skipped: count(Status::Skipped),
        conversations: items,
    })
}
