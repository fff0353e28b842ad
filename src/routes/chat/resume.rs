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
    let active = crate::chat::active_generation(&state.db, &thread).await?;
    let Some(generation_id) = active else {
        return Ok(HttpResponse::NoContent().finish());
    };
    let after = issued_part(&state, &generation_id, last_event_id(&req)?).await?;
    Ok(super::reply_stream(&state, &caller, generation_id, after))
}

/// `part`, when generation `id` has issued it: a part of an event beyond the reply's newest
/// was never sent (400 `invalid_cursor`).
pub async fn issued_part(
    state: &AppState,
    generation_id: &str,
    part: Option<PartId>,
) -> Result<Option<PartId>, ApiError> {
    let Some(part) = part else { return Ok(None) };
    let last = crate::chat::reader::last_sequence(&state.db, generation_id).await?;
    if part.0 > last {
        return Err(invalid_part());
    }
    Ok(Some(part))
}

fn invalid_part() -> ApiError {
    ApiError::BadRequest {
        code: crate::error::ErrorCode::InvalidCursor,
        detail: "the part id is not one this reply issued".into(),
    }
}

/// The `Last-Event-ID` header as a part id (400 when it cannot be one this server issued).
pub fn last_event_id(req: &HttpRequest) -> Result<Option<PartId>, ApiError> {
    let Some(value) = req.headers().get("last-event-id") else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(PartId::parse)
        .map(Some)
        .ok_or_else(invalid_part)
}
