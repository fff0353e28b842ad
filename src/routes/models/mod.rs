//! `GET /v1/models`: the catalog as this caller sees it, in a shape the `openai` SDKs also read
//! (`object`, `created`, `owned_by` beside Threadline's own fields).

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
    /// Always `model`.
    pub object: &'static str,
    /// When the model entered the catalog, in seconds since the Unix epoch.
    pub created: i64,
    /// The provider, for OpenAI's clients.
    pub owned_by: String,
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
    /// Always `list`.
    pub object: &'static str,
    pub data: Vec<ModelJson>,
    pub next_cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let tier = tier_of(&caller);
    let models = &state.chat.registry;
    let data = catalog::listed(&state.db)
        .await?
        .into_iter()
        .filter(|entry| entry.spec.enabled && models.has_provider(&entry.spec.provider))
        .map(
            |catalog::Listed {
                 id,
                 spec,
                 created_at,
             }| ModelJson {
                default: id == models.default_id(),
                available: spec.access.allows(tier),
                access: spec.access.as_str(),
                object: "model",
                created: created_at.div_euclid(1_000_000),
                owned_by: spec.provider.clone(),
                provider: spec.provider,
                capabilities: spec.capabilities,
                credits: spec.credits,
                prices: spec.prices,
                id,
            },
        )
        .collect();
    Ok(HttpResponse::Ok().json(ModelList {
        object: "list",
        data,
        next_cursor: None,
    }))
}
