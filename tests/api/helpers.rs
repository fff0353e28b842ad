//! `spawn_app()` and `TestApp`: one method per endpoint.

use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

use reqwest::{Method, Response, StatusCode};
use serde_json::{Value, json};
use threadline::config::Settings;
use threadline::startup::Application;
use threadline_projections::Db;

/// Where a test's data lives; kept alive for the test's duration.
pub struct TestDb {
    pub data_dir: tempfile::TempDir,
    /// The PostgreSQL URL of this test's own database (None on SQLite).
    pub database_url: Option<String>,
    /// The master key every node and command on this database shares (base64).
    pub master_key: String,
}

/// A fresh random master key, as `THREADLINE_MASTER_KEY` takes it.
fn new_master_key() -> String {
    use base64::Engine;
    let bytes: [u8; 32] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

impl TestDb {
    /// A fresh, empty database for one test.
    pub async fn fresh() -> Self {
        let data_dir = tempfile::tempdir().unwrap();
        let database_url = match std::env::var("TEST_DATABASE_URL") {
            Ok(admin_url) if !admin_url.is_empty() => Some(create_pg_database(&admin_url).await),
            _ => None,
        };
        Self {
            data_dir,
            database_url,
            master_key: new_master_key(),
        }
    }

    /// Another node's view of the same database (its own data dir).
    pub fn same_database(&self) -> Self {
        Self {
            data_dir: tempfile::tempdir().unwrap(),
            database_url: self.database_url.clone(),
            master_key: self.master_key.clone(),
        }
    }

    pub fn is_postgres(&self) -> bool {
        self.database_url.is_some()
    }

    /// Settings for a server on a random port over this database.
    pub fn settings(&self) -> Settings {
        let mut s = Settings::new("127.0.0.1:0", self.data_dir.path());
        s.database_url = self.database_url.clone().map(Into::into);
        s.master_key = Some(self.master_key.clone().into());
        s.limits = threadline::auth::limits::LimitSettings::unlimited();
        s.workers = 2;
        s.admin_emails = vec!["admin@example.com".into()];
        s.echo_delay = std::time::Duration::from_millis(5);
        s.provider_env = Some(vec![]);
        s.allow_direct_models = true;
        s
    }

    /// The keys the servers on this database seal personal values with.
    pub fn keys(&self, db: &Db) -> threadline::store::keys::KeyRing {
        threadline::store::keys::KeyRing::load(
            db.clone(),
            Some(&self.master_key),
            self.data_dir.path(),
        )
        .unwrap()
    }

    /// A direct connection to this database (for dumps and raw checks).
    pub async fn connect(&self) -> Db {
        threadline::store::connect(self.database_url.as_deref(), self.data_dir.path())
            .await
            .unwrap()
    }
}

async fn create_pg_database(admin_url: &str) -> String {
    use sqlx::Connection;
    let name = format!("tl_test_{}", uuid::Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(admin_url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    let (base, _) = admin_url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

fn init_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        if std::env::var("TEST_LOG").is_ok() {
            threadline::telemetry::init(std::io::stdout);
        }
    });
}

/// A running server and a client for it.
pub struct TestApp {
    pub address: String,
    pub client: reqwest::Client,
    pub db: TestDb,
    handle: actix_web::dev::ServerHandle,
    join: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Starts the server on a fresh database.
pub async fn spawn_app() -> TestApp {
    spawn_on(TestDb::fresh().await, |_| {}).await
}

/// Starts the server on `db` with adjusted settings.
pub async fn spawn_on(db: TestDb, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    init_logs();
    let mut settings = db.settings();
    adjust(&mut settings);
    let app = Application::build(settings).await.expect("app builds");
    let address = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let join = tokio::spawn(app.run_until_stopped());
    TestApp {
        address,
        client: reqwest::Client::new(),
        db,
        handle,
        join,
    }
}

/// A signed-in client: the token and account of one session.
#[derive(Debug, Clone)]
pub struct User {
    pub token: String,
    pub account_id: String,
    pub session_id: String,
}

impl User {
    /// The user of a sign-up or login answer.
    pub fn from(body: &Value) -> Self {
        Self {
            token: body["token"].as_str().unwrap().to_owned(),
            account_id: body["account_id"].as_str().unwrap().to_owned(),
            session_id: body["session_id"].as_str().unwrap().to_owned(),
        }
    }
}

impl TestDb {
    /// Runs the `threadline` binary on this database and returns its standard output (the
    /// command must succeed).
    pub async fn cli(&self, args: &[&str]) -> String {
        let out = self.run_cli(args).await;
        assert!(
            out.status.success(),
            "threadline {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs the `threadline` binary on this database. It waits on a blocking thread: the test's
    /// runtime also runs the server, which must go on meanwhile (a frozen server may hold
    /// SQLite's write lock for as long as the command waits for it).
    pub async fn run_cli(&self, args: &[&str]) -> std::process::Output {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"));
        cmd.args(args)
            .env("THREADLINE_DATA_DIR", self.data_dir.path())
            .env("THREADLINE_MASTER_KEY", &self.master_key)
            .env_remove("DATABASE_URL");
        if let Some(url) = &self.database_url {
            cmd.env("DATABASE_URL", url);
        }
        tokio::task::spawn_blocking(move || cmd.output())
            .await
            .unwrap()
            .unwrap()
    }
}

/// A public catalog entry on `provider`/`upstream` costing `credits` a message, free of charge
/// per token (callers adjust the JSON for prices or access).
pub fn model_spec(provider: &str, upstream: &str, credits: u32) -> Value {
    json!({
        "provider": provider,
        "upstream": upstream,
        "capabilities": [],
        "access": "public",
        "credits": credits,
        "prices": {"input": 0, "output": 0, "cached_input": 0, "reasoning": 0},
        "enabled": true,
    })
}

impl TestApp {
    /// Registers (or changes) MCP server `name` as `admin` with `body` (`{url, secret?,
    /// enabled}`); returns the answer's status and body.
    pub async fn put_mcp_server(
        &self,
        admin: &User,
        name: &str,
        body: Value,
    ) -> (StatusCode, Value) {
        self.call(
            Method::PUT,
            &format!("/v1/admin/mcp-servers/{name}"),
            Some(&admin.token),
            Some(body),
        )
        .await
    }

    /// Defines (or replaces) catalog model `id` as `admin`.
    pub async fn define_model(&self, admin: &User, id: &str, spec: Value) {
        let (status, body) = self
            .call(
                Method::PUT,
                &format!("/v1/admin/models/{id}"),
                Some(&admin.token),
                Some(spec),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    /// Stops the server gracefully and returns its database for a restart.
    pub async fn stop(self) -> TestDb {
        self.handle.stop(true).await;
        self.join.await.unwrap().unwrap();
        self.db
    }

    /// Sends a request; `body` as JSON when given.
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self
            .client
            .request(method, format!("{}{path}", self.address));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.unwrap()
    }

    /// Uploads a file (`POST /v1/files`, multipart) and returns the status and JSON body.
    pub async fn upload_file(
        &self,
        token: &str,
        filename: &str,
        declared: &str,
        bytes: &[u8],
    ) -> (StatusCode, Value) {
        let (content_type, body) = multipart("file", filename, declared, bytes);
        let res = self
            .client
            .post(format!("{}/v1/files", self.address))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// Sends a request and returns the status and JSON body (Null when empty).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let res = self.request(method, path, token, body).await;
        let status = res.status();
        let text = res.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, json)
    }

    pub async fn anonymous(&self) -> User {
        let (status, body) = self
            .call(Method::POST, "/v1/auth/anonymous", None, None)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        User::from(&body)
    }

    pub async fn register(
        &self,
        email: &str,
        password: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/auth/register",
            token,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn registered(&self, email: &str) -> User {
        let (status, body) = self.register(email, "correct horse battery", None).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        User::from(&body)
    }

    pub async fn login(
        &self,
        email: &str,
        password: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/v1/auth/login",
            token,
            Some(json!({"email": email, "password": password})),
        )
        .await
    }

    pub async fn logout(&self, token: &str) -> StatusCode {
        self.call(Method::POST, "/v1/auth/logout", Some(token), None)
            .await
            .0
    }

    pub async fn me(&self, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, "/v1/me", Some(token), None).await
    }

    pub async fn sessions(&self, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, "/v1/me/sessions", Some(token), None)
            .await
    }

    pub async fn revoke_session(&self, token: &str, id: &str) -> StatusCode {
        self.call(
            Method::DELETE,
            &format!("/v1/me/sessions/{id}"),
            Some(token),
            None,
        )
        .await
        .0
    }

    pub async fn create_thread(&self, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, "/v1/threads", Some(token), Some(body))
            .await
    }

    /// Creates a thread and returns its id.
    pub async fn new_thread(&self, token: &str, title: &str) -> String {
        let (status, body) = self.create_thread(token, json!({"title": title})).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    pub async fn list_threads(&self, token: &str, query: &str) -> (StatusCode, Value) {
        self.call(
            Method::GET,
            &format!("/v1/threads{query}"),
            Some(token),
            None,
        )
        .await
    }

    /// Every thread id of the caller (following cursors), in list order.
    pub async fn all_thread_ids(&self, token: &str, filter: &str) -> Vec<String> {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let query = match &cursor {
                Some(c) => format!("?limit=7&cursor={c}{filter}"),
                None => format!("?limit=7{filter}"),
            };
            let (status, page) = self.list_threads(token, &query).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            for t in page["data"].as_array().unwrap() {
                ids.push(t["id"].as_str().unwrap().to_owned());
            }
            match page["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_owned()),
                None => return ids,
            }
        }
    }

    pub async fn get_thread(&self, token: &str, id: &str) -> (StatusCode, Value) {
        self.call(Method::GET, &format!("/v1/threads/{id}"), Some(token), None)
            .await
    }

    pub async fn patch_thread(&self, token: &str, id: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Method::PATCH,
            &format!("/v1/threads/{id}"),
            Some(token),
            Some(body),
        )
        .await
    }

    pub async fn delete_thread(&self, token: &str, id: &str) -> StatusCode {
        self.call(
            Method::DELETE,
            &format!("/v1/threads/{id}"),
            Some(token),
            None,
        )
        .await
        .0
    }
}

/// Asserts a problem+json error with the given status and code.
pub fn assert_problem(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], expected.as_u16(), "{body}");
    assert!(
        body["title"].is_string() && body["detail"].is_string(),
        "{body}"
    );
}

/// One SSE event of a UI message stream.
#[derive(Debug, Clone)]
pub struct SseEvent {
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).unwrap_or(Value::Null)
    }

    pub fn kind(&self) -> String {
        if self.data == "[DONE]" {
            return "[DONE]".into();
        }
        self.json()["type"].as_str().unwrap_or_default().to_owned()
    }
}

/// Parses a whole SSE body (keep-alive comments skipped).
pub fn parse_sse(body: &str) -> Vec<SseEvent> {
    body.split("\n\n")
        .filter_map(|block| {
            let mut id = None;
            let mut data = Vec::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_owned());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data.push(v);
                }
            }
            (!data.is_empty()).then(|| SseEvent {
                id,
                data: data.join("\n"),
            })
        })
        .collect()
}

/// The text a stream's `text-delta` parts add up to.
pub fn streamed_text(events: &[SseEvent]) -> String {
    events
        .iter()
        .filter(|e| e.kind() == "text-delta")
        .map(|e| e.json()["delta"].as_str().unwrap().to_owned())
        .collect()
}

/// A response being read incrementally.
pub struct LiveStream {
    pub response: reqwest::Response,
    buffer: String,
}

impl LiveStream {
    pub fn new(response: Response) -> Self {
        Self {
            response,
            buffer: String::new(),
        }
    }

    /// Reads until at least `n` complete events arrived; returns them all.
    pub async fn read_events(&mut self, n: usize) -> Vec<SseEvent> {
        loop {
            let events = parse_sse(&self.buffer);
            let complete = self.buffer.matches("\n\n").count();
            if events.len() >= n && complete >= n {
                return events;
            }
            match tokio::time::timeout(std::time::Duration::from_secs(20), self.response.chunk())
                .await
            {
                Ok(Ok(Some(bytes))) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) => return events,
                other => panic!("stream stalled: {other:?}"),
            }
        }
    }

    /// Reads the live feed until its `ready` event (which follows the backlog) and drops that
    /// event from what later reads return; the backlog before it stays.
    pub async fn expect_ready(&mut self) -> SseEvent {
        let mut n = 1;
        loop {
            let events = self.read_events(n).await;
            if let Some(ready) = events.iter().find(|e| e.kind() == "ready") {
                let ready = ready.clone();
                let marker = "\"type\":\"ready\"";
                let at = self.buffer.find(marker).unwrap();
                let start = self.buffer[..at].rfind("\n\n").map_or(0, |i| i + 2);
                let end = at + self.buffer[at..].find("\n\n").unwrap() + 2;
                self.buffer.drain(start..end);
                return ready;
            }
            assert!(
                events.len() >= n,
                "the feed ended before it was ready: {events:?}"
            );
            n = events.len() + 1;
        }
    }

    /// Reads to the end of the stream.
    pub async fn read_all(mut self) -> Vec<SseEvent> {
        while let Some(bytes) =
            tokio::time::timeout(std::time::Duration::from_secs(30), self.response.chunk())
                .await
                .expect("stream stalled")
                .unwrap()
        {
            self.buffer.push_str(&String::from_utf8_lossy(&bytes));
        }
        parse_sse(&self.buffer)
    }
}

impl TestApp {
    /// Starts a chat request the way the AI SDK's `DefaultChatTransport` sends it.
    pub async fn chat(
        &self,
        token: &str,
        thread: &str,
        message_id: &str,
        text: &str,
        model: Option<&str>,
    ) -> Response {
        let mut body = json!({
            "id": thread,
            "messages": [{"id": message_id, "role": "user", "parts": [{"type": "text", "text": text}]}],
            "trigger": "submit-message",
        });
        if let Some(model) = model {
            body["model"] = json!(model);
        }
        self.request(Method::POST, "/v1/chat", Some(token), Some(body))
            .await
    }

    /// Sends `text` to `model` in the short transport form with `extra` body fields (`tools`,
    /// `tool`, …) merged in.
    pub async fn chat_with(
        &self,
        token: &str,
        thread: &str,
        model: &str,
        text: &str,
        extra: Value,
    ) -> Response {
        let mut body = json!({
            "id": thread, "model": model,
            "messages": [{"id": "u1", "role": "user", "parts": [{"type": "text", "text": text}]}],
        });
        for (k, v) in extra.as_object().into_iter().flatten() {
            body[k] = v.clone();
        }
        self.request(Method::POST, "/v1/chat", Some(token), Some(body))
            .await
    }

    /// [`TestApp::chat_with`], expecting a stream, read to its end.
    pub async fn chat_with_all(
        &self,
        token: &str,
        thread: &str,
        model: &str,
        text: &str,
        extra: Value,
    ) -> Vec<SseEvent> {
        let res = self.chat_with(token, thread, model, text, extra).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        LiveStream::new(res).read_all().await
    }

    /// Sends a message and reads the whole reply stream.
    pub async fn chat_all(
        &self,
        token: &str,
        thread: &str,
        message_id: &str,
        text: &str,
        model: Option<&str>,
    ) -> Vec<SseEvent> {
        let res = self.chat(token, thread, message_id, text, model).await;
        assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
        LiveStream::new(res).read_all().await
    }

    pub async fn resume(&self, token: &str, thread: &str, last_event_id: Option<&str>) -> Response {
        let mut req = self
            .client
            .get(format!("{}/v1/chat/{thread}/stream", self.address))
            .bearer_auth(token);
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        req.send().await.unwrap()
    }

    pub async fn stop_reply(&self, token: &str, thread: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/v1/chat/{thread}/stop"),
            Some(token),
            None,
        )
        .await
    }

    /// Waits until the thread has a title and returns it.
    pub async fn wait_title(&self, token: &str, thread: &str) -> String {
        for _ in 0..200 {
            let (_, t) = self.get_thread(token, thread).await;
            if let Some(title) = t["title"].as_str() {
                return title.to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the thread was never titled");
    }

    /// Waits until the thread's newest message has left the `streaming` status.
    pub async fn wait_reply_done(&self, token: &str, thread: &str) -> Value {
        for _ in 0..400 {
            let (_, t) = self.get_thread(token, thread).await;
            let last = t["messages"].as_array().and_then(|m| m.last()).cloned();
            if let Some(last) = last
                && last["metadata"]["status"] != "streaming"
                && t["active_generation_id"].is_null()
            {
                return t;
            }
            tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        }
        panic!("the reply never finished");
    }
}

/// The `threadline` binary serving on a free port, killed when dropped. Its standard error
/// (the logs) goes to `log`.
pub struct Node {
    pub child: Child,
    pub address: String,
    pub log: std::path::PathBuf,
}

impl Node {
    pub async fn start(db: &TestDb) -> Node {
        Node::start_with(db, &[]).await
    }

    pub async fn start_with(db: &TestDb, env: &[(&str, &str)]) -> Node {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_threadline"));
        // Only the built-in echo model: no provider keys or model choices from outside.
        for (key, _) in std::env::vars() {
            if key.ends_with("_API_KEY")
                || (key.starts_with("THREADLINE_") && key.ends_with("_MODEL"))
            {
                cmd.env_remove(key);
            }
        }
        cmd.arg("serve")
            .env("THREADLINE_BIND", format!("127.0.0.1:{port}"))
            .env("THREADLINE_DATA_DIR", db.data_dir.path())
            .env("THREADLINE_MASTER_KEY", &db.master_key)
            .env("THREADLINE_ECHO_DELAY_MS", "30")
            .env("THREADLINE_ANON_PER_MINUTE", "0")
            .env("RUST_LOG", "warn")
            .env_remove("DATABASE_URL")
            .stdout(Stdio::null());
        let log = db.data_dir.path().join(format!("node-{port}.log"));
        cmd.stderr(std::fs::File::create(&log).unwrap());
        if let Some(url) = &db.database_url {
            cmd.env("DATABASE_URL", url);
        }
        for (key, value) in env {
            cmd.env(key, value);
        }
        // Dropping the node kills and waits for the child.
        let node = Node {
            child: cmd.spawn().unwrap(),
            address: format!("http://127.0.0.1:{port}"),
            log,
        };
        for _ in 0..200 {
            if let Ok(res) = reqwest::get(format!("{}/readyz", node.address)).await
                && res.status().is_success()
            {
                return node;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("node did not start");
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A multipart body with one file field.
pub fn multipart(field: &str, filename: &str, declared: &str, bytes: &[u8]) -> (String, Vec<u8>) {
    let boundary = "threadline-files-boundary";
    let mut body = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nattachment\r\n\
         --{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; filename=\"{filename}\"\r\n\
         Content-Type: {declared}\r\n\r\n"
    )
    .into_bytes();
    body.extend_from_slice(bytes);
    body.extend(format!("\r\n--{boundary}--\r\n").into_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// The files under `dir`, counted through every subdirectory (0 when it does not exist).
pub fn count_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    if e.path().is_dir() {
                        count_files(&e.path())
                    } else {
                        1
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}
