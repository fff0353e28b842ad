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
    /// `anonymous`, `registered` or `external` (a JWT identity).
    pub kind: String,
    pub email: Option<String>,
    pub name: Option<String>,
    /// The profile picture's URL.
    pub image_url: Option<String>,
    pub is_admin: bool,
    /// `anonymous`, `free` or `pro`.
    pub tier: threadline_domain::catalog::Tier,
    /// The subscription's status at the billing provider, once one was reported.
    pub subscription_status: Option<String>,
    /// The pro tier holds until then (the end of the paid period).
    pub pro_until: Option<String>,
    pub created_at: String,
}

pub async fn handle(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(me(&state, &caller)))
}

/// The caller's profile as the API shows it.
pub fn me(state: &AppState, caller: &Caller) -> Me {
    let tier = crate::services::credits::tier_of(caller);
    let is_admin = caller.admin_claim || state.settings.is_admin(caller.account.email.as_deref());
    let a = caller.account.clone();
    Me {
        image_url: a.image_url,
        is_admin,
        tier,
        subscription_status: a.subscription_status,
        pro_until: a.pro_until.map(rfc3339),
        id: a.id,
        kind: a.kind,
        email: a.email,
        name: a.name,
        created_at: rfc3339(a.created_at),
    }
}
