//! Event-log benchmarks (a plain harness: async set-up, fixed inputs, printed results).
//!
//! `cargo bench --bench event_log` runs against SQLite in a temp dir;
//! `BENCH_DATABASE_URL=postgres://… cargo bench --bench event_log` against PostgreSQL (the URL
//! must name a database the benchmark may fill; use a throwaway one).
//!
//! Measures:
//! 1. command latency on a Thread with 10 vs 100,000 prior events (and the ratio);
//! 2. events appended per second through the command bus by 16 concurrent writers;
//! 3. projector catch-up: events folded per second into the threads projection.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use chrono::Utc;
use threadline::projector::Projector;
use threadline::store::bus::{CommandBus, CommandMeta};
use threadline::store::keys::KeyRing;
use threadline::store::{self, log};
use threadline_domain::thread::{Thread, ThreadCommand, ThreadEvent, TitleSource};
use threadline_domain::values::{AccountId, Title};
use threadline_projections::{Db, Stmt};

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let url = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    let db = store::connect(url.as_deref(), dir.path()).await.unwrap();
    store::migrate(&db).await.unwrap();
    println!("backend: {}", db.backend_name());
    let bus = CommandBus::new(db.clone(), KeyRing::ephemeral(db.clone()));
    let owner = AccountId::generate();

    // 1. Command latency vs history length: both streams set up first, then measured in
    //    alternation, so that neither pays for the other's set-up (a big insert, a WAL to
    //    checkpoint).
    let streams: Vec<(i64, String)> = [10i64, 100_000]
        .into_iter()
        .map(|prior| (prior, format!("latency-{prior}")))
        .collect();
    for (prior, id) in &streams {
        create(&bus, id, owner).await;
        bulk_history(&db, id, *prior).await;
    }
    let mut samples = vec![Vec::new(); streams.len()];
    for _ in 0..10 {
        for (k, (_, id)) in streams.iter().enumerate() {
            samples[k].extend(time_commands(&bus, id, 20).await);
        }
    }
    let mut medians = Vec::new();
    for ((prior, _), samples) in streams.iter().zip(samples) {
        let (p50, p99) = percentiles(samples);
        println!("command latency with {prior:>6} prior events: p50 {p50:?}  p99 {p99:?}");
        medians.push(p50);
    }
    println!(
        "latency ratio 100,000 vs 10 prior events (p50): {:.2}",
        medians[1].as_secs_f64() / medians[0].as_secs_f64()
    );

    // 2. Appends per second, 16 concurrent writers, one event per command.
    let total = 4_000usize;
    let started = Instant::now();
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let bus = bus.clone();
            tokio::spawn(async move {
                for i in 0..total / 16 {
                    create(&bus, &format!("append-{w}-{i}"), owner).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "appended {total} events via commands (16 writers) in {secs:.2}s: {:.0} events/s",
        total as f64 / secs
    );

    // 3. Projector catch-up over a large log.
    let n = 100_000i64;
    bulk_threads(&db, owner, n).await;
    let events = log::count(&db).await.unwrap();
    let projector = Projector::with_projections(
        db.clone(),
        KeyRing::ephemeral(db.clone()),
        vec![Box::new(threadline_projections::threads::Threads)],
    );
    projector.prepare().await.unwrap();
    let started = Instant::now();
    let applied = projector
        .catch_up(&threadline_projections::threads::Threads)
        .await
        .unwrap();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "projector catch-up: {applied} of {events} events in {secs:.2}s: {:.0} events/s",
        applied as f64 / secs
    );
}

fn meta() -> CommandMeta {
    CommandMeta::system()
}

async fn create(bus: &CommandBus, id: &str, owner: AccountId) {
    bus.execute::<Thread>(
        id,
        ThreadCommand::Create {
            owner,
            title: None,
            at: Utc::now(),
        },
        &meta(),
    )
    .await
    .unwrap();
}

async fn time_commands(bus: &CommandBus, id: &str, n: usize) -> Vec<Duration> {
    let mut samples = Vec::with_capacity(n);
    for i in 0..n + 20 {
        let started = Instant::now();
        bus.execute::<Thread>(
            id,
            ThreadCommand::SetPinned {
                pinned: i % 2 == 0,
                at: Utc::now(),
            },
            &meta(),
        )
        .await
        .unwrap();
        if i >= 20 {
            samples.push(started.elapsed());
        }
    }
    samples
}

fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize];
    (at(0.5), at(0.99))
}

/// Appends `n` rename events to thread `id` straight into the log (set-up, not measured).
async fn bulk_history(db: &Db, id: &str, n: i64) {
    let payload = serde_json::to_string(&ThreadEvent::ThreadRenamed {
        title: Title::parse("history").unwrap(),
        source: TitleSource::User,
        at: Utc::now(),
    })
    .unwrap();
    let sql = format!(
        "WITH RECURSIVE s(g) AS (SELECT 2 UNION ALL SELECT g + 1 FROM s WHERE g < $1) \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Thread', $2, g, 'ThreadRenamed', '1.0', {}, '{{}}' FROM s",
        json_param(db, 3)
    );
    db.execute(&Stmt::new(
        sql,
        vec![(n + 1).into(), id.into(), payload.into()],
    ))
    .await
    .unwrap();
}

/// Appends `n` ThreadCreated events for distinct threads (set-up, not measured).
async fn bulk_threads(db: &Db, owner: AccountId, n: i64) {
    let payload = serde_json::to_string(&ThreadEvent::ThreadCreated {
        owner,
        title: Some(Title::parse("bulk").unwrap()),
        at: Utc::now(),
    })
    .unwrap();
    let sql = format!(
        "WITH RECURSIVE s(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM s WHERE g < $1) \
         INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
         SELECT 'Thread', 'bulk-' || g, 1, 'ThreadCreated', '1.0', {}, '{{}}' FROM s",
        json_param(db, 2)
    );
    db.execute(&Stmt::new(sql, vec![n.into(), payload.into()]))
        .await
        .unwrap();
}

fn json_param(db: &Db, n: usize) -> String {
    match db.backend() {
        threadline_projections::Backend::Sqlite => format!("${n}"),
        threadline_projections::Backend::Postgres => format!("${n}::json"),
    }
}
