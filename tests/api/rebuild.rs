//! Rebuilding projections from the log gives the same tables as the live ones.

use threadline::projector::rebuild::dump_table;
use threadline_projections::Db;

use crate::helpers::{TestApp, spawn_app};

async fn workload(app: &TestApp) {
    let anon = app.anonymous().await;
    for i in 0..5 {
        app.new_thread(&anon.token, &format!("anon {i}")).await;
    }
    // Files: the anonymous account's moves with the link; one of the registered one's goes.
    app.upload_file(&anon.token, "a.txt", "text/plain", b"anonymous notes")
        .await;
    let (_, reg) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    let token = reg["token"].as_str().unwrap().to_owned();
    let kept = app.new_thread(&token, "kept").await;
    let gone = app.new_thread(&token, "gone").await;
    app.patch_thread(
        &token,
        &kept,
        serde_json::json!({"title": "renamed", "pinned": true, "archived": true}),
    )
    .await;
    app.delete_thread(&token, &gone).await;
    app.chat_all(&token, "talk", "u1", "first question", None)
        .await;
    app.chat_all(&token, "talk", "u2", "second question", None)
        .await;
    app.wait_reply_done(&token, "talk").await;
    // The tree: an edit, a switch back, a branch, a hidden subtree, a share made and revoked.
    app.chat_all(&token, "talk", "u2", "second, edited", None)
        .await;
    let call = async |method, path: String, body| app.call(method, &path, Some(&token), body).await;
    call(
        reqwest::Method::PUT,
        "/v1/threads/talk/current".into(),
        Some(serde_json::json!({"message_id": "u2"})),
    )
    .await;
    call(
        reqwest::Method::POST,
        "/v1/threads/talk/branch".into(),
        Some(serde_json::json!({"message_id": "u1"})),
    )
    .await;
    let (_, share) = call(
        reqwest::Method::POST,
        "/v1/threads/talk/shares".into(),
        Some(serde_json::json!({"message_id": "u1"})),
    )
    .await;
    call(
        reqwest::Method::DELETE,
        format!("/v1/shares/{}", share["id"].as_str().unwrap()),
        None,
    )
    .await;
    call(
        reqwest::Method::POST,
        "/v1/threads/talk/shares".into(),
        Some(serde_json::json!({})),
    )
    .await;
    call(
        reqwest::Method::DELETE,
        "/v1/threads/talk/messages/u2".into(),
        None,
    )
    .await;
    let (_, kept_file) = app
        .upload_file(&token, "k.md", "text/markdown", b"# kept")
        .await;
    let (_, gone_file) = app.upload_file(&token, "g.csv", "text/csv", b"a,b\n").await;
    assert!(kept_file["id"].is_string(), "{kept_file}");
    call(
        reqwest::Method::DELETE,
        format!("/v1/files/{}", gone_file["id"].as_str().unwrap()),
        None,
    )
    .await;
    app.logout(&token).await;
    app.registered("bob@example.com").await;
    // MCP servers: one registered, changed and kept; one registered and removed.
    let admin = app.registered("admin@example.com").await;
    for (name, body) in [
        (
            "kept",
            serde_json::json!({"url": "http://127.0.0.1:1/mcp", "secret": "s", "enabled": true}),
        ),
        (
            "kept",
            serde_json::json!({"url": "http://127.0.0.1:2/mcp", "enabled": false}),
        ),
        (
            "gone",
            serde_json::json!({"url": "http://127.0.0.1:3/mcp", "enabled": true}),
        ),
    ] {
        let (status, answer) = app.put_mcp_server(&admin, name, body).await;
        assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    }
    let (status, _) = app
        .call(
            reqwest::Method::DELETE,
            "/v1/admin/mcp-servers/gone",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::NO_CONTENT);
}

async fn dump_all(db: &Db) -> Vec<(String, Vec<String>)> {
    let mut out = Vec::new();
    for p in threadline_projections::all() {
        for table in p.tables() {
            out.push(((*table).to_owned(), dump_table(db, table).await.unwrap()));
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rebuild_command_reproduces_the_live_tables_while_the_server_runs() {
    let app = spawn_app().await;
    workload(&app).await;
    let db = app.db.connect().await;
    let before = dump_all(&db).await;
    let rows = |table: &str| {
        before
            .iter()
            .find(|(t, _)| t == table)
            .map(|(_, r)| r.len())
    };
    assert_eq!(rows("threads"), Some(8), "with the branch");
    // talk: u1, its reply, u2, its reply, the edit and its reply; the branch: u1.
    assert_eq!(rows("messages"), Some(7));
    assert_eq!(rows("generations"), Some(3));
    assert_eq!(rows("shares"), Some(2), "one revoked, one live");
    assert_eq!(rows("thread_heads"), Some(2));

    let stdout = app.db.cli(&["projections", "rebuild"]).await;
    assert!(
        stdout.contains("rebuilt accounts") && stdout.contains("rebuilt threads"),
        "{stdout}"
    );

    assert_eq!(dump_all(&db).await, before);
    // The live server still answers from the swapped-in tables and keeps projecting.
    let user = app.anonymous().await;
    let id = app.new_thread(&user.token, "after rebuild").await;
    assert_eq!(app.all_thread_ids(&user.token, "").await, vec![id]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_status_command_reports_every_projection() {
    let app = spawn_app().await;
    workload(&app).await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"));
    cmd.args(["projections", "status"])
        .env("THREADLINE_DATA_DIR", app.db.data_dir.path())
        .env("THREADLINE_MASTER_KEY", &app.db.master_key)
        .env_remove("DATABASE_URL");
    if let Some(url) = &app.db.database_url {
        cmd.env("DATABASE_URL", url);
    }
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("accounts") && stdout.contains("threads"),
        "{stdout}"
    );
}

/// The threads projection under a new version number, as after a code change.
struct BumpedThreads;

impl threadline_projections::Projection for BumpedThreads {
    fn name(&self) -> &'static str {
        "threads"
    }
    fn version(&self) -> i64 {
        threadline_projections::threads::Threads.version() + 1
    }
    fn tables(&self) -> &'static [&'static str] {
        threadline_projections::threads::Threads.tables()
    }
    fn ddl(
        &self,
        backend: threadline_projections::Backend,
        tables: &threadline_projections::Tables,
    ) -> Vec<String> {
        threadline_projections::threads::Threads.ddl(backend, tables)
    }
    fn statements(
        &self,
        event: &threadline_projections::StoredEvent,
        tables: &threadline_projections::Tables,
    ) -> Result<Vec<threadline_projections::Stmt>, threadline_projections::ProjectionError> {
        threadline_projections::threads::Threads.statements(event, tables)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_projection_whose_version_changed_is_rebuilt_before_use() {
    use threadline_projections::Projection;
    let app = spawn_app().await;
    workload(&app).await;
    let db = app.db.connect().await;
    let before = dump_table(&db, "threads").await.unwrap();

    let projector = threadline::projector::Projector::with_projections(
        db.clone(),
        app.db.keys(&db),
        vec![Box::new(BumpedThreads)],
    );
    projector.prepare().await.unwrap();
    let status = projector.status().await.unwrap();
    let threads = status.iter().find(|s| s.name == "threads").unwrap();
    assert_eq!(threads.version, BumpedThreads.version());
    assert_eq!(dump_table(&db, "threads").await.unwrap(), before);
}

/// Turns every `GenerationStarted` in the log back into the shape releases before reply
/// origins wrote (version 2.0: the thread and parent as fields of their own), as in a log an
/// earlier release left behind. Sealed values are kept as they are.
async fn write_starts_as_before_origins(db: &Db, postgres: bool) -> u64 {
    let sql = if postgres {
        "UPDATE events SET event_version = '2.0', payload = jsonb_set(jsonb_set( \
           payload::jsonb #- '{GenerationStarted,origin}', \
           '{GenerationStarted,thread_id}', payload::jsonb #> '{GenerationStarted,origin,thread,thread_id}'), \
           '{GenerationStarted,parent_id}', payload::jsonb #> '{GenerationStarted,origin,thread,parent_id}')::json \
         WHERE event_type = 'GenerationStarted'"
    } else {
        "UPDATE events SET event_version = '2.0', payload = json_set( \
           json_remove(payload, '$.GenerationStarted.origin'), \
           '$.GenerationStarted.thread_id', json_extract(payload, '$.GenerationStarted.origin.thread.thread_id'), \
           '$.GenerationStarted.parent_id', json_extract(payload, '$.GenerationStarted.origin.thread.parent_id')) \
         WHERE event_type = 'GenerationStarted'"
    };
    db.execute(&threadline_projections::db::Stmt::new(sql, vec![]))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_started_before_origins_read_the_same_after_a_restart_and_a_rebuild() {
    let app = spawn_app().await;
    workload(&app).await;
    let (_, login) = app
        .login("ada@example.com", "correct horse battery", None)
        .await;
    let token = login["token"].as_str().unwrap().to_owned();
    app.chat_all(&token, "legacy", "l1", "an old question", None)
        .await;
    let view = app.wait_reply_done(&token, "legacy").await;
    let events = format!(
        "/v1/generations/{}/events",
        view["messages"][1]["metadata"]["generation_id"]
            .as_str()
            .unwrap()
    );
    let read = async |app: &TestApp| {
        let res = app
            .request(reqwest::Method::GET, &events, Some(&token), None)
            .await;
        assert_eq!(res.status(), reqwest::StatusCode::OK);
        res.text().await.unwrap()
    };
    let replay = read(&app).await;
    assert!(replay.contains("\"type\":\"start\""), "{replay}");
    let db = app.stop().await;
    let conn = db.connect().await;
    let tables = dump_all(&conn).await;

    let starts = |export: &str| -> Vec<serde_json::Value> {
        export
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let written = starts(
        &db.cli(&["events", "export", "--type", "GenerationStarted"])
            .await,
    );
    assert_eq!(written.len(), 4);
    for event in &written {
        assert_eq!(event["version"], "3.0", "{event}");
        assert!(event["payload"]["GenerationStarted"]["origin"]["thread"]["thread_id"].is_string());
    }
    assert_eq!(
        write_starts_as_before_origins(&conn, db.is_postgres()).await,
        4
    );
    for event in starts(
        &db.cli(&["events", "export", "--type", "GenerationStarted"])
            .await,
    ) {
        assert_eq!(event["version"], "2.0", "{event}");
        assert!(event["payload"]["GenerationStarted"]["origin"].is_null());
        assert!(event["payload"]["GenerationStarted"]["thread_id"].is_string());
    }

    // Every reader goes through the upcaster: the projector's rebuild, the reply reader, the
    // thread view built from both.
    db.cli(&["projections", "rebuild"]).await;
    assert_eq!(dump_all(&conn).await, tables);
    let app = crate::helpers::spawn_on(db, |_| {}).await;
    assert_eq!(app.get_thread(&token, "legacy").await.1, view);
    assert_eq!(read(&app).await, replay);
    let more = app
        .chat_all(&token, "legacy", "l2", "a third question", None)
        .await;
    assert!(crate::helpers::streamed_text(&more).contains("a third question"));
}
