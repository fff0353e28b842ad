//! `/v1/threads*`: the caller's threads.

pub mod branch;
pub mod create;
pub mod current;
pub mod delete;
pub mod export;
pub mod get;
pub mod list;
pub mod messages;
pub mod shares;
pub mod typing;
pub mod update;

use serde::Serialize;
use threadline_domain::values::ThreadId;
use threadline_projections::rfc3339;
use threadline_projections::threads::{self, ThreadRow};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// A thread as the API returns it.
#[derive(Debug, Serialize)]
pub struct ThreadJson {
    pub id: String,
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    pub archived: bool,
    pub pinned: bool,
    /// The generation streaming a reply now (resume it with `GET /v1/chat/{id}/stream`).
    pub active_generation_id: Option<String>,
    /// Where the history came from: a branch, a copy of a share, an import.
    pub origin: Option<serde_json::Value>,
}

impl From<ThreadRow> for ThreadJson {
    fn from(t: ThreadRow) -> Self {
        Self {
            id: t.id,
            title: t.title,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            last_activity_at: rfc3339(t.last_activity_at),
            archived: t.archived,
            pinned: t.pinned,
            active_generation_id: t.active_generation_id,
            origin: t
                .origin
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok()),
        }
    }
}

/// The caller's thread `id`, or 404 (also for another account's thread and malformed ids).
pub async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<ThreadRow, ApiError> {
    let id = ThreadId::parse(id).map_err(|_| ApiError::NotFound("thread"))?;
    threads::get(&state.db, caller.id(), id.as_str())
        .await?
        .ok_or(ApiError::NotFound("thread"))
}
