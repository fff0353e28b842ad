//! `DELETE /v1/me`: erases the caller's account (crypto-shredding; see
//! `services::erasure`). A registered account confirms with its password; an account without
//! one (anonymous, external) with a session signed in within the last ten minutes.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use validator::Validate;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorCode};
use crate::extract::{ValidJson, request_id};
use crate::services::erasure::{Eraser, ErasureError};
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// How recent a session must be to erase an account without a password.
const FRESH_SESSION: chrono::Duration = chrono::Duration::minutes(10);

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct EraseRequest {
    /// The account's password (required when it has one).
    #[validate(length(max = 1024))]
    pub password: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<EraseRequest>,
) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    confirm(&state, &caller, body.password).await?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let eraser = Eraser {
        db: &state.db,
        bus: &state.bus,
        projector: &state.projector,
        files: &state.files,
    };
    eraser
        .erase(caller.id(), &meta)
        .await
        .map_err(|e| match e {
            ErasureError::NotFound | ErasureError::AlreadyErased => ApiError::NotFound("account"),
            ErasureError::Database(e) => e.into(),
            e => ApiError::Internal(e.to_string()),
        })?;
    state.chat.finished.clear();
    let mut res = HttpResponse::NoContent();
    if crate::auth::cookie::cookie(&req, crate::auth::cookie::SESSION_COOKIE).is_some() {
        crate::auth::cookie::clear(&mut res, &req);
    }
    Ok(res.finish())
}

/// The caller proves it is the account's person: its password, or (without one) a fresh
/// session.
async fn confirm(
    state: &AppState,
    caller: &Caller,
    password: Option<String>,
) -> Result<(), ApiError> {
    let refused = |detail: &str| ApiError::Forbidden {
        code: ErrorCode::ReauthenticationRequired,
        detail: detail.to_owned(),
    };
    if let Some(hash) = caller.account.password_hash.clone() {
        let password = password.ok_or_else(|| refused("give the account's password"))?;
        if let Some(email) = &caller.account.email {
            state.limits.login_allowed(email, None)?;
        }
        if !state.passwords.verify(password, Some(hash)).await? {
            if let Some(email) = &caller.account.email {
                state.limits.login_failed(email, None);
            }
            return Err(refused("the password is wrong"));
        }
        return Ok(());
    }
    let session =
        threadline_projections::accounts::session(&state.db, caller.id(), &caller.session_id)
            .await?
            .ok_or_else(|| refused("sign in again first"))?;
    let fresh = chrono::Utc::now().timestamp_micros() - session.created_at
        <= FRESH_SESSION.num_microseconds().unwrap_or(i64::MAX);
    if fresh {
        Ok(())
    } else {
        Err(refused("sign in again (within ten minutes) first"))
    }
}
