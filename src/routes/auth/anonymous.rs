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
    let client = super::client_of(&req, &state);
    state.limits.anonymous_sign_up(client.ip)?;
    let issued = accounts::create_anonymous(&state, client, &request_id(&req)).await?;
    Ok(super::session_response(
        &req,
        HttpResponse::Created(),
        issued,
    ))
}
