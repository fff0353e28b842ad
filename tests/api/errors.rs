//! Bad input gets a clear 4xx problem+json, never a 5xx.

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

async fn raw(
    app: &crate::helpers::TestApp,
    method: Method,
    path: &str,
    token: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> (StatusCode, Value, String) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(token)
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body = res.json().await.unwrap_or(Value::Null);
    (status, body, ct)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_bodies_are_4xx_problems() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let json = Some("application/json");
    let cases: Vec<(Option<&str>, Vec<u8>, StatusCode, &str)> = vec![
        (json, b"{".to_vec(), StatusCode::BAD_REQUEST, "invalid_json"),
        (
            json,
            b"[1,2]".to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json,
            br#"{"title": 5}"#.to_vec(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            Some("text/plain"),
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            None,
            b"{}".to_vec(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
        ),
        (
            json,
            format!(r#"{{"title": "{}"}}"#, "x".repeat(70_000)).into_bytes(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
        ),
    ];
    for (content_type, body, expected, code) in cases {
        let (status, problem, ct) = raw(
            &app,
            Method::POST,
            "/v1/threads",
            &user.token,
            content_type,
            body,
        )
        .await;
        assert_problem(status, &problem, expected, code);
        assert_eq!(ct, "application/problem+json");
    }
    assert!(
        app.all_thread_ids(&user.token, "").await.is_empty(),
        "nothing was created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_and_wrong_methods_are_problems() {
    let app = spawn_app().await;
    let (status, body) = app.call(Method::GET, "/v1/nothing-here", None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "route_not_found");
    let (status, body) = app.call(Method::PUT, "/v1/threads", None, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    let (status, body) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::OK);
    let expected = if app.db.is_postgres() {
        "postgres"
    } else {
        "sqlite"
    };
    assert_eq!(body["database"], expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configured_browser_origins_get_cors_headers_and_others_do_not() {
    use crate::helpers::{TestDb, spawn_on};
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.cors_origins = vec!["https://chat.example.com".into()];
    })
    .await;
    let preflight = app
        .client
        .request(Method::OPTIONS, format!("{}/v1/chat", app.address))
        .header("origin", "https://chat.example.com")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "https://chat.example.com"
    );
    let res = app
        .client
        .post(format!("{}/v1/auth/anonymous", app.address))
        .header("origin", "https://chat.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        res.headers()["access-control-allow-origin"],
        "https://chat.example.com"
    );
    let exposed = res.headers()["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(
        exposed.contains("x-vercel-ai-ui-message-stream"),
        "{exposed}"
    );

    let other = app
        .client
        .post(format!("{}/v1/auth/anonymous", app.address))
        .header("origin", "https://evil.example.com")
        .send()
        .await
        .unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_configured_origins_requests_with_an_origin_still_work() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(format!("{}/v1/auth/anonymous", app.address))
        .header("origin", "http://127.0.0.1:3000")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    assert!(res.headers().get("access-control-allow-origin").is_none());
}

/// Asserts a 422 that names `field`.
fn assert_field(status: StatusCode, body: &Value, field: &str) {
    assert_problem(
        status,
        body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    assert!(body["errors"][field].is_array(), "{field}: {body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn control_characters_and_look_alikes_are_refused_with_the_field_named() {
    use serde_json::json;
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    let chat = |body: Value| app.call(Method::POST, "/v1/chat", Some(&user.token), Some(body));
    let (status, body) = chat(json!({"id": "t1", "message": "a\u{0}b"})).await;
    assert_field(status, &body, "messages");
    let (status, body) = chat(json!({
        "id": "t1",
        "messages": [{"id": "../../x\u{0}", "role": "user", "parts": [{"type": "text", "text": "hi"}]}],
    }))
    .await;
    assert_field(status, &body, "messages");
    let (status, body) = chat(json!({"id": "t1", "message": "hi", "trigger": "bogus"})).await;
    assert_field(status, &body, "trigger");
    let (status, body) =
        chat(json!({"id": "t1", "trigger": "regenerate-message", "messageId": "a/b"})).await;
    assert_field(status, &body, "messageId");
    assert_eq!(
        app.get_thread(&user.token, "t1").await.0,
        StatusCode::NOT_FOUND
    );

    for email in [
        "x\u{0}@example.com",
        "admin\u{200b}@example.com",
        "a\u{202e}b@example.com",
    ] {
        let (status, body) = app.register(email, "correct horse battery", None).await;
        assert_field(status, &body, "email");
    }
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&user.token),
            Some(json!({"name": "ci\u{0}"})),
        )
        .await;
    assert_field(status, &body, "name");
    for (patch, field) in [
        (json!({"nickname": "A\u{0}da"}), "nickname"),
        (json!({"biography": "bell\u{7}"}), "biography"),
        (json!({"pinned_models": ["nope"]}), "pinned_models"),
        (json!({"pinned_models": ["echo", "echo"]}), "pinned_models"),
        (json!({"default_model": "nope"}), "default_model"),
    ] {
        let (status, body) = app
            .call(
                Method::PATCH,
                "/v1/me/preferences",
                Some(&user.token),
                Some(patch),
            )
            .await;
        assert_field(status, &body, field);
    }
    // Line breaks and tabs are prose; emoji joined with zero-width joiners are a name.
    let (status, body) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&user.token),
            Some(json!({"biography": "line one\n\tline two", "nickname": "👩\u{200d}💻 Ada"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
