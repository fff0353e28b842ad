//! The web app's session: the session token in an `HttpOnly` cookie its scripts cannot read,
//! with a double-submit CSRF token beside it.
//!
//! The auth endpoints set the cookies instead of returning the token when asked with
//! `X-Threadline-Session: cookie`. A request without an `Authorization` header is then
//! authenticated by `threadline_session`; when it may change something (any method but GET,
//! HEAD, OPTIONS) it must also carry `X-CSRF-Token` equal to the readable `threadline_csrf`
//! cookie, which another site can neither read nor set. Both cookies are `SameSite=Strict`,
//! `Path=/`, and `Secure` when the request came over HTTPS. Bearer tokens work as before and
//! win over the cookie.

use actix_web::http::Method;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponseBuilder};
use sha2::{Digest, Sha256};

/// The session token (HttpOnly).
pub const SESSION_COOKIE: &str = "threadline_session";
/// The CSRF token (readable by the page, sent back in [`CSRF_HEADER`]).
pub const CSRF_COOKIE: &str = "threadline_csrf";
/// The header an unsafe cookie-authenticated request repeats the CSRF token in.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// The header that asks the auth endpoints for cookies (`cookie`) instead of a token.
pub const MODE_HEADER: &str = "x-threadline-session";

/// How long the browser keeps the cookies: the longest it allows (400 days); the session's
/// own idle expiry still applies on the server.
const MAX_AGE_SECS: u64 = 400 * 24 * 3600;

/// Whether the request asks for a cookie session.
pub fn wants_cookie(req: &HttpRequest) -> bool {
    req.headers()
        .get(MODE_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("cookie"))
}

/// The value of a request cookie.
pub fn cookie(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim_matches('"').to_owned())
        .filter(|v| !v.is_empty())
}

/// Whether a cookie-authenticated request passes the CSRF check: safe methods always do;
/// others must repeat the CSRF cookie in the header.
pub fn csrf_ok(req: &HttpRequest) -> bool {
    if matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS) {
        return true;
    }
    let sent = req.headers().get(CSRF_HEADER).and_then(|v| v.to_str().ok());
    match (cookie(req, CSRF_COOKIE), sent) {
        (Some(expected), Some(sent)) => same(&expected, sent.trim()),
        _ => false,
    }
}

/// Compares two secrets in time independent of where they differ.
fn same(a: &str, b: &str) -> bool {
    let (a, b) = (Sha256::digest(a.as_bytes()), Sha256::digest(b.as_bytes()));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

/// Sets the session and a fresh CSRF cookie on a response.
pub fn set(res: &mut HttpResponseBuilder, req: &HttpRequest, token: &str) {
    let secure = secure(req);
    let csrf = super::new_token();
    res.append_header((
        header::SET_COOKIE,
        format!("{SESSION_COOKIE}={token}; Path=/; Max-Age={MAX_AGE_SECS}; HttpOnly; SameSite=Strict{secure}"),
    ))
    .append_header((
        header::SET_COOKIE,
        format!("{CSRF_COOKIE}={csrf}; Path=/; Max-Age={MAX_AGE_SECS}; SameSite=Strict{secure}"),
    ))
    // The answer names a secret (in its cookie): no cache may keep it.
    .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")));
}

/// Clears both cookies (sign-out).
pub fn clear(res: &mut HttpResponseBuilder, req: &HttpRequest) {
    let secure = secure(req);
    for name in [SESSION_COOKIE, CSRF_COOKIE] {
        res.append_header((
            header::SET_COOKIE,
            format!("{name}=; Path=/; Max-Age=0; SameSite=Strict{secure}"),
        ));
    }
}

/// `; Secure` when the request came over HTTPS (directly or, per `X-Forwarded-Proto`, through
/// a proxy): browsers then send the cookies over HTTPS only. Plain-HTTP development on
/// loopback gets cookies without it (browsers would drop them otherwise).
fn secure(req: &HttpRequest) -> &'static str {
    if req.connection_info().scheme() == "https" {
        "; Secure"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    #[test]
    fn cookies_are_found_among_others() {
        let req = TestRequest::default()
            .insert_header((header::COOKIE, "a=1; threadline_session=tl_x; b=2"))
            .to_http_request();
        assert_eq!(cookie(&req, SESSION_COOKIE).as_deref(), Some("tl_x"));
        assert_eq!(cookie(&req, CSRF_COOKIE), None);
    }

    #[test]
    fn an_unsafe_request_needs_the_csrf_header_to_match_the_cookie() {
        let with = |header_value: Option<&str>| {
            let mut req =
                TestRequest::post().insert_header((header::COOKIE, "threadline_csrf=abc"));
            if let Some(v) = header_value {
                req = req.insert_header((CSRF_HEADER, v));
            }
            csrf_ok(&req.to_http_request())
        };
        assert!(with(Some("abc")));
        assert!(!with(Some("abd")));
        assert!(!with(None));
        assert!(csrf_ok(&TestRequest::get().to_http_request()));
        let no_cookie = TestRequest::post()
            .insert_header((CSRF_HEADER, ""))
            .to_http_request();
        assert!(!csrf_ok(&no_cookie));
    }
}
