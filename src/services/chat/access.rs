//! The model a send names, with the catalog's access rule enforced on the server.

use threadline_domain::catalog::{Access, Tier};
use threadline_projections::catalog;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::services::credits::tier_of;
use crate::state::AppState;

/// The model a request names, with the catalog's access rule enforced on the server.
pub async fn resolve_model(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<crate::providers::registry::Model, ApiError> {
    let unknown = || ApiError::invalid_field("model", format!("unknown model {id:?}"));
    let Some(spec) = catalog::get(&state.db, id).await? else {
        return match state.settings.allow_direct_models {
            true => state.chat.registry.direct(id).ok_or_else(unknown),
            false => Err(unknown()),
        };
    };
    if !spec.enabled {
        return Err(ApiError::invalid_field(
            "model",
            format!("model {id:?} is disabled"),
        ));
    }
    let tier = tier_of(caller);
    if !spec.access.allows(tier) {
        // Signing in is not a purchase: a 403. A plan gate, which a subscription opens, is a 402.
        return Err(match (spec.access, tier) {
            (Access::PremiumRequired, Tier::Free) => ApiError::PremiumRequired {
                detail: format!("this model needs a subscription ({id})"),
                tier: tier.as_str(),
            },
            (Access::PremiumRequired, _) => ApiError::Forbidden {
                code: crate::error::ErrorCode::PremiumRequired,
                detail: format!("this model needs a signed-in account with a subscription ({id})"),
            },
            _ => ApiError::Forbidden {
                code: crate::error::ErrorCode::AccountRequired,
                detail: format!("this model needs a signed-in account ({id})"),
            },
        });
    }
    state.chat.registry.from_catalog(id, &spec).ok_or_else(|| {
        ApiError::invalid_field(
            "model",
            format!("model {id:?} is not available: its provider is not configured"),
        )
    })
}
