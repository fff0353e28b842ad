//! Streaming load harness (loopback only, bounded in count and time).
//!
//! `cargo bench --bench streaming` (SQLite in a temp dir), or with
//! `BENCH_DATABASE_URL=postgres://…` against PostgreSQL (a throwaway database).
//!
//! 1. Throughput: replies of 20 chunks 5 ms apart at 64 concurrent clients, straight from the
//!    mock upstream vs through Threadline (every chunk durable).
//! 2. Time to first token at one client, direct vs through Threadline (the added latency).
//! 3. Durable chunk events per second with 1,000 concurrent replies.
//! 4. Resume of a finished 1,000-chunk reply: time to read the whole backlog.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::json;
use threadline::config::Settings;
use threadline::mock_upstream::MockUpstream;
use threadline::startup::Application;

const WINDOW: Duration = Duration::from_secs(8);

#[tokio::main]
async fn main() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new("127.0.0.1:0", dir.path());
    settings.database_url = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(Into::into);
    settings.limits = threadline::auth::limits::LimitSettings::unlimited();
    settings.allow_direct_models = true;
    settings.provider_env = Some(vec![
        ("OPENAI_API_KEY".into(), "bench".into()),
        ("OPENAI_BASE_URL".into(), (mock.base_url()).into()),
    ]);
    let app = Application::build(settings).await.unwrap();
    let backend = app.db().backend_name();
    let db = app.db().clone();
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(2000)
        .build()
        .unwrap();
    let token: String = client
        .post(format!("{base}/v1/auth/anonymous"))
        .send()
        .await
        .unwrap()
        .json::<serde_json::Value>()
        .await
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    println!("backend: {backend}");

    // 1. Throughput at 64 clients.
    let model = "mock:len=20,tps=200";
    let direct = run_clients(64, WINDOW, {
        let client = client.clone();
        let url = format!("{}/chat/completions", mock.base_url());
        move |_| {
            let (client, url) = (client.clone(), url.clone());
            async move { direct_reply(&client, &url, model).await }
        }
    })
    .await;
    let counter = Arc::new(AtomicU64::new(0));
    let through = run_clients(64, WINDOW, {
        let (client, base, token, counter) =
            (client.clone(), base.clone(), token.clone(), counter.clone());
        move |_| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            let n = counter.fetch_add(1, Ordering::Relaxed);
            async move {
                chat_reply(
                    &client,
                    &base,
                    &token,
                    &format!("tp-{n}"),
                    &format!("openai/{model}"),
                )
                .await
            }
        }
    })
    .await;
    println!(
        "throughput, 64 clients, 20 chunks 5 ms apart: direct {:.0} replies/s, through Threadline {:.0} replies/s ({:.1} %)",
        direct.per_second,
        through.per_second,
        100.0 * through.per_second / direct.per_second
    );

    // 2. Time to first token at one client.
    let model = "mock:len=5";
    let mut direct_ttft = Vec::new();
    let mut through_ttft = Vec::new();
    for i in 0..200 {
        direct_ttft.push(
            direct_reply(
                &client,
                &format!("{}/chat/completions", mock.base_url()),
                model,
            )
            .await
            .0,
        );
        through_ttft.push(
            chat_reply(
                &client,
                &base,
                &token,
                &format!("ttft-{i}"),
                &format!("openai/{model}"),
            )
            .await
            .0,
        );
    }
    let (d50, d99) = percentiles(direct_ttft);
    let (t50, t99) = percentiles(through_ttft);
    println!(
        "time to first token, 1 client: direct p50 {d50:?} p99 {d99:?}; through Threadline p50 {t50:?} p99 {t99:?}; added p50 {:?}",
        t50.saturating_sub(d50)
    );

    // 3. Durable chunk events per second with 1,000 concurrent replies, and how long a
    //    committed batch takes to reach the connection (server side, from /metrics).
    let metrics_before = commit_to_send(&client, &base).await;
    let rows_before = chunk_rows(&db).await;
    let started = Instant::now();
    let tasks: Vec<_> = (0..1000)
        .map(|i| {
            let (client, base, token) = (client.clone(), base.clone(), token.clone());
            tokio::spawn(async move {
                chat_reply(
                    &client,
                    &base,
                    &token,
                    &format!("wide-{i}"),
                    "openai/mock:len=50,tps=100",
                )
                .await
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let rows = chunk_rows(&db).await - rows_before;
    println!(
        "1,000 concurrent replies of 50 chunks (10 ms apart): {rows} durable chunk events in {secs:.2}s = {:.0} events/s",
        rows as f64 / secs
    );
    let metrics_after = commit_to_send(&client, &base).await;
    let delta: Vec<(f64, u64)> = metrics_after
        .iter()
        .zip(&metrics_before)
        .map(|((le, a), (_, b))| (*le, a - b))
        .collect();
    println!(
        "commit-to-send at 1,000 concurrent streams (bucket bounds): p50 <= {} ms, p99 <= {} ms",
        quantile(&delta, 0.5) * 1000.0,
        quantile(&delta, 0.99) * 1000.0
    );

    // 4. Resume of a 1,000-chunk reply (finished; the whole backlog comes from the log).
    chat_reply(
        &client,
        &base,
        &token,
        "backlog",
        "openai/mock:len=1000,tps=2000",
    )
    .await;
    let thread: serde_json::Value = client
        .get(format!("{base}/v1/threads/backlog"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let generation = thread["messages"][1]["metadata"]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut samples = Vec::new();
    let mut chunks = 0;
    for _ in 0..100 {
        let started = Instant::now();
        let body = client
            .get(format!("{base}/v1/generations/{generation}/events"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        samples.push(started.elapsed());
        chunks = body.matches("text-delta").count();
    }
    let (p50, p99) = percentiles(samples);
    println!("resume of a finished reply with {chunks} text deltas: p50 {p50:?} p99 {p99:?}");
}

struct Load {
    per_second: f64,
}

async fn run_clients<F, Fut>(clients: usize, window: Duration, make: F) -> Load
where
    F: Fn(usize) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = (Duration, usize)> + Send,
{
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + window;
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let (make, done) = (make.clone(), done.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    make(c).await;
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let started = Instant::now();
    for t in tasks {
        t.await.unwrap();
    }
    Load {
        per_second: done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64(),
    }
}

/// One streamed reply straight from the upstream: (time to first content, bytes).
async fn direct_reply(client: &reqwest::Client, url: &str, model: &str) -> (Duration, usize) {
    let started = Instant::now();
    let res = client
        .post(url)
        .bearer_auth("bench")
        .json(
            &json!({"model": model, "stream": true, "stream_options": {"include_usage": true},
                      "messages": [{"role": "user", "content": "hi"}]}),
        )
        .send()
        .await
        .unwrap();
    read_stream(res, started, "\"content\":\"w").await
}

/// One reply through Threadline on a fresh thread.
async fn chat_reply(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    thread: &str,
    model: &str,
) -> (Duration, usize) {
    let started = Instant::now();
    let res = client
        .post(format!("{base}/v1/chat"))
        .bearer_auth(token)
        .json(&json!({"id": thread, "message": "hi", "model": model}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    read_stream(res, started, "text-delta").await
}

async fn read_stream(res: reqwest::Response, started: Instant, marker: &str) -> (Duration, usize) {
    let mut first = None;
    let mut bytes = 0;
    let mut stream = res.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        bytes += chunk.len();
        if first.is_none() && String::from_utf8_lossy(&chunk).contains(marker) {
            first = Some(started.elapsed());
        }
    }
    (first.unwrap_or_else(|| started.elapsed()), bytes)
}

/// Cumulative buckets `(le seconds, count)` of `threadline_commit_to_send_seconds`.
async fn commit_to_send(client: &reqwest::Client, base: &str) -> Vec<(f64, u64)> {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter_map(|l| l.strip_prefix("threadline_commit_to_send_seconds_bucket{le=\""))
        .filter_map(|l| {
            let (le, count) = l.split_once("\"} ")?;
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, count.trim().parse().ok()?))
        })
        .collect()
}

/// The smallest bucket bound holding the `q` quantile.
fn quantile(buckets: &[(f64, u64)], q: f64) -> f64 {
    let total = buckets.last().map_or(0, |(_, c)| *c);
    let target = (total as f64 * q).ceil() as u64;
    buckets
        .iter()
        .find(|(_, c)| *c >= target.max(1))
        .map_or(f64::NAN, |(le, _)| *le)
}

async fn chunk_rows(db: &threadline_projections::Db) -> u64 {
    let n: i64 = threadline_projections::on_read!(db, pool =>
        sqlx::query_scalar("SELECT COUNT(*) FROM events WHERE event_type = 'ChunksAppended'")
            .fetch_one(pool).await)
    .unwrap();
    n as u64
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}
