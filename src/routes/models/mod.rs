//! `GET /v1/models`: the catalog as this caller sees it.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use threadline_domain::catalog::{Capability, Prices};
use threadline_projections::catalog;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::credits::tier_of;
use crate::state::AppState;

/// A model as offered to a caller.
#[derive(Debug, Serialize)]
pub struct ModelJson {
    pub id: String,
    pub provider: String,
    pub capabilities: Vec<Capability>,
    /// `public`, `account_required` or `premium_required`.
    pub access: &'static str,
    pub credits: u32,
    /// Micro-dollars per million tokens.
    pub prices: Prices,
    /// Whether this caller may use the model.
    pub available: bool,
    pub default: bool,
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub data: Vec<ModelJson>,
    pub next_cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tier = tier_of(&caller);
    let models = &state.chat.registry;
    let data = catalog::all(&state.db)
        .await?
        .into_iter()
        .filter(|(_, spec)| spec.enabled && models.has_provider(&spec.provider))
        .map(|(id, spec)| ModelJson {
            default: id == models.default_id(),
            available: spec.access.allows(tier),
            access: spec.access.as_str(),
            provider: spec.provider,
            capabilities: spec.capabilities,
            credits: spec.credits,
            prices: spec.prices,
            id,
        })
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        data,
        next_cursor: None,
    }))
}
