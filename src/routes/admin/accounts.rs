//! `GET /v1/admin/accounts/{id}/ledger` (every credit movement with running balances) and
//! `POST /v1/admin/accounts/{id}/credits` (grant credits that never expire).

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use threadline_projections::accounts;
use validator::Validate;

use super::require_admin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ValidJson, request_id};
use crate::reports;
use crate::services::credits;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

async fn existing(state: &AppState, id: &str) -> Result<(), ApiError> {
    match accounts::account(&state.db, id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound("account")),
    }
}

pub async fn ledger(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    existing(&state, &path).await?;
    Ok(HttpResponse::Ok().json(reports::statement(&state.db, &path).await?))
}

#[derive(Debug, Deserialize, Validate)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    #[validate(range(min = 1, max = 1_000_000))]
    pub amount: u64,
    /// Why (shown on the ledger line).
    #[validate(length(min = 1, max = 200))]
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct Granted {
    pub account_id: String,
    pub amount: u64,
    pub purchased_credits: u64,
}

pub async fn grant(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: ValidJson<Grant>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let account = path.into_inner();
    existing(&state, &account).await?;
    let request_id = request_id(&req);
    let meta = CommandMeta::for_admin(&request_id, caller.id());
    let source = format!("grant:{request_id}:{}", body.0.reason.trim());
    credits::add_purchased(&state, &account, &source, body.0.amount, &meta).await?;
    let (_, purchased_credits) = credits::purchased_balance(&state.db, &account).await?;
    Ok(HttpResponse::Ok().json(Granted {
        account_id: account,
        amount: body.0.amount,
        purchased_credits,
    }))
}
