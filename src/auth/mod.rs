//! Authentication: session tokens and API keys, the `Caller` extractor, password hashing
//! ([`passwords`]) and abuse limits ([`limits`]).
//!
//! A session token is 32 random bytes (base64url, prefixed `tl_`); only its SHA-256 is stored
//! (in the `SessionIssued` event and the sessions projection).

pub mod limits;
pub mod passwords;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, web};
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

    /// Refuses callers that hold a personal API key: managing sessions and keys needs a
    /// session, so a leaked key cannot mint more keys or evict its owner.
    pub fn require_session(&self) -> Result<(), ApiError> {
        if self.via_api_key() {
            return Err(ApiError::Forbidden {
                code: "session_required",
                detail: "sessions and API keys are managed with a session token, not an API key"
                    .into(),
            });
        }
        Ok(())
    }

    /// Whether the caller is an anonymous account.
    pub fn is_anonymous(&self) -> bool {
        self.account.kind == "anonymous"
    }
}

/// The bearer token of a request, if it carries one.
pub fn bearer(req: &HttpRequest) -> Option<String> {
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

/// The outcome of resolving a request's bearer token, left in the request's extensions by
/// [`crate::middleware::authenticate`] for the extractors below.
pub struct Authenticated(pub Result<Caller, ApiError>);

/// The request's caller: what the middleware resolved, or (without the middleware) resolved
/// now; `None` when the request carries no bearer token.
fn caller_of(req: &HttpRequest) -> LocalBoxFuture<'static, Result<Option<Caller>, ApiError>> {
    use actix_web::HttpMessage;
    if let Some(Authenticated(resolved)) = req.extensions_mut().remove::<Authenticated>() {
        return Box::pin(std::future::ready(resolved.map(Some)));
    }
    let token = bearer(req);
    let state = app_state(req);
    let request_id = crate::extract::request_id(req);
    Box::pin(async move {
        match token {
            None => Ok(None),
            Some(token) => resolve(state?, token, request_id).await.map(Some),
        }
    })
}

impl FromRequest for Caller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = caller_of(req);
        Box::pin(async move { caller.await?.ok_or_else(ApiError::unauthenticated) })
    }
}

/// A caller who may or may not be signed in. A token that is present must be valid.
#[derive(Debug, Clone)]
pub struct MaybeCaller(pub Option<Caller>);

impl FromRequest for MaybeCaller {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let caller = caller_of(req);
        Box::pin(async move { caller.await.map(MaybeCaller) })
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
}
