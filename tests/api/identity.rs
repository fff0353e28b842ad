//! External identity: JWTs verified against a JWKS URL (the mock identity provider) or an
//! HS256 secret; `sub` maps to one account, a claim marks anonymous users, another admins.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;
use threadline::mock_upstream::identity::{TestKey, jwks_url, sign_test_token};

use crate::helpers::{TestApp, TestDb, assert_problem, spawn_on};

const ISSUER: &str = "https://auth.example";

async fn jwt_app(hs256: Option<&'static str>) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let jwks = jwks_url(&mock);
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.jwt.jwks_url = hs256.is_none().then_some(jwks);
        s.jwt.hs256_secret = hs256.map(Into::into);
        s.jwt.issuer = Some(ISSUER.into());
        s.jwt.anonymous_claim = threadline::identity::DEFAULT_ANONYMOUS_CLAIM.into();
        s.jwt.admin_claim = Some("role".into());
    })
    .await;
    (app, mock)
}

fn claims(sub: &str, extra: Value) -> Value {
    let mut c = json!({"sub": sub, "iss": ISSUER, "exp": chrono::Utc::now().timestamp() + 600});
    if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
        c.extend(extra.clone());
    }
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_token_is_one_account_per_subject_and_threads_follow_it() {
    let (app, _mock) = jwt_app(None).await;
    let token = sign_test_token(
        &claims("user_1", json!({"email": "ada@example.com"})),
        TestKey::Rsa,
    );
    let (status, me) = app.me(&token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["kind"], "external");
    assert_eq!(me["tier"], "free");
    let id = me["id"].as_str().unwrap().to_owned();
    let thread = app.new_thread(&token, "mine").await;

    // The same subject with another key of the JWKS is the same account.
    let again = sign_test_token(&claims("user_1", json!({})), TestKey::Ed25519);
    let (_, me) = app.me(&again).await;
    assert_eq!(me["id"], id.as_str());
    let (status, _) = app.get_thread(&again, &thread).await;
    assert_eq!(status, StatusCode::OK);

    let other = sign_test_token(&claims("user_2", json!({})), TestKey::Rsa);
    let (status, _) = app.get_thread(&other, &thread).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another subject's thread");

    let guest = sign_test_token(
        &claims("guest_1", json!({"isAnonymous": true})),
        TestKey::Rsa,
    );
    let (_, me) = app.me(&guest).await;
    assert_eq!(me["tier"], "anonymous");

    let admin = sign_test_token(&claims("boss", json!({"role": "admin"})), TestKey::Rsa);
    let (status, body) = app
        .call(Method::GET, "/v1/admin/usage", Some(&admin), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(Method::GET, "/v1/admin/usage", Some(&token), None)
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_forged_and_foreign_tokens_are_refused() {
    let (app, _mock) = jwt_app(None).await;
    let expired = json!({"sub": "u", "iss": ISSUER, "exp": chrono::Utc::now().timestamp() - 3600});
    let (status, body) = app.me(&sign_test_token(&expired, TestKey::Rsa)).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "token_expired");
    let (status, body) = app
        .me(&sign_test_token(&claims("u", json!({})), TestKey::OtherRsa))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "token_signature_invalid",
    );
    let hs = sign_test_token(&claims("u", json!({})), TestKey::Hs256("shared-secret"));
    let (status, body) = app.me(&hs).await;
    assert_eq!(
        status,
        StatusCode::UNAUTHORIZED,
        "an HS256 token against a JWKS: {body}"
    );
    let wrong_issuer = json!({"sub": "u", "iss": "https://evil.example", "exp": chrono::Utc::now().timestamp() + 600});
    let (status, body) = app.me(&sign_test_token(&wrong_issuer, TestKey::Rsa)).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "token_claim_invalid",
    );
    // Session tokens keep working beside JWTs.
    let anon = app.anonymous().await;
    let (status, _) = app.me(&anon.token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hs256_secret_verifies_tokens_signed_with_it_only() {
    let (app, _mock) = jwt_app(Some("better-auth-secret")).await;
    let good = sign_test_token(
        &claims("u1", json!({})),
        TestKey::Hs256("better-auth-secret"),
    );
    let (status, body) = app.me(&good).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let bad = sign_test_token(&claims("u1", json!({})), TestKey::Hs256("another-secret"));
    let (status, body) = app.me(&bad).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "token_signature_invalid",
    );
}
