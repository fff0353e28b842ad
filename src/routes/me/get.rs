//! `GET /v1/me`: the caller's profile.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use threadline_projections::rfc3339;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct Me {
    pub id: String,
    /// `anonymous` or `registered`.
    pub kind: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub is_admin: bool,
    pub created_at: String,
}

pub async fn handle(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let a = caller.account;
    Ok(HttpResponse::Ok().json(Me {
        is_admin: state.settings.is_admin(a.email.as_deref()),
        id: a.id,
        kind: a.kind,
        email: a.email,
        name: a.name,
        created_at: rfc3339(a.created_at),
    }))
}
