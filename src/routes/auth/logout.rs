//! `POST /v1/auth/logout`: revokes the session of the token used (and clears the web app's
//! session cookies).

use actix_web::{HttpRequest, HttpResponse, web};
use threadline_domain::values::SessionId;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::services::accounts;
use crate::state::AppState;

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    if caller.via_api_key() {
        return Err(ApiError::BadRequest {
            code: crate::error::ErrorCode::NotASession,
            detail: "an API key is not a session: revoke it with DELETE /v1/me/api-keys/{id}"
                .into(),
        });
    }
    let session =
        SessionId::parse(&caller.session_id).map_err(|e| ApiError::Internal(e.to_string()))?;
    accounts::revoke_session(&state, &caller, session, &request_id(&req)).await?;
    let mut res = HttpResponse::NoContent();
    if crate::auth::cookie::cookie(&req, crate::auth::cookie::SESSION_COOKIE).is_some() {
        crate::auth::cookie::clear(&mut res, &req);
    }
    Ok(res.finish())
}
