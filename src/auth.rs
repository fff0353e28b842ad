//! Authentication: session tokens, password hashing, the `Caller` extractor and the per-IP
//! limit on anonymous sign-ups.
//!
//! A session token is 32 random bytes (base64url, prefixed `tl_`); only its SHA-256 is stored
//! (in the `SessionIssued` event and the sessions projection). Passwords are hashed with
//! argon2id on a blocking thread.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use futures::future::LocalBoxFuture;
use rand::RngCore;
use sha2::{Digest, Sha256};
use threadline_projections::accounts::{self, AccountRow};

use crate::error::ApiError;
use crate::state::AppState;

/// A new random session token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!(
        "tl_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    )
}

/// The stored form of a token: hex SHA-256.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Hashes a password with argon2id (on a blocking thread: it takes tens of milliseconds).
pub async fn hash_password(password: String) -> Result<String, ApiError> {
    web::block(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?
    .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Checks a password against a stored hash. With no hash (unknown email) it still spends the
/// same time on a dummy hash, so response times do not reveal which emails exist.
pub async fn verify_password(password: String, stored: Option<String>) -> Result<bool, ApiError> {
    web::block(move || {
        let known = stored.is_some();
        let hash = stored.unwrap_or_else(|| dummy_hash().to_owned());
        let ok = PasswordHash::new(&hash)
            .map(|parsed| {
                Argon2::default()
                    .verify_password(password.as_bytes(), &parsed)
                    .is_ok()
            })
            .unwrap_or(false);
        known && ok
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(b"threadline-dummy-password", &salt)
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// How a caller authenticated by API key is marked in `Caller::session_id`.
pub const API_KEY_SESSION: &str = "api-key:";

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub account: AccountRow,
    pub session_id: String,
    /// An external identity's token carried the admin claim.
    pub admin_claim: bool,
}

impl Caller {
    /// The caller's account id.
    pub fn id(&self) -> &str {
        &self.account.id
    }

    /// Whether the caller authenticated with a personal API key (not a session).
    pub fn via_api_key(&self) -> bool {
        self.session_id.starts_with(API_KEY_SESSION)
    }

    /// Whether the caller is an anonymous account.
    pub fn is_anonymous(&self) -> bool {
        self.account.kind == "anonymous"
    }
}

/// The bearer token of a request, if it carries one.
fn bearer(req: &HttpRequest) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// Prefix of personal API keys (session tokens start with `tl_`).
pub const API_KEY_PREFIX: &str = "tlk_";

/// A new random personal API key and its visible prefix.
pub fn new_api_key() -> (String, String) {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    let key = format!(
        "{API_KEY_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    );
    let prefix = key.chars().take(API_KEY_PREFIX.len() + 8).collect();
    (key, prefix)
}

async fn resolve(
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
    let found = accounts::session_by_token_hash(&state.db, &hash_token(&token)).await?;
    let (session, account) = found.ok_or_else(ApiError::unauthenticated)?;
    Ok(Caller {
        account,
        session_id: session.id,
        admin_claim: false,
    })
}

/// How a caller authenticated by an external JWT is marked in `Caller::session_id`.
pub const JWT_SESSION: &str = "jwt:";

/// The account of an external identity: its id is a UUIDv5 of issuer and subject, so the
/// first request of a new subject creates it exactly once, however many arrive together.
pub fn external_account_id(identity: &crate::identity::ExternalIdentity) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_2b0e_8d4a_4f7e_9a53_0b7e_2d61_c4a9);
    uuid::Uuid::new_v5(&NAMESPACE, identity.account_key().as_bytes())
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
            let meta =
                crate::store::commands::CommandMeta::for_request(request_id, Some(id.clone()));
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

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = app_state(req);
        let request_id = crate::extract::request_id(req);
        Box::pin(async move {
            let token = token.ok_or_else(ApiError::unauthenticated)?;
            resolve(state?, token, request_id).await
        })
    }
}

/// A caller who may or may not be signed in. A token that is present must be valid.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer(req);
        let state = app_state(req);
        let request_id = crate::extract::request_id(req);
        Box::pin(async move {
            match token {
                None => Ok(MaybeCaller(None)),
                Some(token) => Ok(MaybeCaller(Some(resolve(state?, token, request_id).await?))),
            }
        })
    }
}

/// A fixed-window counter per client IP.
pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    counts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

impl RateLimiter {
    /// Allows `per_window` hits per `window` for each IP (0 = unlimited).
    pub fn new(per_window: u32, window: Duration) -> Self {
        Self {
            per_window,
            window,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a hit from `ip`; `Err(seconds)` tells how long until it would be allowed.
    pub fn check(&self, ip: IpAddr) -> Result<(), u64> {
        if self.per_window == 0 {
            return Ok(());
        }
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() > 100_000 {
            counts.retain(|_, (start, _)| now.duration_since(*start) < self.window);
        }
        let entry = counts.entry(ip).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            let left = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_and_hash_stably() {
        let (a, b) = (new_token(), new_token());
        assert_ne!(a, b);
        assert!(a.starts_with("tl_") && a.len() == 46, "{a}");
        assert_eq!(hash_token(&a), hash_token(&a));
        assert_ne!(hash_token(&a), a);
        assert_eq!(hash_token(&a).len(), 64);
    }

    #[test]
    fn the_rate_limiter_allows_the_quota_then_refuses_with_a_wait() {
        let limiter = RateLimiter::new(2, Duration::from_secs(60));
        let ip: IpAddr = [127, 0, 0, 1].into();
        assert!(limiter.check(ip).is_ok());
        assert!(limiter.check(ip).is_ok());
        let wait = limiter.check(ip).unwrap_err();
        assert!((1..=60).contains(&wait));
        assert!(
            limiter.check([10, 0, 0, 1].into()).is_ok(),
            "other IPs are counted apart"
        );
    }

    #[test]
    fn a_zero_limit_means_unlimited() {
        let limiter = RateLimiter::new(0, Duration::from_secs(60));
        for _ in 0..1000 {
            assert!(limiter.check([127, 0, 0, 1].into()).is_ok());
        }
    }

    #[tokio::test]
    async fn passwords_verify_only_against_their_own_hash() {
        let hash = hash_password("correct horse".into()).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(!verify_password("wrong".into(), Some(hash)).await.unwrap());
        assert!(!verify_password("correct horse".into(), None).await.unwrap());
    }
}
