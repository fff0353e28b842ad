//! `POST /v1/auth/register`: email + password sign-up. Called with an anonymous bearer token,
//! the anonymous account is linked into the new one.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use threadline_domain::values::{DisplayName, Email};
use validator::Validate;

use crate::error::ApiError;
use crate::extract::MaybeCaller;
use crate::extract::{ValidJson, request_id};
use crate::services::accounts;
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate)]
pub struct RegisterBody {
    #[validate(length(min = 3, max = 254))]
    pub email: String,
    #[validate(length(min = 8, max = 256))]
    pub password: String,
    #[validate(length(min = 1, max = 100))]
    pub name: Option<String>,
}

pub async fn handle(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: MaybeCaller,
    ValidJson(body): ValidJson<RegisterBody>,
) -> Result<HttpResponse, ApiError> {
    let email = Email::parse(&body.email).map_err(|e| ApiError::invalid_field("email", e.0))?;
    let name = body
        .name
        .as_deref()
        .map(DisplayName::parse)
        .transpose()
        .map_err(|e| ApiError::invalid_field("name", e.0))?;
    let issued = accounts::register(
        &state,
        email,
        name,
        body.password,
        caller.0,
        super::client_of(&req, &state),
        &request_id(&req),
    )
    .await?;
    Ok(super::session_response(
        &req,
        HttpResponse::Created(),
        issued,
    ))
}
