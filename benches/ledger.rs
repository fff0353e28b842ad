//! Ledger and report benchmarks (a plain harness: async set-up, fixed inputs, printed results).
//!
//! `cargo bench --bench ledger` (SQLite in a temp dir), or with `BENCH_DATABASE_URL=postgres://…`
//! against PostgreSQL (a throwaway database).
//!
//! 1. Send-path latency: `POST /v1/chat` with a model that costs a credit, until the response
//!    headers arrive (the credits are reserved before them), for an account with 10 prior ledger
//!    events and one with 100,000 (in earlier windows, as an old account has them); the ratio.
//! 2. Usage report time over 1,000,000 reply facts (the admin report's table), by grouping.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use threadline::config::Settings;
use threadline::reports::{self, UsageQuery};
use threadline::startup::Application;
use threadline_domain::plans::Plans;
use threadline_projections::{Backend, Db, Stmt};

const SENDS: usize = 200;
const HEAVY_HISTORY: i64 = 100_000;
const FACTS: i64 = 1_000_000;

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new("127.0.0.1:0", dir.path());
    settings.database_url = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(Into::into);
    settings.admin_emails = vec!["admin@bench.example".into()];
    settings.echo_delay = Duration::ZERO;
    settings.plans = Arc::new(
        Plans::with_overrides(json!({"tiers": {"free": {
            "credits": {"limit": 1_000_000, "window": "day"}}}}))
        .unwrap(),
    );
    let app = Application::build(settings).await.unwrap();
    let db = app.db().clone();
    println!("backend: {}", db.backend_name());
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();

    // 1. Send-path latency vs ledger history.
    let admin = register(&http, &base, "admin@bench.example").await;
    let (status, body) = call(
        &http,
        reqwest::Method::PUT,
        &format!("{base}/v1/admin/models/paid-echo"),
        &admin.0,
        json!({"provider": "echo", "upstream": "echo", "capabilities": [], "access": "public",
               "credits": 1, "prices": {"input": 0, "output": 0, "cached_input": 0, "reasoning": 0},
               "enabled": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let light = register(&http, &base, "light@bench.example").await;
    let heavy = register(&http, &base, "heavy@bench.example").await;
    let started = Instant::now();
    bulk_ledger(&db, &light.1, 10).await;
    bulk_ledger(&db, &heavy.1, HEAVY_HISTORY).await;
    wait_caught_up(&db).await;
    println!(
        "set-up: {HEAVY_HISTORY} prior ledger events written and projected in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let mut samples = [Vec::new(), Vec::new()];
    for i in 0..SENDS + 20 {
        for (k, (token, _)) in [&light, &heavy].into_iter().enumerate() {
            let took = send(&http, &base, token, &format!("bench-{k}-{i}")).await;
            if i >= 20 {
                samples[k].push(took);
            }
        }
    }
    let [light_samples, heavy_samples] = samples;
    let (l50, l99) = percentiles(light_samples);
    let (h50, h99) = percentiles(heavy_samples);
    println!("send path with     10 prior ledger events: p50 {l50:?}  p99 {l99:?}");
    println!("send path with {HEAVY_HISTORY} prior ledger events: p50 {h50:?}  p99 {h99:?}");
    println!(
        "send-path ratio 100,000 vs 10 prior ledger events (p50): {:.2}",
        h50.as_secs_f64() / l50.as_secs_f64()
    );

    // 2. Usage reports over a million reply facts.
    let started = Instant::now();
    bulk_facts(&db, FACTS).await;
    println!(
        "set-up: {FACTS} reply facts written in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    for group_by in ["", "day", "day,model", "model,provider,tier", "account"] {
        let query =
            UsageQuery::parse(Some("2000-01-01"), Some("2099-12-31"), Some(group_by)).unwrap();
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..3 {
            let started = Instant::now();
            let report = reports::usage(&db, &query).await.unwrap();
            times.push(started.elapsed());
            rows = report.rows.len();
        }
        times.sort();
        println!(
            "usage report over {FACTS} facts, group_by [{group_by}]: {rows} rows, median {:?}",
            times[1]
        );
    }
}

/// Registers an account; returns its token and id.
async fn register(http: &reqwest::Client, base: &str, email: &str) -> (String, String) {
    let body: Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&json!({"email": email, "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    (
        body["token"].as_str().unwrap().to_owned(),
        body["account_id"].as_str().unwrap().to_owned(),
    )
}

async fn call(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: &str,
    token: &str,
    body: Value,
) -> (u16, Value) {
    let res = http
        .request(method, url)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// One send: the time until the response headers; then the stream is read to its end.
async fn send(http: &reqwest::Client, base: &str, token: &str, thread: &str) -> Duration {
    let started = Instant::now();
    let res = http
        .post(format!("{base}/v1/chat"))
        .bearer_auth(token)
        .json(&json!({"id": thread, "message": "hi", "model": "paid-echo"}))
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    assert_eq!(res.status(), 200, "{thread}");
    res.bytes().await.unwrap();
    took
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

fn json_cast(db: &Db) -> &'static str {
    match db.backend() {
        Backend::Sqlite => "",
        Backend::Postgres => "::json",
    }
}

/// Writes `n` ledger events for `account` straight into the log (set-up, not measured):
/// reserve/settle pairs, 100 events a window, in windows before today.
async fn bulk_ledger(db: &Db, account: &str, n: i64) {
    let cast = json_cast(db);
    let sql = format!(
        "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < $1 - 1) \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'CreditWindow', $2 || ':credits:2000-' || (g / 100), (g % 100) + 1, \
           CASE WHEN g % 2 = 0 THEN 'CreditsReserved' ELSE 'CreditsSettled' END, '1.0', \
           (CASE WHEN g % 2 = 0 \
             THEN '{{\"CreditsReserved\":{{\"generation_id\":\"g' || (g / 2) || '\",\"amount\":1,\"limit\":100,\"at\":\"2000-01-01T00:00:00Z\"}}}}' \
             ELSE '{{\"CreditsSettled\":{{\"generation_id\":\"g' || (g / 2) || '\",\"reserved\":1,\"amount\":1,\"at\":\"2000-01-01T00:00:00Z\"}}}}' \
           END){cast}, '{{}}'{cast} FROM s"
    );
    db.execute(&Stmt::new(sql, vec![n.into(), account.into()]))
        .await
        .unwrap();
}

/// Writes `n` rows into the facts table (set-up): 28 days, 16 models, 4 providers, 3 tiers,
/// 1,000 accounts.
async fn bulk_facts(db: &Db, n: i64) {
    let sql = "WITH RECURSIVE s(g) AS (SELECT 0 UNION ALL SELECT g + 1 FROM s WHERE g < $1 - 1) \
         INSERT INTO usage_facts (generation_id, day, account, tier, model, provider, status, \
           input_tokens, output_tokens, reasoning_tokens, cached_tokens, credits, cost_micros) \
         SELECT 'bench-' || g, '2026-11-' || CASE WHEN g % 28 < 9 THEN '0' ELSE '' END || ((g % 28) + 1), \
           'acc-' || (g % 1000), CASE g % 3 WHEN 0 THEN 'anonymous' WHEN 1 THEN 'free' ELSE 'pro' END, \
           'model-' || (g % 16), 'provider-' || (g % 4), 'completed', \
           g % 1000, g % 500, g % 50, g % 100, 1 + g % 5, g % 10000 FROM s";
    db.execute(&Stmt::new(sql, vec![n.into()])).await.unwrap();
}

/// Waits until every projection has folded the whole log.
async fn wait_caught_up(db: &Db) {
    let projector = threadline::projector::Projector::new(
        db.clone(),
        threadline::store::keys::KeyRing::ephemeral(db.clone()),
    );
    loop {
        let head = threadline::store::log::head(db).await.unwrap();
        let status = projector.status().await.unwrap();
        if status.iter().all(|s| (s.tx_id, s.position) >= head) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
