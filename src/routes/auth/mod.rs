//! `/v1/auth/*`: anonymous accounts, registration, login, logout.

pub mod anonymous;
pub mod login;
pub mod logout;
pub mod register;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, HttpResponseBuilder};
use serde::Serialize;

use crate::auth::cookie;
use crate::services::accounts::{Client, IssuedSession};
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

/// The answer of a sign-in: the new session as JSON, or, asked with
/// `X-Threadline-Session: cookie`, the token in the session cookie and the JSON without it.
pub fn session_response(
    req: &HttpRequest,
    mut res: HttpResponseBuilder,
    issued: IssuedSession,
) -> HttpResponse {
    if !cookie::wants_cookie(req) {
        return res.json(issued);
    }
    cookie::set(&mut res, req, &issued.token);
    res.json(CookieSession {
        session_id: issued.session_id,
        account_id: issued.account_id,
        linked_account_id: issued.linked_account_id,
    })
}

/// A session issued into cookies: [`IssuedSession`] without its token.
#[derive(Serialize)]
struct CookieSession {
    session_id: String,
    account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    linked_account_id: Option<String>,
}
