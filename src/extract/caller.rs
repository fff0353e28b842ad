//! Who is calling: the bearer token of a request resolved into a [`Caller`] — a session, a
//! personal API key or an external JWT — or, without one, the web app's session cookie
//! ([`crate::auth::cookie`], CSRF-checked). [`crate::middleware::authenticate`] resolves it
//! before any extractor runs; the [`Caller`] and [`MaybeCaller`] extractors take the result.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use futures::future::LocalBoxFuture;
use threadline_projections::accounts;

use crate::auth::{
    API_KEY_PREFIX, API_KEY_SESSION, Caller, JWT_SESSION, external_account_id, hash_token,
};
use crate::error::ApiError;
use crate::state::AppState;

/// The bearer token of a request, if it carries one.
pub fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Where a request's credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `Authorization: Bearer …`: a session token, an API key or an external JWT.
    Bearer,
    /// The web app's `threadline_session` cookie: a session token only.
    Cookie,
}

/// The credential of a request: its bearer token, else its session cookie.
pub fn credential(req: &HttpRequest) -> Option<(String, Source)> {
    if let Some(token) = bearer(req) {
        return Some((token, Source::Bearer));
    }
    crate::auth::cookie::cookie(req, crate::auth::cookie::SESSION_COOKIE)
        .map(|token| (token, Source::Cookie))
}

/// The caller a request's credential names, if it carries one: a bearer token as
/// [`resolve`] reads it; the session cookie only as a session token, and only with the CSRF
/// header on requests that may change something (403 `csrf_failed`).
pub async fn authenticate(req: &HttpRequest, state: web::Data<AppState>) -> Option<Authenticated> {
    let (token, source) = credential(req)?;
    let request_id = crate::extract::request_id(req);
    let resolved = match source {
        Source::Bearer => resolve(state, token, request_id).await,
        Source::Cookie if !crate::auth::cookie::csrf_ok(req) => Err(ApiError::Forbidden {
            code: crate::error::ErrorCode::CsrfFailed,
            detail: "a request signed in by the session cookie must repeat the threadline_csrf \
                     cookie in the X-CSRF-Token header"
                .into(),
        }),
        Source::Cookie if !token.starts_with("tl_") => Err(ApiError::unauthenticated()),
        Source::Cookie => resolve_session(state, token, request_id).await,
    };
    Some(Authenticated(resolved, source))
}

/// The caller a bearer token names (401 when it names none).
pub async fn resolve(
    state: web::Data<AppState>,
    token: String,
    request_id: String,
) -> Result<Caller, ApiError> {
    if token.starts_with(API_KEY_PREFIX) {
        let found = accounts::api_key_by_hash(&state.db, &hash_token(&token)).await?;
        let (key, account) = found.ok_or_else(ApiError::unauthenticated)?;
        return Ok(Caller {
            account,
            session_id: format!("{API_KEY_SESSION}{}", key.id),
            admin_claim: false,
        });
    }
    if let Some(verifier) = &state.jwt
        && crate::identity::looks_like_jwt(&token)
    {
        return external_caller(&state, verifier, &token, &request_id).await;
    }
    resolve_session(state, token, request_id).await
}

/// The caller a session token names (401 when it names none or its session idled out).
async fn resolve_session(
    state: web::Data<AppState>,
    token: String,
    request_id: String,
) -> Result<Caller, ApiError> {
    let found = accounts::session_by_token_hash(&state.db, &hash_token(&token)).await?;
    let (session, account) = found.ok_or_else(ApiError::unauthenticated)?;
    let now = chrono::Utc::now().timestamp_micros();
    let last_used = session.last_seen_at.unwrap_or(session.created_at);
    if idle_expired(&session, state.settings.session_idle, now) {
        return Err(ApiError::Unauthorized {
            code: crate::error::ErrorCode::Unauthenticated,
            detail: "the session expired after being idle; sign in again".into(),
        });
    }
    if now - last_used > SEEN_EVERY.as_micros() as i64 {
        touch(
            state.clone(),
            account.id.clone(),
            session.id.clone(),
            request_id,
        );
    }
    Ok(Caller {
        account,
        session_id: session.id,
        admin_claim: false,
    })
}

/// How often a session's last use is recorded (an event each time).
const SEEN_EVERY: std::time::Duration = std::time::Duration::from_secs(5 * 60);

/// Whether a session has gone unused for longer than `idle` (zero: sessions never idle out).
pub fn idle_expired(session: &accounts::SessionRow, idle: std::time::Duration, now: i64) -> bool {
    let idle = idle.as_micros() as i64;
    let last_used = session.last_seen_at.unwrap_or(session.created_at);
    idle > 0 && now - last_used > idle
}

/// Records, in the background, that a session was used (the request does not wait).
fn touch(state: web::Data<AppState>, account_id: String, session_id: String, request_id: String) {
    use threadline_domain::account::{Account, AccountCommand};
    let Ok(session_id) = threadline_domain::values::SessionId::parse(&session_id) else {
        return;
    };
    actix_web::rt::spawn(async move {
        let meta =
            crate::store::bus::CommandMeta::for_request(&request_id, Some(account_id.clone()));
        let command = AccountCommand::TouchSession {
            session_id,
            at: chrono::Utc::now(),
        };
        if let Err(e) = state.send::<Account>(&account_id, command, &meta).await {
            tracing::debug!(error = %e, "cannot record a session's use");
        }
    });
}

async fn external_caller(
    state: &AppState,
    verifier: &crate::identity::JwtVerifier,
    token: &str,
    request_id: &str,
) -> Result<Caller, ApiError> {
    use crate::identity::JwtError;
    let identity = verifier.verify(token).await.map_err(|e| match e {
        JwtError::KeysUnavailable(cause) => ApiError::Unavailable(cause),
        other => ApiError::Unauthorized {
            code: other.code(),
            detail: other.to_string(),
        },
    })?;
    let id = external_account_id(&identity).to_string();
    let account = match accounts::account(&state.db, &id).await? {
        Some(account) => account,
        None => {
            let meta = crate::store::bus::CommandMeta::for_request(request_id, Some(id.clone()));
            state
                .run::<threadline_domain::account::Account>(
                    &id,
                    threadline_domain::account::AccountCommand::CreateExternal {
                        issuer: identity.issuer.clone(),
                        subject: identity.subject.clone(),
                        email: identity.email.clone(),
                        name: identity.name.clone(),
                        anonymous: identity.anonymous,
                        at: chrono::Utc::now(),
                    },
                    &meta,
                )
                .await?;
            accounts::account(&state.db, &id)
                .await?
                .ok_or_else(|| ApiError::Unavailable("the new account is not visible yet".into()))?
        }
    };
    Ok(Caller {
        account,
        session_id: format!("{JWT_SESSION}{}", identity.subject),
        admin_claim: identity.admin,
    })
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| ApiError::Internal("application state missing".into()))
}

/// The outcome of resolving a request's credential and where it came from, left in the
/// request's extensions by [`crate::middleware::authenticate`] for the extractors below.
pub struct Authenticated(pub Result<Caller, ApiError>, pub Source);

/// The request's caller: what the middleware resolved, or (without the middleware) resolved
/// now; `None` when the request carries no credential.
fn caller_of(
    req: &HttpRequest,
) -> LocalBoxFuture<'static, Result<Option<Authenticated>, ApiError>> {
    use actix_web::HttpMessage;
    if let Some(found) = req.extensions_mut().remove::<Authenticated>() {
        return Box::pin(std::future::ready(Ok(Some(found))));
    }
    let req = req.clone();
    Box::pin(async move { Ok(authenticate(&req, app_state(&req)?).await) })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = caller_of(req);
        Box::pin(async move {
            match caller.await? {
                Some(Authenticated(resolved, _)) => resolved,
                None => Err(ApiError::unauthenticated()),
            }
        })
    }
}

/// A caller who may or may not be signed in. A bearer token that is present must be valid; a
/// session cookie that names no live session counts as none (the browser keeps a cookie of a
/// session revoked elsewhere, and signing in again must still work).
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = caller_of(req);
        Box::pin(async move {
            match caller.await? {
                None => Ok(MaybeCaller(None)),
                Some(Authenticated(Err(ApiError::Unauthorized { .. }), Source::Cookie)) => {
                    Ok(MaybeCaller(None))
                }
                Some(Authenticated(resolved, _)) => resolved.map(|c| MaybeCaller(Some(c))),
            }
        })
    }
}
