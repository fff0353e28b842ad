//! Accounts: anonymous sessions, registration, login, logout, sessions, linking.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{TestDb, assert_problem, spawn_app, spawn_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_anonymous_account_gets_a_token_that_identifies_it() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let (status, me) = app.me(&user.token).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], user.account_id.as_str());
    assert_eq!(me["kind"], "anonymous");
    assert_eq!(me["email"], serde_json::Value::Null);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn register_login_and_logout_work_with_email_and_password() {
    let app = spawn_app().await;
    let registered = app.registered("Ada@Example.com").await;
    let (_, me) = app.me(&registered.token).await;
    assert_eq!(me["kind"], "registered");
    assert_eq!(me["email"], "ada@example.com", "emails are normalised");

    let (status, login) = app
        .login("ada@example.com", "correct horse battery", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    assert_eq!(login["account_id"], registered.account_id.as_str());
    let second = login["token"].as_str().unwrap();
    assert_ne!(second, registered.token, "each login is a new session");

    assert_eq!(app.logout(second).await, StatusCode::NO_CONTENT);
    let (status, body) = app.me(second).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (status, _) = app.me(&registered.token).await;
    assert_eq!(status, StatusCode::OK, "other sessions stay valid");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_or_unknown_email_is_refused_alike() {
    let app = spawn_app().await;
    app.registered("ada@example.com").await;
    let (status, body) = app.login("ada@example.com", "wrong password", None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    let (status, body) = app.login("bob@example.com", "whatever123", None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_registered_once() {
    let app = spawn_app().await;
    app.registered("ada@example.com").await;
    let (status, body) = app
        .register("ADA@example.com", "another password", None)
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "email_taken");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registration_rejects_bad_emails_and_short_passwords() {
    let app = spawn_app().await;
    let (status, body) = app.register("not-an-email", "long enough pw", None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(body["errors"]["email"].is_array(), "{body}");
    let (status, body) = app.register("ada@example.com", "short", None).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(body["errors"]["password"].is_array(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_are_listed_and_revocable_but_only_ones_own() {
    let app = spawn_app().await;
    let first = app.registered("ada@example.com").await;
    let (_, second) = app
        .login("ada@example.com", "correct horse battery", None)
        .await;
    let second_token = second["token"].as_str().unwrap();

    let (status, list) = app.sessions(&first.token).await;
    assert_eq!(status, StatusCode::OK);
    let sessions = list["data"].as_array().unwrap();
    assert_eq!(sessions.len(), 2);
    let current: Vec<_> = sessions.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0]["id"], first.session_id.as_str());

    let other = app.anonymous().await;
    assert_eq!(
        app.revoke_session(&other.token, &first.session_id).await,
        StatusCode::NOT_FOUND,
        "another account's session is a 404"
    );
    assert_eq!(
        app.revoke_session(&first.token, second["session_id"].as_str().unwrap())
            .await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(app.me(second_token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(
        app.revoke_session(&first.token, second["session_id"].as_str().unwrap())
            .await,
        StatusCode::NOT_FOUND,
        "a revoked session is gone"
    );
    assert_eq!(
        app.revoke_session(&first.token, "not-a-uuid").await,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_with_an_anonymous_token_links_the_account_and_moves_its_threads() {
    let app = spawn_app().await;
    let anon = app.anonymous().await;
    let a = app.new_thread(&anon.token, "first").await;
    let b = app.new_thread(&anon.token, "second").await;

    let (status, body) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["linked_account_id"], anon.account_id.as_str());
    let token = body["token"].as_str().unwrap();

    let ids = app.all_thread_ids(token, "").await;
    assert_eq!(ids, vec![b.clone(), a.clone()]);
    let (status, _) = app.get_thread(token, &a).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        app.me(&anon.token).await.0,
        StatusCode::UNAUTHORIZED,
        "the anonymous session ends with the link"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_with_an_anonymous_token_links_it_into_the_existing_account() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let old = app.new_thread(&ada.token, "old").await;
    let anon = app.anonymous().await;
    let fresh = app.new_thread(&anon.token, "made while signed out").await;

    let (status, body) = app
        .login(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["account_id"], ada.account_id.as_str());
    assert_eq!(body["linked_account_id"], anon.account_id.as_str());
    let ids = app.all_thread_ids(&ada.token, "").await;
    assert_eq!(ids, vec![fresh, old]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_sign_ups_are_rate_limited_per_address() {
    let app = spawn_on(TestDb::fresh().await, |s| s.limits.anonymous_per_minute = 3).await;
    for _ in 0..3 {
        app.anonymous().await;
    }
    let res = app
        .request(Method::POST, "/v1/auth/anonymous", None, None)
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().get("retry-after").is_some());
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_or_missing_token_is_a_401_problem() {
    let app = spawn_app().await;
    for token in [None, Some("tl_not-a-real-token")] {
        let (status, body) = app.call(Method::GET, "/v1/me", token, None).await;
        assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/auth/register",
            Some("tl_forged"),
            Some(json!({"email": "x@example.com", "password": "long enough"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_are_recognised_by_their_configured_email() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    assert_eq!(app.me(&admin.token).await.1["is_admin"], true);
    let other = app.registered("ada@example.com").await;
    assert_eq!(app.me(&other.token).await.1["is_admin"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_threads_survive_a_restart() {
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    let id = app.new_thread(&user.token, "keep me").await;
    let db = app.stop().await;

    let app = spawn_on(db, |_| {}).await;
    let (status, thread) = app.get_thread(&user.token, &id).await;
    assert_eq!(status, StatusCode::OK, "the session and the thread survive");
    assert_eq!(thread["title"], "keep me");
    let (status, _) = app
        .login("ada@example.com", "correct horse battery", None)
        .await;
    assert_eq!(status, StatusCode::OK);
}
