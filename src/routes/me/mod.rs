//! `/v1/me*`: the caller's own account.

pub mod api_keys;
pub mod erase;
pub mod export;
pub mod get;
pub mod import;
pub mod preferences;
pub mod sessions;
pub mod update;
pub mod usage;
