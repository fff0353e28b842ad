//! MCP servers: admins register them (`/v1/admin/mcp-servers`), their tools are listed from a
//! real MCP server (rmcp's server side, `mcp_server.rs`), offered to tool-capable models as
//! `server__tool` beside the built-in tools and called through the same loop; a server that
//! is down offers nothing and the reply still completes.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::{MockUpstream, script_knob};

use crate::helpers::{
    SseEvent, TestApp, TestDb, User, assert_problem, model_spec, spawn_on, streamed_text,
};
use crate::mcp_server::McpTestServer;

const TOKEN: &str = "mcp-test-token";

struct McpApp {
    app: TestApp,
    mock: MockUpstream,
    admin: User,
    user: User,
}

/// A server with OpenAI and Anthropic on the mock upstream, an admin and an anonymous user.
async fn mcp_app() -> McpApp {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let root = format!("http://127.0.0.1:{}", mock.port());
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), format!("{root}/v1").into()),
            ("ANTHROPIC_API_KEY".into(), "k".into()),
            ("ANTHROPIC_BASE_URL".into(), root.clone().into()),
        ]);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    let user = app.anonymous().await;
    McpApp {
        app,
        mock,
        admin,
        user,
    }
}

/// A loopback URL nothing listens on.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}/mcp")
}

impl McpApp {
    async fn register(&self, name: &str, url: &str, secret: Option<&str>) {
        let (status, body) = self
            .app
            .put_mcp_server(
                &self.admin,
                name,
                json!({"url": url, "secret": secret, "enabled": true}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Defines `id` on `provider`, tool-capable, answering `script`.
    async fn model(&self, id: &str, provider: &str, script: Value) {
        let mut spec = model_spec(provider, &format!("mock:len=2,{}", script_knob(&script)), 1);
        spec["capabilities"] = json!(["tools"]);
        self.app.define_model(&self.admin, id, spec).await;
    }

    async fn send(&self, thread: &str, model: &str, tools: Value) -> reqwest::Response {
        let extra = json!({ "tools": tools });
        self.app
            .chat_with(&self.user.token, thread, model, "use the tools", extra)
            .await
    }

    async fn send_all(&self, thread: &str, model: &str, tools: Value) -> Vec<SseEvent> {
        let extra = json!({ "tools": tools });
        self.app
            .chat_with_all(&self.user.token, thread, model, "use the tools", extra)
            .await
    }

    async fn tools_of(&self, name: &str) -> (StatusCode, Value) {
        self.app
            .call(
                Method::GET,
                &format!("/v1/admin/mcp-servers/{name}/tools"),
                Some(&self.admin.token),
                None,
            )
            .await
    }

    /// The requests the mock received on `route`, oldest first.
    fn requests_to(&self, route: &str) -> Vec<Value> {
        self.mock
            .recorded()
            .into_iter()
            .filter(|r| r.path.ends_with(route))
            .map(|r| r.body)
            .collect()
    }
}

/// The parts of `kind`, in order.
fn of_kind(events: &[SseEvent], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.kind() == kind)
        .map(SseEvent::json)
        .collect()
}

/// The function names offered in an OpenAI request.
fn offered(request: &Value) -> Vec<String> {
    request["tools"]
        .as_array()
        .map(|tools| {
            tools
                .iter()
                .map(|t| t["function"]["name"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admins_register_change_and_remove_mcp_servers_and_nobody_else_can() {
    let t = mcp_app().await;
    let someone = t.app.registered("ada@example.com").await;
    let (status, body) = t
        .app
        .call(
            Method::GET,
            "/v1/admin/mcp-servers",
            Some(&someone.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = t
        .app
        .put_mcp_server(
            &someone,
            "docs",
            json!({"url": "http://127.0.0.1:1/mcp", "enabled": true}),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = t
        .app
        .call(
            Method::DELETE,
            "/v1/admin/mcp-servers/docs",
            Some(&someone.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");

    // Bad input is a 422 naming the field.
    for (name, body, field) in [
        (
            "docs",
            json!({"url": "ftp://example.com/mcp", "enabled": true}),
            "url",
        ),
        ("docs", json!({"url": "not a url", "enabled": true}), "url"),
        (
            "docs",
            json!({"url": "http://x/mcp", "secret": "", "enabled": true}),
            "secret",
        ),
        (
            "Docs",
            json!({"url": "http://x/mcp", "enabled": true}),
            "name",
        ),
        (
            "a.b",
            json!({"url": "http://x/mcp", "enabled": true}),
            "name",
        ),
        ("docs", json!({"url": "http://x/mcp"}), "body"),
        (
            "docs",
            json!({"url": "http://x/mcp", "enabled": true, "extra": 1}),
            "body",
        ),
    ] {
        let (status, problem) = t.app.put_mcp_server(&t.admin, name, body.clone()).await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(problem["errors"][field].is_array(), "{body}: {problem}");
    }

    // Registered with a secret: shown as `has_secret`, never the secret itself.
    let (status, server) = t
        .app
        .put_mcp_server(
            &t.admin,
            "docs",
            json!({"url": "http://127.0.0.1:1/mcp", "secret": "s3cret-value", "enabled": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{server}");
    assert_eq!(server["name"], "docs");
    assert_eq!(server["has_secret"], true);
    assert_eq!(server["enabled"], true);
    assert!(!server.to_string().contains("s3cret"), "{server}");
    // Left out, the secret stays; `null` removes it.
    let (_, server) = t
        .app
        .put_mcp_server(
            &t.admin,
            "docs",
            json!({"url": "http://127.0.0.1:2/mcp", "enabled": false}),
        )
        .await;
    assert_eq!(server["has_secret"], true, "{server}");
    assert_eq!(server["url"], "http://127.0.0.1:2/mcp");
    assert_eq!(server["enabled"], false);
    let (status, list) = t
        .app
        .call(
            Method::GET,
            "/v1/admin/mcp-servers",
            Some(&t.admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["name"], "docs");
    assert!(!list.to_string().contains("s3cret"), "{list}");
    let (_, server) = t
        .app
        .put_mcp_server(
            &t.admin,
            "docs",
            json!({"url": "http://127.0.0.1:2/mcp", "secret": null, "enabled": false}),
        )
        .await;
    assert_eq!(server["has_secret"], false, "{server}");

    let (status, _) = t
        .app
        .call(
            Method::DELETE,
            "/v1/admin/mcp-servers/docs",
            Some(&t.admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, list) = t
        .app
        .call(
            Method::GET,
            "/v1/admin/mcp-servers",
            Some(&t.admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list["data"], json!([]));
    for path in [
        "/v1/admin/mcp-servers/docs",
        "/v1/admin/mcp-servers/Not.A.Name",
    ] {
        let (status, body) = t
            .app
            .call(Method::DELETE, path, Some(&t.admin.token), None)
            .await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, body) = t.tools_of("docs").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_route_lists_a_real_servers_tools_with_its_secret_and_a_down_server_is_a_502() {
    let t = mcp_app().await;
    let server = McpTestServer::with_token(TOKEN).await;
    t.register("test", &server.url, Some(TOKEN)).await;
    let (status, listed) = t.tools_of("test").await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["server"], "test");
    let names: Vec<&str> = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 3, "{listed}");
    for name in ["test.echo", "test.add", "test.fail"] {
        assert!(names.contains(&name), "{name}: {listed}");
    }
    let echo = listed["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tool"] == "echo")
        .unwrap();
    assert_eq!(echo["wire_name"], "test__echo");
    assert_eq!(echo["description"], "Say the text back");
    assert_eq!(echo["input_schema"]["properties"]["text"]["type"], "string");

    // Without the secret the server refuses: a 502 with the reason.
    t.register("nokey", &server.url, None).await;
    let (status, body) = t.tools_of("nokey").await;
    assert_problem(status, &body, StatusCode::BAD_GATEWAY, "upstream_error");
    t.register("down", &closed_port_url(), None).await;
    let (status, body) = t.tools_of("down").await;
    assert_problem(status, &body, StatusCode::BAD_GATEWAY, "upstream_error");
    assert!(
        body["detail"].as_str().unwrap().contains("MCP server"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_calls_a_real_mcp_servers_tools_and_reads_their_results() {
    let t = mcp_app().await;
    let server = McpTestServer::with_token(TOKEN).await;
    t.register("test", &server.url, Some(TOKEN)).await;
    let script = json!([
        {"call": [
            {"name": "test__echo", "arguments": {"text": "hello from mcp"}},
            {"name": "test__add", "arguments": {"a": 20, "b": 22}},
        ]},
        {"text": "got {result}"},
    ]);
    for (provider, route) in [("openai", "/chat/completions"), ("anthropic", "/messages")] {
        t.mock.clear_recorded();
        let model = format!("{provider}-mcp");
        t.model(&model, provider, script.clone()).await;
        let events = t
            .send_all(
                &format!("mcp-{provider}"),
                &model,
                json!(["test.echo", "test.add"]),
            )
            .await;
        let available = of_kind(&events, "tool-input-available");
        let names: Vec<&str> = available
            .iter()
            .map(|a| a["toolName"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["test__echo", "test__add"], "{provider}");
        assert_eq!(available[0]["input"], json!({"text": "hello from mcp"}));
        let outputs = of_kind(&events, "tool-output-available");
        assert_eq!(outputs.len(), 2, "{provider}: {outputs:?}");
        let output_of = |i: usize| {
            outputs
                .iter()
                .find(|o| o["toolCallId"] == available[i]["toolCallId"])
                .unwrap()["output"]
                .clone()
        };
        assert_eq!(output_of(0), "hello from mcp");
        assert_eq!(output_of(1), "42");
        assert!(of_kind(&events, "tool-output-error").is_empty());
        assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "stop");
        // The model was offered exactly the named tools, with their input schemas, and its
        // second request carried both results.
        let requests = t.requests_to(route);
        assert_eq!(requests.len(), 2, "{provider}");
        let first = requests[0].to_string();
        assert!(
            first.contains("test__echo") && first.contains("test__add"),
            "{first}"
        );
        assert!(
            !first.contains("test__fail") && !first.contains("read_site"),
            "{first}"
        );
        assert!(first.contains("Say the text back"), "{first}");
        let second = requests[1].to_string();
        assert!(second.contains("hello from mcp"), "{provider}: {second}");
        assert!(second.contains("42"), "{provider}: {second}");
        assert!(streamed_text(&events).starts_with("got "), "{provider}");
    }
    let first = &t.requests_to("/messages")[0];
    let echo = first["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "test__echo")
        .unwrap();
    assert_eq!(echo["input_schema"]["required"], json!(["text"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tool_is_offered_with_tools_true_and_a_failing_mcp_tool_is_a_tool_error() {
    let t = mcp_app().await;
    let server = McpTestServer::start().await;
    t.register("test", &server.url, None).await;
    t.model(
        "failing",
        "openai",
        json!([{"call": {"name": "test__fail", "arguments": {}}}, {"text": "it said {result}"}]),
    )
    .await;
    let events = t.send_all("fail", "failing", json!(true)).await;
    let errors = of_kind(&events, "tool-output-error");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap()
            .contains("failed on purpose"),
        "{}",
        errors[0]
    );
    assert_eq!(
        of_kind(&events, "tool-input-available")[0]["toolName"],
        "test__fail"
    );
    assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "stop");
    let requests = t.requests_to("/chat/completions");
    let mut names = offered(&requests[0]);
    names.sort();
    assert_eq!(
        names,
        ["read_site", "test__add", "test__echo", "test__fail"]
    );
    assert!(requests[1].to_string().contains("failed on purpose"));
    assert!(streamed_text(&events).starts_with("it said "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_down_offers_no_tools_and_the_reply_completes() {
    let t = mcp_app().await;
    let server = McpTestServer::start().await;
    t.register("test", &server.url, None).await;
    t.register("down", &closed_port_url(), None).await;
    t.model(
        "caller",
        "openai",
        json!([{"call": {"name": "down__echo", "arguments": {"text": "hi"}}}, {"text": "done"}]),
    )
    .await;
    for (thread, tools) in [
        ("all", json!(true)),
        ("named", json!(["down.echo", "test.echo"])),
    ] {
        t.mock.clear_recorded();
        let events = t.send_all(thread, "caller", tools).await;
        let requests = t.requests_to("/chat/completions");
        let names = offered(&requests[0]);
        assert!(names.contains(&"test__echo".to_owned()), "{names:?}");
        assert!(!names.iter().any(|n| n.starts_with("down__")), "{names:?}");
        let errors = of_kind(&events, "tool-output-error");
        assert_eq!(errors.len(), 1, "{thread}");
        assert!(
            errors[0]["errorText"]
                .as_str()
                .unwrap()
                .contains("no tool named")
        );
        assert_eq!(
            of_kind(&events, "finish")[0]["finishReason"],
            "stop",
            "{thread}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_goes_down_after_listing_makes_its_call_a_tool_error() {
    let t = mcp_app().await;
    let server = McpTestServer::start().await;
    t.register("flaky", &server.url, None).await;
    // Listing caches its tools on this node; then the server goes away.
    let (status, _) = t.tools_of("flaky").await;
    assert_eq!(status, StatusCode::OK);
    drop(server);
    t.model(
        "flaky-caller",
        "openai",
        json!([{"call": {"name": "flaky__echo", "arguments": {"text": "hi"}}}, {"text": "done"}]),
    )
    .await;
    let events = t
        .send_all("flaky", "flaky-caller", json!(["flaky.echo"]))
        .await;
    assert_eq!(
        offered(&t.requests_to("/chat/completions")[0]),
        ["flaky__echo"]
    );
    let errors = of_kind(&events, "tool-output-error");
    assert_eq!(errors.len(), 1, "{events:?}");
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap()
            .contains("MCP server"),
        "{}",
        errors[0]
    );
    assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_or_disabled_mcp_tools_are_refused_and_disabled_servers_are_not_offered() {
    let t = mcp_app().await;
    let server = McpTestServer::start().await;
    t.register("test", &server.url, None).await;
    t.model("m", "openai", json!([{"text": "plain"}])).await;
    for tools in [
        json!(["nosuch.echo"]),
        json!(["test.nosuch"]),
        json!(["test."]),
    ] {
        let res = t.send("refused", "m", tools.clone()).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(body["errors"]["tools"].is_array(), "{tools}: {body}");
    }
    let (status, _) = t
        .app
        .put_mcp_server(
            &t.admin,
            "test",
            json!({"url": server.url, "enabled": false}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let res = t.send("disabled", "m", json!(["test.echo"])).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    t.mock.clear_recorded();
    t.send_all("disabled-all", "m", json!(true)).await;
    assert_eq!(
        offered(&t.requests_to("/chat/completions")[0]),
        ["read_site"]
    );
}
