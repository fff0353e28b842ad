//! `GET /v1/admin/threads/{id}?at=`: any account's thread exactly as it was at a moment (an
//! RFC 3339 time or a log position; default now) — messages, branches, titles and state,
//! folded from the log.

use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::require_admin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::time_travel::{self, Moment, TimeTravelError};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// An RFC 3339 time, or a log position (`POSITION` or `TX.POSITION`).
    pub at: Option<String>,
}

pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let moment = match params.at.as_deref() {
        Some(at) => Moment::parse(&state.db, at).await.map_err(refused)?,
        None => Moment::Now,
    };
    let thread = time_travel::thread_at(&state.db, state.chat.keys(), &path, moment)
        .await
        .map_err(refused)?
        .ok_or(ApiError::NotFound("thread"))?;
    Ok(HttpResponse::Ok().json(thread))
}

fn refused(e: TimeTravelError) -> ApiError {
    match e {
        TimeTravelError::BadMoment | TimeTravelError::NoSuchPosition(_) => {
            ApiError::invalid_field("at", e.to_string())
        }
        TimeTravelError::Database(e) => e.into(),
        TimeTravelError::Projection(e) => ApiError::Internal(e.to_string()),
        TimeTravelError::Keys(e) => ApiError::Internal(e.to_string()),
    }
}
