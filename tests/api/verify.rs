//! `projections verify`: the live tables compared with a rebuild from the log, while the server
//! serves, and every difference shown.

use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};

use threadline::projector::rebuild::dump_table;
use threadline_projections::Stmt;

use crate::helpers::{TestApp, TestDb, spawn_app};

/// Threads, a rename and a delete, replies, a branch, a share, files, a link and an MCP server:
/// a row in most tables of every projection.
async fn workload(app: &TestApp) -> (String, String) {
    let anon = app.anonymous().await;
    app.new_thread(&anon.token, "anonymous").await;
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
    app.patch_thread(&token, &kept, serde_json::json!({"title": "renamed"}))
        .await;
    app.delete_thread(&token, &gone).await;
    app.chat_all(&token, "talk", "u1", "first question", None)
        .await;
    app.chat_all(&token, "talk", "u2", "second question", None)
        .await;
    app.wait_reply_done(&token, "talk").await;
    let call = async |method, path: &str, body| app.call(method, path, Some(&token), body).await;
    call(
        reqwest::Method::POST,
        "/v1/threads/talk/branch",
        Some(serde_json::json!({"message_id": "u1"})),
    )
    .await;
    call(
        reqwest::Method::POST,
        "/v1/threads/talk/shares",
        Some(serde_json::json!({})),
    )
    .await;
    app.upload_file(&token, "k.md", "text/markdown", b"# kept")
        .await;
    let admin = app.registered("admin@example.com").await;
    let (status, answer) = app
        .put_mcp_server(
            &admin,
            "kept",
            serde_json::json!({"url": "http://127.0.0.1:1/mcp", "enabled": true}),
        )
        .await;
    assert_eq!(status, reqwest::StatusCode::OK, "{answer}");
    (token, kept)
}

/// `threadline projections verify ARGS…` on the test's database, not yet run.
fn verify_command(db: &TestDb, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_threadline"));
    cmd.args(["projections", "verify"])
        .args(args)
        .env("THREADLINE_DATA_DIR", db.data_dir.path())
        .env("THREADLINE_MASTER_KEY", &db.master_key)
        .env_remove("DATABASE_URL");
    if let Some(url) = &db.database_url {
        cmd.env("DATABASE_URL", url);
    }
    cmd
}

/// Runs `verify` off the runtime's threads, so the server (and any traffic) keeps going.
async fn run(mut cmd: Command) -> (Output, String, String) {
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .unwrap()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_intact_database_verifies_identical_while_the_server_keeps_writing() {
    let app = spawn_app().await;
    workload(&app).await;
    let stop = AtomicBool::new(false);
    // New accounts, threads and replies while verify runs: the live tables and checkpoints
    // move under it (a new account each turn stays within the anonymous plan's credits).
    let traffic = async {
        let mut turns = 0;
        while !stop.load(Ordering::Relaxed) {
            let user = app.anonymous().await;
            let thread = format!("busy{turns}");
            app.chat_all(&user.token, &thread, "u1", "keep busy", None)
                .await;
            app.patch_thread(
                &user.token,
                &thread,
                serde_json::json!({"title": format!("busy {turns}")}),
            )
            .await;
            turns += 1;
        }
        turns
    };
    let verified = async {
        let result = run(verify_command(&app.db, &[])).await;
        stop.store(true, Ordering::Relaxed);
        result
    };
    let (turns, (out, stdout, stderr)) = tokio::join!(traffic, verified);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for p in threadline_projections::all() {
        assert!(
            stdout.contains(&format!("{}: identical", p.name())),
            "{}: {stdout}",
            p.name()
        );
    }
    assert!(turns > 0, "the server was writing during the verify");
    assert!(!stdout.contains("differ"), "{stdout}");

    // The shadow tables are gone and the live tables untouched: a second run agrees.
    let stdout = app.db.cli(&["projections", "verify", "threads"]).await;
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("threads: identical"), "{stdout}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_and_a_deleted_row_are_shown_and_the_command_fails() {
    let app = spawn_app().await;
    let (token, kept) = workload(&app).await;
    let deleted = app
        .new_thread(&token, "deleted behind the log's back")
        .await;
    let db = app.db.connect().await;
    db.execute(&Stmt::new(
        "UPDATE threads SET title = $1 WHERE id = $2",
        vec!["tampered".into(), kept.as_str().into()],
    ))
    .await
    .unwrap();
    let gone = db
        .execute(&Stmt::new(
            "DELETE FROM threads WHERE id = $1",
            vec![deleted.as_str().into()],
        ))
        .await
        .unwrap();
    assert_eq!(gone, 1);

    let (out, stdout, stderr) = run(verify_command(&app.db, &[])).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(stdout.contains("threads: 2 differences"), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "  threads: row id='{kept}': title: live 'tampered', rebuild 'renamed'"
        )),
        "{stdout}"
    );
    let only_rebuild = format!("  threads: only in the rebuild: id='{deleted}' ");
    let line = stdout
        .lines()
        .find(|l| l.starts_with(&only_rebuild))
        .unwrap_or_else(|| panic!("no line for the deleted row: {stdout}"));
    assert!(
        line.contains("title='deleted behind the log''s back'"),
        "{line}"
    );
    // Only the threads projection was touched; the others still match.
    for name in ["accounts", "messages", "search", "shares"] {
        assert!(
            stdout.contains(&format!("{name}: identical")),
            "{name}: {stdout}"
        );
    }
    assert!(
        stderr.contains("projections verify: 2 differences") && stderr.contains("threads: 2"),
        "{stderr}"
    );

    // A row only in live, by name, and the tables are left as they were.
    db.execute(&Stmt::new(
        "INSERT INTO account_links (anonymous_id, target_id) VALUES ($1, $2)",
        vec!["nobody".into(), "no-one".into()],
    ))
    .await
    .unwrap();
    let (out, stdout, _) = run(verify_command(&app.db, &["threads"])).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.starts_with("threads: 3 differences"), "{stdout}");
    assert!(
        stdout.contains("  account_links: only in live: anonymous_id='nobody' target_id='no-one'"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("accounts"),
        "only the named projection: {stdout}"
    );
    let (_, thread) = app.get_thread(&token, &kept).await;
    assert_eq!(thread["title"], "tampered", "verify never repairs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_projection_is_an_error() {
    let app = spawn_app().await;
    let (out, _, stderr) = run(verify_command(&app.db, &["nonesuch"])).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr.contains("unknown projection \"nonesuch\""),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_tables_in_use_are_left_alone() {
    let app = spawn_app().await;
    workload(&app).await;
    // As a rebuild of threads leaves them while it runs (or when it was interrupted).
    let db = app.db.connect().await;
    db.execute(&Stmt::new(
        "CREATE TABLE account_links__rebuild (anonymous_id TEXT PRIMARY KEY, target_id TEXT)",
        vec![],
    ))
    .await
    .unwrap();
    let (out, stdout, stderr) = run(verify_command(&app.db, &["threads"])).await;
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("shadow tables of threads exist (account_links__rebuild)"),
        "{stderr}"
    );
    assert!(
        dump_table(&db, "account_links__rebuild").await.is_ok(),
        "still there"
    );
    assert!(
        app.db
            .cli(&["projections", "verify", "accounts"])
            .await
            .starts_with("accounts: identical")
    );
}
