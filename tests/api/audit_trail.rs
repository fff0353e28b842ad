//! The admin audit trail (`GET /v1/admin/audit`): every admin's change with the admin and the
//! request id that caused it, newest first, filtered by time and actor, paged; nobody else's
//! actions, and no secret.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem, model_spec, spawn_app};

/// Sends `body` to `path` as `admin` with request id `request_id`.
async fn admin_call(
    app: &TestApp,
    admin: &User,
    method: Method,
    path: &str,
    request_id: &str,
    body: Option<Value>,
) -> StatusCode {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .bearer_auth(&admin.token)
        .header("x-request-id", request_id);
    if let Some(body) = body {
        req = req.json(&body);
    }
    req.send().await.unwrap().status()
}

/// The trail as `who` reads it with `query`, once it has at least `expect` entries.
async fn trail(app: &TestApp, who: &User, query: &str, expect: usize) -> Value {
    let mut body = Value::Null;
    for _ in 0..200 {
        let (status, b) = app
            .call(
                Method::GET,
                &format!("/v1/admin/audit{query}"),
                Some(&who.token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{b}");
        body = b;
        if body["data"].as_array().unwrap().len() >= expect {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    panic!("the trail did not reach {expect} entries: {body}");
}

#[tokio::test]
async fn every_admin_change_is_listed_with_its_admin_and_request() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    let user = app.registered("user@example.com").await;

    let model = admin_call(
        &app,
        &admin,
        Method::PUT,
        "/v1/admin/models/audited-model",
        "req-model",
        Some(model_spec("echo", "echo", 1)),
    )
    .await;
    assert_eq!(model, StatusCode::OK);
    let grant = admin_call(
        &app,
        &admin,
        Method::POST,
        &format!("/v1/admin/accounts/{}/credits", user.account_id),
        "req-grant",
        Some(json!({"amount": 40, "reason": "goodwill"})),
    )
    .await;
    assert_eq!(grant, StatusCode::OK);
    let mcp = admin_call(
        &app,
        &admin,
        Method::PUT,
        "/v1/admin/mcp-servers/docs",
        "req-mcp",
        Some(json!({"url": "http://127.0.0.1:9/mcp", "secret": "very-secret-bearer", "enabled": false})),
    )
    .await;
    assert_eq!(mcp, StatusCode::OK);
    let removed = admin_call(
        &app,
        &admin,
        Method::DELETE,
        "/v1/admin/mcp-servers/docs",
        "req-mcp-remove",
        None,
    )
    .await;
    assert_eq!(removed, StatusCode::NO_CONTENT);
    // The user's own actions are not admin actions.
    let thread = app.new_thread(&user.token, "not audited").await;
    let reply = app
        .chat(&user.token, &thread, "u1", "hello there", None)
        .await;
    assert_eq!(reply.status(), StatusCode::OK);
    app.wait_reply_done(&user.token, &thread).await;

    let page = trail(&app, &admin, "", 4).await;
    let entries = page["data"].as_array().unwrap();
    let seen: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| {
            (
                e["event_type"].as_str().unwrap(),
                e["request_id"].as_str().unwrap(),
                e["target"]["type"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("McpServerRemoved", "req-mcp-remove", "mcp_server"),
            ("McpServerRegistered", "req-mcp", "mcp_server"),
            ("CreditsAdded", "req-grant", "account"),
            ("ModelAdded", "req-model", "model"),
        ],
        "{page}"
    );
    for e in entries {
        assert_eq!(e["actor"], admin.account_id.as_str());
        assert_eq!(e["actor_email"], "admin@example.com");
    }
    let grant = &entries[2];
    assert_eq!(grant["target"]["id"], user.account_id.as_str());
    assert_eq!(grant["details"]["amount"], 40);
    assert_eq!(entries[1]["details"]["secret"], true);
    assert!(!page.to_string().contains("very-secret-bearer"), "{page}");
    assert_eq!(entries[3]["target"]["id"], "audited-model");

    // One admin's actions; another actor has none.
    let mine = trail(&app, &admin, &format!("?actor={}", admin.account_id), 4).await;
    assert_eq!(mine["data"].as_array().unwrap().len(), 4);
    let theirs = trail(&app, &admin, &format!("?actor={}", user.account_id), 0).await;
    assert_eq!(theirs["data"], json!([]));

    // Paged newest first: the pages together are the whole trail, in order.
    let mut cursor: Option<String> = None;
    let mut paged = Vec::new();
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=3&cursor={c}"),
            None => "?limit=3".to_owned(),
        };
        let page = trail(&app, &admin, &query, 1).await;
        paged.extend(page["data"].as_array().unwrap().iter().cloned());
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(&paged, entries);

    // Time bounds: everything falls between yesterday and today; nothing is in the future.
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap();
    let days = trail(&app, &admin, &format!("?from={yesterday}&to={today}"), 4).await;
    assert_eq!(days["data"].as_array().unwrap().len(), 4);
    let newest = entries[0]["at"].as_str().unwrap();
    let after = trail(&app, &admin, &format!("?from={}", urlencode(newest)), 1).await;
    assert_eq!(after["data"].as_array().unwrap().len(), 1, "{after}");
    let before = trail(&app, &admin, &format!("?to={}", urlencode(newest)), 3).await;
    assert_eq!(before["data"].as_array().unwrap().len(), 3, "{before}");

    // Only admins read it; bad bounds and cursors are the caller's mistakes.
    let (status, body) = app
        .call(Method::GET, "/v1/admin/audit", Some(&user.token), None)
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    for (query, status, code) in [
        (
            "?from=last-week",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?from=2026-02-02&to=2026-02-01",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?limit=500",
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            "?cursor=not-ours",
            StatusCode::BAD_REQUEST,
            "invalid_cursor",
        ),
        ("?who=me", StatusCode::BAD_REQUEST, "invalid_query"),
    ] {
        let (got, body) = app
            .call(
                Method::GET,
                &format!("/v1/admin/audit{query}"),
                Some(&admin.token),
                None,
            )
            .await;
        assert_problem(got, &body, status, code);
    }
}

/// Percent-encodes the `+` and `:` of an RFC 3339 time for a query string.
fn urlencode(s: &str) -> String {
    s.replace(':', "%3A").replace('+', "%2B")
}
