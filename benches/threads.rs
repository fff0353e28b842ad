//! Thread benchmarks (a plain harness: async set-up, fixed inputs, printed results).
//!
//! `cargo bench --bench threads` (SQLite in a temp dir), or with `BENCH_DATABASE_URL=postgres://…`
//! against PostgreSQL (a throwaway database).
//!
//! 1. The thread list of an account with 100,000 threads: the first page and a deep cursor.
//! 2. Search over 1,000,000 messages of one account (10,000 threads of 100 messages).
//! 3. The account export (a zip) of an account with 100,000 messages: time and the server's
//!    peak RSS above its start.
//! 4. The import of a 50 MB ChatGPT `conversations.json` (2,000 conversations of 40 messages):
//!    time until the response, time until searchable, and the peak RSS above the start.
//!
//! Every thread is written as an event (`CreateWithHistory`, what imports write) and folded by
//! the projector, so the tables are what production would hold. `BENCH_ONLY=search` (or
//! `list`, `export`, `import`, comma-separated) runs only those sections.

// A benchmark prints its results.
#![allow(clippy::print_stdout, clippy::print_stderr)]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use rand::{Rng, SeedableRng};
use threadline::config::Settings;
use threadline::startup::Application;
use threadline::store::bus::{CommandBus, CommandMeta};
use threadline_domain::thread::{CopiedMessage, CopiedRole, HistoryOrigin, Thread, ThreadCommand};
use threadline_domain::values::AccountId;
use threadline_projections::threads::{self, ListQuery};
use threadline_projections::{Db, search};

const LIST_THREADS: usize = 100_000;
const SEARCH_THREADS: usize = 10_000;
const MESSAGES_PER_THREAD: usize = 100;
const EXPORT_THREADS: usize = 1_000;
const VOCABULARY: usize = 5_000;
const IMPORT_CONVERSATIONS: usize = 2_000;
const IMPORT_MESSAGES: usize = 40;

/// Whether section `name` runs: all of them, or those named in `BENCH_ONLY` (`list`, `search`,
/// `export`, `import`, comma-separated).
fn only(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |v| v.split(',').any(|s| s.trim() == name))
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::new("127.0.0.1:0", dir.path());
    settings.database_url = std::env::var("BENCH_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .map(Into::into);
    settings.limits = threadline::auth::limits::LimitSettings::unlimited();
    let app = Application::build(settings).await.unwrap();
    let db = app.db().clone();
    println!("backend: {}", db.backend_name());
    let base = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped());
    let http = reqwest::Client::new();
    let keys = threadline::store::keys::KeyRing::load(db.clone(), None, dir.path()).unwrap();
    let bus = CommandBus::new(db.clone(), keys);

    // 1. The thread list.
    if only("list") {
        let (lister, lister_id) = register(&http, &base, "lister@bench.example").await;
        let started = Instant::now();
        write_threads(&bus, &lister_id, "l", LIST_THREADS, 1, 0).await;
        wait_caught_up(&db).await;
        println!(
            "set-up: {LIST_THREADS} threads written and projected in {:.1}s",
            started.elapsed().as_secs_f64()
        );
        let first = time(500, || async {
            let q = ListQuery {
                limit: 51,
                ..ListQuery::default()
            };
            assert_eq!(threads::list(&db, &lister_id, &q).await.unwrap().len(), 51);
        })
        .await;
        let all = threads::list(
            &db,
            &lister_id,
            &ListQuery {
                limit: 90_001,
                ..ListQuery::default()
            },
        )
        .await
        .unwrap();
        let deep = all.last().map(|t| (t.last_activity_at, t.id.clone()));
        let deep_page = time(500, || async {
            let q = ListQuery {
                after: deep.clone(),
                limit: 51,
                ..ListQuery::default()
            };
            assert_eq!(threads::list(&db, &lister_id, &q).await.unwrap().len(), 51);
        })
        .await;
        let over_http = time(300, || async {
            let res = http
                .get(format!("{base}/v1/threads?limit=50"))
                .bearer_auth(&lister)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.bytes().await.unwrap();
        })
        .await;
        report("thread list, first page (query)", &first);
        report(
            "thread list, cursor after 90,000 threads (query)",
            &deep_page,
        );
        report("thread list, first page over HTTP", &over_http);
    }
    // 2. Search.
    if only("search") {
        let (_, searcher_id) = register(&http, &base, "searcher@bench.example").await;
        let started = Instant::now();
        write_threads(
            &bus,
            &searcher_id,
            "s",
            SEARCH_THREADS,
            MESSAGES_PER_THREAD,
            7,
        )
        .await;
        wait_caught_up(&db).await;
        println!(
            "set-up: {} messages in {SEARCH_THREADS} threads written and projected in {:.1}s",
            SEARCH_THREADS * MESSAGES_PER_THREAD,
            started.elapsed().as_secs_f64()
        );
        let mut rng = rand::rngs::StdRng::seed_from_u64(11);
        for (label, make) in [
            ("search, one word (~2,000 matches)", 1usize),
            ("search, two words (a few matches)", 2),
            ("search, a rare phrase-free miss", 0),
        ] {
            let queries: Vec<String> = (0..200)
                .map(|_| match make {
                    0 => "zzzz nothing".to_owned(),
                    n => (0..n)
                        .map(|_| format!("word{}", rng.gen_range(0..VOCABULARY)))
                        .collect::<Vec<_>>()
                        .join(" "),
                })
                .collect();
            let mut i = 0;
            let samples = time(200, || {
                let q = queries[i % queries.len()].clone();
                i += 1;
                let db = db.clone();
                let owner = searcher_id.clone();
                async move {
                    search::search(&db, &owner, &q, 0, 20).await.unwrap();
                }
            })
            .await;
            report(label, &samples);
        }
    }
    // 3. The account export.
    if only("export") {
        let (exporter, exporter_id) = register(&http, &base, "exporter@bench.example").await;
        write_threads(
            &bus,
            &exporter_id,
            "e",
            EXPORT_THREADS,
            MESSAGES_PER_THREAD,
            3,
        )
        .await;
        wait_caught_up(&db).await;
        let rss = PeakRss::start();
        let started = Instant::now();
        let res = http
            .get(format!("{base}/v1/me/export"))
            .bearer_auth(&exporter)
            .send()
            .await
            .unwrap();
        let mut body = res.bytes_stream();
        let mut bytes = 0usize;
        while let Some(chunk) = body.next().await {
            bytes += chunk.unwrap().len();
        }
        let took = started.elapsed();
        println!(
            "account export, {} messages in {EXPORT_THREADS} threads: {:.2}s, {:.1} MiB zip, {}",
            EXPORT_THREADS * MESSAGES_PER_THREAD,
            took.as_secs_f64(),
            bytes as f64 / 1_048_576.0,
            rss.stop(),
        );
    }
    // 4. The import of a ChatGPT export.
    if only("import") {
        let (importer, importer_id) = register(&http, &base, "importer@bench.example").await;
        let file = chatgpt_export(IMPORT_CONVERSATIONS, IMPORT_MESSAGES);
        let size = file.len();
        let rss = PeakRss::start();
        let started = Instant::now();
        let res = http
            .post(format!("{base}/v1/me/import"))
            .bearer_auth(&importer)
            .header("content-type", "application/json")
            .body(file)
            .send()
            .await
            .unwrap();
        assert_eq!(
            res.status(),
            200,
            "{}",
            res.text().await.unwrap_or_default()
        );
        let report: serde_json::Value = res.json().await.unwrap();
        let answered = started.elapsed();
        wait_caught_up(&db).await;
        let searchable = started.elapsed();
        assert_eq!(
            report["imported"].as_u64(),
            Some(IMPORT_CONVERSATIONS as u64),
            "{report}"
        );
        let found = search::search(&db, &importer_id, "conversation1999", 0, 20)
            .await
            .unwrap();
        assert!(!found.is_empty());
        println!(
            "import of a {:.1} MB ChatGPT export ({IMPORT_CONVERSATIONS} conversations, {} \
         messages): answered in {:.2}s, projected and searchable in {:.2}s, {}",
            size as f64 / 1e6,
            IMPORT_CONVERSATIONS * IMPORT_MESSAGES,
            answered.as_secs_f64(),
            searchable.as_secs_f64(),
            rss.stop(),
        );
    }
}

/// Samples the process's resident memory every 20 ms until stopped.
struct PeakRss {
    before: u64,
    peak: std::sync::Arc<std::sync::atomic::AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl PeakRss {
    fn start() -> Self {
        let before = rss_kib();
        let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(before));
        let sampler = {
            let peak = peak.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(rss_kib(), std::sync::atomic::Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        };
        Self {
            before,
            peak,
            sampler,
        }
    }

    fn stop(self) -> String {
        self.sampler.abort();
        let peak = self.peak.load(std::sync::atomic::Ordering::Relaxed);
        format!(
            "server RSS {:.1} → peak {:.1} MiB (+{:.1} MiB)",
            self.before as f64 / 1024.0,
            peak as f64 / 1024.0,
            peak.saturating_sub(self.before) as f64 / 1024.0
        )
    }
}

/// A ChatGPT `conversations.json` of `n` linear conversations of `messages` messages, each
/// message about 300 bytes of text (the shape of a real export: a `mapping` tree under a null
/// root, `current_node` the leaf).
fn chatgpt_export(n: usize, messages: usize) -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let conversations: Vec<serde_json::Value> = (0..n)
        .map(|c| {
            let mut mapping = serde_json::Map::new();
            let node = |i: usize| format!("c{c}-n{i}");
            mapping.insert(
                "root".into(),
                serde_json::json!({"id": "root", "message": null, "parent": null,
                    "children": [node(0)]}),
            );
            for i in 0..messages {
                let text: String = std::iter::once(format!("conversation{c}"))
                    .chain((0..30).map(|_| format!("word{}", rng.gen_range(0..VOCABULARY))))
                    .collect::<Vec<_>>()
                    .join(" ");
                let parent = if i == 0 {
                    "root".to_owned()
                } else {
                    node(i - 1)
                };
                let children: Vec<String> = if i + 1 < messages {
                    vec![node(i + 1)]
                } else {
                    vec![]
                };
                let role = if i % 2 == 0 { "user" } else { "assistant" };
                mapping.insert(
                    node(i),
                    serde_json::json!({
                        "id": node(i),
                        "message": {
                            "id": node(i),
                            "author": {"role": role, "name": null, "metadata": {}},
                            "create_time": 1_700_000_000.0 + (c * messages + i) as f64,
                            "update_time": null,
                            "content": {"content_type": "text", "parts": [text]},
                            "status": "finished_successfully",
                            "end_turn": true,
                            "weight": 1.0,
                            "metadata": {"model_slug": "gpt-4o"},
                            "recipient": "all"
                        },
                        "parent": parent,
                        "children": children
                    }),
                );
            }
            serde_json::json!({
                "title": format!("Conversation {c}"),
                "create_time": 1_700_000_000.0 + (c * messages) as f64,
                "update_time": 1_700_000_000.0 + ((c + 1) * messages) as f64,
                "mapping": mapping,
                "current_node": node(messages - 1),
                "conversation_id": format!("00000000-0000-4000-8000-{c:012}"),
                "id": format!("00000000-0000-4000-8000-{c:012}")
            })
        })
        .collect();
    serde_json::to_vec(&conversations).unwrap()
}

/// The process's resident memory in KiB (the server runs in this process).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.split_whitespace().next().and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Writes `n` threads of `messages` messages each (ten words from the vocabulary each).
async fn write_threads(
    bus: &CommandBus,
    owner: &str,
    prefix: &str,
    n: usize,
    messages: usize,
    seed: u64,
) {
    let owner = AccountId::parse(owner).unwrap();
    let meta = CommandMeta::system();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut pending = futures::stream::FuturesUnordered::new();
    for t in 0..n {
        let history: Vec<CopiedMessage> = (0..messages)
            .map(|i| CopiedMessage {
                id: format!("m{i}"),
                parent_id: i.checked_sub(1).map(|p| format!("m{p}")),
                role: if i % 2 == 0 {
                    CopiedRole::User
                } else {
                    CopiedRole::Assistant
                },
                text: (0..10)
                    .map(|_| format!("word{}", rng.gen_range(0..VOCABULARY)))
                    .collect::<Vec<_>>()
                    .join(" "),
                reasoning: String::new(),
                model: None,
                created_at: None,
            })
            .collect();
        let id = format!("{prefix}{t}");
        let bus = bus.clone();
        let meta = meta.clone();
        pending.push(async move {
            bus.execute::<Thread>(
                &id,
                ThreadCommand::CreateWithHistory {
                    owner,
                    title: None,
                    origin: HistoryOrigin::Import {
                        source: "threadline".into(),
                        external_id: id.clone(),
                    },
                    messages: history,
                    current_message_id: None,
                    at: chrono::Utc::now(),
                },
                &meta,
            )
            .await
            .unwrap();
        });
        if pending.len() >= 4 {
            pending.next().await;
        }
    }
    while pending.next().await.is_some() {}
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> (String, String) {
    let body: serde_json::Value = http
        .post(format!("{base}/v1/auth/register"))
        .json(&serde_json::json!({"email": email, "password": "correct horse battery"}))
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

/// Waits until every projection has folded the whole log.
async fn wait_caught_up(db: &Db) {
    loop {
        let head = threadline::store::log::head(db).await.unwrap();
        let projector = threadline::projector::Projector::new(
            db.clone(),
            threadline::store::keys::KeyRing::ephemeral(db.clone()),
        );
        let behind = projector
            .status()
            .await
            .unwrap()
            .iter()
            .any(|s| (s.tx_id, s.position) < head);
        if !behind {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn time<F, Fut>(n: usize, mut f: F) -> Vec<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..n / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        f().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    samples
}

fn report(label: &str, sorted: &[Duration]) {
    let at = |q: f64| sorted[((sorted.len() as f64 - 1.0) * q) as usize];
    println!(
        "{label}: p50 {:.2} ms, p99 {:.2} ms",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0
    );
}
