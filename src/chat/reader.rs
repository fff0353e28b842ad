//! The SSE stream of one generation: the backlog from the log, then live batches as they
//! become durable.
//!
//! The reader subscribes to the node's live feed *before* reading the backlog and skips what it
//! has already sent by sequence, so no chunk is missed or doubled at the seam. A generation
//! running on another node (or a lagging reader) is followed through the log, woken by
//! "the log changed" signals (PostgreSQL `LISTEN` carries them across nodes).

use std::sync::Arc;
use std::time::Duration;

use actix_web::web::Bytes;
use futures::Stream;
use threadline_domain::generation::GenerationEvent;
use threadline_projections::Db;
use tokio::sync::broadcast::error::RecvError;

use super::ChatService;
use super::render::{PartId, Renderer, SSE_DONE, SSE_KEEPALIVE, sse_event};

/// Keep-alive comment interval.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a reader without a live feed re-reads the log when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);

/// Events of generation `id` after `after_sequence`, in order. Payloads are read as text and
/// decoded straight into events (through the upcasters only when one applies).
pub async fn load_after(
    db: &Db,
    id: &str,
    after_sequence: i64,
) -> Result<Vec<(i64, GenerationEvent)>, sqlx::Error> {
    let sql = match db.backend() {
        threadline_projections::Backend::Sqlite => {
            "SELECT sequence, event_type, event_version, payload FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 AND sequence > $2 \
             ORDER BY sequence"
        }
        threadline_projections::Backend::Postgres => {
            "SELECT sequence, event_type, event_version, payload::text FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 AND sequence > $2 \
             ORDER BY sequence"
        }
    };
    let rows: Vec<(i64, String, String, String)> = threadline_projections::on_read!(db, pool =>
        sqlx::query_as(sql)
        .bind(id)
        .bind(after_sequence)
        .fetch_all(pool)
        .await)?;
    rows.into_iter()
        .map(|(seq, event_type, version, payload)| {
            use threadline_domain::upcast::{needs_upcast, upcast_payload};
            let event = if needs_upcast(&event_type, &version) {
                serde_json::from_str(&payload)
                    .and_then(|p| serde_json::from_value(upcast_payload(&event_type, &version, p)))
            } else {
                serde_json::from_str(&payload)
            };
            event
                .map(|e| (seq, e))
                .map_err(|e| sqlx::Error::Decode(Box::new(e)))
        })
        .collect()
}

/// The sequence of generation `id`'s newest event (0 when it has none).
pub async fn last_sequence(db: &Db, id: &str) -> Result<i64, sqlx::Error> {
    threadline_projections::on_read!(db, pool =>
        sqlx::query_scalar::<_, i64>(
            "SELECT COALESCE(MAX(sequence), 0) FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1",
        )
        .bind(id)
        .fetch_one(pool)
        .await)
}

/// The UI message stream of generation `id`, resuming after part `after` when given.
pub fn stream(
    service: Arc<ChatService>,
    id: String,
    after: Option<PartId>,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    async_stream::stream! {
        let mut live = service.subscribe(&id);
        let mut signal = service.signals.subscribe();
        let mut renderer = Renderer::default();
        let mut last = 0i64;
        let mut keepalive = tokio::time::interval(KEEPALIVE);
        keepalive.tick().await;
        let emit = |renderer: &mut Renderer, seq: i64, event: &GenerationEvent| -> String {
            renderer
                .render(seq, event)
                .iter()
                .filter(|p| after.is_none_or(|a| p.id > a))
                .map(sse_event)
                .collect()
        };
        'reload: loop {
            let backlog = match load_after(&service.db, &id, last).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %e, generation = %id, "cannot read the reply's events");
                    yield Ok(Bytes::from(format!(
                        "data: {}\n\n",
                        serde_json::json!({"type": "error", "errorText": "the reply could not be read; retry"})
                    )));
                    return;
                }
            };
            // The backlog goes out as one write: a finished reply of a thousand chunks is one
            // body, not a thousand.
            let mut text = String::new();
            for (seq, event) in backlog {
                // The terminal event is in the log before its writer has made the end visible
                // (the thread freed, the projections caught up). While the writer on this node
                // is still at it, its publish announces the end: a reader never does earlier.
                if event.terminal_status().is_some() && service.is_running(&id) {
                    break;
                }
                text.push_str(&emit(&mut renderer, seq, &event));
                last = seq;
                if renderer.is_done() {
                    text.push_str(SSE_DONE);
                    yield Ok(Bytes::from(text));
                    return;
                }
            }
            if !text.is_empty() {
                yield Ok(Bytes::from(text));
            }
            loop {
                tokio::select! {
                    batch = async { match live.as_mut() { Some(rx) => rx.recv().await, None => std::future::pending().await } } => {
                        match batch {
                            Ok(batch) => {
                                let mut text = String::new();
                                let chunks = batch
                                    .events
                                    .iter()
                                    .any(|(_, e)| matches!(e, GenerationEvent::ChunksAppended { .. }));
                                for (seq, event) in batch.events.iter() {
                                    if *seq <= last {
                                        continue;
                                    }
                                    if *seq != last + 1 {
                                        continue 'reload;
                                    }
                                    text.push_str(&emit(&mut renderer, *seq, event));
                                    last = *seq;
                                }
                                if !text.is_empty() {
                                    yield Ok(Bytes::from(text));
                                    if chunks {
                                        service.metrics.commit_to_send.observe(batch.committed_at.elapsed());
                                    }
                                }
                                if renderer.is_done() {
                                    yield Ok(Bytes::from_static(SSE_DONE.as_bytes()));
                                    return;
                                }
                            }
                            Err(RecvError::Lagged(_)) => continue 'reload,
                            Err(RecvError::Closed) => {
                                live = None;
                                continue 'reload;
                            }
                        }
                    }
                    changed = signal.changed(), if live.is_none() => {
                        if changed.is_err() {
                            tokio::time::sleep(POLL).await;
                        }
                        continue 'reload;
                    }
                    _ = tokio::time::sleep(POLL), if live.is_none() => continue 'reload,
                    _ = keepalive.tick() => yield Ok(Bytes::from_static(SSE_KEEPALIVE.as_bytes())),
                }
            }
        }
    }
}
