//! Streamed replies: send, resume, stop, disconnect, regenerate, provider failures.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{LiveStream, TestDb, assert_problem, spawn_app, spawn_on, streamed_text};

fn words(n: usize) -> String {
    (0..n)
        .map(|i| format!("word{i}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_streams_its_reply_in_the_ui_message_format_and_lands_in_the_thread() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let events = app
        .chat_all(&user.token, "t1", "u1", "Hello there", None)
        .await;
    let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds[..3], ["start", "start-step", "text-start"]);
    assert_eq!(
        kinds[kinds.len() - 4..],
        ["text-end", "finish-step", "finish", "[DONE]"]
    );
    assert!(
        events[..events.len() - 1].iter().all(|e| e.id.is_some()),
        "every part has an id"
    );
    assert_eq!(streamed_text(&events), "Echo: Hello there");
    let message_id = events[0].json()["messageId"].as_str().unwrap().to_owned();

    let (status, thread) = app.get_thread(&user.token, "t1").await;
    assert_eq!(status, StatusCode::OK);
    let messages = thread["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_eq!(messages[0]["id"], "u1");
    assert_eq!(
        messages[0]["parts"],
        json!([{"type": "text", "text": "Hello there"}])
    );
    assert_eq!(messages[1]["id"], message_id.as_str());
    assert_eq!(
        messages[1]["parts"],
        json!([{"type": "step-start"}, {"type": "text", "text": "Echo: Hello there", "state": "done"}])
    );
    assert_eq!(messages[1]["metadata"]["status"], "completed");
    assert_eq!(thread["active_generation_id"], json!(null));
    let title = app.wait_title(&user.token, "t1").await;
    assert_eq!(title, "Hello there", "the first exchange titles the thread");
}

/// A send and a reply's end answer without waiting for the projections on SQLite: the reads
/// that follow wait instead, so each one still shows what came before it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_read_and_send_right_after_a_reply_sees_it_finished() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    for round in 1..=4usize {
        let text = format!("message {round}");
        let events = app
            .chat_all(&user.token, "t1", &format!("u{round}"), &text, None)
            .await;
        assert_eq!(streamed_text(&events), format!("Echo: {text}"));
        let (status, thread) = app.get_thread(&user.token, "t1").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(thread["active_generation_id"], json!(null));
        let messages = thread["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            2 * round,
            "one line of messages: {messages:?}"
        );
        let last = &messages[2 * round - 1];
        assert_eq!(last["metadata"]["status"], "completed");
        assert_eq!(last["parts"][1]["text"], format!("Echo: {text}"));
        let (_, list) = app.list_threads(&user.token, "").await;
        assert_eq!(
            list["data"][0]["active_generation_id"],
            json!(null),
            "{list}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_mid_reply_replays_the_backlog_then_follows_live_without_gaps_or_doubles() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.echo_delay = Duration::from_millis(15)
    })
    .await;
    let user = app.anonymous().await;
    let text = words(60);
    let mut first = LiveStream::new(app.chat(&user.token, "t1", "u1", &text, None).await);
    let seen = first.read_events(8).await;
    assert!(seen.len() >= 8);
    drop(first); // the tab closes

    let res = app.resume(&user.token, "t1", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let events = LiveStream::new(res).read_all().await;
    assert_eq!(
        events[0].kind(),
        "start",
        "a resume replays from the start of the reply"
    );
    assert_eq!(events.last().unwrap().kind(), "[DONE]");
    assert_eq!(streamed_text(&events), format!("Echo: {text}"));
    let ids: Vec<&String> = events.iter().filter_map(|e| e.id.as_ref()).collect();
    let mut unique = ids.clone();
    unique.dedup();
    assert_eq!(ids, unique, "no part twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_event_id_resumes_right_after_that_part() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.echo_delay = Duration::from_millis(15)
    })
    .await;
    let user = app.anonymous().await;
    let text = words(40);
    let mut live = LiveStream::new(app.chat(&user.token, "t1", "u1", &text, None).await);
    let seen = live.read_events(10).await;
    let cut = &seen[9];
    let before: String = streamed_text(&seen[..10]);
    drop(live);

    let res = app.resume(&user.token, "t1", cut.id.as_deref()).await;
    assert_eq!(res.status(), StatusCode::OK);
    let rest = LiveStream::new(res).read_all().await;
    assert_ne!(rest[0].kind(), "start");
    assert_eq!(
        format!("{before}{}", streamed_text(&rest)),
        format!("Echo: {text}")
    );

    // The same works on the generation's own replay endpoint, after the reply finished.
    let (_, thread) = app.wait_reply_done(&user.token, "t1").await.pipe_thread();
    let generation = thread["messages"][1]["metadata"]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .get(format!(
            "{}/v1/generations/{generation}/events?after={}",
            app.address,
            cut.id.as_ref().unwrap()
        ))
        .bearer_auth(&user.token)
        .send()
        .await
        .unwrap();
    let replay = LiveStream::new(res).read_all().await;
    assert_eq!(
        format!("{before}{}", streamed_text(&replay)),
        format!("Echo: {text}")
    );

    // Part ids it never issued are refused, on both endpoints.
    for forged in ["9999.0", "0.0", "-3.1", "x", "3.1.1"] {
        let res = app
            .client
            .get(format!(
                "{}/v1/generations/{generation}/events?after={forged}",
                app.address
            ))
            .bearer_auth(&user.token)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.json().await.unwrap();
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
        let res = app
            .client
            .get(format!(
                "{}/v1/generations/{generation}/events",
                app.address
            ))
            .bearer_auth(&user.token)
            .header("last-event-id", forged)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let body = res.json().await.unwrap();
        assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
    }
}

trait PipeThread {
    fn pipe_thread(self) -> (StatusCode, serde_json::Value);
}

impl PipeThread for serde_json::Value {
    fn pipe_thread(self) -> (StatusCode, serde_json::Value) {
        (StatusCode::OK, self)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_is_204_when_nothing_streams_and_404_for_another_account() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    app.create_thread(&user.token, json!({"id": "idle"})).await;
    assert_eq!(
        app.resume(&user.token, "idle", None).await.status(),
        StatusCode::NO_CONTENT
    );
    app.chat_all(&user.token, "idle", "u1", "hi", None).await;
    app.wait_reply_done(&user.token, "idle").await;
    assert_eq!(
        app.resume(&user.token, "idle", None).await.status(),
        StatusCode::NO_CONTENT
    );
    let other = app.anonymous().await;
    assert_eq!(
        app.resume(&other.token, "idle", None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (status, body) = app.stop_reply(&other.token, "idle").await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_ends_the_reply_and_keeps_what_was_streamed() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.echo_delay = Duration::from_millis(20)
    })
    .await;
    let user = app.anonymous().await;
    let text = words(200);
    let mut live = LiveStream::new(app.chat(&user.token, "t1", "u1", &text, None).await);
    live.read_events(6).await;
    let (status, body) = app.stop_reply(&user.token, "t1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "stopped");
    let events = live.read_all().await;
    let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["abort", "[DONE]"]);
    let partial = streamed_text(&events);
    assert!(partial.len() < format!("Echo: {text}").len());

    let (_, thread) = app.get_thread(&user.token, "t1").await;
    let reply = &thread["messages"][1];
    assert_eq!(reply["metadata"]["status"], "stopped");
    assert_eq!(
        reply["parts"][1]["text"],
        partial.as_str(),
        "the partial reply is kept"
    );
    let (status, body) = app.stop_reply(&user.token, "t1").await;
    assert_problem(status, &body, StatusCode::CONFLICT, "no_active_reply");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_disconnect_never_stops_the_reply() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.echo_delay = Duration::from_millis(5)
    })
    .await;
    let user = app.anonymous().await;
    let text = words(50);
    let mut live = LiveStream::new(app.chat(&user.token, "t1", "u1", &text, None).await);
    live.read_events(4).await;
    drop(live);
    let thread = app.wait_reply_done(&user.token, "t1").await;
    assert_eq!(thread["messages"][1]["metadata"]["status"], "completed");
    assert_eq!(
        thread["messages"][1]["parts"][1]["text"],
        format!("Echo: {text}").as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_reply_at_a_time_per_thread() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        s.echo_delay = Duration::from_millis(20)
    })
    .await;
    let user = app.anonymous().await;
    let mut live = LiveStream::new(app.chat(&user.token, "t1", "u1", &words(100), None).await);
    live.read_events(3).await;
    let res = app.chat(&user.token, "t1", "u2", "again", None).await;
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "reply_in_progress");
    app.stop_reply(&user.token, "t1").await;
    let (_, thread) = app.get_thread(&user.token, "t1").await;
    let ids: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2, "the refused message was not posted: {ids:?}");
    assert_eq!(ids[0], "u1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn regenerating_and_editing_add_siblings_and_keep_history() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    app.chat_all(&user.token, "t1", "u1", "first question", None)
        .await;
    let first = app.wait_reply_done(&user.token, "t1").await;
    let first_reply = first["messages"][1]["id"].as_str().unwrap().to_owned();

    let res = app
        .request(
            reqwest::Method::POST,
            "/v1/chat",
            Some(&user.token),
            Some(json!({"id": "t1", "messages": [], "trigger": "regenerate-message", "messageId": first_reply})),
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    LiveStream::new(res).read_all().await;
    let thread = app.wait_reply_done(&user.token, "t1").await;
    let messages = thread["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 2);
    assert_ne!(
        messages[1]["id"],
        first_reply.as_str(),
        "the new reply is shown"
    );
    assert_eq!(
        messages[1]["metadata"]["sibling_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    // Editing the user message (same id, new text) creates a sibling user message.
    app.chat_all(&user.token, "t1", "u1", "edited question", None)
        .await;
    let thread = app.wait_reply_done(&user.token, "t1").await;
    let messages = thread["messages"].as_array().unwrap();
    assert_eq!(messages[0]["parts"][0]["text"], "edited question");
    assert_eq!(
        messages[0]["metadata"]["sibling_ids"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    assert_eq!(messages[1]["parts"][1]["text"], "Echo: edited question");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_chat_requests_are_4xx_problems() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    for (body, status, code) in [
        (
            json!({"id": "t1", "messages": []}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"id": "bad id", "message": "hi"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"id": "t1", "message": "hi", "model": "nope"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
        (
            json!({"messages": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        ),
    ] {
        let (s, b) = app
            .call(
                reqwest::Method::POST,
                "/v1/chat",
                Some(&user.token),
                Some(body),
            )
            .await;
        assert_problem(s, &b, status, code);
    }
    let owner = app.anonymous().await;
    app.create_thread(&owner.token, json!({"id": "mine"})).await;
    let (s, b) = app
        .call(
            reqwest::Method::POST,
            "/v1/chat",
            Some(&user.token),
            Some(json!({"id": "mine", "message": "hi"})),
        )
        .await;
    assert_problem(s, &b, StatusCode::NOT_FOUND, "not_found");
}

mod upstream {
    use super::*;
    use threadline::mock_upstream::MockUpstream;

    async fn app_with_mock() -> (crate::helpers::TestApp, MockUpstream) {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let base = mock.base_url();
        let app = spawn_on(TestDb::fresh().await, move |s| {
            s.provider_env = Some(vec![
                ("OPENAI_API_KEY".into(), "test-key".into()),
                ("OPENAI_BASE_URL".into(), (base).into()),
            ]);
        })
        .await;
        (app, mock)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_reply_from_an_openai_compatible_provider_streams_and_records_usage() {
        let (app, _mock) = app_with_mock().await;
        let user = app.anonymous().await;
        let events = app
            .chat_all(
                &user.token,
                "t1",
                "u1",
                "count for me",
                Some("openai/mock:len=5,reasoning=2"),
            )
            .await;
        assert_eq!(streamed_text(&events), "w0 w1 w2 w3 w4 ");
        assert!(events.iter().any(|e| e.kind() == "reasoning-delta"));
        let thread = app.wait_reply_done(&user.token, "t1").await;
        let reply = &thread["messages"][1];
        assert_eq!(reply["metadata"]["finish_reason"], "stop");
        assert_eq!(reply["metadata"]["model"], "openai/mock:len=5,reasoning=2");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_provider_error_before_the_first_token_fails_the_reply_cleanly() {
        let (app, mock) = app_with_mock().await;
        let user = app.anonymous().await;
        let events = app
            .chat_all(
                &user.token,
                "t1",
                "u1",
                "hi",
                Some("openai/mock:status=400"),
            )
            .await;
        let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
        assert_eq!(kinds, ["start", "start-step", "error", "[DONE]"]);
        assert!(
            events[2].json()["errorText"]
                .as_str()
                .unwrap()
                .contains("400")
        );
        assert_eq!(mock.requests(), 1, "a 400 is not retried");
        let thread = app.wait_reply_done(&user.token, "t1").await;
        assert_eq!(thread["messages"][1]["metadata"]["status"], "failed");
        // The thread is free for the next message.
        let events = app
            .chat_all(&user.token, "t1", "u2", "again", Some("openai/mock:len=2"))
            .await;
        assert_eq!(streamed_text(&events), "w0 w1 ");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rate_limited_call_is_retried_after_the_providers_delay() {
        let (app, mock) = app_with_mock().await;
        let user = app.anonymous().await;
        let events = app
            .chat_all(
                &user.token,
                "t1",
                "u1",
                "hi",
                Some("openai/mock:status=429,retry_after=0"),
            )
            .await;
        assert_eq!(events.iter().filter(|e| e.kind() == "error").count(), 1);
        assert_eq!(
            mock.requests(),
            3,
            "429 is retried up to three attempts in all"
        );

        // The wait between attempts is the provider's retry-after (a lower bound: sleeps are
        // never shorter, however busy the machine).
        let started = std::time::Instant::now();
        app.chat_all(
            &user.token,
            "t2",
            "u1",
            "hi",
            Some("openai/mock:status=429,retry_after=1"),
        )
        .await;
        assert!(
            started.elapsed() >= Duration::from_secs(2),
            "two waits of retry-after: 1"
        );
        assert_eq!(mock.requests(), 6);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_mid_stream_error_keeps_the_streamed_part_and_ends_with_an_error() {
        let (app, _mock) = app_with_mock().await;
        let user = app.anonymous().await;
        for model in [
            "openai/mock:len=10,error_after=3",
            "openai/mock:len=10,drop_after=3",
        ] {
            let thread = format!("t-{}", model.len());
            let events = app
                .chat_all(&user.token, &thread, "u1", "hi", Some(model))
                .await;
            assert_eq!(streamed_text(&events), "w0 w1 w2 ", "{model}");
            let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
            assert_eq!(
                kinds[kinds.len() - 3..],
                ["text-end", "error", "[DONE]"],
                "{model}"
            );
            let t = app.wait_reply_done(&user.token, &thread).await;
            assert_eq!(t["messages"][1]["metadata"]["status"], "failed");
            assert_eq!(t["messages"][1]["parts"][1]["text"], "w0 w1 w2 ");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_reply_reports_its_overhead_in_a_header_and_the_metrics() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let res = app.chat(&user.token, "t1", "u1", "measure me", None).await;
    let overhead: f64 = res.headers()["x-threadline-overhead-ms"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(overhead >= 0.0);
    LiveStream::new(res).read_all().await;
    let metrics = app
        .request(reqwest::Method::GET, "/metrics", None, None)
        .await
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("threadline_reply_overhead_seconds_count 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("threadline_replies_total{status=\"completed\"} 1"),
        "{metrics}"
    );
}

mod other_providers {
    use super::*;
    use threadline::mock_upstream::MockUpstream;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn anthropic_and_gemini_replies_stream_through_the_same_pipeline() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let root = format!("http://127.0.0.1:{}", mock.port());
        let app = spawn_on(TestDb::fresh().await, move |s| {
            s.provider_env = Some(vec![
                ("ANTHROPIC_API_KEY".into(), "test-key".into()),
                ("ANTHROPIC_BASE_URL".into(), (root.clone()).into()),
                ("GEMINI_API_KEY".into(), "test-key".into()),
                ("GEMINI_BASE_URL".into(), (root).into()),
            ]);
        })
        .await;
        let user = app.anonymous().await;
        for (thread, model) in [
            ("claude", "anthropic/mock:len=4,reasoning=2"),
            ("gemini", "gemini/mock:len=4,reasoning=2"),
        ] {
            let events = app
                .chat_all(&user.token, thread, "u1", "hi", Some(model))
                .await;
            assert_eq!(streamed_text(&events), "w0 w1 w2 w3 ", "{model}");
            assert!(
                events.iter().any(|e| e.kind() == "reasoning-delta"),
                "{model}"
            );
            let t = app.wait_reply_done(&user.token, thread).await;
            assert_eq!(
                t["messages"][1]["metadata"]["status"], "completed",
                "{model}"
            );
            assert_eq!(t["messages"][1]["parts"][1]["type"], "reasoning", "{model}");
        }
        // Catalog models of both providers are now offered.
        let (_, list) = app
            .call(reqwest::Method::GET, "/v1/models", Some(&user.token), None)
            .await;
        let ids: Vec<&str> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert!(
            ids.contains(&"claude-4-sonnet") && ids.contains(&"gemini-2.5-flash"),
            "{ids:?}"
        );
    }
}
