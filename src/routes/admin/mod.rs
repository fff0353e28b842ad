//! `/v1/admin/*`: operator endpoints, 403 for everyone but admins (`THREADLINE_ADMIN_EMAILS`).

pub mod accounts;
pub mod audit;
pub mod mcp_servers;
pub mod models;
pub mod threads;
pub mod usage;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

/// Refuses callers without the admin role.
pub fn require_admin(state: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if caller.admin_claim || state.settings.is_admin(caller.account.email.as_deref()) {
        Ok(())
    } else {
        Err(ApiError::Forbidden {
            code: crate::error::ErrorCode::Forbidden,
            detail: "this endpoint is for admins".into(),
        })
    }
}
