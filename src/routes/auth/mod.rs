//! `/v1/auth/*`: anonymous accounts, registration, login, logout.

pub mod anonymous;
pub mod login;
pub mod logout;
pub mod register;

use actix_web::HttpRequest;
use actix_web::http::header;

use crate::services::accounts::Client;

/// The client's IP (the TCP peer; proxies' forwarding headers are not trusted) and user agent.
pub fn client_of(req: &HttpRequest) -> Client {
    Client {
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        user_agent: req
            .headers()
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
    }
}
