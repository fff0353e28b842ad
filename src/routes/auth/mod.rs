//! `/v1/auth/*`: anonymous accounts, registration, login, logout.

pub mod anonymous;
pub mod login;
pub mod logout;
pub mod register;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::services::accounts::Client;
use crate::state::AppState;

/// The client's IP (see [`crate::extract::client_ip`]) and user agent.
pub fn client_of(req: &HttpRequest, state: &AppState) -> Client {
    Client {
        ip: crate::extract::client_ip(req, &state.settings.trusted_proxies),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}
