//! Attachments: upload (multipart), sniffing, limits, owner checks, content-addressed storage in
//! a directory and in an S3-compatible bucket (a local `moto` server).

use reqwest::{Method, StatusCode};

use crate::helpers::{TestApp, TestDb, assert_problem, multipart, spawn_app, spawn_on};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";

async fn content(app: &TestApp, token: &str, url: &str) -> reqwest::Response {
    app.client
        .get(format!("{}{url}", app.address))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bytes_decide_the_type_whatever_the_name_or_the_claim() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let cases: &[(&str, &str, &[u8], Option<&str>)] = &[
        ("photo.png", "image/png", PNG, Some("image/png")),
        ("report.pdf", "application/pdf", PNG, Some("image/png")),
        (
            "scan.png",
            "image/png",
            b"%PDF-1.4\n%\xe2\xe3\n",
            Some("application/pdf"),
        ),
        (
            "notes.md",
            "text/plain",
            b"# Notes\n",
            Some("text/markdown"),
        ),
        (
            "data.csv",
            "application/octet-stream",
            b"a,b\n1,2\n",
            Some("text/csv"),
        ),
        (
            "main.rs",
            "text/x-rust",
            b"fn main() {}\n",
            Some("text/plain"),
        ),
        (
            "cat.png",
            "image/png",
            b"<!DOCTYPE html><script>alert(1)</script>",
            None,
        ),
        (
            "logo.svg",
            "image/svg+xml",
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>",
            None,
        ),
        (
            "a.zip",
            "application/zip",
            b"PK\x03\x04\x14\0\0\0\0\0",
            None,
        ),
    ];
    for (name, declared, bytes, expected) in cases {
        let (status, body) = app.upload_file(&ada.token, name, declared, bytes).await;
        match expected {
            Some(media_type) => {
                assert_eq!(status, StatusCode::CREATED, "{name}: {body}");
                assert_eq!(body["media_type"], *media_type, "{name}: {body}");
                assert_eq!(body["filename"], *name);
                assert_eq!(body["size"], bytes.len());
            }
            None => assert_problem(
                status,
                &body,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
        }
    }
    let (_, list) = app
        .call(Method::GET, "/v1/files", Some(&ada.token), None)
        .await;
    assert_eq!(list["data"].as_array().unwrap().len(), 6, "{list}");
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_is_read_back_only_by_its_owner_and_deleted_for_good() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let bob = app.registered("bob@example.com").await;
    let pdf: &[u8] = b"%PDF-1.7\nbody";
    let (status, file) = app
        .upload_file(&ada.token, "../../r\u{e9}sum\u{e9}.pdf", "image/png", pdf)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(
        file["filename"], "r\u{e9}sum\u{e9}.pdf",
        "directories are dropped"
    );
    assert_eq!(file["sha256"], sha256(pdf));
    let id = file["id"].as_str().unwrap();
    let url = file["url"].as_str().unwrap();
    assert_eq!(url, format!("/v1/files/{id}/content"));

    let (status, meta) = app
        .call(
            Method::GET,
            &format!("/v1/files/{id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(meta, file);
    let res = content(&app, &ada.token, url).await;
    assert_eq!(res.status(), StatusCode::OK);
    let headers = res.headers().clone();
    assert_eq!(headers["content-type"], "application/pdf");
    assert_eq!(headers["x-content-type-options"], "nosniff");
    let disposition = headers["content-disposition"].to_str().unwrap();
    assert!(
        disposition.starts_with("attachment;")
            && disposition.contains("filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
        "{disposition}"
    );
    assert_eq!(res.bytes().await.unwrap().as_ref(), pdf);
    // The same bytes again answer 304 to a client that has them.
    let res = app
        .client
        .get(format!("{}{url}", app.address))
        .bearer_auth(&ada.token)
        .header("if-none-match", headers["etag"].clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);

    // Another account, no account, a malformed id: 404 or 401, never the bytes.
    for path in [format!("/v1/files/{id}"), url.to_owned()] {
        let (status, body) = app.call(Method::GET, &path, Some(&bob.token), None).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
        let (status, _) = app.call(Method::GET, &path, None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v1/files/{id}"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .call(Method::GET, "/v1/files/not-a-uuid", Some(&ada.token), None)
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");

    // An image is shown inline.
    let (_, image) = app.upload_file(&ada.token, "a.png", "image/png", PNG).await;
    let res = content(&app, &ada.token, image["url"].as_str().unwrap()).await;
    assert!(
        res.headers()["content-disposition"]
            .to_str()
            .unwrap()
            .starts_with("inline;")
    );

    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/files/{id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    for path in [format!("/v1/files/{id}"), url.to_owned()] {
        let (status, body) = app.call(Method::GET, &path, Some(&ada.token), None).await;
        assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    }
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/files/{id}"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "deleting twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_answer_413_and_bad_uploads_a_clear_problem() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    // A PNG over 8 MB; a PDF of the same size is fine (its limit is 32 MB).
    let mut big = PNG.to_vec();
    big.resize(8 * 1024 * 1024 + 1, 0);
    let (status, body) = app
        .upload_file(&ada.token, "big.png", "image/png", &big)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let mut pdf = b"%PDF-1.7\n".to_vec();
    pdf.resize(8 * 1024 * 1024 + 1, b' ');
    let (status, body) = app
        .upload_file(&ada.token, "big.pdf", "application/pdf", &pdf)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    pdf.resize(32 * 1024 * 1024 + 1, b' ');
    let (status, body) = app
        .upload_file(&ada.token, "huge.pdf", "application/pdf", &pdf)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );

    let (status, body) = app
        .upload_file(&ada.token, "empty.txt", "text/plain", b"")
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let res = app
        .client
        .post(format!("{}/v1/files", app.address))
        .bearer_auth(&ada.token)
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (content_type, body) = multipart("other", "", "text/plain", b"no file here");
    let res = app
        .client
        .post(format!("{}/v1/files", app.address))
        .bearer_auth(&ada.token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let (_, list) = app
        .call(Method::GET, "/v1/files", Some(&ada.token), None)
        .await;
    assert_eq!(
        list["data"].as_array().unwrap().len(),
        1,
        "only the accepted PDF: {list}"
    );
}

/// Files stored twice, deleted one by one: the bytes are one object until the last file goes.
async fn same_bytes_are_stored_once(
    app: &TestApp,
    count: impl Fn() -> futures::future::BoxFuture<'static, usize>,
) {
    let ada = app.registered("ada@example.com").await;
    let bob = app.registered("bob@example.com").await;
    let before = count().await;
    let (_, first) = app.upload_file(&ada.token, "a.png", "image/png", PNG).await;
    let (_, second) = app.upload_file(&bob.token, "b.png", "image/png", PNG).await;
    assert_eq!(first["sha256"], second["sha256"]);
    assert_ne!(first["id"], second["id"]);
    assert_eq!(count().await, before + 1, "one object for the same bytes");
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/files/{}", first["id"].as_str().unwrap()),
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(
        count().await,
        before + 1,
        "bob's file still holds the bytes"
    );
    let res = content(app, &bob.token, second["url"].as_str().unwrap()).await;
    assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v1/files/{}", second["id"].as_str().unwrap()),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(count().await, before, "the last file took its bytes along");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_directory_holds_each_content_once() {
    let db = TestDb::fresh().await;
    let dir = db.data_dir.path().join("files");
    let app = spawn_on(db, |_| {}).await;
    let count = move || {
        let dir = dir.clone();
        Box::pin(async move { crate::helpers::count_files(&dir) })
            as futures::future::BoxFuture<'static, usize>
    };
    same_bytes_are_stored_once(&app, count).await;
}

/// The S3-compatible server the tests use: `TEST_S3_ENDPOINT` (scripts/test.sh starts
/// `moto_server`). Without it the S3 test is skipped, except in CI, where it fails.
fn s3_endpoint() -> Option<String> {
    match std::env::var("TEST_S3_ENDPOINT") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("CI").is_err(),
                "CI runs the S3 tests: set TEST_S3_ENDPOINT"
            );
            eprintln!("skipped: TEST_S3_ENDPOINT is not set");
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_bucket_holds_each_content_once() {
    let Some(endpoint) = s3_endpoint() else {
        return;
    };
    let bucket = format!("threadline-{}", uuid::Uuid::new_v4().simple());
    // moto accepts unsigned requests: create the test's own bucket.
    let res = reqwest::Client::new()
        .put(format!("{endpoint}/{bucket}"))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.text().await.unwrap());
    let settings = threadline::files::store::S3Settings {
        bucket: bucket.clone(),
        region: "us-east-1".into(),
        endpoint: Some(endpoint.clone()),
        prefix: "attachments".into(),
        access_key_id: Some("testing".into()),
        secret_access_key: Some("testing".to_owned().into()),
    };
    let storage = threadline::files::StorageSettings::S3(settings);
    let store =
        threadline::files::FileStore::open(&storage, std::path::Path::new("/nonexistent")).unwrap();
    let app = spawn_on(TestDb::fresh().await, |s| s.file_storage = storage).await;
    let count = move || {
        let store = store.clone();
        Box::pin(async move { store.count().await.unwrap() })
            as futures::future::BoxFuture<'static, usize>
    };
    // The objects sit under the prefix, named by digest.
    let cleo = app.registered("cleo@example.com").await;
    let (_, text) = app
        .upload_file(&cleo.token, "a.txt", "text/plain", b"hello s3")
        .await;
    let listing = reqwest::Client::new()
        .get(format!("{endpoint}/{bucket}?list-type=2"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let sha = sha256(b"hello s3");
    assert!(
        listing.contains(&format!(
            "<Key>attachments/sha256/{}/{sha}</Key>",
            &sha[..2]
        )),
        "{listing}"
    );
    let res = content(&app, &cleo.token, text["url"].as_str().unwrap()).await;
    assert_eq!(res.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(res.bytes().await.unwrap().as_ref(), b"hello s3");
    same_bytes_are_stored_once(&app, count).await;
}

mod in_messages {
    //! Files attached to chat messages: stored, shown in the thread, sent to the model as its
    //! capabilities allow, refused before anything is spent when it cannot take them.

    use base64::Engine;
    use reqwest::{Method, StatusCode};
    use serde_json::{Value, json};
    use threadline::mock_upstream::MockUpstream;

    use super::PNG;
    use crate::helpers::{LiveStream, TestApp, TestDb, User, assert_problem, model_spec, spawn_on};

    /// A server whose `openai` provider is the mock, with a vision model and a text-only one.
    async fn app_with_models() -> (TestApp, MockUpstream, User) {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let base = format!("http://127.0.0.1:{}/v1", mock.port());
        let app = spawn_on(TestDb::fresh().await, move |s| {
            s.provider_env = Some(vec![
                ("OPENAI_API_KEY".into(), "k".into()),
                ("OPENAI_BASE_URL".into(), base.into()),
            ]);
        })
        .await;
        let admin = app.registered("admin@example.com").await;
        let mut vision = model_spec("openai", "mock:len=3", 1);
        vision["capabilities"] = json!(["vision"]);
        app.define_model(&admin, "seeing", vision).await;
        app.define_model(&admin, "plain", model_spec("openai", "mock:len=3", 1))
            .await;
        (app, mock, admin)
    }

    fn data_url(media_type: &str, bytes: &[u8]) -> String {
        format!(
            "data:{media_type};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        )
    }

    /// Sends one user message with `files` parts to `model` and returns the response.
    async fn send(
        app: &TestApp,
        user: &User,
        thread: &str,
        model: &str,
        files: Vec<Value>,
    ) -> reqwest::Response {
        let mut parts = vec![json!({"type": "text", "text": "what is in it?"})];
        parts.extend(files);
        app.request(
            Method::POST,
            "/v1/chat",
            Some(&user.token),
            Some(json!({
                "id": thread, "model": model,
                "messages": [{"id": "u1", "role": "user", "parts": parts}],
            })),
        )
        .await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_image_reaches_a_vision_model_and_stays_in_the_thread() {
        let (app, mock, user) = app_with_models().await;
        let file = json!({"type": "file", "mediaType": "image/png", "filename": "dot.png",
            "url": data_url("image/png", PNG)});
        let res = send(&app, &user, "t", "seeing", vec![file]).await;
        assert_eq!(res.status(), StatusCode::OK);
        LiveStream::new(res).read_all().await;
        app.wait_reply_done(&user.token, "t").await;

        let sent = mock.last_recorded("/chat/completions").unwrap().body;
        let content = &sent["messages"].as_array().unwrap().last().unwrap()["content"];
        assert_eq!(
            content[0],
            json!({"type": "text", "text": "what is in it?"}),
            "{sent}"
        );
        assert_eq!(
            content[1]["image_url"]["url"],
            data_url("image/png", PNG),
            "{sent}"
        );

        let (_, thread) = app.get_thread(&user.token, "t").await;
        let parts = &thread["messages"][0]["parts"];
        assert_eq!(parts[1]["type"], "file", "{thread}");
        assert_eq!(parts[1]["mediaType"], "image/png");
        assert_eq!(parts[1]["filename"], "dot.png");
        let res = app
            .request(
                Method::GET,
                parts[1]["url"].as_str().unwrap(),
                Some(&user.token),
                None,
            )
            .await;
        assert_eq!(res.bytes().await.unwrap().as_ref(), PNG);
        let (_, files) = app
            .call(Method::GET, "/v1/files", Some(&user.token), None)
            .await;
        assert_eq!(files["data"].as_array().unwrap().len(), 1, "{files}");
        // The export carries the attachment.
        let (_, exported) = app
            .call(Method::GET, "/v1/threads/t/export", Some(&user.token), None)
            .await;
        assert_eq!(
            exported["messages"][0]["attachments"][0]["filename"],
            "dot.png"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_image_for_a_text_only_model_is_refused_before_anything_is_spent() {
        let (app, mock, user) = app_with_models().await;
        let (_, before) = app
            .call(Method::GET, "/v1/me/usage", Some(&user.token), None)
            .await;
        let file = json!({"type": "file", "mediaType": "image/png", "filename": "dot.png",
            "url": data_url("image/png", PNG)});
        let res = send(&app, &user, "t", "plain", vec![file]).await;
        let status = res.status();
        let body: Value = res.json().await.unwrap();
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "unsupported_capability",
        );
        assert!(
            body["detail"].as_str().unwrap().contains("dot.png"),
            "{body}"
        );
        let (_, after) = app
            .call(Method::GET, "/v1/me/usage", Some(&user.token), None)
            .await;
        assert_eq!(before, after, "nothing reserved or spent");
        assert!(mock.last_recorded("/chat/completions").is_none());
        let (_, files) = app
            .call(Method::GET, "/v1/files", Some(&user.token), None)
            .await;
        assert_eq!(files["data"], json!([]), "no file stored: {files}");
        let (status, _) = app
            .call(Method::GET, "/v1/threads/t", Some(&user.token), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "no thread created");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn text_files_go_inline_and_uploaded_files_are_named_by_url() {
        let (app, mock, user) = app_with_models().await;
        let (_, uploaded) = app
            .upload_file(&user.token, "notes.md", "text/markdown", b"# Plan\nship it")
            .await;
        let url = uploaded["url"].as_str().unwrap();
        let absolute = format!("{}{url}", app.address);
        let files = vec![
            json!({"type": "file", "mediaType": "text/markdown", "filename": "notes.md", "url": absolute}),
            json!({"type": "file", "mediaType": "text/plain", "filename": "a.txt",
                "url": "data:text/plain,hello%20there"}),
        ];
        let res = send(&app, &user, "t", "plain", files).await;
        assert_eq!(res.status(), StatusCode::OK);
        LiveStream::new(res).read_all().await;
        let sent = mock.last_recorded("/chat/completions").unwrap().body;
        let content = &sent["messages"].as_array().unwrap().last().unwrap()["content"];
        assert_eq!(
            content[1]["text"], "File notes.md:\n````\n# Plan\nship it\n````",
            "{sent}"
        );
        assert_eq!(
            content[2]["text"], "File a.txt:\n````\nhello there\n````",
            "{sent}"
        );
        let (_, listed) = app
            .call(Method::GET, "/v1/files", Some(&user.token), None)
            .await;
        assert_eq!(
            listed["data"].as_array().unwrap().len(),
            2,
            "the upload is reused: {listed}"
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bad_file_parts_are_refused_with_a_clear_problem() {
        let (app, _mock, user) = app_with_models().await;
        let bob = app.registered("bob@example.com").await;
        let (_, theirs) = app
            .upload_file(&bob.token, "b.txt", "text/plain", b"bob's")
            .await;
        let cases = [
            (
                json!({"type": "file", "url": theirs["url"]}),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                json!({"type": "file", "url": "data:image/png;base64,@@@"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                json!({"type": "file", "url": "ftp://example.com/a"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                json!({"type": "file"}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
            (
                json!({"type": "file", "url": "data:text/html,<html><script>x</script>"}),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
            ),
            // A web address on this machine: the fetcher refuses loopback addresses.
            (
                json!({"type": "file", "url": format!("{}/healthz", app.address)}),
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
            ),
        ];
        for (i, (file, status, code)) in cases.into_iter().enumerate() {
            let res = send(&app, &user, &format!("t{i}"), "seeing", vec![file.clone()]).await;
            let got = res.status();
            let body: Value = res.json().await.unwrap();
            assert_problem(got, &body, status, code);
        }
        let six: Vec<Value> = (0..6)
            .map(|_| json!({"type": "file", "url": "data:text/plain,x"}))
            .collect();
        let res = send(&app, &user, "many", "seeing", six).await;
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    }
}
