//! Webhook signature verification for the billing providers, as pure functions of the secret,
//! the signature headers, the raw body and the current time.
//!
//! Two schemes, both HMAC-SHA256 over the timestamp and the body:
//! - [Standard Webhooks](https://www.standardwebhooks.com/), used by Polar: headers
//!   `webhook-id`, `webhook-timestamp` (unix seconds) and `webhook-signature` (space-separated
//!   `v1,<base64>` entries), signed content `{id}.{timestamp}.{body}`. A `whsec_<base64>` secret
//!   is keyed with the decoded base64; any other secret (Polar's `polar_whs_…`) with its own
//!   UTF-8 bytes, as Polar's SDK does.
//! - Stripe: one header, `stripe-signature: t=<unix>,v1=<hex>,…`, signed payload `{t}.{body}`,
//!   keyed with the secret string itself (`whsec_` included).
//!
//! In both, one matching `v1` signature suffices (providers send several while a secret is being
//! rolled), signatures of other versions are ignored, signatures are compared in constant time,
//! and a timestamp more than the tolerance away from now, in the past or the future, is refused.
//! The `sign_*` functions produce the header values, for tests and the mock upstream.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

type HmacSha256 = Hmac<Sha256>;

/// How far a webhook timestamp may be from now, either way, by default: five minutes, the
/// window both Standard Webhooks and Stripe recommend.
pub const TOLERANCE_SECS: i64 = 300;

/// The prefix of a Standard Webhooks secret whose rest is the base64 key.
const WHSEC_PREFIX: &str = "whsec_";

/// Why a webhook was refused. [`SignatureError::code`] gives the stable machine-readable code.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A signature header (named) is absent.
    #[error("missing {0} header")]
    Missing(&'static str),
    /// A signature header (named) could not be parsed, or holds no `v1` signature.
    #[error("malformed {0} header")]
    Malformed(&'static str),
    /// The signed timestamp is outside the tolerance window (a replay, or a skewed clock).
    #[error("webhook timestamp is outside the tolerance window")]
    Stale,
    /// No `v1` signature matches the body: wrong secret, or a forged or altered request.
    #[error("no webhook signature matches the body")]
    Mismatch,
    /// The configured secret is unusable: empty, or `whsec_` not followed by base64. A
    /// configuration fault, not the sender's.
    #[error("the webhook secret is invalid (empty, or `whsec_` not followed by base64)")]
    BadSecret,
}

impl SignatureError {
    /// The stable code for error bodies and logs.
    pub fn code(&self) -> crate::error::ErrorCode {
        match self {
            SignatureError::Missing(_) => crate::error::ErrorCode::SignatureMissing,
            SignatureError::Malformed(_) => crate::error::ErrorCode::SignatureMalformed,
            SignatureError::Stale => crate::error::ErrorCode::SignatureStale,
            SignatureError::Mismatch => crate::error::ErrorCode::SignatureMismatch,
            SignatureError::BadSecret => crate::error::ErrorCode::Internal,
        }
    }
}

/// The three Standard Webhooks headers of a request, as received (`None` when absent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StandardHeaders<'a> {
    /// `webhook-id`: the message id, the same on every retry of one message.
    pub id: Option<&'a str>,
    /// `webhook-timestamp`: unix seconds when the message was signed.
    pub timestamp: Option<&'a str>,
    /// `webhook-signature`: space-separated `v1,<base64>` entries.
    pub signature: Option<&'a str>,
}

/// Checks a Standard Webhooks (Polar) request: headers present, timestamp within
/// `tolerance_secs` of `now` (unix seconds), and one `v1` signature matching
/// `{id}.{timestamp}.{body}`. A bad secret is reported before anything about the request.
pub fn verify_standard_webhook(
    secret: &str,
    headers: &StandardHeaders<'_>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let key = standard_key(secret)?;
    let id = headers.id.ok_or(SignatureError::Missing("webhook-id"))?;
    let timestamp = headers
        .timestamp
        .ok_or(SignatureError::Missing("webhook-timestamp"))?;
    let signature = headers
        .signature
        .ok_or(SignatureError::Missing("webhook-signature"))?;
    let timestamp =
        parse_timestamp(timestamp).ok_or(SignatureError::Malformed("webhook-timestamp"))?;
    let candidates: Vec<Vec<u8>> = signature
        .split_whitespace()
        .filter_map(|entry| entry.split_once(','))
        .filter(|(version, _)| *version == "v1")
        .filter_map(|(_, value)| BASE64.decode(value).ok())
        .collect();
    if candidates.is_empty() {
        return Err(SignatureError::Malformed("webhook-signature"));
    }
    check_time(timestamp, now, tolerance_secs)?;
    let mac = standard_mac(&key, id, timestamp, body);
    matches_any(&mac, &candidates)
}

/// The `webhook-signature` header value for one message: `v1,<base64>`.
pub fn sign_standard_webhook(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, SignatureError> {
    let key = standard_key(secret)?;
    let tag = standard_mac(&key, id, timestamp, body)
        .finalize()
        .into_bytes();
    Ok(format!("v1,{}", BASE64.encode(tag)))
}

/// Checks a Stripe request: the `stripe-signature` header present with a `t=` timestamp within
/// `tolerance_secs` of `now` (unix seconds) and one `v1=` signature matching `{t}.{body}`.
pub fn verify_stripe(
    secret: &str,
    header: Option<&str>,
    body: &[u8],
    now: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    const HEADER: &str = "stripe-signature";
    if secret.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    let header = header.ok_or(SignatureError::Missing(HEADER))?;
    let mut timestamp = None;
    let mut candidates = Vec::new();
    for (key, value) in header
        .split(',')
        .filter_map(|item| item.trim().split_once('='))
    {
        match key {
            "t" => {
                timestamp = Some(parse_timestamp(value).ok_or(SignatureError::Malformed(HEADER))?);
            }
            "v1" => candidates.extend(hex::decode(value).ok()),
            _ => {}
        }
    }
    let Some(timestamp) = timestamp else {
        return Err(SignatureError::Malformed(HEADER));
    };
    if candidates.is_empty() {
        return Err(SignatureError::Malformed(HEADER));
    }
    check_time(timestamp, now, tolerance_secs)?;
    let mac = stripe_mac(secret, timestamp, body);
    matches_any(&mac, &candidates)
}

/// The `stripe-signature` header value for one payload: `t=<timestamp>,v1=<hex>`.
pub fn sign_stripe(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let tag = stripe_mac(secret, timestamp, body).finalize().into_bytes();
    format!("t={timestamp},v1={}", hex::encode(tag))
}

/// The HMAC key of a Standard Webhooks secret.
fn standard_key(secret: &str) -> Result<Vec<u8>, SignatureError> {
    let key = match secret.strip_prefix(WHSEC_PREFIX) {
        Some(encoded) => BASE64
            .decode(encoded)
            .map_err(|_| SignatureError::BadSecret)?,
        None => secret.as_bytes().to_vec(),
    };
    if key.is_empty() {
        return Err(SignatureError::BadSecret);
    }
    Ok(key)
}

fn standard_mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(key);
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

fn stripe_mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = hmac_sha256(secret.as_bytes());
    mac.update(format!("{timestamp}.").as_bytes());
    mac.update(body);
    mac
}

/// HMAC-SHA256 keyed with `key`, through the infallible constructor: HMAC takes keys of any
/// length by hashing a key longer than the block and zero-padding it to the block size
/// (RFC 2104), so doing that here gives the same MAC as `new_from_slice` without its `Result`.
fn hmac_sha256(key: &[u8]) -> HmacSha256 {
    let mut block = hmac::digest::Key::<HmacSha256>::default();
    if key.len() > block.len() {
        let digest = Sha256::digest(key);
        block[..digest.len()].copy_from_slice(&digest);
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    HmacSha256::new(&block)
}

/// Whether any candidate is the MAC, each compared in constant time.
fn matches_any(mac: &HmacSha256, candidates: &[Vec<u8>]) -> Result<(), SignatureError> {
    if candidates
        .iter()
        .any(|candidate| mac.clone().verify_slice(candidate).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

/// Unix seconds, digits only (no sign, no spaces).
fn parse_timestamp(value: &str) -> Option<i64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

fn check_time(timestamp: i64, now: i64, tolerance_secs: i64) -> Result<(), SignatureError> {
    if timestamp.abs_diff(now) > tolerance_secs.unsigned_abs() {
        return Err(SignatureError::Stale);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    // The published Standard Webhooks test vector.
    const VECTOR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const VECTOR_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const VECTOR_TIMESTAMP: i64 = 1_614_265_330;
    const VECTOR_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const VECTOR_SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const STRIPE_SECRET: &str = "whsec_test_stripe_secret";
    const NOW: i64 = 1_700_000_000;

    fn headers<'a>(id: &'a str, timestamp: &'a str, signature: &'a str) -> StandardHeaders<'a> {
        StandardHeaders {
            id: Some(id),
            timestamp: Some(timestamp),
            signature: Some(signature),
        }
    }

    fn verify_vector(signature: &str, body: &[u8]) -> Result<(), SignatureError> {
        verify_standard_webhook(
            VECTOR_SECRET,
            &headers(VECTOR_ID, &VECTOR_TIMESTAMP.to_string(), signature),
            body,
            VECTOR_TIMESTAMP,
            TOLERANCE_SECS,
        )
    }

    #[test]
    fn the_published_test_vector_signs_and_verifies() {
        let signature =
            sign_standard_webhook(VECTOR_SECRET, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap();
        assert_eq!(signature, VECTOR_SIGNATURE);
        assert_eq!(verify_vector(VECTOR_SIGNATURE, VECTOR_BODY), Ok(()));
    }

    #[test]
    fn a_freshly_signed_message_verifies() {
        let body = br#"{"type":"subscription.active"}"#;
        let signature = sign_standard_webhook(VECTOR_SECRET, "msg_1", NOW, body).unwrap();
        let result = verify_standard_webhook(
            VECTOR_SECRET,
            &headers("msg_1", &NOW.to_string(), &signature),
            body,
            NOW + 10,
            TOLERANCE_SECS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn a_signature_made_with_another_secret_is_a_mismatch() {
        let other = "whsec_c2VjcmV0LWtleS1vZi1zb21lb25lLWVsc2U=";
        let forged =
            sign_standard_webhook(other, VECTOR_ID, VECTOR_TIMESTAMP, VECTOR_BODY).unwrap();
        assert_eq!(
            verify_vector(&forged, VECTOR_BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_body_changed_by_one_byte_is_a_mismatch() {
        let mut body = VECTOR_BODY.to_vec();
        body[10] ^= 1;
        assert_eq!(
            verify_vector(VECTOR_SIGNATURE, &body),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn another_message_id_is_a_mismatch() {
        let result = verify_standard_webhook(
            VECTOR_SECRET,
            &headers("msg_other", &VECTOR_TIMESTAMP.to_string(), VECTOR_SIGNATURE),
            VECTOR_BODY,
            VECTOR_TIMESTAMP,
            TOLERANCE_SECS,
        );
        assert_eq!(result, Err(SignatureError::Mismatch));
    }

    #[test]
    fn timestamps_beyond_the_tolerance_either_way_are_stale() {
        let check = |now| {
            verify_standard_webhook(
                VECTOR_SECRET,
                &headers(VECTOR_ID, &VECTOR_TIMESTAMP.to_string(), VECTOR_SIGNATURE),
                VECTOR_BODY,
                now,
                TOLERANCE_SECS,
            )
        };
        // Sent too long ago (a replay), or "from the future" (a skewed clock).
        assert_eq!(check(VECTOR_TIMESTAMP + 301), Err(SignatureError::Stale));
        assert_eq!(check(VECTOR_TIMESTAMP - 301), Err(SignatureError::Stale));
        // The edges of the window are inside it.
        assert_eq!(check(VECTOR_TIMESTAMP + 300), Ok(()));
        assert_eq!(check(VECTOR_TIMESTAMP - 300), Ok(()));
    }

    #[test]
    fn each_missing_header_is_named() {
        let ts = VECTOR_TIMESTAMP.to_string();
        let full = headers(VECTOR_ID, &ts, VECTOR_SIGNATURE);
        let check = |headers: StandardHeaders<'_>| {
            verify_standard_webhook(
                VECTOR_SECRET,
                &headers,
                VECTOR_BODY,
                VECTOR_TIMESTAMP,
                TOLERANCE_SECS,
            )
        };
        let without_id = StandardHeaders { id: None, ..full };
        let without_timestamp = StandardHeaders {
            timestamp: None,
            ..full
        };
        let without_signature = StandardHeaders {
            signature: None,
            ..full
        };
        assert_eq!(
            check(without_id),
            Err(SignatureError::Missing("webhook-id"))
        );
        assert_eq!(
            check(without_timestamp),
            Err(SignatureError::Missing("webhook-timestamp"))
        );
        assert_eq!(
            check(without_signature),
            Err(SignatureError::Missing("webhook-signature"))
        );
        assert_eq!(
            check(StandardHeaders::default()),
            Err(SignatureError::Missing("webhook-id"))
        );
    }

    #[test]
    fn malformed_headers_are_reported_as_such() {
        let check = |timestamp: &str, signature: &str| {
            verify_standard_webhook(
                VECTOR_SECRET,
                &headers(VECTOR_ID, timestamp, signature),
                VECTOR_BODY,
                VECTOR_TIMESTAMP,
                TOLERANCE_SECS,
            )
        };
        let ts = VECTOR_TIMESTAMP.to_string();
        for timestamp in ["", "soon", "-1614265330", "1614265330.5", " 1614265330"] {
            assert_eq!(
                check(timestamp, VECTOR_SIGNATURE),
                Err(SignatureError::Malformed("webhook-timestamp")),
                "{timestamp:?}"
            );
        }
        // No `v1` entry with a base64 value: nothing that could be checked.
        for signature in [
            "",
            "v1",
            "g0hM9SsE",
            "v1,not base64!",
            "v2,abcd",
            "v1a,abcd",
        ] {
            assert_eq!(
                check(&ts, signature),
                Err(SignatureError::Malformed("webhook-signature")),
                "{signature:?}"
            );
        }
    }

    #[test]
    fn one_valid_signature_among_several_suffices() {
        let wrong = sign_standard_webhook(
            "whsec_b2xkLXNlY3JldA==",
            VECTOR_ID,
            VECTOR_TIMESTAMP,
            VECTOR_BODY,
        )
        .unwrap();
        let header = format!("v1a,ZmFrZQ== {wrong} v1,!!! {VECTOR_SIGNATURE}");
        assert_eq!(verify_vector(&header, VECTOR_BODY), Ok(()));
        // Without the valid one, the others do not count.
        let header = format!("v1a,ZmFrZQ== {wrong}");
        assert_eq!(
            verify_vector(&header, VECTOR_BODY),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_secret_without_the_whsec_prefix_is_keyed_with_its_own_bytes() {
        let secret = "polar_whs_8rYh3bTq0yLkGz2mW5cVnXe1";
        let body = br#"{"type":"order.paid"}"#;
        let signature = sign_standard_webhook(secret, "msg_2", NOW, body).unwrap();
        // The key is the secret's UTF-8 bytes, as Polar's SDK uses it.
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("msg_2.{NOW}.").as_bytes());
        mac.update(body);
        let expected = format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()));
        assert_eq!(signature, expected);
        let result = verify_standard_webhook(
            secret,
            &headers("msg_2", &NOW.to_string(), &signature),
            body,
            NOW,
            TOLERANCE_SECS,
        );
        assert_eq!(result, Ok(()));
    }

    #[test]
    fn unusable_secrets_are_reported_first() {
        for secret in ["", "whsec_", "whsec_not base64!"] {
            assert_eq!(
                sign_standard_webhook(secret, "msg", NOW, b"{}"),
                Err(SignatureError::BadSecret),
                "{secret:?}"
            );
            assert_eq!(
                verify_standard_webhook(
                    secret,
                    &StandardHeaders::default(),
                    b"{}",
                    NOW,
                    TOLERANCE_SECS
                ),
                Err(SignatureError::BadSecret),
                "{secret:?}"
            );
        }
        assert_eq!(
            verify_stripe("", None, b"{}", NOW, TOLERANCE_SECS),
            Err(SignatureError::BadSecret)
        );
    }

    #[test]
    fn the_padded_key_gives_the_same_mac_as_new_from_slice() {
        for len in [0, 1, 24, 63, 64, 65, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut ours = hmac_sha256(&key);
            let mut theirs = HmacSha256::new_from_slice(&key).unwrap();
            ours.update(b"payload");
            theirs.update(b"payload");
            assert_eq!(
                ours.finalize().into_bytes(),
                theirs.finalize().into_bytes(),
                "key of {len} bytes"
            );
        }
    }

    #[test]
    fn error_codes_are_stable() {
        assert_eq!(
            SignatureError::Missing("webhook-id").code().as_str(),
            "signature_missing"
        );
        assert_eq!(
            SignatureError::Malformed("stripe-signature")
                .code()
                .as_str(),
            "signature_malformed"
        );
        assert_eq!(SignatureError::Stale.code().as_str(), "signature_stale");
        assert_eq!(
            SignatureError::Mismatch.code().as_str(),
            "signature_mismatch"
        );
        assert_eq!(
            SignatureError::BadSecret.code().as_str(),
            "internal",
            "a bad secret is the operator's fault"
        );
        assert_eq!(
            SignatureError::Missing("webhook-id").to_string(),
            "missing webhook-id header"
        );
    }

    // ---- Stripe ----

    #[test]
    fn a_stripe_signature_verifies() {
        let body = br#"{"id":"evt_1","type":"checkout.session.completed"}"#;
        let header = sign_stripe(STRIPE_SECRET, NOW, body);
        assert!(header.starts_with(&format!("t={NOW},v1=")), "{header}");
        assert_eq!(
            verify_stripe(STRIPE_SECRET, Some(&header), body, NOW, TOLERANCE_SECS),
            Ok(())
        );
    }

    #[test]
    fn the_stripe_key_includes_the_whsec_prefix() {
        let body = b"{}";
        let mut mac = HmacSha256::new_from_slice(STRIPE_SECRET.as_bytes()).unwrap();
        mac.update(format!("{NOW}.{{}}").as_bytes());
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(
            sign_stripe(STRIPE_SECRET, NOW, body),
            format!("t={NOW},v1={expected}")
        );
    }

    #[test]
    fn a_forged_stripe_signature_is_a_mismatch() {
        let body = br#"{"id":"evt_1"}"#;
        let forged = sign_stripe("whsec_someone_else", NOW, body);
        assert_eq!(
            verify_stripe(STRIPE_SECRET, Some(&forged), body, NOW, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
        let header = sign_stripe(STRIPE_SECRET, NOW, body);
        assert_eq!(
            verify_stripe(
                STRIPE_SECRET,
                Some(&header),
                br#"{"id":"evt_2"}"#,
                NOW,
                TOLERANCE_SECS
            ),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too: moving it breaks the signature.
        let moved = header.replacen(&NOW.to_string(), &(NOW + 1).to_string(), 1);
        assert_eq!(
            verify_stripe(STRIPE_SECRET, Some(&moved), body, NOW, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn a_stale_stripe_timestamp_is_refused_either_way() {
        let body = b"{}";
        let header = sign_stripe(STRIPE_SECRET, NOW, body);
        for now in [NOW + 301, NOW - 301] {
            assert_eq!(
                verify_stripe(STRIPE_SECRET, Some(&header), body, now, TOLERANCE_SECS),
                Err(SignatureError::Stale)
            );
        }
    }

    #[test]
    fn one_valid_stripe_v1_among_several_suffices() {
        let body = b"{}";
        let good = sign_stripe(STRIPE_SECRET, NOW, body);
        let good_v1 = good.split_once(",v1=").unwrap().1;
        let bad_v1 = "ab".repeat(32);
        let header = format!("t={NOW},v1={bad_v1},v1=zz,v1={good_v1},v0={bad_v1}");
        assert_eq!(
            verify_stripe(STRIPE_SECRET, Some(&header), body, NOW, TOLERANCE_SECS),
            Ok(())
        );
        // A matching v0 (the legacy scheme) does not count.
        let header = format!("t={NOW},v1={bad_v1},v0={good_v1}");
        assert_eq!(
            verify_stripe(STRIPE_SECRET, Some(&header), body, NOW, TOLERANCE_SECS),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn missing_or_malformed_stripe_headers_are_reported() {
        let check =
            |header: Option<&str>| verify_stripe(STRIPE_SECRET, header, b"{}", NOW, TOLERANCE_SECS);
        assert_eq!(
            check(None),
            Err(SignatureError::Missing("stripe-signature"))
        );
        let v1 = "ab".repeat(32);
        for header in [
            String::new(),
            format!("v1={v1}"),
            format!("t=soon,v1={v1}"),
            format!("t={NOW}"),
            format!("t={NOW},v0={v1}"),
            format!("t={NOW},v1=xyz"),
        ] {
            assert_eq!(
                check(Some(&header)),
                Err(SignatureError::Malformed("stripe-signature")),
                "{header:?}"
            );
        }
    }
}
