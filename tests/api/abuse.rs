//! What an attacker or a careless client tries: bursts of logins, guessed passwords, mass
//! sign-ups, bodies that never arrive, bad tokens with bad bodies, keys that manage keys.

use std::time::Duration;

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{Node, TestApp, TestDb, assert_problem, spawn_app, spawn_on};

/// The resident and peak memory of a process, in KiB (`VmRSS`, `VmHWM`).
fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    (field("VmRSS:"), field("VmHWM:"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_logins_is_served_within_bounded_memory() {
    let db = TestDb::fresh().await;
    let node = Node::start_with(
        &db,
        &[
            ("THREADLINE_LOGIN_FAILURES_PER_ACCOUNT", "0"),
            ("THREADLINE_LOGIN_FAILURES_PER_IP", "0"),
            ("THREADLINE_PASSWORD_HASHERS", "2"),
        ],
    )
    .await;
    let pid = node.child.id();
    let (before, _) = memory_kib(pid);
    let client = reqwest::Client::new();
    let statuses = join_all((0..100).map(|_| {
        client
            .post(format!("{}/v1/auth/login", node.address))
            .json(&json!({"email": "m@example.com", "password": "wrong-password"}))
            .send()
    }))
    .await;
    for res in statuses {
        let status = res.unwrap().status();
        assert!(
            status == StatusCode::UNAUTHORIZED || status == StatusCode::SERVICE_UNAVAILABLE,
            "{status}"
        );
    }
    let (after, peak) = memory_kib(pid);
    // Two hashers hold ~19 MiB each; a hundred unbounded checks held ~1 GiB.
    assert!(
        peak < before + 128 * 1024,
        "peak {peak} KiB from {before} KiB"
    );
    assert!(after < before + 96 * 1024, "{after} KiB from {before} KiB");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn guessed_passwords_lock_the_account_and_the_address_until_the_window_resets() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.limits.login_failures_per_account = 5;
        s.limits.login_failures_per_ip = 8;
    })
    .await;
    app.registered("m@example.com").await;
    for _ in 0..5 {
        let (status, body) = app.login("m@example.com", "wrong-password", None).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNAUTHORIZED,
            "invalid_credentials",
        );
    }
    let res = app
        .request(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "m@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&wait), "{wait}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(
        body["code"], "rate_limited",
        "the right password is refused too"
    );

    // Other accounts from this address still get their three remaining failures, then none.
    app.registered("n@example.com").await;
    for _ in 0..3 {
        let (status, _) = app.login("n@example.com", "wrong-password", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .login("n@example.com", "correct horse battery", None)
        .await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_limited_per_address() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.limits.registrations_per_hour = 3;
    })
    .await;
    for i in 0..3 {
        app.registered(&format!("r{i}@example.com")).await;
    }
    let (status, body) = app
        .register("r3@example.com", "correct horse battery", None)
        .await;
    assert_problem(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_proxy_the_forwarded_client_address_is_limited() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.limits.anonymous_per_minute = 2;
        s.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let sign_up = |forwarded: &'static str| {
        app.client
            .post(format!("{}/v1/auth/anonymous", app.address))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            sign_up("198.51.100.7, 127.0.0.2").await.unwrap().status(),
            StatusCode::CREATED
        );
    }
    assert_eq!(
        sign_up("198.51.100.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // A spoofed leftmost entry does not help: the nearest untrusted hop is the client.
    assert_eq!(
        sign_up("203.0.113.1, 198.51.100.7").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        sign_up("203.0.113.9").await.unwrap().status(),
        StatusCode::CREATED
    );
    let issued: Value = sign_up("192.0.2.4").await.unwrap().json().await.unwrap();
    let (_, sessions) = app.sessions(issued["token"].as_str().unwrap()).await;
    assert_eq!(
        sessions["data"][0]["ip"], "192.0.2.4",
        "the session records the client"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_trusted_proxies_forwarding_headers_are_ignored() {
    let app = spawn_on(TestDb::fresh().await, |s| s.limits.anonymous_per_minute = 1).await;
    let sign_up = |forwarded: &'static str| {
        app.client
            .post(format!("{}/v1/auth/anonymous", app.address))
            .header("x-forwarded-for", forwarded)
            .send()
    };
    assert_eq!(
        sign_up("198.51.100.1").await.unwrap().status(),
        StatusCode::CREATED
    );
    assert_eq!(
        sign_up("198.51.100.2").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
}

/// Sends a request head announcing a 1000-byte body, then one byte, and returns what the
/// server answers (or panics when it keeps the connection waiting past `patience`).
async fn stalled_body(app: &TestApp, method: &str, path: &str, token: Option<&str>) -> String {
    let address = app.address.trim_start_matches("http://");
    let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
    let auth = token.map_or(String::new(), |t| format!("authorization: Bearer {t}\r\n"));
    let head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {address}\r\ncontent-type: application/json\r\n\
         {auth}content-length: 1000\r\n\r\n{{"
    );
    socket.write_all(head.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "{method} {path}: still waiting for the body");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_stops_arriving_ends_the_request_with_a_408_problem() {
    let mock_secret = "whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=";
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.body_timeout = Duration::from_secs(1);
        s.billing.polar_webhook_secret = Some(mock_secret.into());
    })
    .await;
    let user = app.anonymous().await;
    let thread = app.new_thread(&user.token, "t").await;
    for (method, path, token) in [
        ("POST", "/v1/auth/login".to_owned(), None),
        ("POST", "/v1/auth/register".to_owned(), None),
        ("POST", "/v1/webhooks/polar".to_owned(), None),
        ("POST", "/v1/chat".to_owned(), Some(user.token.as_str())),
        (
            "PATCH",
            format!("/v1/threads/{thread}"),
            Some(user.token.as_str()),
        ),
    ] {
        let answer = stalled_body(&app, method, &path, token).await;
        assert!(answer.starts_with("HTTP/1.1 408"), "{path}: {answer}");
        assert!(
            answer.contains("application/problem+json"),
            "{path}: {answer}"
        );
        assert!(
            answer.contains("\"code\":\"request_timeout\""),
            "{path}: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_refused_before_the_body_is_looked_at() {
    let app = spawn_app().await;
    for _ in 0..10 {
        for (method, path) in [
            (Method::PUT, "/v1/admin/models/x"),
            (Method::POST, "/v1/me/api-keys"),
            (Method::POST, "/v1/admin/accounts/x/credits"),
            (Method::POST, "/v1/billing/checkout"),
            (Method::PATCH, "/v1/threads/x"),
            (Method::POST, "/v1/chat"),
        ] {
            let (status, body) = app
                .call(method, path, Some("tl_not-a-token"), Some(json!({})))
                .await;
            assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_errors_are_problems_too() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.billing.polar_webhook_secret = Some("whsec_dGVzdHNlY3JldHRlc3RzZWNyZXQ=".into());
        s.billing.stripe_webhook_secret = Some("whsec_test".into());
    })
    .await;
    for path in ["/v1/webhooks/polar", "/v1/webhooks/stripe"] {
        let res = app
            .client
            .post(format!("{}{path}", app.address))
            .header("content-type", "application/json")
            .body(vec![b' '; 300 * 1024])
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.headers()["content-type"],
            "application/problem+json",
            "{path}"
        );
        let (status, body) = (res.status(), res.json::<Value>().await.unwrap());
        assert_problem(
            status,
            &body,
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_key_cannot_manage_keys_or_sessions() {
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    let (status, key) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&user.token),
            Some(json!({"name": "ci"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let secret = key["secret"].as_str().unwrap();
    let key_id = key["id"].as_str().unwrap();
    for (method, path, body) in [
        (
            Method::POST,
            "/v1/me/api-keys".to_owned(),
            Some(json!({"name": "more"})),
        ),
        (Method::GET, "/v1/me/api-keys".to_owned(), None),
        (Method::DELETE, format!("/v1/me/api-keys/{key_id}"), None),
        (Method::GET, "/v1/me/sessions".to_owned(), None),
        (
            Method::DELETE,
            format!("/v1/me/sessions/{}", user.session_id),
            None,
        ),
    ] {
        let (status, problem) = app.call(method, &path, Some(secret), body).await;
        assert_problem(status, &problem, StatusCode::FORBIDDEN, "session_required");
    }
    // The key still works for what keys are for, and the session was not revoked.
    assert_eq!(app.me(secret).await.0, StatusCode::OK);
    assert_eq!(app.me(&user.token).await.0, StatusCode::OK);
}
