//! Replies across nodes and crashes: a node killed mid-reply, two nodes on one PostgreSQL.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{LiveStream, Node, TestDb, parse_sse, spawn_on, streamed_text};

async fn json(client: &reqwest::Client, req: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let _ = client;
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_mid_reply_leaves_everything_committed_and_the_reply_interrupted() {
    let db = TestDb::fresh().await;
    let client = reqwest::Client::new();
    let mut node = Node::start(&db).await;
    let (_, anon) = json(
        &client,
        client.post(format!("{}/v1/auth/anonymous", node.address)),
    )
    .await;
    let token = anon["token"].as_str().unwrap().to_owned();
    let text: String = (0..300).map(|i| format!("word{i} ")).collect();
    let res = client
        .post(format!("{}/v1/chat", node.address))
        .bearer_auth(&token)
        .json(&serde_json::json!({"id": "crash", "message": text.trim()}))
        .send()
        .await
        .unwrap();
    let mut live = LiveStream::new(res);
    let seen = live.read_events(12).await;
    let seen_text = streamed_text(&seen);
    assert!(!seen_text.is_empty());

    node.child.kill().unwrap(); // SIGKILL: no graceful shutdown
    node.child.wait().unwrap();
    drop(live);

    let node = Node::start(&db).await;
    let mut thread = Value::Null;
    for _ in 0..300 {
        let (_, t) = json(
            &client,
            client
                .get(format!("{}/v1/threads/crash", node.address))
                .bearer_auth(&token),
        )
        .await;
        if t["messages"][1]["metadata"]["status"] == "interrupted"
            && t["active_generation_id"].is_null()
        {
            thread = t;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let reply = &thread["messages"][1];
    assert_eq!(reply["metadata"]["status"], "interrupted", "{thread}");
    let stored = reply["parts"][1]["text"].as_str().unwrap();
    assert!(
        stored.starts_with(&seen_text),
        "every chunk a client saw was durable"
    );
    assert!(stored.len() < format!("Echo: {}", text.trim()).len());

    let res = client
        .get(format!("{}/v1/chat/crash/stream", node.address))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        StatusCode::NO_CONTENT,
        "nothing streams any more"
    );
    let generation = reply["metadata"]["generation_id"].as_str().unwrap();
    let body = client
        .get(format!(
            "{}/v1/generations/{generation}/events",
            node.address
        ))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let events = parse_sse(&body);
    assert_eq!(
        streamed_text(&events),
        stored,
        "the replay serves everything committed"
    );
    let kinds: Vec<String> = events.iter().map(|e| e.kind()).collect();
    assert_eq!(kinds[kinds.len() - 2..], ["error", "[DONE]"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reservation_of_a_reply_killed_mid_stream_is_settled_after_restart() {
    let db = TestDb::fresh().await;
    let client = reqwest::Client::new();
    let env = [("THREADLINE_ADMIN_EMAILS", "admin@example.com")];
    let mut node = Node::start_with(&db, &env).await;
    let (status, admin) = json(
        &client,
        client
            .post(format!("{}/v1/auth/register", node.address))
            .json(&serde_json::json!({"email": "admin@example.com", "password": "correct horse battery"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{admin}");
    let token = admin["token"].as_str().unwrap().to_owned();
    let (status, body) = json(
        &client,
        client
            .put(format!("{}/v1/admin/models/paid-echo", node.address))
            .bearer_auth(&token)
            .json(
                &serde_json::json!({"provider": "echo", "upstream": "echo", "capabilities": [],
                "access": "public", "credits": 3, "enabled": true,
                "prices": {"input": 0, "output": 0, "cached_input": 0, "reasoning": 0}}),
            ),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let text: String = (0..300).map(|i| format!("word{i} ")).collect();
    let res = client
        .post(format!("{}/v1/chat", node.address))
        .bearer_auth(&token)
        .json(
            &serde_json::json!({"id": "paid-crash", "message": text.trim(), "model": "paid-echo"}),
        )
        .send()
        .await
        .unwrap();
    let mut live = LiveStream::new(res);
    live.read_events(12).await;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    drop(live);

    let node = Node::start_with(&db, &env).await;
    let mut usage = Value::Null;
    for _ in 0..300 {
        let (_, u) = json(
            &client,
            client
                .get(format!("{}/v1/me/usage", node.address))
                .bearer_auth(&token),
        )
        .await;
        if u["meters"][0]["reserved"] == 0 {
            usage = u;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        usage["meters"][0]["used"], 3,
        "streamed, so charged: {usage}"
    );
    assert_eq!(usage["ledger"][0]["kind"], "settled", "{usage}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_started_on_one_node_is_resumed_and_stopped_from_another() {
    let db = TestDb::fresh().await;
    if !db.is_postgres() {
        eprintln!("several nodes need PostgreSQL");
        return;
    }
    let other = db.same_database();
    let a = spawn_on(db, |s| s.echo_delay = Duration::from_millis(20)).await;
    let b = spawn_on(other, |s| s.echo_delay = Duration::from_millis(20)).await;
    let user = a.anonymous().await;
    let text: String = (0..400).map(|i| format!("word{i} ")).collect();
    let mut on_a = LiveStream::new(a.chat(&user.token, "multi", "u1", text.trim(), None).await);
    on_a.read_events(5).await;

    let res = b.resume(&user.token, "multi", None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut on_b = LiveStream::new(res);
    let seen_on_b = on_b.read_events(20).await;
    assert_eq!(seen_on_b[0].kind(), "start");

    let (status, body) = b.stop_reply(&user.token, "multi").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "stopped");
    let from_a = on_a.read_all().await;
    let from_b = on_b.read_all().await;
    assert_eq!(from_a.last().unwrap().kind(), "[DONE]");
    assert_eq!(
        streamed_text(&from_a),
        streamed_text(&from_b),
        "both nodes served the same reply"
    );
    let (_, thread) = b.get_thread(&user.token, "multi").await;
    assert_eq!(thread["messages"][1]["metadata"]["status"], "stopped");
    assert_eq!(
        thread["messages"][1]["parts"][1]["text"],
        streamed_text(&from_a).as_str()
    );
}
