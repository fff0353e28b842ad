//! Imports: every sample export of another chat app becomes threads (branches and current
//! path kept), a second import of the same file duplicates nothing, Threadline's own exports
//! round-trip, and bad uploads get a clear problem.

use reqwest::header::CONTENT_TYPE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_problem, spawn_app};

/// Each sample file, and how many conversations it holds.
const FIXTURES: &[(&str, usize)] = &[
    ("chatgpt-export.json", 2),
    ("chatgpt-tree.json", 1),
    ("chatgpt-citations.json", 1),
    ("chatgpt-modern-export.json", 3),
    ("pionxzh-thinking-summaries.json", 1),
    ("pionxzh-image-generation.json", 1),
    ("librechat-export.json", 1),
    ("librechat-tree.json", 1),
    ("librechat-opts-nonr-branches.json", 1),
    ("librechat-linear.json", 1),
    ("openwebui-export.json", 3),
    ("chatbotui-export.json", 2),
];

fn fixture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/fixtures/imports/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn upload(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: Vec<u8>,
) -> (StatusCode, Value) {
    let res = app
        .client
        .post(format!("{}/v1/me/import", app.address))
        .bearer_auth(token)
        .header(CONTENT_TYPE, content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")),
    )
}

async fn import(app: &TestApp, token: &str, name: &str) -> Value {
    let (status, report) = upload(app, token, "application/json", fixture(name)).await;
    assert_eq!(status, StatusCode::OK, "{name}: {report}");
    report
}

fn texts(thread: &Value) -> Vec<String> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["parts"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|p| p["type"] == "text")
                .map(|p| p["text"].as_str().unwrap())
                .collect::<String>()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_sample_export_imports_and_a_second_import_duplicates_nothing() {
    let app = spawn_app().await;
    for (i, &(name, count)) in FIXTURES.iter().enumerate() {
        // An account per file: some samples share conversation ids.
        let user = app.registered(&format!("user{i}@example.com")).await;
        let report = import(&app, &user.token, name).await;
        let conversations = report["conversations"].as_array().unwrap();
        assert_eq!(conversations.len(), count, "{name}: {report}");
        let mut threads = Vec::new();
        for c in conversations {
            if c["status"] == "skipped" {
                // The modern ChatGPT sample holds one corrupted conversation.
                assert_eq!(name, "chatgpt-modern-export.json", "{c}");
                assert!(c["reason"].is_string(), "{name}: {c}");
                continue;
            }
            assert_eq!(c["status"], "imported", "{name}: {c}");
            assert!(c["messages"].as_u64().unwrap() > 0, "{name}: {c}");
            threads.push(c["thread_id"].as_str().unwrap().to_owned());
        }
        threads.sort();
        let mut listed = app.all_thread_ids(&user.token, "").await;
        listed.sort();
        assert_eq!(listed, threads, "{name}");

        let again = import(&app, &user.token, name).await;
        assert_eq!(again["imported"], 0, "{name}: {again}");
        assert_eq!(
            again["already_imported"], report["imported"],
            "{name}: {again}"
        );
        assert_eq!(
            app.all_thread_ids(&user.token, "").await.len(),
            threads.len()
        );
    }

    // A later export of a conversation already imported leaves the thread as it is.
    let ada = app.registered("ada@example.com").await;
    import(&app, &ada.token, "chatgpt-export.json").await;
    let fragment = import(&app, &ada.token, "chatgpt-citations.json").await;
    assert_eq!(fragment["already_imported"], 1, "{fragment}");

    // Another account importing the same file gets threads of its own.
    let bob = app.registered("bob@example.com").await;
    let report = import(&app, &bob.token, "chatgpt-export.json").await;
    assert_eq!(report["imported"], 2, "{report}");
    let bobs = report["conversations"][0]["thread_id"].as_str().unwrap();
    let (status, _) = app.get_thread(&ada.token, bobs).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_tree_keeps_its_branches_current_path_models_and_origin() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let report = import(&app, &ada.token, "chatgpt-tree.json").await;
    let c = &report["conversations"][0];
    assert_eq!(c["messages"], 11, "{report}");
    let id = c["thread_id"].as_str().unwrap();
    let (status, thread) = app.get_thread(&ada.token, id).await;
    assert_eq!(status, StatusCode::OK, "{thread}");
    assert_eq!(thread["origin"]["kind"], "import");
    assert_eq!(thread["origin"]["source"], "chatgpt");
    assert_eq!(thread["origin"]["external_id"], c["external_id"]);
    assert_eq!(thread["title"], c["title"]);
    // Its times are the conversation's: created then, last active at its newest message.
    assert!(
        thread["created_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-01T17:37:11"),
        "{thread}"
    );
    assert!(
        thread["last_activity_at"]
            .as_str()
            .unwrap()
            .starts_with("2024-05-01T17:37:40"),
        "{thread}"
    );
    let messages = thread["messages"].as_array().unwrap();
    assert!(
        messages.last().unwrap()["id"]
            .as_str()
            .unwrap()
            .starts_with("f63b8e17"),
        "the export's current node ends the path: {thread}"
    );
    // Both branch points are there: an edited question and a regenerated answer.
    let branched: Vec<&Value> = messages
        .iter()
        .filter(|m| m["metadata"]["sibling_count"].as_u64().unwrap() > 1)
        .collect();
    assert_eq!(branched.len(), 2, "{thread}");
    assert!(branched.iter().any(|m| m["role"] == "user"));
    assert!(branched.iter().any(|m| m["role"] == "assistant"));
    assert!(
        messages
            .iter()
            .filter(|m| m["role"] == "assistant")
            .all(|m| m["metadata"]["status"] == "completed"),
        "{thread}"
    );

    // The imported reasoning arrives as reasoning parts.
    let report = import(&app, &ada.token, "pionxzh-thinking-summaries.json").await;
    let id = report["conversations"][0]["thread_id"].as_str().unwrap();
    let (_, thread) = app.get_thread(&ada.token, id).await;
    let reasoning: Vec<&str> = thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|m| m["parts"].as_array().unwrap())
        .filter(|p| p["type"] == "reasoning")
        .map(|p| p["text"].as_str().unwrap())
        .collect();
    assert_eq!(reasoning.len(), 2, "{thread}");
    assert!(reasoning[0].ends_with("Thought for 29s"), "{reasoning:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_threads_are_searchable() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let report = import(&app, &ada.token, "chatbotui-export.json").await;
    assert_eq!(report["imported"], 2, "{report}");
    let id = report["conversations"][0]["thread_id"].as_str().unwrap();
    let (_, thread) = app.get_thread(&ada.token, id).await;
    let word = texts(&thread)
        .join(" ")
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.len() > 5)
        .max_by_key(|w| w.len())
        .unwrap()
        .to_owned();
    let (status, found) = app
        .call(
            Method::GET,
            &format!("/v1/search?q={word}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert!(
        found["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|hit| hit["thread_id"] == id),
        "{word}: {found}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threadline_exports_round_trip_into_another_account() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "t", "u1", "the first question", None)
        .await;
    app.chat_all(&ada.token, "t", "u2", "a second question", None)
        .await;
    app.chat_all(&ada.token, "t", "u2", "the second, edited", None)
        .await;
    app.patch_thread(&ada.token, "t", json!({"title": "Round trip"}))
        .await;
    let (_, original) = app.get_thread(&ada.token, "t").await;

    // One thread's JSON export…
    let (status, export) = app
        .call(Method::GET, "/v1/threads/t/export", Some(&ada.token), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    let bob = app.registered("bob@example.com").await;
    let (status, report) = upload(
        &app,
        &bob.token,
        "application/json",
        serde_json::to_vec(&export).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["conversations"][0]["source"], "threadline");
    assert_eq!(
        report["conversations"][0]["messages"], 6,
        "every branch: {report}"
    );
    let copy = report["conversations"][0]["thread_id"].as_str().unwrap();
    let (_, copied) = app.get_thread(&bob.token, copy).await;
    assert_eq!(copied["title"], "Round trip");
    assert_eq!(texts(&copied), texts(&original));
    let ids = |t: &Value| -> Vec<Value> {
        t["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].clone())
            .collect()
    };
    assert_eq!(ids(&copied), ids(&original), "message ids are kept");

    // …and the whole account's zip.
    let res = app
        .request(Method::GET, "/v1/me/export", Some(&ada.token), None)
        .await;
    let zip = res.bytes().await.unwrap().to_vec();
    let cleo = app.registered("cleo@example.com").await;
    let (status, report) = upload(&app, &cleo.token, "application/zip", zip.clone()).await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 1, "{report}");
    let copy = report["conversations"][0]["thread_id"].as_str().unwrap();
    let (_, copied) = app.get_thread(&cleo.token, copy).await;
    assert_eq!(texts(&copied), texts(&original));
    let (_, again) = upload(&app, &cleo.token, "application/octet-stream", zip).await;
    assert_eq!(again["already_imported"], 1, "{again}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multipart_upload_imports_its_file() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let boundary = "threadline-test-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"conversations.json\"\r\nContent-Type: application/json\r\n\r\n"
    )
    .into_bytes();
    body.extend(fixture("openwebui-export.json"));
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    let (status, report) = upload(
        &app,
        &ada.token,
        &format!("multipart/form-data; boundary={boundary}"),
        body,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["imported"], 3, "{report}");

    let (status, report) = upload(
        &app,
        &ada.token,
        &format!("multipart/form-data; boundary={boundary}"),
        format!("--{boundary}--\r\n").into_bytes(),
    )
    .await;
    assert_problem(
        status,
        &report,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_uploads_get_a_clear_problem_and_import_nothing() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    for body in [
        &b"{not json"[..],
        b"{\"hello\": \"world\"}",
        b"42",
        b"PK\x03\x04broken",
    ] {
        let (status, problem) = upload(&app, &ada.token, "application/json", body.to_vec()).await;
        assert_problem(
            status,
            &problem,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(problem["errors"]["file"].is_array(), "{problem}");
    }
    let (status, problem) = upload(
        &app,
        &ada.token,
        "text/plain",
        fixture("librechat-linear.json"),
    )
    .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let too_big = vec![b' '; 64 * 1024 * 1024 + 1];
    let (status, problem) = upload(&app, &ada.token, "application/json", too_big).await;
    assert_problem(
        status,
        &problem,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let res = app
        .client
        .post(format!("{}/v1/me/import", app.address))
        .header(CONTENT_TYPE, "application/json")
        .body(fixture("librechat-linear.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(app.all_thread_ids(&ada.token, "").await.is_empty());

    // A file whose conversations are all unreadable imports nothing and says why.
    let (status, report) = upload(
        &app,
        &ada.token,
        "application/json",
        br#"[{"mapping": 3, "title": "broken"}]"#.to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["skipped"], 1);
    assert_eq!(report["conversations"][0]["title"], "broken");
}
