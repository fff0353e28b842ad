//! Tools: the model calls `web_search` and `read_site` in a bounded multi-step loop (all three
//! wire formats, against the mock upstream and its mock Exa), a search or a research run chosen
//! for the message, their credits, the UI stream's tool and data parts, stop and resume in the
//! middle of a tool step, and the thread view afterwards.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::{MockUpstream, script_knob};
use threadline_domain::catalog::Tier;
use threadline_domain::plans::{Meter, MeterRule, Plans};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::{
    LiveStream, SseEvent, TestApp, TestDb, User, assert_problem, model_spec, parse_sse, spawn_on,
    streamed_text,
};

/// The three providers, their catalog model for `upstream`, and the mock route they call.
const FORMATS: [(&str, &str); 3] = [
    ("openai", "/chat/completions"),
    ("anthropic", "/messages"),
    ("gemini", ":streamGenerateContent"),
];

/// A page server on loopback (allow-listed for the fetcher): every request gets `html` after
/// `delay`. Returns its `http://127.0.0.1:{port}` root.
async fn page_server(html: &'static str, delay: Duration) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                tokio::time::sleep(delay).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\n\
                     content-length: {}\r\nconnection: close\r\n\r\n{html}",
                    html.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

const PAGE: &str = "<html><head><title>Ferris</title></head><body><nav>Home | About</nav>\
    <main><h1>Ferris the crab</h1><p>Ferris is the mascot of Rust.</p></main></body></html>";

struct ToolsApp {
    app: TestApp,
    mock: MockUpstream,
    user: User,
    admin: User,
}

/// A server with the three providers on the mock, Exa on the mock, `pages` allow-listed, a
/// step limit of `steps`, and anonymous plans of 3 searches and 1 research run a day.
async fn tools_app(steps: u32, pages: &str) -> ToolsApp {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let root = format!("http://127.0.0.1:{}", mock.port());
    let page_host = pages.trim_start_matches("http://").to_owned();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), format!("{root}/v1").into()),
            ("ANTHROPIC_API_KEY".into(), "k".into()),
            ("ANTHROPIC_BASE_URL".into(), root.clone().into()),
            ("GEMINI_API_KEY".into(), "k".into()),
            ("GEMINI_BASE_URL".into(), root.clone().into()),
        ]);
        s.tools.exa_api_key = Some("exa-key".into());
        s.tools.exa_base_url = root;
        s.tools.max_steps = steps;
        s.fetch_allow_hosts = vec![page_host];
        let mut plans = Plans::default();
        let anonymous = plans.tiers.entry(Tier::Anonymous).or_default();
        anonymous
            .meters
            .insert(Meter::WebSearches, MeterRule::daily(3));
        anonymous
            .meters
            .insert(Meter::ResearchRuns, MeterRule::daily(1));
        s.plans = Arc::new(plans);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    let user = app.anonymous().await;
    ToolsApp {
        app,
        mock,
        user,
        admin,
    }
}

impl ToolsApp {
    /// Defines `id` on `provider` answering `script` (then `len` words), with the `tools`
    /// capability unless `plain`.
    async fn model(&self, id: &str, provider: &str, script: Value, plain: bool) {
        let mut spec = model_spec(provider, &format!("mock:len=2,{}", script_knob(&script)), 1);
        if !plain {
            spec["capabilities"] = json!(["tools"]);
        }
        self.app.define_model(&self.admin, id, spec).await;
    }

    async fn send(&self, thread: &str, model: &str, extra: Value) -> reqwest::Response {
        let text = "tell me about rust";
        self.app
            .chat_with(&self.user.token, thread, model, text, extra)
            .await
    }

    async fn send_all(&self, thread: &str, model: &str, extra: Value) -> Vec<SseEvent> {
        let text = "tell me about rust";
        self.app
            .chat_with_all(&self.user.token, thread, model, text, extra)
            .await
    }

    /// What the caller has used of `meter` today.
    async fn used(&self, meter: &str) -> u64 {
        let (status, body) = self
            .app
            .call(Method::GET, "/v1/me/usage", Some(&self.user.token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["meters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["meter"] == meter)
            .map_or(0, |m| m["used"].as_u64().unwrap())
    }
}

fn kinds(events: &[SseEvent]) -> Vec<String> {
    events.iter().map(SseEvent::kind).collect()
}

/// The parts of `kind`, in order.
fn of_kind(events: &[SseEvent], kind: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.kind() == kind)
        .map(SseEvent::json)
        .collect()
}

/// The requests the mock received on `route`, oldest first.
fn requests_to(mock: &MockUpstream, route: &str) -> Vec<Value> {
    mock.recorded()
        .into_iter()
        .filter(|r| r.path.ends_with(route))
        .map(|r| r.body)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_searches_then_answers_from_the_result_in_each_format() {
    let t = tools_app(5, "http://127.0.0.1:1").await;
    let script = json!([
        {"call": {"name": "web_search", "arguments": {"query": "rust"}}},
        {"text": "found {result}"},
    ]);
    for (n, (provider, route)) in FORMATS.into_iter().enumerate() {
        t.mock.clear_recorded();
        let model = format!("{provider}-tools");
        t.model(&model, provider, script.clone(), false).await;
        let thread = format!("search-{provider}");
        let events = t
            .send_all(&thread, &model, json!({"tools": ["web_search"]}))
            .await;
        let kinds = kinds(&events);
        // One step that calls the tool, its result, then a second step that answers.
        let first_available = kinds
            .iter()
            .position(|k| k == "tool-input-available")
            .unwrap();
        let output = kinds
            .iter()
            .position(|k| k == "tool-output-available")
            .unwrap();
        let boundary = kinds.iter().position(|k| k == "finish-step").unwrap();
        let text = kinds.iter().position(|k| k == "text-delta").unwrap();
        assert_eq!(kinds[1], "start-step", "{kinds:?}");
        assert!(kinds[2] == "tool-input-start", "{kinds:?}");
        assert!(
            first_available < output && output < boundary && boundary < text,
            "{provider}: {kinds:?}"
        );
        assert_eq!(kinds[boundary + 1], "start-step", "{kinds:?}");
        assert_eq!(kinds.iter().filter(|k| *k == "start-step").count(), 2);
        assert_eq!(kinds.iter().filter(|k| *k == "finish-step").count(), 2);
        let available = &of_kind(&events, "tool-input-available")[0];
        assert_eq!(available["toolName"], "web_search");
        assert_eq!(available["input"], json!({"query": "rust"}));
        let output = &of_kind(&events, "tool-output-available")[0];
        assert_eq!(output["toolCallId"], available["toolCallId"]);
        assert_eq!(output["output"][0]["url"], "https://example.com/rust/1");
        assert_eq!(
            of_kind(&events, "finish")[0]["finishReason"],
            "stop",
            "{provider}"
        );
        // The model's second request carried the result; its answer quotes it.
        let requests = requests_to(&t.mock, route);
        assert_eq!(requests.len(), 2, "{provider}");
        assert!(requests[0].to_string().contains("web_search"), "{provider}");
        assert!(
            requests[1].to_string().contains("example.com/rust/1"),
            "{provider}: {}",
            requests[1]
        );
        assert!(streamed_text(&events).starts_with("found "), "{provider}");
        // The search went to Exa once and spent one credit.
        assert_eq!(requests_to(&t.mock, "/search").len(), 1);
        assert_eq!(t.used("web_searches").await, n as u64 + 1);

        // The thread shows the call with its result, then the answer; the usage is both steps'.
        let thread_view = t.app.wait_reply_done(&t.user.token, &thread).await;
        let reply = &thread_view["messages"][1];
        let parts = reply["parts"].as_array().unwrap();
        let tool = parts
            .iter()
            .position(|p| p["type"] == "dynamic-tool")
            .unwrap();
        assert_eq!(parts[tool]["state"], "output-available", "{parts:?}");
        assert_eq!(parts[tool]["toolName"], "web_search");
        assert_eq!(parts[tool + 1]["type"], "step-start", "{parts:?}");
        assert!(
            parts[tool + 2]["text"]
                .as_str()
                .unwrap()
                .starts_with("found "),
            "{parts:?}"
        );
        // Output tokens: the call's 5 argument pieces (`{"`, `query`, `":"`, `rust`, `"}`),
        // then the answer's words ("found", the result's words, two more).
        let answer_words = streamed_text(&events).split_whitespace().count() as u64;
        assert_eq!(
            reply["metadata"]["usage"]["output_tokens"],
            5 + answer_words,
            "{provider}: {}",
            reply["metadata"]
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_calls_run_together_and_a_failing_tool_is_a_result_not_a_failure() {
    let pages = page_server(PAGE, Duration::ZERO).await;
    let t = tools_app(5, &pages).await;
    let script = json!([
        {"call": [
            {"name": "read_site", "arguments": {"url": format!("{pages}/ferris")}},
            {"name": "read_site", "arguments": {"url": "http://10.1.2.3/secret"}},
            {"name": "no_such_tool", "arguments": {}},
        ]},
        {"text": "done"},
    ]);
    for (provider, route) in FORMATS {
        t.mock.clear_recorded();
        let model = format!("{provider}-parallel");
        t.model(&model, provider, script.clone(), false).await;
        let events = t
            .send_all(&format!("par-{provider}"), &model, json!({"tools": true}))
            .await;
        let available = of_kind(&events, "tool-input-available");
        assert_eq!(available.len(), 3, "{provider}");
        let outputs = of_kind(&events, "tool-output-available");
        assert_eq!(outputs.len(), 1, "{provider}");
        assert_eq!(outputs[0]["toolCallId"], available[0]["toolCallId"]);
        assert_eq!(outputs[0]["output"]["title"], "Ferris");
        let text = outputs[0]["output"]["text"].as_str().unwrap();
        assert!(text.contains("Ferris is the mascot of Rust."), "{text}");
        assert!(
            !text.contains("Home | About"),
            "navigation is not content: {text}"
        );
        let errors = of_kind(&events, "tool-output-error");
        assert_eq!(errors.len(), 2, "{provider}");
        assert!(
            errors[0]["errorText"].as_str().unwrap().contains("private"),
            "{}",
            errors[0]
        );
        assert!(
            errors[1]["errorText"]
                .as_str()
                .unwrap()
                .contains("no tool named"),
            "{}",
            errors[1]
        );
        assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "stop");
        let requests = requests_to(&t.mock, route);
        assert_eq!(requests.len(), 2, "{provider}");
        let second = requests[1].to_string();
        assert!(second.contains("mascot of Rust"), "{provider}: {second}");
        assert!(second.contains("private"), "{provider}: {second}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_limit_ends_the_loop_without_running_the_last_calls() {
    let t = tools_app(2, "http://127.0.0.1:1").await;
    let call = json!({"call": {"name": "web_search", "arguments": {"query": "again"}}});
    t.model(
        "looping",
        "openai",
        json!([call, call, call, {"text": "never"}]),
        false,
    )
    .await;
    let events = t
        .send_all("limit", "looping", json!({"tools": ["web_search"]}))
        .await;
    // Two model calls: the first's search ran, the second's did not.
    assert_eq!(requests_to(&t.mock, "/chat/completions").len(), 2);
    assert_eq!(of_kind(&events, "tool-output-available").len(), 1);
    let errors = of_kind(&events, "tool-output-error");
    assert_eq!(errors.len(), 1);
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap()
            .contains("step limit"),
        "{}",
        errors[0]
    );
    assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "tool-calls");
    assert_eq!(t.used("web_searches").await, 1);
    let thread = t.app.wait_reply_done(&t.user.token, "limit").await;
    assert_eq!(thread["messages"][1]["metadata"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_during_a_tool_ends_the_loop_and_resume_mid_step_misses_and_doubles_nothing() {
    let slow = page_server(PAGE, Duration::from_secs(3)).await;
    let t = tools_app(5, &slow).await;
    let script = json!([
        {"call": {"name": "read_site", "arguments": {"url": format!("{slow}/slow")}}},
        {"text": "read it"},
    ]);
    t.model("reader", "anthropic", script, false).await;

    // Resume: read up to the call's input, drop the connection, resume from the last id.
    let res = t
        .send("resume", "reader", json!({"tools": ["read_site"]}))
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut live = LiveStream::new(res);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &SseEvent| e.kind() == "tool-input-available")
    {
        seen = live.read_events(seen.len() + 1).await;
    }
    drop(live);
    let last = seen.last().unwrap().id.clone().unwrap();
    let rest = LiveStream::new(t.app.resume(&t.user.token, "resume", Some(&last)).await)
        .read_all()
        .await;
    let mut joined: Vec<String> = seen.iter().chain(&rest).map(|e| e.data.clone()).collect();
    let thread = t.app.wait_reply_done(&t.user.token, "resume").await;
    let generation = thread["messages"][1]["metadata"]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let whole = t
        .app
        .request(
            Method::GET,
            &format!("/v1/generations/{generation}/events"),
            Some(&t.user.token),
            None,
        )
        .await
        .text()
        .await
        .unwrap();
    let whole: Vec<String> = parse_sse(&whole).into_iter().map(|e| e.data).collect();
    assert_eq!(joined, whole, "resume misses or doubles parts");
    joined.retain(|d| d.contains("tool-output-available"));
    assert_eq!(joined.len(), 1);

    // Stop while the page is being read: no second model call, the reply ends stopped.
    t.mock.clear_recorded();
    let res = t
        .send("stop", "reader", json!({"tools": ["read_site"]}))
        .await;
    let mut live = LiveStream::new(res);
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|e: &SseEvent| e.kind() == "tool-input-available")
    {
        seen = live.read_events(seen.len() + 1).await;
    }
    let (status, body) = t.app.stop_reply(&t.user.token, "stop").await;
    assert!(status.is_success(), "{status} {body}");
    let events = live.read_all().await;
    // The call ends with the reply, saying why.
    let errors = of_kind(&events, "tool-output-error");
    assert_eq!(errors.len(), 1, "{:?}", kinds(&events));
    assert!(
        errors[0]["errorText"]
            .as_str()
            .unwrap()
            .starts_with("stopped"),
        "{}",
        errors[0]
    );
    assert!(
        kinds(&events).contains(&"abort".to_owned()),
        "{:?}",
        kinds(&events)
    );
    let thread = t.app.wait_reply_done(&t.user.token, "stop").await;
    assert_eq!(thread["messages"][1]["metadata"]["status"], "stopped");
    let tool = thread["messages"][1]["parts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["type"] == "dynamic-tool")
        .cloned()
        .unwrap();
    assert_eq!(tool["state"], "output-error", "{tool}");
    assert_eq!(requests_to(&t.mock, "/messages").len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_chosen_for_the_message_runs_first_and_spends_one_search() {
    let t = tools_app(5, "http://127.0.0.1:1").await;
    // A model without the tools capability: it is offered no tool, and still gets results.
    t.model("plain", "gemini", json!([]), true).await;
    let events = t
        .send_all("chosen", "plain", json!({"tool": "search", "tools": true}))
        .await;
    let kinds = kinds(&events);
    let output = kinds
        .iter()
        .position(|k| k == "tool-output-available")
        .unwrap();
    let text = kinds.iter().position(|k| k == "text-delta").unwrap();
    assert!(output < text, "{kinds:?}");
    assert_eq!(
        of_kind(&events, "tool-input-available")[0]["input"]["query"],
        "tell me about rust"
    );
    let request = t.mock.last_recorded(":streamGenerateContent").unwrap().body;
    assert!(request.get("tools").is_none(), "{request}");
    assert!(
        request
            .to_string()
            .contains("example.com/tell-me-about-rust/1"),
        "{request}"
    );
    assert_eq!(t.used("web_searches").await, 1);

    // Three a day: the fourth send is refused before anything is spent.
    for thread in ["c2", "c3"] {
        t.send_all(thread, "plain", json!({"tool": "search"})).await;
    }
    let res = t.send("c4", "plain", json!({"tool": "search"})).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
    );
    assert_eq!(t.used("credits").await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn research_streams_its_steps_in_order_and_spends_one_run() {
    let t = tools_app(5, "http://127.0.0.1:1").await;
    t.model("writer", "openai", json!([]), false).await;
    let events = t
        .send_all("research", "writer", json!({"tool": "research"}))
        .await;
    let research: Vec<String> = kinds(&events)
        .into_iter()
        .filter(|k| k.starts_with("data-research-"))
        .collect();
    assert_eq!(research.first().unwrap(), "data-research-start");
    assert_eq!(research.last().unwrap(), "data-research-complete");
    let searches = research
        .iter()
        .filter(|k| *k == "data-research-search")
        .count();
    let reads = research
        .iter()
        .filter(|k| *k == "data-research-read")
        .count();
    assert!(searches >= 1 && reads >= 1, "{research:?}");
    let first_read = research
        .iter()
        .position(|k| k == "data-research-read")
        .unwrap();
    let last_search = research
        .iter()
        .rposition(|k| k == "data-research-search")
        .unwrap();
    assert!(last_search < first_read, "{research:?}");
    let complete = &of_kind(&events, "data-research-complete")[0]["data"];
    assert_eq!(complete["sources"], reads);
    // The answer was asked for with the sources' text; searches were not charged one by one.
    let last = t.mock.last_recorded("/chat/completions").unwrap().body;
    assert!(last.to_string().contains("Research notes"), "{last}");
    assert_eq!(t.used("research_runs").await, 1);
    assert_eq!(t.used("web_searches").await, 0);
    // The thread keeps the research parts.
    let thread = t.app.wait_reply_done(&t.user.token, "research").await;
    // The plan's two words count with the answer's two.
    assert_eq!(
        thread["messages"][1]["metadata"]["usage"]["output_tokens"], 4,
        "{}",
        thread["messages"][1]["metadata"]
    );
    let parts = thread["messages"][1]["parts"].as_array().unwrap();
    assert!(
        parts.iter().any(|p| p["type"] == "data-research-complete"),
        "{parts:?}"
    );

    // One run a day.
    let res = t.send("again", "writer", json!({"tool": "research"})).await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(
        status,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tools_are_refused_and_untooled_models_are_offered_none() {
    let t = tools_app(5, "http://127.0.0.1:1").await;
    t.model("plain", "openai", json!([]), true).await;
    for (extra, field) in [
        (json!({"tools": ["rm_rf"]}), "tools"),
        (json!({"tool": "everything"}), "tool"),
        (json!({"tools": "yes"}), "body"),
    ] {
        let res = t.send("bad", "plain", extra.clone()).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(body.to_string().contains(field), "{extra}: {body}");
    }
    // The pre-flight check reads `tool` the same way.
    let check = |tool: &str| {
        t.app.call(
            Method::POST,
            "/v1/chat/check",
            Some(&t.user.token),
            Some(json!({"model": "plain", "tool": tool})),
        )
    };
    let (status, body) = check("everything").await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = check("search").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["allowed"], true, "{body}");
    t.send_all("fine", "plain", json!({"tools": true})).await;
    let request = t.mock.last_recorded("/chat/completions").unwrap().body;
    assert!(request.get("tools").is_none(), "{request}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anthropic_thinking_goes_back_signed_before_the_tool_calls() {
    let t = tools_app(5, "http://127.0.0.1:1").await;
    let script = json!([
        {"call": {"name": "web_search", "arguments": {"query": "rust"}}},
        {"text": "done"},
    ]);
    let mut spec = model_spec(
        "anthropic",
        &format!("mock:len=1,reasoning=2,{}", script_knob(&script)),
        1,
    );
    spec["capabilities"] = json!(["tools", "reasoning"]);
    t.app.define_model(&t.admin, "thinker", spec).await;
    let events = t
        .send_all("think", "thinker", json!({"tools": ["web_search"]}))
        .await;
    assert_eq!(of_kind(&events, "finish")[0]["finishReason"], "stop");
    let requests = requests_to(&t.mock, "/messages");
    assert_eq!(requests.len(), 2);
    let assistant = &requests[1]["messages"][1];
    assert_eq!(assistant["role"], "assistant");
    assert_eq!(assistant["content"][0]["type"], "thinking", "{assistant}");
    assert_eq!(assistant["content"][0]["thinking"], "r0 r1 ");
    assert!(
        !assistant["content"][0]["signature"]
            .as_str()
            .unwrap()
            .is_empty(),
        "{assistant}"
    );
    assert_eq!(assistant["content"][1]["type"], "tool_use", "{assistant}");
}
