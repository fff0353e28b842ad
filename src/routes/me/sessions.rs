//! `GET /v1/me/sessions` and `DELETE /v1/me/sessions/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;
use threadline_domain::values::SessionId;
use threadline_projections::{accounts as view, rfc3339};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::caller::idle_expired;
use crate::extract::request_id;
use crate::services::accounts;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct SessionJson {
    pub id: String,
    pub created_at: String,
    pub user_agent: Option<String>,
    /// A short label for the device, from the user agent (`Firefox on Linux`, `curl`).
    pub device: Option<String>,
    pub ip: Option<String>,
    /// When the session was last used (recorded every few minutes at most).
    pub last_seen_at: String,
    /// Whether this is the session of the token making the request.
    pub current: bool,
}

/// A short, human label for a user agent: the browser or client, and the operating system.
pub fn device_label(user_agent: &str) -> Option<String> {
    let ua = user_agent;
    let has = |s: &str| ua.contains(s);
    let client = if has("Edg/") {
        "Edge"
    } else if has("OPR/") {
        "Opera"
    } else if has("Firefox/") {
        "Firefox"
    } else if has("Chrome/") || has("CriOS/") {
        "Chrome"
    } else if has("Safari/") {
        "Safari"
    } else {
        [
            "curl",
            "python-requests",
            "node",
            "okhttp",
            "Go-http-client",
        ]
        .into_iter()
        .find(|c| ua.to_lowercase().starts_with(&c.to_lowercase()))
        .unwrap_or_default()
    };
    let os = if has("iPhone") || has("iPad") {
        "iOS"
    } else if has("Android") {
        "Android"
    } else if has("Mac OS X") || has("Macintosh") {
        "macOS"
    } else if has("Windows") {
        "Windows"
    } else if has("Linux") {
        "Linux"
    } else {
        ""
    };
    match (client, os) {
        ("", "") => None,
        (c, "") => Some(c.to_owned()),
        ("", o) => Some(o.to_owned()),
        (c, o) => Some(format!("{c} on {o}")),
    }
}

#[derive(Debug, Serialize)]
pub struct SessionList {
    pub data: Vec<SessionJson>,
    pub next_cursor: Option<String>,
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let rows = view::sessions_of(&state.db, caller.id()).await?;
    // A session that idled out cannot sign in any more: it is not listed.
    let now = chrono::Utc::now().timestamp_micros();
    let data = rows
        .into_iter()
        .filter(|s| !idle_expired(s, state.settings.session_idle, now))
        .map(|s| SessionJson {
            current: s.id == caller.session_id,
            id: s.id,
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at.unwrap_or(s.created_at)),
            device: s.user_agent.as_deref().and_then(device_label),
            user_agent: s.user_agent,
            ip: s.ip,
        })
        .collect();
    Ok(HttpResponse::Ok().json(SessionList {
        data,
        next_cursor: None,
    }))
}

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    caller.require_session()?;
    let session_id = SessionId::parse(&path).map_err(|_| ApiError::NotFound("session"))?;
    let live = view::session(&state.db, caller.id(), &session_id.to_string())
        .await?
        .is_some_and(|s| s.revoked_at.is_none());
    if !live {
        return Err(ApiError::NotFound("session"));
    }
    accounts::revoke_session(&state, &caller, session_id, &request_id(&req)).await?;
    Ok(HttpResponse::NoContent().finish())
}

#[cfg(test)]
mod tests {
    use super::device_label;

    #[test]
    fn user_agents_become_short_device_labels() {
        let firefox = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
        assert_eq!(device_label(firefox).as_deref(), Some("Firefox on Linux"));
        let iphone = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1";
        assert_eq!(device_label(iphone).as_deref(), Some("Safari on iOS"));
        assert_eq!(device_label("curl/8.5.0").as_deref(), Some("curl"));
        assert_eq!(device_label("something else"), None);
    }
}
