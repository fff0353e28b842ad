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

use threadline_domain::values::ThreadId;
use threadline_projections::threads::{self, ThreadRow};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

pub use crate::services::thread_view::ThreadJson;

/// The caller's thread `id`, or 404 (also for another account's thread and malformed ids).
pub async fn owned(state: &AppState, caller: &Caller, id: &str) -> Result<ThreadRow, ApiError> {
    let id = ThreadId::parse(id).map_err(|_| ApiError::NotFound("thread"))?;
    threads::get(&state.db, caller.id(), id.as_str())
        .await?
        .ok_or(ApiError::NotFound("thread"))
}
