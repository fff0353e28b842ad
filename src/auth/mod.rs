//! Authentication: session tokens and API keys, the [`Caller`] a request acts as (resolved
//! from its token by [`crate::extract::caller`]), password hashing ([`passwords`]) and abuse
//! limits ([`limits`]).
//!
//! A session token is 32 random bytes (base64url, prefixed `tl_`); only its SHA-256 is stored
//! (in the `SessionIssued` event and the sessions projection).

pub mod cookie;
pub mod limits;
pub mod passwords;

use base64::Engine;
use rand::RngCore;
use sha2::{Digest, Sha256};
use threadline_projections::accounts::AccountRow;

use crate::error::ApiError;

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
                code: crate::error::ErrorCode::SessionRequired,
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

/// How a caller authenticated by an external JWT is marked in `Caller::session_id`.
pub const JWT_SESSION: &str = "jwt:";

/// The account of an external identity: its id is a UUIDv5 of issuer and subject, so the
/// first request of a new subject creates it exactly once, however many arrive together.
pub fn external_account_id(identity: &crate::identity::ExternalIdentity) -> uuid::Uuid {
    const NAMESPACE: uuid::Uuid = uuid::Uuid::from_u128(0x6c1f_2b0e_8d4a_4f7e_9a53_0b7e_2d61_c4a9);
    uuid::Uuid::new_v5(&NAMESPACE, identity.account_key().as_bytes())
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
