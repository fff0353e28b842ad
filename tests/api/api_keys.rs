//! Personal API keys: shown once, stored hashed, usable as bearer tokens, revocable.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_acts_for_its_account_until_revoked() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let (status, created) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&ada.token),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("tlk_"));
    assert!(secret.starts_with(created["prefix"].as_str().unwrap()));

    let (status, me) = app.me(&secret).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        me["id"],
        ada.account_id.as_str(),
        "the key acts as its account"
    );
    let id = app.new_thread(&secret, "made by a script").await;
    assert_eq!(app.get_thread(&ada.token, &id).await.0, StatusCode::OK);
    let events = app.chat_all(&secret, "scripted", "u1", "hi", None).await;
    assert_eq!(crate::helpers::streamed_text(&events), "Echo: hi");

    let (_, list) = app
        .call(Method::GET, "/v1/me/api-keys", Some(&ada.token), None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(
        list["data"][0].get("secret").is_none(),
        "the secret is shown once only"
    );
    let (status, body) = app
        .call(Method::POST, "/v1/auth/logout", Some(&secret), None)
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "not_a_session");

    let other = app.registered("bob@example.com").await;
    let key_id = created["id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{key_id}"),
            Some(&other.token),
            None,
        )
        .await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "another account's key is a 404"
    );
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/me/api-keys/{key_id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(app.me(&secret).await.0, StatusCode::UNAUTHORIZED);
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&ada.token),
            Some(json!({"name": ""})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
