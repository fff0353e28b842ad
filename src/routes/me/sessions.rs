//! `GET /v1/me/sessions` and `DELETE /v1/me/sessions/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use threadline_domain::values::SessionId;
use threadline_projections::{accounts as view, rfc3339};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::services::accounts;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub id: String,
    pub created_at: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

#[derive(Debug, Serialize)]
pub struct SessionList {
    pub data: Vec<SessionJson>,
    pub next_cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let rows = view::sessions_of(&state.db, caller.id()).await?;
    let data = rows
        .into_iter()
        .map(|s| SessionJson {
            current: s.id == caller.session_id,
            id: s.id,
            created_at: rfc3339(s.created_at),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SessionList {
        data,
        next_cursor: None,
    }))
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let session_id = SessionId::parse(&path).map_err(|_| ApiError::NotFound("session"))?;
    let live = view::session(&state.db, caller.id(), &session_id.to_string())
        .await?
        .is_some_and(|s| s.revoked_at.is_none());
    if !live {
        return Err(ApiError::NotFound("session"));
    }
    accounts::revoke_session(&state, &caller, session_id, &request_id(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}
