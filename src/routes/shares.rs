//! `/v1/shares/{id}`: a share link's snapshot for anyone (`GET`, no sign-in), its revocation
//! by the thread's owner (`DELETE`), and "continue as a copy" for any signed-in caller
//! (`POST …/copy`).
//!
//! The public snapshot names no account, email or generation: only the title and the messages
//! of the path up to the shared message (their role, text and time, and the model that wrote a
//! reply).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};
use threadline_domain::thread::HistoryOrigin;
use threadline_domain::values::Title;
use threadline_projections::{messages, rfc3339, shares, threads as thread_view};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::routes::threads::owned;
use crate::services::threads;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Serialize)]
pub struct SharedThread {
    pub id: String,
    pub title: Option<String>,
    pub created_at: String,
    /// The path up to the shared message, oldest first, as `UIMessage`s.
    pub messages: Vec<Value>,
}

/// The live share `id` with its thread; a revoked or unknown share, or one whose message is
/// hidden now, is a 404.
async fn live_share(
    state: &AppState,
    id: &str,
) -> Result<(shares::ShareRow, thread_view::ThreadRow), ApiError> {
    let not_found = || ApiError::NotFound("share");
    let share = shares::live(&state.db, id).await?.ok_or_else(not_found)?;
    let owner = thread_view::owner_of(&state.db, &share.thread_id)
        .await?
        .ok_or_else(not_found)?;
    let thread = thread_view::get(&state.db, &owner, &share.thread_id)
        .await?
        .ok_or_else(not_found)?;
    Ok((share, thread))
}

pub async fn get(
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (share, thread) = live_share(&state, &path).await?;
    let all = messages::all_of(&state.db, &share.thread_id).await?;
    if !all.iter().any(|m| m.id == share.message_id) {
        return Err(ApiError::NotFound("share"));
    }
    let messages = messages::current_path_to(&all, Some(&share.message_id))
        .into_iter()
        .map(|p| {
            let m = p.message;
            let mut parts = Vec::new();
            if !m.reasoning.is_empty() {
                parts.push(json!({"type": "reasoning", "text": m.reasoning, "state": "done"}));
            }
            parts.push(json!({"type": "text", "text": m.text}));
            json!({
                "id": m.id,
                "role": m.role,
                "parts": parts,
                "metadata": {"created_at": rfc3339(m.created_at), "model": m.model},
            })
        })
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(SharedThread {
            id: share.id,
            title: thread.title,
            created_at: rfc3339(share.created_at),
            messages,
        }))
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (share, _) = live_share(&state, &path).await?;
    // Only the thread's owner revokes; to anyone else the share's thread does not exist.
    let thread = owned(&state, &caller, &share.thread_id)
        .await
        .map_err(|_| ApiError::NotFound("share"))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    threads::revoke_share(&state, &thread.id, &share.id, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

pub async fn copy(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let (share, thread) = live_share(&state, &path).await?;
    let history = threads::path_to(&state, &share.thread_id, &share.message_id)
        .await
        .map_err(|e| match e {
            ApiError::NotFound(_) => ApiError::NotFound("share"),
            other => other,
        })?;
    let title = thread.title.as_deref().and_then(|t| Title::parse(t).ok());
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let origin = HistoryOrigin::Share {
        share_id: share.id.clone(),
    };
    let id = threads::create_with_history(&state, &caller, title, origin, history, &meta).await?;
    let copy = owned(&state, &caller, id.as_str()).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/threads/{}", id.as_str())))
        .json(crate::services::thread_view::view(&state.db, copy).await?))
}
