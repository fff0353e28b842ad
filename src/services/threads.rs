//! A thread's tree and its copies: choosing the current path, hiding a subtree, branching into
//! a new thread, share links and continuing a share as a copy.

use chrono::Utc;
use threadline_domain::thread::{
    CopiedMessage, CopiedRole, HistoryOrigin, Thread, ThreadCommand, ThreadError,
};
use threadline_domain::values::{AccountId, ThreadId, Title};
use threadline_projections::messages::{self, MessageRow, ReplyStatus};
use threadline_projections::threads::ThreadRow;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// Makes the path through `message_id` current.
pub async fn choose_current(
    state: &AppState,
    thread: &ThreadRow,
    message_id: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let command = ThreadCommand::ChooseCurrent {
        message_id: message_id.to_owned(),
        at: Utc::now(),
    };
    state.run::<Thread>(&thread.id, command, meta).await
}

/// Hides a message and its subtree.
pub async fn hide(
    state: &AppState,
    thread: &ThreadRow,
    message_id: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let command = ThreadCommand::HideMessage {
        message_id: message_id.to_owned(),
        at: Utc::now(),
    };
    state.run::<Thread>(&thread.id, command, meta).await
}

/// The visible path from the root of `thread_id` to `message_id`, as messages to copy. A
/// message that is not visible is a 404; one whose reply still streams a 409.
pub async fn path_to(
    state: &AppState,
    thread_id: &str,
    message_id: &str,
) -> Result<Vec<CopiedMessage>, ApiError> {
    let all = messages::all_of(&state.db, thread_id).await?;
    if !all.iter().any(|m| m.id == message_id) {
        return Err(ApiError::NotFound("message"));
    }
    let path = messages::current_path_to(&all, Some(message_id));
    if path
        .iter()
        .any(|p| p.message.status == ReplyStatus::Running.message_str())
    {
        return Err(ThreadError::ReplyInProgress.into());
    }
    Ok(path.into_iter().map(|p| copied(p.message)).collect())
}

fn copied(m: MessageRow) -> CopiedMessage {
    CopiedMessage {
        role: match m.role.as_str() {
            "assistant" => CopiedRole::Assistant,
            _ => CopiedRole::User,
        },
        id: m.id,
        parent_id: m.parent_id,
        text: m.text,
        reasoning: m.reasoning,
        model: m.model,
        created_at: chrono::DateTime::from_timestamp_micros(m.created_at),
    }
}

/// A new thread of the caller holding `history`; returns its id.
pub async fn create_with_history(
    state: &AppState,
    caller: &Caller,
    title: Option<Title>,
    origin: HistoryOrigin,
    history: Vec<CopiedMessage>,
    meta: &CommandMeta,
) -> Result<ThreadId, ApiError> {
    let id = ThreadId::generate();
    let owner = AccountId::parse(caller.id()).map_err(|e| ApiError::Internal(e.to_string()))?;
    let current_message_id = history.last().map(|m| m.id.clone());
    state
        .run::<Thread>(
            id.as_str(),
            ThreadCommand::CreateWithHistory {
                owner,
                title,
                origin,
                messages: history,
                current_message_id,
                at: Utc::now(),
            },
            meta,
        )
        .await?;
    Ok(id)
}

/// A new thread whose history is `thread`'s path up to `message_id`.
pub async fn branch(
    state: &AppState,
    caller: &Caller,
    thread: &ThreadRow,
    message_id: &str,
    title: Option<Title>,
    meta: &CommandMeta,
) -> Result<ThreadId, ApiError> {
    let history = path_to(state, &thread.id, message_id).await?;
    let title = match title {
        Some(title) => Some(title),
        None => thread.title.as_deref().and_then(|t| Title::parse(t).ok()),
    };
    let origin = HistoryOrigin::Branch {
        thread_id: thread.id.clone(),
        message_id: message_id.to_owned(),
    };
    create_with_history(state, caller, title, origin, history, meta).await
}

/// A new, unguessable share id (22 characters of base64url).
pub fn new_share_id() -> String {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Shares `thread`'s path up to `message_id` (its current leaf when `None`); returns the share
/// id and the message.
pub async fn share(
    state: &AppState,
    thread: &ThreadRow,
    message_id: Option<&str>,
    meta: &CommandMeta,
) -> Result<(String, String), ApiError> {
    let message_id = match message_id {
        Some(id) => id.to_owned(),
        None => {
            let tree = messages::tree_of(&state.db, &thread.id).await?;
            tree.current_path()
                .last()
                .map(|p| p.message.id.clone())
                .ok_or_else(|| {
                    ApiError::invalid_field("message_id", "the thread has no message to share")
                })?
        }
    };
    let share_id = new_share_id();
    state
        .run::<Thread>(
            &thread.id,
            ThreadCommand::Share {
                share_id: share_id.clone(),
                message_id: message_id.clone(),
                at: Utc::now(),
            },
            meta,
        )
        .await?;
    Ok((share_id, message_id))
}

/// Revokes a share of `thread`.
pub async fn revoke_share(
    state: &AppState,
    thread_id: &str,
    share_id: &str,
    meta: &CommandMeta,
) -> Result<(), ApiError> {
    let command = ThreadCommand::RevokeShare {
        share_id: share_id.to_owned(),
        at: Utc::now(),
    };
    state.run::<Thread>(thread_id, command, meta).await
}
