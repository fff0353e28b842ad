//! The web app served at `/`: its pages and files with their security headers, and the
//! browser session it signs in with (an HttpOnly cookie, CSRF-checked) beside bearer tokens.

use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{TestApp, TestDb, assert_problem, spawn_app, spawn_on};

/// A browser's cookies for the test server: `name=value` pairs from `Set-Cookie`.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    fn take(&mut self, res: &reqwest::Response) {
        for value in res.headers().get_all(header::SET_COOKIE) {
            let value = value.to_str().unwrap();
            let (pair, _) = value.split_once(';').unwrap_or((value, ""));
            let (name, val) = pair.split_once('=').unwrap();
            self.0.retain(|(n, _)| n != name);
            if !value.contains("Max-Age=0") {
                self.0.push((name.to_owned(), val.to_owned()));
            }
        }
    }

    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(n, v)| format!("{n}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Calls the API as the web app does: cookies, and the CSRF header when `csrf`.
async fn browser(
    app: &TestApp,
    jar: &mut Jar,
    method: Method,
    path: &str,
    body: Option<Value>,
    csrf: bool,
) -> (StatusCode, Value, header::HeaderMap) {
    let mut req = app
        .client
        .request(method, format!("{}{path}", app.address))
        .header("x-threadline-session", "cookie")
        .header(header::COOKIE, jar.header());
    if csrf && let Some(token) = jar.get("threadline_csrf") {
        req = req.header("x-csrf-token", token.to_owned());
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    jar.take(&res);
    let status = res.status();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    (status, json, headers)
}

#[tokio::test]
async fn the_app_is_served_at_the_root_under_a_strict_content_security_policy() {
    let app = spawn_app().await;
    for page in [
        "/",
        "/t/abc",
        "/s/xyz",
        "/login",
        "/settings/keys",
        "/admin/usage",
    ] {
        let res = app.request(Method::GET, page, None, None).await;
        assert_eq!(res.status(), StatusCode::OK, "{page}");
        let csp = res.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert!(csp.contains("require-trusted-types-for 'script'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert_eq!(res.headers()[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
        assert!(
            res.headers()[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        let html = res.text().await.unwrap();
        assert!(
            html.contains(r#"<script type="module" src="/assets/app.js">"#),
            "{page}"
        );
        assert!(!html.contains("<script>"), "no inline script in {page}");
    }
    let res = app.request(Method::GET, "/assets/app.js", None, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    let etag = res.headers()[header::ETAG].to_str().unwrap().to_owned();
    let again = app
        .client
        .get(format!("{}/assets/app.js", app.address))
        .header(header::IF_NONE_MATCH, &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn unknown_files_and_paths_outside_the_app_are_problems() {
    let app = spawn_app().await;
    let (status, body) = app.call(Method::GET, "/assets/nope.js", None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "route_not_found");
    let (status, body) = app
        .call(Method::GET, "/assets/../Cargo.toml", None, None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = app.call(Method::GET, "/wp-admin", None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "route_not_found");
    let (status, body) = app.call(Method::POST, "/", None, None).await;
    assert_problem(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn an_api_only_server_serves_no_app() {
    let app = spawn_on(TestDb::fresh().await, |s| s.web.enabled = false).await;
    let (status, body) = app.call(Method::GET, "/", None, None).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "route_not_found");
    let (status, _) = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn the_app_can_be_served_from_a_directory_while_it_is_developed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("assets")).unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>edited</p>").unwrap();
    std::fs::write(dir.path().join("assets/new.js"), "export {};").unwrap();
    let path = dir.path().to_owned();
    let app = spawn_on(TestDb::fresh().await, |s| s.web.dir = Some(path)).await;
    let res = app.request(Method::GET, "/t/x", None, None).await;
    assert_eq!(res.text().await.unwrap(), "<p>edited</p>");
    let res = app.request(Method::GET, "/assets/new.js", None, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.text().await.unwrap(), "export {};");
}

#[tokio::test]
async fn a_cookie_session_keeps_the_token_out_of_the_page() {
    let app = spawn_app().await;
    let mut jar = Jar::default();
    let (status, body, res) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/anonymous",
        None,
        false,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("token").is_none(), "no token in the JSON: {body}");
    assert!(body["account_id"].is_string() && body["session_id"].is_string());
    let cookies: Vec<_> = res
        .get_all(header::SET_COOKIE)
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("threadline_session="))
        .unwrap();
    assert!(
        session.contains("HttpOnly") && session.contains("SameSite=Strict"),
        "{session}"
    );
    let csrf = cookies
        .iter()
        .find(|c| c.starts_with("threadline_csrf="))
        .unwrap();
    assert!(
        !csrf.contains("HttpOnly"),
        "the page reads the CSRF token: {csrf}"
    );
    assert_eq!(res[header::CACHE_CONTROL], "no-store");

    let (status, me, _) = browser(&app, &mut jar, Method::GET, "/v1/me", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["id"], body["account_id"]);
    assert_eq!(me["kind"], "anonymous");
}

#[tokio::test]
async fn a_cookie_request_that_changes_something_needs_the_csrf_header() {
    let app = spawn_app().await;
    let mut jar = Jar::default();
    browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/anonymous",
        None,
        false,
    )
    .await;
    let thread = json!({"title": "forged"});
    let (status, body, _) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/threads",
        Some(thread.clone()),
        false,
    )
    .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "csrf_failed");
    // A wrong token is no better than none.
    let res = app
        .client
        .post(format!("{}/v1/threads", app.address))
        .header(header::COOKIE, jar.header())
        .header("x-csrf-token", "tl_guess")
        .json(&thread)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let (status, listed, _) =
        browser(&app, &mut jar, Method::GET, "/v1/threads", None, false).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        listed["data"],
        json!([]),
        "nothing was created by the refused requests"
    );

    let (status, body, _) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/threads",
        Some(thread),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}

#[tokio::test]
async fn a_bearer_token_wins_over_the_cookie_and_needs_no_csrf_header() {
    let app = spawn_app().await;
    let mut jar = Jar::default();
    browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/anonymous",
        None,
        false,
    )
    .await;
    let other = app.anonymous().await;
    let res = app
        .client
        .post(format!("{}/v1/threads", app.address))
        .header(header::COOKIE, jar.header())
        .bearer_auth(&other.token)
        .json(&json!({"title": "mine"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::CREATED);
    let body: Value = res.json().await.unwrap();
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v1/threads/{}", body["id"].as_str().unwrap()),
            Some(&other.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "the thread is the bearer's");
}

#[tokio::test]
async fn signing_up_from_the_browser_links_the_anonymous_threads() {
    let app = spawn_app().await;
    let mut jar = Jar::default();
    let (_, anon, _) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/anonymous",
        None,
        false,
    )
    .await;
    let (status, thread, _) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/threads",
        Some(json!({"title": "kept"})),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let body = json!({"email": "web@example.com", "password": "correct horse battery"});
    let (status, registered, _) = browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/register",
        Some(body),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{registered}");
    assert_eq!(registered["linked_account_id"], anon["account_id"]);
    assert!(registered.get("token").is_none());
    let (_, me, _) = browser(&app, &mut jar, Method::GET, "/v1/me", None, false).await;
    assert_eq!(me["email"], "web@example.com");
    let path = format!("/v1/threads/{}", thread["id"].as_str().unwrap());
    let (status, _, _) = browser(&app, &mut jar, Method::GET, &path, None, false).await;
    assert_eq!(status, StatusCode::OK, "the anonymous thread came along");
}

#[tokio::test]
async fn signing_out_clears_the_cookies_and_a_stale_cookie_does_not_block_signing_in() {
    let app = spawn_app().await;
    app.registered("back@example.com").await;
    let mut jar = Jar::default();
    browser(
        &app,
        &mut jar,
        Method::POST,
        "/v1/auth/anonymous",
        None,
        false,
    )
    .await;
    let stale = jar.header();
    let (status, _, _) = browser(&app, &mut jar, Method::POST, "/v1/auth/logout", None, true).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        jar.get("threadline_session").is_none(),
        "the cookie is cleared"
    );

    // A browser that kept the revoked session's cookie: the API says 401, and signing in
    // with it works (the dead cookie counts as no session).
    let mut kept = Jar::default();
    for pair in stale.split("; ") {
        let (n, v) = pair.split_once('=').unwrap();
        kept.0.push((n.into(), v.into()));
    }
    let (status, body, _) = browser(&app, &mut kept, Method::GET, "/v1/me", None, false).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let login = json!({"email": "back@example.com", "password": "correct horse battery"});
    let (status, body, _) = browser(
        &app,
        &mut kept,
        Method::POST,
        "/v1/auth/login",
        Some(login),
        true,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("linked_account_id").is_none());
    let (_, me, _) = browser(&app, &mut kept, Method::GET, "/v1/me", None, false).await;
    assert_eq!(me["email"], "back@example.com");
}

#[tokio::test]
async fn an_api_key_in_the_session_cookie_is_not_accepted() {
    let app = spawn_app().await;
    let user = app.registered("keys@example.com").await;
    let (status, key) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&user.token),
            Some(json!({"name": "k"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    let res = app
        .client
        .get(format!("{}/v1/me", app.address))
        .header(
            header::COOKIE,
            format!("threadline_session={}", key["secret"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}
