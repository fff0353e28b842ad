//! The log itself as operators read it: `events export` and `events tail` (NDJSON), and the
//! hash chain that `verify-log` checks (tampering with a row is found).

use std::time::Duration;

use serde_json::Value;
use threadline::store::{log, seal};
use threadline_projections::{Db, Stmt};

use crate::helpers::{TestApp, TestDb, spawn_app, spawn_on};

/// Two accounts, a few replies each.
async fn workload(app: &TestApp) -> (String, String) {
    let a = app.anonymous().await;
    let b = app.anonymous().await;
    for (user, thread) in [(&a, "ta"), (&b, "tb")] {
        app.chat_all(
            &user.token,
            thread,
            "u1",
            "a unique phrase: violet kestrel",
            None,
        )
        .await;
        app.wait_reply_done(&user.token, thread).await;
        app.chat_all(&user.token, thread, "u2", "and once more", None)
            .await;
        app.wait_reply_done(&user.token, thread).await;
    }
    (a.account_id, b.account_id)
}

/// Runs the binary on `db`, returning its exit status, stdout and stderr.
async fn cli(db: &TestDb, args: &[&str]) -> (bool, String, String) {
    let out = db.run_cli(args).await;
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn lines(stdout: &str) -> Vec<Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn cursor(line: &Value) -> (i64, i64) {
    (
        line["tx_id"].as_i64().unwrap(),
        line["position"].as_i64().unwrap(),
    )
}

/// Waits until the sealer has sealed the whole log.
async fn sealed(db: &Db) {
    for _ in 0..200 {
        if seal::head(db).await.unwrap().0 >= log::head(db).await.unwrap() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the sealer never reached the head of the log");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_export_is_the_whole_log_one_event_per_line_in_order() {
    let app = spawn_app().await;
    let (a, _) = workload(&app).await;
    let db = app.stop().await;
    let conn = db.connect().await;
    let total = log::count(&conn).await.unwrap() as usize;

    let (ok, stdout, stderr) = cli(&db, &["events", "export"]).await;
    assert!(ok, "{stderr}");
    let all = lines(&stdout);
    assert_eq!(all.len(), total);
    assert!(
        stderr.contains(&format!("exported {total} events")),
        "{stderr}"
    );
    assert!(all.windows(2).all(|w| cursor(&w[0]) < cursor(&w[1])));
    for line in &all {
        for field in [
            "event_id",
            "aggregate_type",
            "aggregate_id",
            "type",
            "version",
        ] {
            assert!(line[field].is_string(), "{field} in {line}");
        }
        assert!(line["payload"].is_object() && line["metadata"].is_object());
        chrono::DateTime::parse_from_rfc3339(line["recorded_at"].as_str().unwrap()).unwrap();
    }
    assert!(stdout.contains("violet kestrel"));

    // A range is inclusive at both ends.
    let (from, to) = (&all[3], &all[7]);
    let (ok, out, err) = cli(
        &db,
        &[
            "events",
            "export",
            "--from",
            from["cursor"].as_str().unwrap(),
            "--to",
            to["cursor"].as_str().unwrap(),
        ],
    )
    .await;
    assert!(ok, "{err}");
    assert_eq!(lines(&out), all[3..=7].to_vec());

    // By type, and by account: its own stream and what it caused.
    let (ok, out, _) = cli(&db, &["events", "export", "--type", "UserMessagePosted"]).await;
    assert!(ok);
    let posted = lines(&out);
    assert_eq!(posted.len(), 4);
    assert!(posted.iter().all(|l| l["type"] == "UserMessagePosted"));
    let (ok, out, _) = cli(&db, &["events", "export", "--account", &a]).await;
    assert!(ok);
    let mine = lines(&out);
    assert!(mine.len() > 4 && mine.len() < total, "{}", mine.len());
    assert!(
        mine.iter()
            .all(|l| l["aggregate_id"] == a.as_str() || l["metadata"]["actor"] == a.as_str())
    );
    assert_eq!(
        mine.iter()
            .filter(|l| l["type"] == "UserMessagePosted")
            .count(),
        2
    );

    // The tail: the last ten, and everything after a position.
    let (ok, out, _) = cli(&db, &["events", "tail"]).await;
    assert!(ok);
    assert_eq!(lines(&out), all[total - 10..].to_vec());
    let (ok, out, _) = cli(
        &db,
        &[
            "events",
            "tail",
            "--from",
            all[total - 4]["cursor"].as_str().unwrap(),
        ],
    )
    .await;
    assert!(ok);
    assert_eq!(lines(&out), all[total - 3..].to_vec());

    // Bad positions are refused, not guessed.
    let (ok, _, err) = cli(&db, &["events", "export", "--from", "yesterday"]).await;
    assert!(!ok && err.contains("not a log position"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follow_writes_new_events_as_they_are_appended() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"));
    cmd.args(["events", "tail", "--follow", "--type", "UserMessagePosted"])
        .env("THREADLINE_DATA_DIR", app.db.data_dir.path())
        .env("THREADLINE_MASTER_KEY", &app.db.master_key)
        .env_remove("DATABASE_URL")
        .stdout(std::process::Stdio::piped());
    if let Some(url) = &app.db.database_url {
        cmd.env("DATABASE_URL", url);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        use std::io::BufRead;
        std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .next()
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    app.chat_all(&user.token, "followed", "u1", "seen live", None)
        .await;
    let first = tokio::task::spawn_blocking(move || reader.join().unwrap())
        .await
        .unwrap()
        .expect("a line");
    child.kill().unwrap();
    child.wait().unwrap();
    let line: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(line["type"], "UserMessagePosted");
    assert_eq!(line["aggregate_id"], "followed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_log_passes_on_an_intact_log_and_finds_a_changed_row() {
    let app = spawn_app().await;
    workload(&app).await;
    let db = app.stop().await;
    let conn = db.connect().await;
    let total = log::count(&conn).await.unwrap();

    let (ok, out, err) = cli(&db, &["verify-log"]).await;
    assert!(ok, "{out}{err}");
    assert!(out.contains(&format!("ok: {total} events match")), "{out}");
    let hash = out.split("hash ").nth(1).unwrap().trim();
    assert_eq!(hash.len(), 64, "{out}");
    let (_, again, _) = cli(&db, &["verify-log"]).await;
    assert_eq!(again, out, "the same log gives the same head");

    // One payload edited in place, as someone with database access might.
    let (_, export, _) = cli(&db, &["events", "export", "--type", "UserMessagePosted"]).await;
    let victim = lines(&export)[1].clone();
    conn.execute(&Stmt::new(
        "UPDATE events SET payload = '{\"forged\": true}' WHERE position = $1",
        vec![victim["position"].as_i64().unwrap().into()],
    ))
    .await
    .unwrap();
    let (ok, out, _) = cli(&db, &["verify-log"]).await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "the event at {} differs from its seal",
            victim["cursor"].as_str().unwrap()
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_log_finds_a_deleted_row() {
    let app = spawn_app().await;
    workload(&app).await;
    let db = app.stop().await;
    let conn = db.connect().await;
    let (_, export, _) = cli(&db, &["events", "export"]).await;
    let victim = lines(&export)[5].clone();
    conn.execute(&Stmt::new(
        "DELETE FROM events WHERE position = $1",
        vec![victim["position"].as_i64().unwrap().into()],
    ))
    .await
    .unwrap();
    let (ok, out, _) = cli(&db, &["verify-log"]).await;
    assert!(!ok);
    assert!(
        out.contains(&format!(
            "the event at {} is missing",
            victim["cursor"].as_str().unwrap()
        )),
        "{out}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_seal_every_event_exactly_once() {
    let db = TestDb::fresh().await;
    if !db.is_postgres() {
        return; // two nodes share one PostgreSQL database
    }
    let other = db.same_database();
    let one = spawn_on(db, |_| {}).await;
    let two = spawn_on(other, |_| {}).await;
    let chat = async |app: &TestApp, thread: &str| {
        let user = app.anonymous().await;
        for i in 0..3 {
            app.chat_all(&user.token, thread, &format!("u{i}"), "hello", None)
                .await;
            app.wait_reply_done(&user.token, thread).await;
        }
    };
    tokio::join!(chat(&one, "on-one"), chat(&two, "on-two"));
    let conn = one.db.connect().await;
    sealed(&conn).await;
    let seals: i64 = match &conn {
        Db::Postgres(pool) => sqlx::query_scalar("SELECT COUNT(*) FROM log_seals")
            .fetch_one(pool)
            .await
            .unwrap(),
        Db::Sqlite { .. } => unreachable!(),
    };
    let sealed_head = seal::head(&conn).await.unwrap().0;
    let events_to_head = log::count_range(&conn, (0, 0), sealed_head, &log::Filter::default())
        .await
        .unwrap();
    assert_eq!(seals, events_to_head);
    let found = seal::verify(&conn, &|_| {}).await.unwrap();
    assert_eq!(found.mismatch, None);
    assert_eq!(found.checked as i64, seals);
    two.stop().await;
    one.stop().await;
}
