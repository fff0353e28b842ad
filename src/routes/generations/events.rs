//! `GET /v1/generations/{id}/events`: replay any reply from the log, finished or not, and follow
//! it live; `Last-Event-ID` or `?after=` resumes after a part.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use threadline_projections::{messages, threads};

use crate::auth::Caller;
use crate::chat::render::PartId;
use crate::error::ApiError;
use crate::routes::chat::resume::{issued_part, last_event_id};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
pub struct EventsQuery {
    /// Resume after this part id (`"{sequence}.{k}"`), like `Last-Event-ID`.
    pub after: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let generation = messages::generation(&state.db, &path)
        .await?
        .ok_or(ApiError::NotFound("generation"))?;
    threads::get(&state.db, caller.id(), &generation.thread_id)
        .await?
        .ok_or(ApiError::NotFound("generation"))?;
    let after = match query.after.as_deref() {
        Some(a) => Some(PartId::parse(a).ok_or_else(|| ApiError::BadRequest {
            code: crate::error::ErrorCode::InvalidCursor,
            detail: "after is not a part id this reply issued (like 3.1)".into(),
        })?),
        None => last_event_id(&req)?,
    };
    let after = issued_part(&state, &generation.id, after).await?;
    Ok(crate::routes::chat::reply_stream(
        &state,
        &caller,
        generation.id,
        after,
    ))
}
