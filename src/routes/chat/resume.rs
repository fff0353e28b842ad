//! `GET /v1/chat/{thread_id}/stream`: resume the thread's active reply (204 when none).

use actix_web::{HttpRequest, HttpResponse, web};

use crate::auth::Caller;
use crate::chat::render::PartId;
use crate::error::ApiError;
use crate::routes::threads::owned;
use crate::state::AppState;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    let active = super::active_generation(&state, &thread).await?;
    let Some(generation_id) = active else {
        return Ok(HttpResponse::NoContent().finish());
    };
    Ok(super::reply_stream(
        &state,
        &caller,
        generation_id,
        last_event_id(&req)?,
    ))
}

/// The `Last-Event-ID` header as a part id (400 when it is not one this server issued).
pub fn last_event_id(req: &HttpRequest) -> Result<Option<PartId>, ApiError> {
    let Some(value) = req.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(PartId::parse)
        .map(Some)
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_cursor",
            detail: "Last-Event-ID is not a part id this server issued".into(),
        })
}
