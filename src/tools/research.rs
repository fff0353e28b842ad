//! Deep research: a bounded loop of plan → search → read → synthesize behind `tool:
//! "research"`.
//!
//! The loop runs as its own task and reports [`Progress`] over a channel, so the reply's writer
//! makes each step durable (as a `data-research-*` part) the moment it happens, and a stop
//! request ends the loop at once (dropping the receiver stops the task at its next step).
//!
//! - **plan**: the reply's model is asked (not streamed) for up to [`Limits::queries`] search
//!   queries, one per line; the question itself when it gives none;
//! - **search**: each query through the configured search API, asking for page text too;
//! - **read**: the text of the best results, at most [`Limits::reads`] distinct pages;
//! - **synthesize**: the material goes to the model with the question, and its answer streams
//!   as the reply's text (the writer does this step).
//!
//! Parts, in order: `data-research-start {question}`, then per query `data-research-search
//! {query, results: [{title, url}]}`, per page `data-research-read {url, title, chars}`, and
//! `data-research-complete {queries, sources}`. The run spends one `research_runs` credit
//! (reserved when the message is sent); its searches spend no `web_searches`.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use super::ToolRunner;
use crate::providers::{ChatMessage, ChatRequest, ProviderEvent};

/// The bounds of one research run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Search queries planned (and run).
    pub queries: usize,
    /// Results asked for per query.
    pub results: u32,
    /// Distinct pages read in all.
    pub reads: usize,
    /// Characters kept of each page.
    pub page_chars: u32,
    /// The whole run, planning included.
    pub deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            queries: 3,
            results: 3,
            reads: 4,
            page_chars: 3_000,
            deadline: Duration::from_secs(90),
        }
    }
}

/// What the loop reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// A data part to show: `data-research-{name}` with `data`.
    Part { name: &'static str, data: Value },
    /// The loop ended: the material for the synthesis (sources with their text), and the
    /// tokens the plan cost (they are part of the reply's usage).
    Done {
        material: String,
        sources: usize,
        usage: crate::providers::Usage,
    },
}

/// The model the plan is asked of.
pub struct Planner {
    pub provider: crate::providers::Provider,
    pub upstream: String,
    pub http: reqwest::Client,
}

/// Starts a research run on `question`; its progress arrives on the returned channel.
pub fn start(
    toolbox: std::sync::Arc<dyn ToolRunner>,
    planner: Planner,
    question: String,
    run_id: String,
    limits: Limits,
) -> mpsc::Receiver<Progress> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let started = Instant::now();
        let run = research(toolbox.as_ref(), &planner, &question, &run_id, limits, &tx);
        let done = match tokio::time::timeout(limits.deadline, run).await {
            Ok(done) => done,
            Err(_) => Progress::Done {
                material: String::new(),
                sources: 0,
                usage: Default::default(),
            },
        };
        tracing::debug!(elapsed = ?started.elapsed(), "research run ended");
        let _ = tx.send(done).await;
    });
    rx
}

async fn research(
    toolbox: &dyn ToolRunner,
    planner: &Planner,
    question: &str,
    run_id: &str,
    limits: Limits,
    tx: &mpsc::Sender<Progress>,
) -> Progress {
    let part = |name, data| Progress::Part { name, data };
    if tx
        .send(part("start", json!({"question": question})))
        .await
        .is_err()
    {
        return Progress::Done {
            material: String::new(),
            sources: 0,
            usage: Default::default(),
        };
    }
    let (queries, usage) = plan(planner, question, limits.queries).await;
    let mut pages: Vec<super::search::SearchResult> = Vec::new();
    for (i, query) in queries.iter().enumerate() {
        let found = toolbox
            .search(query, limits.results, limits.page_chars)
            .await;
        let (results, error) = match found {
            Ok(results) => (results, None),
            Err(e) => (Vec::new(), Some(e)),
        };
        let listed: Vec<Value> = results
            .iter()
            .map(|r| json!({"title": r.title, "url": r.url}))
            .collect();
        let mut data = json!({"query": query, "index": i, "results": listed});
        if let Some(error) = error {
            data["error"] = json!(error);
        }
        if tx.send(part("search", data)).await.is_err() {
            break;
        }
        for result in results {
            if pages.len() < limits.reads && !pages.iter().any(|p| p.url == result.url) {
                pages.push(result);
            }
        }
    }
    let mut material = String::new();
    for (n, page) in pages.iter().enumerate() {
        let text = page.text.as_deref().unwrap_or(&page.snippet);
        let data = json!({"url": page.url, "title": page.title, "chars": text.chars().count()});
        if tx.send(part("read", data)).await.is_err() {
            break;
        }
        material.push_str(&format!(
            "[{}] {} <{}>\n{}\n\n",
            n + 1,
            page.title,
            page.url,
            text.trim()
        ));
    }
    let _ = tx
        .send(part(
            "complete",
            json!({"queries": queries.len(), "sources": pages.len(), "run": run_id}),
        ))
        .await;
    Progress::Done {
        material,
        sources: pages.len(),
        usage,
    }
}

/// Up to `most` search queries for `question`, from the model (the question alone when the
/// model gives none, or fails), and the tokens that cost.
async fn plan(
    planner: &Planner,
    question: &str,
    most: usize,
) -> (Vec<String>, crate::providers::Usage) {
    let request = ChatRequest {
        model: planner.upstream.clone(),
        messages: vec![
            ChatMessage::text(
                "system",
                format!(
                    "You plan web research. Write at most {most} web search queries that together \
                     answer the user's question, one per line, with nothing else."
                ),
            ),
            ChatMessage::text("user", question),
        ],
        ..Default::default()
    };
    let collect = async {
        let mut stream = planner
            .provider
            .stream(&planner.http, &request)
            .await
            .ok()?;
        let (mut text, mut usage) = (String::new(), crate::providers::Usage::default());
        while let Some(Ok(event)) = stream.next().await {
            match event {
                ProviderEvent::TextDelta { text: t } => text.push_str(&t),
                ProviderEvent::Usage { usage: u } => usage = u,
                _ => {}
            }
        }
        Some((text, usage))
    };
    let (text, usage) = tokio::time::timeout(Duration::from_secs(20), collect)
        .await
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut queries: Vec<String> = Vec::new();
    for line in text.lines() {
        let query = line
            .trim()
            .trim_start_matches(|c: char| c.is_ascii_digit() || "-*•.) ".contains(c))
            .trim_matches('"')
            .trim();
        if !query.is_empty() && !queries.iter().any(|q| q == query) {
            queries.push(query.chars().take(200).collect());
        }
        if queries.len() == most {
            break;
        }
    }
    if queries.is_empty() {
        queries.push(question.chars().take(200).collect());
    }
    (queries, usage)
}

/// The message that asks the model to synthesize its answer from the material.
pub fn synthesis_note(material: &str) -> String {
    if material.trim().is_empty() {
        return "\n\n(Research found no sources; say so, and answer from what you know.)".into();
    }
    format!(
        "\n\nResearch notes (numbered sources; cite them as [n] with their URLs):\n\n{material}\
         Answer the question above from these notes."
    )
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::providers::echo::EchoConfig;
    use crate::tools::search::SearchResult;

    /// A search API stand-in for the loop's own logic: five pages per query, after `delay`.
    struct Pages {
        searches: AtomicUsize,
        delay: Duration,
    }

    impl ToolRunner for Pages {
        fn specs(&self) -> Vec<crate::providers::ToolSpec> {
            Vec::new()
        }

        fn call<'a>(
            &'a self,
            _: &'a str,
            _: &'a str,
            _: &'a Value,
        ) -> futures::future::BoxFuture<'a, Result<Value, String>> {
            Box::pin(async { Err("no tools".to_owned()) })
        }

        fn search<'a>(
            &'a self,
            query: &'a str,
            results: u32,
            _: u32,
        ) -> futures::future::BoxFuture<'a, Result<Vec<SearchResult>, String>> {
            Box::pin(async move {
                tokio::time::sleep(self.delay).await;
                let n = self.searches.fetch_add(1, Ordering::SeqCst);
                Ok((0..results.max(5))
                    .map(|i| SearchResult {
                        title: format!("{query} {i}"),
                        url: format!("https://example.com/{n}/{i}"),
                        published_date: None,
                        snippet: "snippet".into(),
                        text: Some(format!("page {n}.{i} about {query}")),
                    })
                    .collect())
            })
        }
    }

    /// The echo model plans: it repeats the question, one query per line.
    fn planner() -> Planner {
        Planner {
            provider: crate::providers::Provider::Echo(EchoConfig {
                delay: Duration::ZERO,
            }),
            upstream: "echo".into(),
            http: reqwest::Client::new(),
        }
    }

    async fn run(delay: Duration, limits: Limits) -> (Vec<(&'static str, Value)>, Progress, usize) {
        let pages = Arc::new(Pages {
            searches: AtomicUsize::new(0),
            delay,
        });
        let question = "crabs\nmolting\nshells\noceans\ntides".to_owned();
        let mut rx = start(pages.clone(), planner(), question, "run-1".into(), limits);
        let mut parts = Vec::new();
        loop {
            match rx.recv().await.unwrap() {
                Progress::Part { name, data } => parts.push((name, data)),
                done @ Progress::Done { .. } => {
                    return (parts, done, pages.searches.load(Ordering::SeqCst));
                }
            }
        }
    }

    #[tokio::test]
    async fn the_loop_plans_searches_and_reads_within_its_limits_in_order() {
        let (parts, done, searches) = run(Duration::ZERO, Limits::default()).await;
        let names: Vec<&str> = parts.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "start", "search", "search", "search", "read", "read", "read", "read", "complete"
            ]
        );
        assert_eq!(searches, 3, "at most three queries");
        assert_eq!(parts[1].1["query"], "Echo: crabs");
        assert_eq!(parts[2].1["query"], "molting");
        assert_eq!(parts[8].1["sources"], 4);
        let Progress::Done {
            material,
            sources,
            usage,
        } = done
        else {
            unreachable!()
        };
        assert!(usage.output_tokens > 0, "the plan's tokens are counted");
        assert_eq!(sources, 4, "at most four pages read");
        assert!(
            material.starts_with("[1] Echo: crabs 0 <https://example.com/0/0>"),
            "{material}"
        );
        assert!(material.contains("[4] "), "{material}");
    }

    #[tokio::test]
    async fn the_deadline_ends_the_loop_with_what_it_has() {
        let limits = Limits {
            deadline: Duration::from_millis(100),
            ..Limits::default()
        };
        let (parts, done, _) = run(Duration::from_secs(5), limits).await;
        assert_eq!(parts.len(), 1, "only the start: {parts:?}");
        assert_eq!(
            done,
            Progress::Done {
                material: String::new(),
                sources: 0,
                usage: Default::default(),
            }
        );
        assert_eq!(
            synthesis_note(""),
            "\n\n(Research found no sources; say so, and answer from what you know.)"
        );
    }
}
