//! `POST /v1/threads/{id}/shares` (freeze a read-only link to the path up to a message) and
//! `GET /v1/threads/{id}/shares` (the thread's live links).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use threadline_domain::values::MessageId;
use threadline_projections::{rfc3339, shares};
use validator::Validate;

use super::owned;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::services::threads;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

#[derive(Debug, Deserialize, Validate)]
pub struct CreateShare {
    /// The last message the link shows (default: the current path's leaf).
    pub message_id: Option<String>,
}

/// A share link as its owner sees it.
#[derive(Debug, Serialize)]
pub struct ShareJson {
    pub id: String,
    pub thread_id: String,
    pub message_id: String,
    /// Where anyone can read it (no sign-in).
    pub url: String,
    pub created_at: String,
}

impl From<shares::ShareRow> for ShareJson {
    fn from(s: shares::ShareRow) -> Self {
        Self {
            url: format!("/v1/shares/{}", s.id),
            id: s.id,
            thread_id: s.thread_id,
            message_id: s.message_id,
            created_at: rfc3339(s.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ShareList {
    pub data: Vec<ShareJson>,
    pub next_cursor: Option<String>,
}

pub async fn create(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    ValidJson(body): ValidJson<CreateShare>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let message = body
        .message_id
        .as_deref()
        .map(MessageId::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("message_id", e.0))?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let (share_id, _) = threads::share(
        &state,
        &thread,
        message.as_ref().map(MessageId::as_str),
        &meta,
    )
    .await?;
    let share = shares::live(&state.db, &share_id)
        .await?
        .ok_or_else(|| ApiError::Unavailable("the new share is not visible yet".into()))?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/shares/{share_id}")))
        .json(ShareJson::from(share)))
}

pub async fn list(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    // A share whose message was hidden since is a 404 to its readers: not listed either.
    let visible: std::collections::HashSet<String> =
        threadline_projections::messages::all_of(&state.db, &thread.id)
            .await?
            .into_iter()
            .map(|m| m.id)
            .collect();
    let data = shares::of_thread(&state.db, &thread.id)
        .await?
        .into_iter()
        .filter(|s| visible.contains(&s.message_id))
        .map(ShareJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(ShareList {
        data,
        next_cursor: None,
    }))
}
