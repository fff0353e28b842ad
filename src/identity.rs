//! External identity: JWTs issued by an identity provider (Better Auth's JWT plugin, Clerk,
//! Auth0), verified against the provider's JWKS URL or a shared HS256 secret.
//!
//! A verified token becomes an [`ExternalIdentity`]: issuer and subject (together the
//! [`ExternalIdentity::account_key`]), email and name when present, whether the user is
//! anonymous (Better Auth's anonymous plugin sets `isAnonymous: true`) and whether a configured
//! claim marks an admin.
//!
//! The algorithm a token may use comes from our side, never from the token alone: with the
//! secret only HS256; with the JWKS only what the chosen key allows (its `alg`, or its key type:
//! RSA, P-256/P-384 or Ed25519). `alg: none` never parses, and an HMAC token is never checked
//! against a JWKS key, so a public key cannot be used as an HMAC secret.
//!
//! # Layout
//! - [`JwtConfig`], [`ExternalIdentity`], [`JwtError`];
//! - [`looks_like_jwt`]: tells JWTs from `tl_…` session tokens and `tlk_…` API keys;
//! - [`JwtVerifier`]: picks the key, verifies the signature and the time claims, maps the claims;
//! - the JWKS cache: fetched lazily, kept 10 minutes, refetched on an unknown `kid` at most once
//!   per 30 seconds, one fetch at a time;
//! - tests against the mock identity provider ([`crate::mock_upstream::identity`]).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, Validation};
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::telemetry::error_chain;

/// The claim that marks an anonymous user unless configured otherwise (Better Auth's anonymous
/// plugin puts `isAnonymous` on the user, and its JWT plugin copies the user into the payload).
pub const DEFAULT_ANONYMOUS_CLAIM: &str = "isAnonymous";

/// Clock skew allowed on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;
/// How long a fetched JWKS is used before it is fetched again.
const JWKS_MAX_AGE: Duration = Duration::from_secs(600);
/// The least time between two fetches caused by unknown key ids, so that tokens with random
/// `kid`s cannot make us hammer the identity provider.
const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(30);
/// After a failed fetch, the next one waits this long (verifications meanwhile use what is
/// cached, or fail at once).
const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(5);
/// Timeout of one JWKS request.
const JWKS_TIMEOUT: Duration = Duration::from_secs(5);
/// Longer bearer tokens are not parsed at all.
const MAX_TOKEN_LEN: usize = 16 * 1024;

/// Where external tokens come from and how their claims are read.
#[derive(Debug, Clone)]
pub struct JwtConfig {
    /// The identity provider's JWKS URL (RS256, ES256/ES384, EdDSA keys), e.g.
    /// `https://app.example/api/auth/jwks` for Better Auth or
    /// `https://<tenant>/.well-known/jwks.json` for Auth0 and Clerk.
    pub jwks_url: Option<String>,
    /// A shared secret for HS256 tokens (its raw bytes are the key).
    pub hs256_secret: Option<secrecy::SecretString>,
    /// The required `iss`; unchecked when `None`.
    pub issuer: Option<String>,
    /// The required `aud` (one of the token's audiences); unchecked when `None`.
    pub audience: Option<String>,
    /// The claim that marks an anonymous user when it is `true` or `"true"`;
    /// [`DEFAULT_ANONYMOUS_CLAIM`] by default.
    pub anonymous_claim: String,
    /// The claim that marks an admin when it is `"admin"`, a comma-separated list or an array
    /// containing `"admin"`
    /// (e.g. `role`); no token is an admin when `None`.
    pub admin_claim: Option<String>,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            jwks_url: None,
            hs256_secret: None,
            issuer: None,
            audience: None,
            anonymous_claim: DEFAULT_ANONYMOUS_CLAIM.to_owned(),
            admin_claim: None,
        }
    }
}

/// Who a verified token says the caller is.
#[derive(Debug, Clone, PartialEq)]
pub struct ExternalIdentity {
    /// The `iss` claim, if the token had one.
    pub issuer: Option<String>,
    /// The `sub` claim (never empty): the user's id at the identity provider.
    pub subject: String,
    /// The `email` claim, if present.
    pub email: Option<String>,
    /// The `name` claim, if present.
    pub name: Option<String>,
    /// The configured anonymous claim was `true` or `"true"`.
    pub anonymous: bool,
    /// The configured admin claim was `"admin"` or contained `"admin"`.
    pub admin: bool,
    /// The `exp` claim, Unix seconds.
    pub expires_at: i64,
}

impl ExternalIdentity {
    /// `"{issuer}|{subject}"` (empty issuer when absent): stable per user and provider, to derive
    /// an account id from.
    pub fn account_key(&self) -> String {
        format!("{}|{}", self.issuer.as_deref().unwrap_or(""), self.subject)
    }
}

/// Why a token was refused. Messages and codes never contain token contents.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    /// 401: not a JWT, an unsupported or `none` algorithm, or a payload that is not a JSON
    /// object.
    #[error("malformed token: {0}")]
    Malformed(String),
    /// 401: `exp` is in the past (beyond the leeway).
    #[error("token expired")]
    Expired,
    /// 401: `nbf` is in the future (beyond the leeway).
    #[error("token not yet valid")]
    NotYetValid,
    /// 401: the signature does not verify, or the token's algorithm is not allowed for the key.
    #[error("token signature invalid")]
    BadSignature,
    /// 401: no key in the JWKS matches the token's `kid`.
    #[error("token signed by an unknown key")]
    UnknownKey,
    /// 401: a required claim is missing or wrong (`exp`, `sub`, `iss`, `aud`, `nbf`).
    #[error("token claim `{0}` missing or invalid")]
    InvalidClaim(&'static str),
    /// 503: the JWKS could not be fetched and nothing is cached, or it holds an unusable key.
    #[error("identity provider keys unavailable: {0}")]
    KeysUnavailable(String),
}

impl JwtError {
    /// The stable code clients can branch on.
    pub fn code(&self) -> crate::error::ErrorCode {
        match self {
            JwtError::Malformed(_) => crate::error::ErrorCode::TokenMalformed,
            JwtError::Expired => crate::error::ErrorCode::TokenExpired,
            JwtError::NotYetValid => crate::error::ErrorCode::TokenNotYetValid,
            JwtError::BadSignature => crate::error::ErrorCode::TokenSignatureInvalid,
            JwtError::UnknownKey => crate::error::ErrorCode::TokenKeyUnknown,
            JwtError::InvalidClaim(_) => crate::error::ErrorCode::TokenClaimInvalid,
            JwtError::KeysUnavailable(_) => crate::error::ErrorCode::Unavailable,
        }
    }
}

/// Whether `token` has the shape of a JWT: three non-empty base64url segments separated by dots,
/// the first a JSON object with an `alg` field. Checks no signature; it only tells JWTs from the
/// project's own `tl_…` session tokens and `tlk_…` API keys.
pub fn looks_like_jwt(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let base64url = |part: &str| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !(base64url(header) && base64url(payload) && base64url(signature)) {
        return false;
    }
    let Ok(header) = URL_SAFE_NO_PAD.decode(header) else {
        return false;
    };
    serde_json::from_slice::<Map<String, Value>>(&header).is_ok_and(|h| h.contains_key("alg"))
}

/// Verifies external JWTs. Cheap to clone; clones share the JWKS cache.
#[derive(Clone)]
pub struct JwtVerifier {
    inner: Arc<Inner>,
}

struct Inner {
    config: JwtConfig,
    http: reqwest::Client,
    /// The HS256 key, when a non-empty secret is configured.
    secret: Option<DecodingKey>,
    /// The JWKS URL, when one is configured.
    jwks_url: Option<String>,
    /// Held across a fetch, so concurrent verifications wait for one fetch instead of each
    /// making their own.
    jwks: Mutex<KeyCache>,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

impl JwtVerifier {
    /// A verifier for `config`, fetching the JWKS with `http`; `None` when neither a JWKS URL
    /// nor a (non-empty) secret is configured. Nothing is fetched until the first token.
    pub fn new(config: JwtConfig, http: reqwest::Client) -> Option<Self> {
        let secret = config
            .hs256_secret
            .as_ref()
            .map(secrecy::ExposeSecret::expose_secret)
            .filter(|secret| !secret.is_empty())
            .and_then(|secret| DecodingKey::from_secret(secret.as_bytes()).ok());
        let jwks_url = config.jwks_url.clone().filter(|url| !url.trim().is_empty());
        if secret.is_none() && jwks_url.is_none() {
            return None;
        }
        Some(Self {
            inner: Arc::new(Inner {
                config,
                http,
                secret,
                jwks_url,
                jwks: Mutex::new(KeyCache::default()),
            }),
        })
    }

    /// Verifies `token` (signature, `exp`, `nbf`, `sub`, and `iss`/`aud` when configured) and
    /// reads the identity from its claims. HS256 tokens are checked with the secret; others
    /// with the JWKS key named by their `kid`.
    pub async fn verify(&self, token: &str) -> Result<ExternalIdentity, JwtError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(JwtError::Malformed("token too long".into()));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| JwtError::Malformed("not a JWT with a supported algorithm".into()))?;
        let jwks_key;
        let key = if header.alg.family() == AlgorithmFamily::Hmac {
            match (&self.inner.secret, header.alg) {
                (Some(secret), Algorithm::HS256) => secret,
                _ => return Err(JwtError::BadSignature),
            }
        } else {
            let Some(url) = &self.inner.jwks_url else {
                return Err(JwtError::BadSignature);
            };
            jwks_key = self.jwks_key(url, header.kid.as_deref()).await?;
            if !jwks_key.algorithms.contains(&header.alg) {
                return Err(JwtError::BadSignature);
            }
            &jwks_key.key
        };
        let validation = self.validation(header.alg);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, key, &validation)
            .map_err(jwt_error)?;
        self.identity(&data.claims)
    }

    /// The checks for a token signed with `algorithm` (already allowed for its key).
    fn validation(&self, algorithm: Algorithm) -> Validation {
        let config = &self.inner.config;
        let mut validation = Validation::new(algorithm);
        validation.leeway = LEEWAY_SECS;
        validation.validate_nbf = true;
        // jsonwebtoken only compares `iss` and `aud` when the token has them: required here so
        // that a token without them does not pass.
        let mut required = vec!["exp", "sub"];
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&[issuer]);
            required.push("iss");
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&[audience]);
                required.push("aud");
            }
            // Otherwise jsonwebtoken refuses every token that has an `aud`.
            None => validation.validate_aud = false,
        }
        validation.set_required_spec_claims(&required);
        validation
    }

    /// Reads the identity from verified claims.
    fn identity(&self, claims: &Map<String, Value>) -> Result<ExternalIdentity, JwtError> {
        let config = &self.inner.config;
        let string = |name: &str| claims.get(name).and_then(Value::as_str).map(str::to_owned);
        let subject = string("sub")
            .filter(|sub| !sub.is_empty())
            .ok_or(JwtError::InvalidClaim("sub"))?;
        let expires_at = claims
            .get("exp")
            .and_then(numeric_date)
            .ok_or(JwtError::InvalidClaim("exp"))?;
        let admin = config
            .admin_claim
            .as_deref()
            .is_some_and(|name| marks_admin(claims.get(name)));
        Ok(ExternalIdentity {
            issuer: string("iss"),
            subject,
            email: string("email"),
            name: string("name"),
            anonymous: is_true(claims.get(&config.anonymous_claim)),
            admin,
            expires_at,
        })
    }

    /// The JWKS key for `kid`, from the cache or a fetch.
    async fn jwks_key(&self, url: &str, kid: Option<&str>) -> Result<Arc<JwksKey>, JwtError> {
        let mut cache = self.inner.jwks.lock().await;
        if !cache.is_fresh() && !cache.attempted_within(RETRY_AFTER_FAILURE) {
            self.refresh(url, &mut cache).await;
        }
        if cache.fetched_at.is_none() {
            let reason = cache
                .last_error
                .clone()
                .unwrap_or_else(|| "the JWKS has not been fetched".into());
            return Err(JwtError::KeysUnavailable(reason));
        }
        if let Some(key) = cache.find(kid) {
            return Ok(key);
        }
        // Keys may have been rotated since the last fetch.
        if !cache.attempted_within(UNKNOWN_KID_REFETCH_INTERVAL) {
            self.refresh(url, &mut cache).await;
            if let Some(key) = cache.find(kid) {
                return Ok(key);
            }
        }
        Err(JwtError::UnknownKey)
    }

    /// Fetches the JWKS into `cache`; on failure keeps the keys it had.
    async fn refresh(&self, url: &str, cache: &mut KeyCache) {
        let now = Instant::now();
        cache.attempted_at = Some(now);
        match fetch_jwks(&self.inner.http, url).await {
            Ok(keys) => {
                tracing::debug!(keys = keys.len(), "fetched the identity provider's JWKS");
                cache.keys = keys;
                cache.fetched_at = Some(now);
                cache.last_error = None;
            }
            Err(error) => {
                tracing::warn!(%error, cached = cache.keys.len(), "could not fetch the JWKS");
                cache.last_error = Some(error);
            }
        }
    }
}

/// The JWKS as last fetched.
#[derive(Default)]
struct KeyCache {
    /// The usable keys of the last successful fetch.
    keys: Vec<Arc<JwksKey>>,
    /// When the last successful fetch happened.
    fetched_at: Option<Instant>,
    /// When the last fetch was attempted, successful or not.
    attempted_at: Option<Instant>,
    /// Why the last attempt failed, if it did.
    last_error: Option<String>,
}

impl KeyCache {
    fn is_fresh(&self) -> bool {
        self.fetched_at
            .is_some_and(|at| at.elapsed() < JWKS_MAX_AGE)
    }

    fn attempted_within(&self, interval: Duration) -> bool {
        self.attempted_at.is_some_and(|at| at.elapsed() < interval)
    }

    /// The key named `kid`; without a `kid` (or for a key published without one) only when it
    /// is the one key in the set.
    fn find(&self, kid: Option<&str>) -> Option<Arc<JwksKey>> {
        let only = || match self.keys.as_slice() {
            [only] => Some(only),
            _ => None,
        };
        let key = match kid {
            Some(kid) => self
                .keys
                .iter()
                .find(|key| key.kid.as_deref() == Some(kid))
                .or_else(|| only().filter(|key| key.kid.is_none())),
            None => only(),
        };
        key.cloned()
    }
}

/// A usable JWKS key and the algorithms it may verify.
struct JwksKey {
    kid: Option<String>,
    algorithms: Vec<Algorithm>,
    key: DecodingKey,
}

#[derive(Deserialize)]
struct JwksDocument {
    keys: Vec<Value>,
}

async fn fetch_jwks(http: &reqwest::Client, url: &str) -> Result<Vec<Arc<JwksKey>>, String> {
    let response = http
        .get(url)
        .header(reqwest::header::ACCEPT, "application/json")
        .timeout(JWKS_TIMEOUT)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("JWKS request failed: {}", error_chain(&e)))?;
    let document: JwksDocument = response
        .json()
        .await
        .map_err(|e| format!("invalid JWKS document: {}", error_chain(&e)))?;
    Ok(document
        .keys
        .into_iter()
        .filter_map(usable_key)
        .map(Arc::new)
        .collect())
}

/// A JWKS entry as a verification key, or `None` for keys we never verify with: symmetric
/// (`oct`) keys, encryption keys, unknown key types, curves and algorithms, and keys whose `alg`
/// does not fit their type.
fn usable_key(entry: Value) -> Option<JwksKey> {
    let jwk: Jwk = serde_json::from_value(entry).ok()?;
    if jwk
        .common
        .public_key_use
        .as_ref()
        .is_some_and(|key_use| *key_use != PublicKeyUse::Signature)
    {
        return None;
    }
    let by_type = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => AlgorithmFamily::Rsa.algorithms(),
        AlgorithmParameters::EllipticCurve(params) => match params.curve {
            EllipticCurve::P256 => &[Algorithm::ES256][..],
            EllipticCurve::P384 => &[Algorithm::ES384][..],
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(params) => match params.curve {
            EllipticCurve::Ed25519 => &[Algorithm::EdDSA][..],
            _ => return None,
        },
        _ => return None,
    };
    let algorithms = match jwk.common.key_algorithm {
        None => by_type.to_vec(),
        Some(alg) => {
            let alg = Algorithm::try_from(alg).ok()?;
            if !by_type.contains(&alg) {
                return None;
            }
            vec![alg]
        }
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(JwksKey {
        kid: jwk.common.key_id,
        algorithms,
        key,
    })
}

/// Maps jsonwebtoken's error to ours, without its details (they may quote the token).
fn jwt_error(error: jsonwebtoken::errors::Error) -> JwtError {
    match error.kind() {
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYetValid,
        ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => JwtError::BadSignature,
        ErrorKind::InvalidIssuer => JwtError::InvalidClaim("iss"),
        ErrorKind::InvalidAudience => JwtError::InvalidClaim("aud"),
        ErrorKind::InvalidSubject => JwtError::InvalidClaim("sub"),
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            JwtError::InvalidClaim(claim_name(claim))
        }
        ErrorKind::InvalidToken
        | ErrorKind::Base64(_)
        | ErrorKind::Json(_)
        | ErrorKind::Utf8(_) => JwtError::Malformed("not a valid JWT".into()),
        ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => {
            JwtError::KeysUnavailable("the identity provider's key is unusable".into())
        }
        _ => JwtError::BadSignature,
    }
}

fn claim_name(claim: &str) -> &'static str {
    match claim {
        "exp" => "exp",
        "nbf" => "nbf",
        "sub" => "sub",
        "iss" => "iss",
        "aud" => "aud",
        _ => "unknown",
    }
}

/// A NumericDate (integer or fractional seconds) as whole Unix seconds.
fn numeric_date(value: &Value) -> Option<i64> {
    value.as_i64().or_else(|| {
        value
            .as_f64()
            .filter(|seconds| seconds.is_finite())
            .map(|seconds| seconds.floor() as i64)
    })
}

fn is_true(value: Option<&Value>) -> bool {
    match value {
        Some(Value::Bool(flag)) => *flag,
        Some(Value::String(text)) => text == "true",
        _ => false,
    }
}

fn marks_admin(value: Option<&Value>) -> bool {
    match value {
        // Better Auth's admin plugin keeps several roles as one comma-separated string.
        Some(Value::String(roles)) => roles.split(',').any(|role| role.trim() == "admin"),
        Some(Value::Array(roles)) => roles.iter().any(|role| role.as_str() == Some("admin")),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use actix_web::dev::{ServerHandle, Service};
    use actix_web::{App, HttpServer};
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::mock_upstream::MockUpstream;
    use crate::mock_upstream::identity::{
        self as idp, RSA_KID, RSA_N, RSA_PRIVATE_KEY_PEM, TestKey, jwks_url, sign_test_token,
    };

    const SECRET: &str = "a-shared-test-secret-of-32-bytes!";

    fn now() -> i64 {
        chrono::Utc::now().timestamp()
    }

    /// `sub` and an `exp` ten minutes ahead, plus `extra` (a `null` removes a claim).
    fn claims(extra: Value) -> Value {
        let mut claims = json!({"sub": "user-1", "exp": now() + 600});
        if let (Some(base), Value::Object(extra)) = (claims.as_object_mut(), extra) {
            for (name, value) in extra {
                if value.is_null() {
                    base.remove(&name);
                } else {
                    base.insert(name, value);
                }
            }
        }
        claims
    }

    fn hs256_verifier(config: JwtConfig) -> JwtVerifier {
        let config = JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..config
        };
        JwtVerifier::new(config, reqwest::Client::new()).unwrap()
    }

    fn jwks_verifier(url: String) -> JwtVerifier {
        let config = JwtConfig {
            jwks_url: Some(url),
            ..JwtConfig::default()
        };
        JwtVerifier::new(config, reqwest::Client::new()).unwrap()
    }

    /// RS256 with the published `mock-rsa` key but under another `kid`.
    fn sign_with_kid(claims: &Value, kid: &str) -> String {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        jsonwebtoken::encode(&header, claims, &key).unwrap()
    }

    fn unsigned_token(header: &Value, claims: &Value, signature: &str) -> String {
        let part = |value: &Value| URL_SAFE_NO_PAD.encode(value.to_string());
        format!("{}.{}.{signature}", part(header), part(claims))
    }

    /// A mock identity provider that counts its requests (the [`MockUpstream`] counter counts
    /// chat completions only).
    /// Also returns a switch that makes it answer 503 (an outage, without the race of
    /// stopping a server whose keep-alive connections may still be served).
    async fn counting_idp() -> (String, Arc<AtomicUsize>, ServerHandle, Arc<AtomicBool>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let down = Arc::new(AtomicBool::new(false));
        let counter = Arc::clone(&requests);
        let switch = Arc::clone(&down);
        let server = HttpServer::new(move || {
            let counter = Arc::clone(&counter);
            let switch = Arc::clone(&switch);
            App::new()
                .wrap_fn(move |req, srv| {
                    counter.fetch_add(1, Ordering::SeqCst);
                    srv.call(req)
                })
                .route(
                    idp::JWKS_PATH,
                    actix_web::web::get().to(move || {
                        let down = switch.load(Ordering::SeqCst);
                        async move {
                            if down {
                                actix_web::HttpResponse::ServiceUnavailable().finish()
                            } else {
                                actix_web::HttpResponse::Ok().json(idp::jwks())
                            }
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let url = format!("http://127.0.0.1:{port}{}", idp::JWKS_PATH);
        (url, requests, handle, down)
    }

    /// Moves the cache's clock back, as if its fetches had happened `ago`.
    async fn age_cache(verifier: &JwtVerifier, ago: Duration) {
        let mut cache = verifier.inner.jwks.lock().await;
        let back = |at: Option<Instant>| at.map(|at| at.checked_sub(ago).unwrap());
        cache.fetched_at = back(cache.fetched_at);
        cache.attempted_at = back(cache.attempted_at);
    }

    // ---- configuration and shapes ----

    #[test]
    fn a_verifier_needs_a_jwks_url_or_a_secret() {
        let http = reqwest::Client::new();
        assert!(JwtVerifier::new(JwtConfig::default(), http.clone()).is_none());
        let empty_secret = JwtConfig {
            hs256_secret: Some(String::new().into()),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::new(empty_secret, http.clone()).is_none());
        let secret = JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::new(secret, http).is_some());
    }

    #[test]
    fn the_default_config_reads_better_auths_anonymous_claim_and_debug_hides_the_secret() {
        let config = JwtConfig {
            hs256_secret: Some(SECRET.into()),
            ..JwtConfig::default()
        };
        assert_eq!(config.anonymous_claim, DEFAULT_ANONYMOUS_CLAIM);
        let debug = format!("{config:?}");
        assert!(!debug.contains(SECRET), "{debug}");
        assert!(debug.contains("REDACTED"), "{debug}");
    }

    #[test]
    fn looks_like_jwt_tells_jwts_from_session_tokens_and_api_keys() {
        let jwt = sign_test_token(&claims(json!({})), TestKey::Hs256(SECRET));
        assert!(looks_like_jwt(&jwt));
        assert!(looks_like_jwt(&sign_test_token(
            &claims(json!({})),
            TestKey::Ed25519
        )));
        assert!(!looks_like_jwt("tl_abc"));
        assert!(!looks_like_jwt("tlk_abc"));
        assert!(!looks_like_jwt(""));
        assert!(!looks_like_jwt("a.b.c"));
        assert!(!looks_like_jwt(&format!("{jwt}.extra")));
        let no_signature = jwt.rsplit_once('.').unwrap().0.to_owned() + ".";
        assert!(!looks_like_jwt(&no_signature));
        let no_alg = unsigned_token(&json!({"typ": "JWT"}), &claims(json!({})), "c2ln");
        assert!(!looks_like_jwt(&no_alg));
    }

    #[test]
    fn every_error_has_its_code() {
        let codes = [
            (JwtError::Malformed("x".into()), "token_malformed"),
            (JwtError::Expired, "token_expired"),
            (JwtError::NotYetValid, "token_not_yet_valid"),
            (JwtError::BadSignature, "token_signature_invalid"),
            (JwtError::UnknownKey, "token_key_unknown"),
            (JwtError::InvalidClaim("sub"), "token_claim_invalid"),
            (JwtError::KeysUnavailable("down".into()), "unavailable"),
        ];
        for (error, code) in codes {
            assert_eq!(error.code().as_str(), code);
        }
    }

    // ---- HS256 ----

    #[tokio::test]
    async fn a_valid_hs256_token_gives_the_identity() {
        let verifier = hs256_verifier(JwtConfig::default());
        let exp = now() + 600;
        let token = sign_test_token(
            &json!({
                "sub": "user-1",
                "exp": exp,
                "iss": "https://auth.example",
                "email": "ada@example.com",
                "name": "Ada",
            }),
            TestKey::Hs256(SECRET),
        );
        let identity = verifier.verify(&token).await.unwrap();
        assert_eq!(
            identity,
            ExternalIdentity {
                issuer: Some("https://auth.example".into()),
                subject: "user-1".into(),
                email: Some("ada@example.com".into()),
                name: Some("Ada".into()),
                anonymous: false,
                admin: false,
                expires_at: exp,
            }
        );
        assert_eq!(identity.account_key(), "https://auth.example|user-1");
    }

    #[tokio::test]
    async fn without_an_issuer_the_account_key_starts_with_a_bar() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({})), TestKey::Hs256(SECRET));
        let identity = verifier.verify(&token).await.unwrap();
        assert_eq!(identity.issuer, None);
        assert_eq!(identity.account_key(), "|user-1");
    }

    #[tokio::test]
    async fn an_expired_token_is_rejected_as_expired() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({"exp": now() - 120})), TestKey::Hs256(SECRET));
        assert_eq!(verifier.verify(&token).await, Err(JwtError::Expired));
    }

    #[tokio::test]
    async fn a_token_expired_within_the_leeway_is_accepted() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({"exp": now() - 10})), TestKey::Hs256(SECRET));
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_without_exp_is_rejected() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({"exp": null})), TestKey::Hs256(SECRET));
        assert_eq!(
            verifier.verify(&token).await,
            Err(JwtError::InvalidClaim("exp"))
        );
    }

    #[tokio::test]
    async fn a_token_used_before_nbf_is_not_yet_valid() {
        let verifier = hs256_verifier(JwtConfig::default());
        let early = sign_test_token(&claims(json!({"nbf": now() + 300})), TestKey::Hs256(SECRET));
        assert_eq!(verifier.verify(&early).await, Err(JwtError::NotYetValid));
        let skewed = sign_test_token(&claims(json!({"nbf": now() + 10})), TestKey::Hs256(SECRET));
        assert!(verifier.verify(&skewed).await.is_ok());
    }

    #[tokio::test]
    async fn a_token_signed_with_another_secret_has_a_bad_signature() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({})), TestKey::Hs256("another-secret"));
        assert_eq!(verifier.verify(&token).await, Err(JwtError::BadSignature));
    }

    #[tokio::test]
    async fn a_token_without_a_subject_is_rejected() {
        let verifier = hs256_verifier(JwtConfig::default());
        let missing = sign_test_token(&claims(json!({"sub": null})), TestKey::Hs256(SECRET));
        assert_eq!(
            verifier.verify(&missing).await,
            Err(JwtError::InvalidClaim("sub"))
        );
        let empty = sign_test_token(&claims(json!({"sub": ""})), TestKey::Hs256(SECRET));
        assert_eq!(
            verifier.verify(&empty).await,
            Err(JwtError::InvalidClaim("sub"))
        );
    }

    #[tokio::test]
    async fn an_rs256_token_is_refused_when_only_a_secret_is_configured() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({})), TestKey::Rsa);
        assert_eq!(verifier.verify(&token).await, Err(JwtError::BadSignature));
    }

    #[tokio::test]
    async fn garbage_is_malformed() {
        let verifier = hs256_verifier(JwtConfig::default());
        for token in ["", "tl_abc", "a.b.c", "not a token at all"] {
            assert!(
                matches!(verifier.verify(token).await, Err(JwtError::Malformed(_))),
                "{token}"
            );
        }
        let array_payload = sign_test_token(&json!(["sub"]), TestKey::Hs256(SECRET));
        assert!(matches!(
            verifier.verify(&array_payload).await,
            Err(JwtError::Malformed(_))
        ));
    }

    #[tokio::test]
    async fn an_alg_none_token_is_rejected() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let header = json!({"alg": "none", "typ": "JWT"});
        let body = claims(json!({}));
        for token in [
            unsigned_token(&header, &body, ""),
            unsigned_token(&header, &body, "c2ln"),
        ] {
            for verifier in [
                hs256_verifier(JwtConfig::default()),
                jwks_verifier(jwks_url(&mock)),
            ] {
                assert!(matches!(
                    verifier.verify(&token).await,
                    Err(JwtError::Malformed(_))
                ));
            }
        }
        mock.stop().await;
    }

    // ---- issuer, audience and the identity claims ----

    fn strict_config() -> JwtConfig {
        JwtConfig {
            issuer: Some("https://auth.example".into()),
            audience: Some("threadline".into()),
            ..JwtConfig::default()
        }
    }

    #[tokio::test]
    async fn a_token_for_the_configured_issuer_and_audience_is_accepted() {
        let verifier = hs256_verifier(strict_config());
        for aud in [json!("threadline"), json!(["other-app", "threadline"])] {
            let token = sign_test_token(
                &claims(json!({"iss": "https://auth.example", "aud": aud})),
                TestKey::Hs256(SECRET),
            );
            assert!(verifier.verify(&token).await.is_ok(), "{aud}");
        }
    }

    #[tokio::test]
    async fn a_wrong_or_missing_issuer_is_an_invalid_claim() {
        let verifier = hs256_verifier(strict_config());
        for iss in [json!("https://evil.example"), Value::Null] {
            let token = sign_test_token(
                &claims(json!({"iss": iss, "aud": "threadline"})),
                TestKey::Hs256(SECRET),
            );
            assert_eq!(
                verifier.verify(&token).await,
                Err(JwtError::InvalidClaim("iss")),
                "{iss}"
            );
        }
    }

    #[tokio::test]
    async fn a_wrong_or_missing_audience_is_an_invalid_claim() {
        let verifier = hs256_verifier(strict_config());
        for aud in [json!("other-app"), json!(["other-app"]), Value::Null] {
            let token = sign_test_token(
                &claims(json!({"iss": "https://auth.example", "aud": aud})),
                TestKey::Hs256(SECRET),
            );
            assert_eq!(
                verifier.verify(&token).await,
                Err(JwtError::InvalidClaim("aud")),
                "{aud}"
            );
        }
    }

    #[tokio::test]
    async fn without_a_configured_audience_any_audience_is_accepted() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(
            &claims(json!({"aud": "https://app.example"})),
            TestKey::Hs256(SECRET),
        );
        assert!(verifier.verify(&token).await.is_ok());
    }

    #[tokio::test]
    async fn the_anonymous_claim_is_true_as_a_bool_or_a_string() {
        let verifier = hs256_verifier(JwtConfig::default());
        let cases = [
            (json!({"isAnonymous": true}), true),
            (json!({"isAnonymous": "true"}), true),
            (json!({"isAnonymous": false}), false),
            (json!({"isAnonymous": "yes"}), false),
            (json!({}), false),
        ];
        for (extra, anonymous) in cases {
            let token = sign_test_token(&claims(extra.clone()), TestKey::Hs256(SECRET));
            let identity = verifier.verify(&token).await.unwrap();
            assert_eq!(identity.anonymous, anonymous, "{extra}");
        }
    }

    #[tokio::test]
    async fn the_anonymous_claim_name_is_configurable() {
        let verifier = hs256_verifier(JwtConfig {
            anonymous_claim: "anon".into(),
            ..JwtConfig::default()
        });
        let token = sign_test_token(&claims(json!({"anon": true})), TestKey::Hs256(SECRET));
        assert!(verifier.verify(&token).await.unwrap().anonymous);
        let token = sign_test_token(
            &claims(json!({"isAnonymous": true})),
            TestKey::Hs256(SECRET),
        );
        assert!(!verifier.verify(&token).await.unwrap().anonymous);
    }

    #[tokio::test]
    async fn the_admin_claim_marks_admins_as_a_string_or_in_an_array() {
        let verifier = hs256_verifier(JwtConfig {
            admin_claim: Some("role".into()),
            ..JwtConfig::default()
        });
        let cases = [
            (json!({"role": "admin"}), true),
            (json!({"role": ["user", "admin"]}), true),
            (json!({"role": "user, admin"}), true),
            (json!({"role": "user"}), false),
            (json!({"role": "administrator"}), false),
            (json!({"role": ["user"]}), false),
            (json!({"role": true}), false),
            (json!({}), false),
        ];
        for (extra, admin) in cases {
            let token = sign_test_token(&claims(extra.clone()), TestKey::Hs256(SECRET));
            let identity = verifier.verify(&token).await.unwrap();
            assert_eq!(identity.admin, admin, "{extra}");
        }
    }

    #[tokio::test]
    async fn without_an_admin_claim_configured_nobody_is_admin() {
        let verifier = hs256_verifier(JwtConfig::default());
        let token = sign_test_token(&claims(json!({"role": "admin"})), TestKey::Hs256(SECRET));
        assert!(!verifier.verify(&token).await.unwrap().admin);
    }

    // ---- JWKS ----

    #[tokio::test]
    async fn an_rs256_token_is_verified_with_the_jwks() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_test_token(&claims(json!({"email": "ada@example.com"})), TestKey::Rsa);
        let identity = verifier.verify(&token).await.unwrap();
        assert_eq!(identity.subject, "user-1");
        assert_eq!(identity.email.as_deref(), Some("ada@example.com"));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_eddsa_token_is_verified_with_the_jwks() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_test_token(
            &claims(json!({"isAnonymous": true, "name": "Guest"})),
            TestKey::Ed25519,
        );
        let identity = verifier.verify(&token).await.unwrap();
        assert!(identity.anonymous);
        assert_eq!(identity.name.as_deref(), Some("Guest"));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_expired_jwks_token_is_rejected_as_expired() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_test_token(&claims(json!({"exp": now() - 120})), TestKey::Ed25519);
        assert_eq!(verifier.verify(&token).await, Err(JwtError::Expired));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_token_signed_by_another_key_under_a_known_kid_has_a_bad_signature() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_test_token(&claims(json!({})), TestKey::OtherRsa);
        assert_eq!(verifier.verify(&token).await, Err(JwtError::BadSignature));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_token_with_an_unknown_kid_is_rejected() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_with_kid(&claims(json!({})), "rotated-away");
        assert_eq!(verifier.verify(&token).await, Err(JwtError::UnknownKey));
        mock.stop().await;
    }

    #[tokio::test]
    async fn without_a_kid_a_jwks_of_two_keys_has_no_key_for_the_token() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims(json!({})), &key).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(JwtError::UnknownKey));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_hs256_token_is_refused_when_only_a_jwks_is_configured() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        let token = sign_test_token(&claims(json!({})), TestKey::Hs256(SECRET));
        assert_eq!(verifier.verify(&token).await, Err(JwtError::BadSignature));
        // The classic confusion: HMAC keyed with the published RSA key, under its kid.
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(RSA_KID.into());
        let forged = jsonwebtoken::encode(
            &header,
            &claims(json!({})),
            &EncodingKey::from_secret(RSA_N.as_bytes()).unwrap(),
        )
        .unwrap();
        assert_eq!(verifier.verify(&forged).await, Err(JwtError::BadSignature));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_token_whose_alg_does_not_fit_its_key_has_a_bad_signature() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(jwks_url(&mock));
        // The RSA key, published for RS256, used with PS256.
        let mut header = Header::new(Algorithm::PS256);
        header.kid = Some(RSA_KID.into());
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let token = jsonwebtoken::encode(&header, &claims(json!({})), &key).unwrap();
        assert_eq!(verifier.verify(&token).await, Err(JwtError::BadSignature));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_jwks_makes_the_keys_unavailable() {
        let closed_port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            listener.local_addr().unwrap().port()
        };
        let verifier = jwks_verifier(format!("http://127.0.0.1:{closed_port}/jwks.json"));
        let token = sign_test_token(&claims(json!({})), TestKey::Rsa);
        let result = verifier.verify(&token).await;
        assert!(
            matches!(result, Err(JwtError::KeysUnavailable(_))),
            "{result:?}"
        );
    }

    #[tokio::test]
    async fn a_jwks_url_that_answers_with_an_error_makes_the_keys_unavailable() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let verifier = jwks_verifier(format!("http://127.0.0.1:{}/no-jwks-here", mock.port()));
        let token = sign_test_token(&claims(json!({})), TestKey::Rsa);
        let result = verifier.verify(&token).await;
        assert!(
            matches!(result, Err(JwtError::KeysUnavailable(_))),
            "{result:?}"
        );
        mock.stop().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_jwks_is_fetched_once_for_many_verifications() {
        let (url, requests, handle, _) = counting_idp().await;
        let verifier = jwks_verifier(url);
        let tasks: Vec<_> = (0..16)
            .map(|i| {
                let verifier = verifier.clone();
                let key = if i % 2 == 0 {
                    TestKey::Rsa
                } else {
                    TestKey::Ed25519
                };
                let token = sign_test_token(&claims(json!({"sub": format!("user-{i}")})), key);
                tokio::spawn(async move { verifier.verify(&token).await })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        // A flood of random kids right after a fetch does not reach the identity provider.
        for i in 0..10 {
            let token = sign_with_kid(&claims(json!({})), &format!("random-{i}"));
            assert_eq!(verifier.verify(&token).await, Err(JwtError::UnknownKey));
        }
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        handle.stop(false).await;
    }

    #[tokio::test]
    async fn an_unknown_kid_refetches_once_the_last_fetch_is_30_seconds_old() {
        let (url, requests, handle, _) = counting_idp().await;
        let verifier = jwks_verifier(url);
        let token = sign_test_token(&claims(json!({})), TestKey::Rsa);
        verifier.verify(&token).await.unwrap();
        age_cache(&verifier, Duration::from_secs(31)).await;
        let unknown = sign_with_kid(&claims(json!({})), "new-key");
        assert_eq!(verifier.verify(&unknown).await, Err(JwtError::UnknownKey));
        assert_eq!(verifier.verify(&unknown).await, Err(JwtError::UnknownKey));
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        handle.stop(false).await;
    }

    #[tokio::test]
    async fn the_jwks_is_refetched_after_ten_minutes() {
        let (url, requests, handle, _) = counting_idp().await;
        let verifier = jwks_verifier(url);
        let token = sign_test_token(&claims(json!({})), TestKey::Ed25519);
        verifier.verify(&token).await.unwrap();
        age_cache(&verifier, Duration::from_secs(9 * 60)).await;
        verifier.verify(&token).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 1);
        age_cache(&verifier, Duration::from_secs(2 * 60)).await;
        verifier.verify(&token).await.unwrap();
        assert_eq!(requests.load(Ordering::SeqCst), 2);
        handle.stop(false).await;
    }

    #[tokio::test]
    async fn stale_keys_are_used_while_the_identity_provider_is_down() {
        let (url, requests, handle, down) = counting_idp().await;
        let verifier = jwks_verifier(url);
        let token = sign_test_token(&claims(json!({})), TestKey::Rsa);
        verifier.verify(&token).await.unwrap();
        down.store(true, Ordering::SeqCst);
        age_cache(&verifier, Duration::from_secs(11 * 60)).await;
        assert!(verifier.verify(&token).await.is_ok());
        assert_eq!(
            requests.load(Ordering::SeqCst),
            2,
            "the refresh was tried, failed, and the old keys served"
        );
        handle.stop(false).await;
    }

    #[test]
    fn symmetric_encryption_and_mismatched_keys_are_not_usable() {
        let rsa = |extra: Value| {
            let mut jwk = json!({"kty": "RSA", "n": RSA_N, "e": "AQAB"});
            if let (Some(jwk), Value::Object(extra)) = (jwk.as_object_mut(), extra) {
                jwk.extend(extra);
            }
            jwk
        };
        let usable = usable_key(rsa(json!({"kid": "k"}))).unwrap();
        assert_eq!(usable.algorithms, AlgorithmFamily::Rsa.algorithms());
        assert!(usable_key(json!({"kty": "oct", "k": "c2VjcmV0"})).is_none());
        assert!(usable_key(rsa(json!({"use": "enc"}))).is_none());
        assert!(usable_key(rsa(json!({"alg": "HS256"}))).is_none());
        assert!(usable_key(rsa(json!({"alg": "EdDSA"}))).is_none());
        assert!(usable_key(rsa(json!({"alg": "RSA-OAEP"}))).is_none());
        assert!(usable_key(json!({"kty": "OKP", "crv": "X25519", "x": "AAAA"})).is_none());
        let ed = usable_key(json!({"kty": "OKP", "crv": "Ed25519", "x": idp::ED25519_X}));
        assert_eq!(ed.unwrap().algorithms, vec![Algorithm::EdDSA]);
    }
}
