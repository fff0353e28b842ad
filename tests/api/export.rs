//! Exports: a thread as JSON (the whole tree), Markdown and CSV (the current path); the whole
//! account as a zip archive.

use std::io::Read;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_exports_as_json_markdown_and_csv() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "t", "u1", "first, with a \"quote\"", None)
        .await;
    app.chat_all(&ada.token, "t", "u2", "second", None).await;
    app.chat_all(&ada.token, "t", "u2", "second, edited", None)
        .await;
    let (status, json) = app
        .call(Method::GET, "/v1/threads/t/export", Some(&ada.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["format"], "threadline.thread");
    assert_eq!(json["version"], 1);
    let messages = json["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 6, "every branch: {json}");
    let current = json["current_message_id"].as_str().unwrap();
    let leaf = messages.iter().find(|m| m["id"] == current).unwrap();
    assert_eq!(leaf["role"], "assistant");
    assert!(
        messages
            .iter()
            .filter(|m| m["role"] == "assistant")
            .all(|m| m["usage"].is_object())
    );

    let res = app
        .request(
            Method::GET,
            "/v1/threads/t/export?format=markdown",
            Some(&ada.token),
            None,
        )
        .await;
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .contains("attachment")
    );
    let markdown = res.text().await.unwrap();
    assert!(
        markdown.contains("second, edited") && !markdown.contains("\nsecond\n"),
        "{markdown}"
    );

    let res = app
        .request(
            Method::GET,
            "/v1/threads/t/export?format=csv",
            Some(&ada.token),
            None,
        )
        .await;
    let csv = res.text().await.unwrap();
    let lines: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(lines[0], "id,parent_id,role,model,created_at,text");
    assert_eq!(lines.len(), 5, "a header and the current path: {csv}");
    assert!(
        lines[1].ends_with("\"first, with a \"\"quote\"\"\""),
        "{csv}"
    );

    let (status, body) = app
        .call(
            Method::GET,
            "/v1/threads/t/export?format=pdf",
            Some(&ada.token),
            None,
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let eve = app.registered("eve@example.com").await;
    let (status, _) = app
        .call(Method::GET, "/v1/threads/t/export", Some(&eve.token), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_account_exports_as_a_zip_of_profile_preferences_threads_and_ledger() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "one", "u1", "hello", None).await;
    let archived = app.new_thread(&ada.token, "old").await;
    app.patch_thread(&ada.token, &archived, serde_json::json!({"archived": true}))
        .await;
    let (status, file) = app
        .upload_file(
            &ada.token,
            "../notes.md",
            "text/markdown",
            b"# Notes\nship it",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    let file_id = file["id"].as_str().unwrap().to_owned();
    let res = app
        .request(Method::GET, "/v1/me/export", Some(&ada.token), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()["content-type"], "application/zip");
    let bytes = res.bytes().await.unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut names: Vec<String> = zip.file_names().map(|n| n.unwrap().into_owned()).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "account.json".to_owned(),
            "files.json".to_owned(),
            format!("files/{file_id}/notes.md"),
            "ledger.csv".to_owned(),
            "preferences.json".to_owned(),
            format!("threads/{archived}.json"),
            "threads/one.json".to_owned(),
        ]
    );
    let mut text = String::new();
    zip.by_name("threads/one.json")
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    let thread: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(thread["messages"].as_array().unwrap().len(), 2);
    let mut account = String::new();
    zip.by_name("account.json")
        .unwrap()
        .read_to_string(&mut account)
        .unwrap();
    assert!(account.contains("ada@example.com"));
    // The file's bytes, and the list that names them.
    let mut bytes = Vec::new();
    zip.by_name(&format!("files/{file_id}/notes.md"))
        .unwrap()
        .read_to_end(&mut bytes)
        .unwrap();
    assert_eq!(bytes, b"# Notes\nship it");
    let mut listed = String::new();
    zip.by_name("files.json")
        .unwrap()
        .read_to_string(&mut listed)
        .unwrap();
    let listed: Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(listed[0]["id"], file_id.as_str());
    assert_eq!(listed[0]["media_type"], "text/markdown");
    assert_eq!(listed[0]["path"], format!("files/{file_id}/notes.md"));
}
