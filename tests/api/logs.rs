//! An operator who turns on debug logs sees what the server does, never credentials or what
//! users wrote.

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{LiveStream, Node, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_logs_hold_no_credentials_emails_or_message_text() {
    let db = TestDb::fresh().await;
    let node = Node::start_with(&db, &[("RUST_LOG", "debug")]).await;
    let client = reqwest::Client::new();
    let url = |path: &str| format!("{}{path}", node.address);
    let email = "secret-person@example.com";
    let registered: Value = client
        .post(url("/v1/auth/register"))
        .json(&json!({"email": email, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = registered["token"].as_str().unwrap().to_owned();
    let logged_in: Value = client
        .post(url("/v1/auth/login"))
        .json(&json!({"email": email, "password": "hunter2hunter2"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = client
        .post(url("/v1/me/api-keys"))
        .bearer_auth(&token)
        .json(&json!({"name": "ci"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let message = "my-very-private-diary-entry";
    let res = client
        .post(url("/v1/chat"))
        .bearer_auth(&token)
        .json(&json!({"id": "diary", "message": message}))
        .send()
        .await
        .unwrap();
    LiveStream::new(res).read_all().await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let log = node.log.clone();
    drop(node);

    let logs = std::fs::read_to_string(log).unwrap();
    assert!(logs.contains("DEBUG"), "debug logging was on");
    let second = logged_in["token"].as_str().unwrap();
    let secret = key["secret"].as_str().unwrap();
    for (what, needle) in [
        ("email", email.to_owned()),
        ("password", "hunter2hunter2".to_owned()),
        ("password hash", "$argon2id$".to_owned()),
        ("token", token.clone()),
        ("token hash", hex::encode(Sha256::digest(token.as_bytes()))),
        (
            "second token hash",
            hex::encode(Sha256::digest(second.as_bytes())),
        ),
        ("API key", secret.to_owned()),
        (
            "API key hash",
            hex::encode(Sha256::digest(secret.as_bytes())),
        ),
        ("message text", message.to_owned()),
    ] {
        assert!(!logs.contains(&needle), "the logs hold the {what}");
    }
}
