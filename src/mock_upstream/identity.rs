//! A mock identity provider: a JWKS document with fixed test keys, and a helper that signs
//! tokens with them.
//!
//! `GET /.well-known/jwks.json` publishes two public keys, the RSA 2048 key `mock-rsa` (RS256,
//! as Clerk and Auth0 sign) and the Ed25519 key `mock-ed25519` (EdDSA, Better Auth's JWT plugin
//! default). [`sign_test_token`] signs claims with their private halves, with an HS256 secret,
//! or with a second RSA key that is not published, to test a wrong key.
//!
//! **The private keys below are TEST KEYS ONLY.** They are public in this source file; never
//! trust them outside tests.
//!
//! # Layout
//! - the key ids and the test keys (private PEM and public JWK parameters);
//! - [`routes`], [`jwks`] and [`jwks_url`];
//! - [`TestKey`] and [`sign_test_token`];
//! - a test that the published JWK parameters belong to the private keys.

use actix_web::{HttpResponse, web};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::MockUpstream;

/// The path the JWKS is served on.
pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The key id of the published RSA key (also used by [`TestKey::OtherRsa`]).
pub const RSA_KID: &str = "mock-rsa";

/// The key id of the published Ed25519 key.
pub const ED25519_KID: &str = "mock-ed25519";

/// TEST KEY ONLY: the private half of the published RSA 2048 key `mock-rsa` (PKCS#8 PEM).
pub const RSA_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC4AsA0ntaCPnB4\n\
ieIZiopOddbVAVa6BUKxs/+3a9mTse9UnCraASNqgBh97PU7V7P6haQgH6TktGaP\n\
tLV6NfNIAK2nI7n++RB2Ux8NNxifUOkiI7Uf6rayGovelzuxR4hG1Dz9wsO1N0u/\n\
IGQ8jlvfdFfeL6hbrSbkFf3iI65ysbQ8iRRHrY2pMxwSiYytnsTsiLQsFItOduYB\n\
OITCqs/oZo+qq5yqwLLW+XYWdtpRRtT5HVLEg7T6b/lrZosk4MzVWT8ipg4mxic2\n\
hnWe+yL1DdTR3riHgdU4H6OJudBYiqTQyW69sRBknb2FVQKIdJ8m50KwOQZ1bi/z\n\
RMsPIyWLAgMBAAECggEADh5j6gWv9tFcptsJhqUrJIcFI1XVdjN2IRVrDwNO7/as\n\
ouTSouSId6D5gBwA2vtJO3UqmS5kZAn1fpxCemyOTJ2EtXjXyhkJKtMI5GYwVPUL\n\
1ktAGAFV4EeKKNuYwGr5KVoajev2QT7LaJBPMJhJs1UFcu5cMCCShdisIMBVH8ai\n\
TppJ7fKTqIL1SKl9kS8F/6m2keTHxjUB7lFEA2pxuTS2l1j1fL+HxBAsu96AMgMY\n\
DaIBWOsCxUba3kacsNudRqcn0319zWOR4Tnj8n7g+tXLygFGys/15B/SP2S4ejZr\n\
DdfE490H01FjNgWkIbqEgD76DnOA1ME2fkXH0shaDQKBgQDwicKXEXqTNFYZSFke\n\
oUqZI8XVUpSN2sby55pnsAIJTBNliNvFwouZIDZzHNMfz1aL1cM+DrFQVT14rTiv\n\
O7j8ns8gtcVwY5UHS/p5KcHZlMDX6HRmb/V6k6vJDAY88Wq8GH3WwyGuezA4Rd16\n\
cCqMoW2mhBEz5lZDtZgBj4hOlQKBgQDD1soGlG7RRBX2xNrqSOGj3vj5zQjgw84U\n\
ySuMtXiVJOTG59+7VC+thpqmhUx3QUs7laQ0459YsTsmcprBvqFai/7BGaYuru+x\n\
HxJuHq+aL0KypP07NBiGHXRRdNG/Fjv45VwGktXbhIODFr8g4cHgfTQNRbWRBl92\n\
xGtWcGY7nwKBgFAAMYUXHiJ5hK1R/7oNQQdf+3twxNHNUuAVIaicxICdGdJqS1Yh\n\
11YtfY6Zpqpsxkcp6I7qShUC1LgfPLwja+oxU4h4jFtN85ICtiK4Pa4FKIJm4Nf1\n\
IrsLBFaQtj5suOgoaSoVqk0i0a3Vps0DI1O0mQiJ4kLVuBk6+3yBZX9lAoGBAMIi\n\
v3zMUhqi2v8YYEdV3lB7beb76SwfDsCuN7yx/Iok26GOJMzoBKeJQu+GPqoNkQ3N\n\
Js3DQ6hBcPiJLX6Ygg1nsDAuQ/4NLtEvky6UvtEivoSnZ9zzpMf2lONW4cICwYrX\n\
m2Vs1BFbiJ8/wlJPWck3dI0fqIDOh34N8rXqkH3TAoGAJZvcdh/xBAlEtLK/3kMw\n\
FIaqt5JCilq0xia+Sx7m1wxxHWCjVexoIS9FbUvK0QeqXC6GEVrVN+KeMbR7g3JQ\n\
s16ekaJF80vo5vBPXyIQEbcJr3cUAP/jBQi+Lt4wekUwqRHCGXhAvlTOK88xjRC2\n\
gD4QU+eFTRqL/ekaMzHJjEM=\n\
-----END PRIVATE KEY-----\n\
";

/// The modulus `n` of `mock-rsa`, base64url without padding.
pub const RSA_N: &str = "uALANJ7Wgj5weIniGYqKTnXW1QFWugVCsbP_t2vZk7HvVJwq2gEjaoAYfez1O1ez-oWkIB-k5LRmj7S1ejXzSACtpyO5_vkQdlMfDTcYn1DpIiO1H-q2shqL3pc7sUeIRtQ8_cLDtTdLvyBkPI5b33RX3i-oW60m5BX94iOucrG0PIkUR62NqTMcEomMrZ7E7Ii0LBSLTnbmATiEwqrP6GaPqqucqsCy1vl2FnbaUUbU-R1SxIO0-m_5a2aLJODM1Vk_IqYOJsYnNoZ1nvsi9Q3U0d64h4HVOB-jibnQWIqk0MluvbEQZJ29hVUCiHSfJudCsDkGdW4v80TLDyMliw";

/// The public exponent `e` of `mock-rsa`, base64url without padding.
pub const RSA_E: &str = "AQAB";

/// TEST KEY ONLY: the private half of the published Ed25519 key `mock-ed25519` (PKCS#8 PEM).
pub const ED25519_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MC4CAQAwBQYDK2VwBCIEIOu5iwYzp2pCh1qyr4VqOT9xmlF/UmYVIanJOUUOWe01\n\
-----END PRIVATE KEY-----\n\
";

/// The public key `x` of `mock-ed25519`, base64url without padding.
pub const ED25519_X: &str = "t9trLMAVIad5klKnvJUVTjjEeDVAyt2vBHPkyBvyQzo";

/// TEST KEY ONLY: a second RSA 2048 key that is NOT published, for tokens that claim the kid
/// `mock-rsa` but were signed by someone else.
pub const OTHER_RSA_PRIVATE_KEY_PEM: &str = "\
-----BEGIN PRIVATE KEY-----\n\
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQCUJ6DpSbBLEBlk\n\
Twz1sOZY4GfevRIsCdsy6KtMCRqDgg71GXco53aax1j2qWqR/XfRTqTsWD9hObce\n\
GU/95XmGT872HdDxbW6xH8FEZeaGnH6BZ3aIlv8VGpH1GnD4B4cA5QR5EQbqaJqX\n\
4EpvBiZs61LJdiBD0KzI3/cuJkoirPVr0UXjOVc4ULbqvg361CAOAo49SApF3Ixk\n\
dkSoU3vXWdWFIjkVhhy80WA5Z936ut99JBHAISaNH1fWHlrJBAeuGi+ibnUkMFfk\n\
Oub3FUTu9eEhUToUQuew6H9ITyB+Zmjs1YRLGDRUI5E9RNJOxVhrAaYOjHLbXrbM\n\
8s/7HGNjAgMBAAECggEAAxq91ytqHzFEzjbsBbB+t4fdtsiWXiqY40LurLEGUzQ4\n\
eXiBf54bfH4SseKqjwN98xHBiGdkn4HWR49c872U4K61QYEuE3s00yD3ZckmTGFC\n\
BKJVGsucSuwBnA0HD+K58sB8r7BkjxGeEAm+lv+G5vbVNc9/rTe+XmfrwAos/sj8\n\
IoXbgWR0tpKbrGJUG6zdIcKeqPf1CIUTUxIIqozAjtVn74giGSzTT/EE8S9XnueX\n\
FSWD0oRP12KkQFI2TAVyb7+DtUat/VLsQpjxjRCn4xHh8Zcxc6P6OIBVg2nkKa23\n\
5Uu4pbcCWQ13SSQ4dMx5AGxS4BAaSg2l3ICopWgucQKBgQDGPHcV1DHJxvIYd8ga\n\
kXx4cpNMWWaTef8cafMDHmo10KTgJTNmHdt3yymL9I/9HIMWzYnZMUqby8MxgmCp\n\
leGevPvm2KDzJK90di/Ntn79bTI4oVuYxh7mgTAleMn8yPHMjFJh9xwiObKsJFNr\n\
jGBtAZiKY1rHSl1x9Zr2y2PmLQKBgQC/U1CohYeMviFLBVkIShShuphthTxd7lk/\n\
JO6LjkGhrzvQbNVnpyqAq5GzhffTXbzr1QLxEeoQ3J9LF4bn/xZcLalrCws60gRw\n\
pzOBnBh9ycOJe8gwAyNroBw7sTHFmRvJZv1U+AbnsMt2wvHZZs82wpv6WMkKx2qP\n\
G77f8/J5zwKBgQC106AnFYrVWPWWG8gfFnLkx7LzxMyhWLT2iverVKp20flo3rZW\n\
Y+x55I8nIBsyPoS+1agq31tfq3ZOYxfmdOONhipHg0uduXh1ijIurcWtDguShe5O\n\
IusU4koXFMOwaV/gDpVB5jaX7fREkM0zSH7pfR09UgRh54PukyigVc47wQKBgHs8\n\
CfcSUzYXfVBaOHe7Z8CodOgOaszB6qBehHxFfAbN3UQp5edm6FyKpkWxI+j0Nuzc\n\
fpGSjWahBMWUeOPUDa4AB2EYcvpHLm71c5qnVasoG5fhsBck3lrDfYwBXWK+dQRs\n\
Hv7s512zJcrwVGFI9G18OoWtTIlx2zQklfSgp+1HAoGACNK8qtegalEkfXWv1mzK\n\
jxdIZV8Fd1o1pTimvQEmW5WympUylGcXo6d9Of9ZdA1mKPi8gSavOYuniqC/7xF+\n\
5NOpsitBOjt87ZSjudzHEjXyZJfRPuvVVqO7D/ABjBB0zvtD7HmTt9EIbPtH6WAw\n\
IsmRkOvhc6QogYT+pLWAjew=\n\
-----END PRIVATE KEY-----\n\
";

/// Registers `GET /.well-known/jwks.json`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(JWKS_PATH, web::get().to(jwks_document));
}

/// The published key set: `mock-rsa` (RS256) and `mock-ed25519` (EdDSA), public halves only.
pub fn jwks() -> Value {
    json!({
        "keys": [
            {
                "kty": "RSA",
                "kid": RSA_KID,
                "alg": "RS256",
                "use": "sig",
                "n": RSA_N,
                "e": RSA_E,
            },
            {
                "kty": "OKP",
                "crv": "Ed25519",
                "kid": ED25519_KID,
                "alg": "EdDSA",
                "use": "sig",
                "x": ED25519_X,
            },
        ]
    })
}

/// The JWKS URL of a running mock: `http://127.0.0.1:{port}/.well-known/jwks.json`.
pub fn jwks_url(mock: &MockUpstream) -> String {
    format!("http://127.0.0.1:{}{JWKS_PATH}", mock.port())
}

async fn jwks_document() -> HttpResponse {
    HttpResponse::Ok().json(jwks())
}

/// The key [`sign_test_token`] signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// RS256 with the published key `mock-rsa`.
    Rsa,
    /// EdDSA with the published key `mock-ed25519`.
    Ed25519,
    /// HS256 with this shared secret (its raw bytes); no `kid`.
    Hs256(&'static str),
    /// RS256 with a key that is NOT published, under the kid `mock-rsa`: the signature must not
    /// verify.
    OtherRsa,
}

/// Signs `claims` (the JWT payload, as given) with `key` and returns the compact JWT, with `kid`
/// set for the RSA and Ed25519 keys.
///
/// For tests only. Returns an empty string if encoding fails (it cannot with these fixed keys
/// and a JSON value), so that it needs no panic outside tests; an empty token is rejected as
/// malformed anyway.
pub fn sign_test_token(claims: &Value, key: TestKey) -> String {
    let (algorithm, kid, encoding_key) = match key {
        TestKey::Rsa => (
            Algorithm::RS256,
            Some(RSA_KID),
            EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY_PEM.as_bytes()),
        ),
        TestKey::Ed25519 => (
            Algorithm::EdDSA,
            Some(ED25519_KID),
            EncodingKey::from_ed_pem(ED25519_PRIVATE_KEY_PEM.as_bytes()),
        ),
        TestKey::Hs256(secret) => (
            Algorithm::HS256,
            None,
            EncodingKey::from_secret(secret.as_bytes()),
        ),
        TestKey::OtherRsa => (
            Algorithm::RS256,
            Some(RSA_KID),
            EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE_KEY_PEM.as_bytes()),
        ),
    };
    let mut header = Header::new(algorithm);
    header.kid = kid.map(str::to_owned);
    encoding_key
        .and_then(|encoding_key| jsonwebtoken::encode(&header, claims, &encoding_key))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::jwk::{AlgorithmParameters, Jwk};

    use super::*;

    #[test]
    fn the_published_rsa_parameters_belong_to_the_private_key() {
        let key = EncodingKey::from_rsa_pem(RSA_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        let AlgorithmParameters::RSA(params) = jwk.algorithm else {
            panic!("not an RSA JWK: {jwk:?}");
        };
        assert_eq!((params.n.as_str(), params.e.as_str()), (RSA_N, RSA_E));
    }

    #[test]
    fn the_published_ed25519_key_belongs_to_the_private_key() {
        let key = EncodingKey::from_ed_pem(ED25519_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::EdDSA).unwrap();
        let AlgorithmParameters::OctetKeyPair(params) = jwk.algorithm else {
            panic!("not an OKP JWK: {jwk:?}");
        };
        assert_eq!(params.x, ED25519_X);
    }

    #[test]
    fn the_other_rsa_key_is_not_the_published_one() {
        let key = EncodingKey::from_rsa_pem(OTHER_RSA_PRIVATE_KEY_PEM.as_bytes()).unwrap();
        let jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
        let AlgorithmParameters::RSA(params) = jwk.algorithm else {
            panic!("not an RSA JWK: {jwk:?}");
        };
        assert_ne!(params.n, RSA_N);
    }

    #[test]
    fn every_test_key_signs_a_three_part_token() {
        let claims = json!({"sub": "u1", "exp": 4_000_000_000u64});
        for key in [
            TestKey::Rsa,
            TestKey::Ed25519,
            TestKey::Hs256("secret"),
            TestKey::OtherRsa,
        ] {
            let token = sign_test_token(&claims, key);
            assert_eq!(token.split('.').count(), 3, "{key:?}");
            assert!(token.split('.').all(|part| !part.is_empty()), "{key:?}");
        }
    }
}
