//! `POST /v1/auth/anonymous`: a new anonymous account and its session token.

use actix_web::{HttpRequest, HttpResponse, web};

use crate::error::ApiError;
use crate::extract::request_id;
use crate::services::accounts;
use crate::state::AppState;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    if let Some(ip) = req.peer_addr().map(|a| a.ip()) {
        state
            .anon_limiter
            .check(ip)
            .map_err(|retry_after| ApiError::TooManyRequests {
                detail: "too many anonymous accounts from this address; retry later".into(),
                retry_after,
            })?;
    }
    let issued =
        accounts::create_anonymous(&state, super::client_of(&req), &request_id(&req)).await?;
    Ok(HttpResponse::Created().json(issued))
}
