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

use crate::store::keys::KeyRing;
use tokio::sync::broadcast::error::RecvError;

use super::render::{PartId, Renderer, SSE_DONE, SSE_KEEPALIVE, sse_event};
use super::{ChatService, Committed};

/// Keep-alive comment interval.
const KEEPALIVE: Duration = Duration::from_secs(15);
/// How often a reader without a live feed re-reads the log when nothing wakes it.
const POLL: Duration = Duration::from_millis(500);

/// Events of generation `id` after `after_sequence`, in order. Payloads are read as text and
/// decoded straight into events (opened and upcast only when they need it).
pub async fn load_after(
    db: &Db,
    keys: &KeyRing,
    id: &str,
    after_sequence: i64,
) -> Result<Vec<(i64, GenerationEvent)>, sqlx::Error> {
    load_between(db, keys, id, after_sequence, i64::MAX).await
}

/// Who pays for generation `id` (for a reply of the stateless API, its owner), from its
/// `GenerationStarted`; `None` when it has no start or names no payer.
pub async fn payer(db: &Db, keys: &KeyRing, id: &str) -> Result<Option<String>, sqlx::Error> {
    Ok(load_between(db, keys, id, 0, 1)
        .await?
        .into_iter()
        .find_map(|(_, event)| match event {
            GenerationEvent::GenerationStarted { charged_to, .. } => {
                charged_to.map(|payer| payer.account_id)
            }
            _ => None,
        }))
}

/// Events of generation `id` with `after < sequence <= up_to`, in order.
async fn load_between(
    db: &Db,
    keys: &KeyRing,
    id: &str,
    after: i64,
    up_to: i64,
) -> Result<Vec<(i64, GenerationEvent)>, sqlx::Error> {
    let sql = match db.backend() {
        threadline_projections::Backend::Sqlite => {
            "SELECT sequence, event_type, event_version, payload, metadata FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 \
             AND sequence > $2 AND sequence <= $3 ORDER BY sequence"
        }
        threadline_projections::Backend::Postgres => {
            "SELECT sequence, event_type, event_version, payload::text, metadata::text \
             FROM events \
             WHERE aggregate_type = 'Generation' AND aggregate_id = $1 \
             AND sequence > $2 AND sequence <= $3 ORDER BY sequence"
        }
    };
    let rows: Vec<(i64, String, String, String, String)> = threadline_projections::on_read!(db, pool =>
        sqlx::query_as(sql)
        .bind(id)
        .bind(after)
        .bind(up_to)
        .fetch_all(pool)
        .await)?;
    let mut events = Vec::with_capacity(rows.len());
    for (seq, event_type, version, payload, metadata) in rows {
        let event = decode(keys, &event_type, &version, &payload, &metadata).await?;
        events.push((seq, event));
    }
    Ok(events)
}

/// A generation event from its stored text: its sealed values opened (for an event with
/// any) and through the upcasters (when one applies).
pub async fn decode(
    keys: &KeyRing,
    event_type: &str,
    version: &str,
    payload: &str,
    metadata: &str,
) -> Result<GenerationEvent, sqlx::Error> {
    use threadline_domain::personal::is_sealed;
    use threadline_domain::upcast::{needs_upcast, upcast_payload};
    let bad = |e: serde_json::Error| sqlx::Error::Decode(Box::new(e));
    if !is_sealed(event_type, version) && !needs_upcast(event_type, version) {
        return serde_json::from_str(payload).map_err(bad);
    }
    let mut value: serde_json::Value = serde_json::from_str(payload).map_err(bad)?;
    if is_sealed(event_type, version) {
        let metadata: serde_json::Value = serde_json::from_str(metadata).map_err(bad)?;
        keys.open_stored(&metadata, event_type, version, &mut value)
            .await
            .map_err(crate::store::keys::KeyError::into_sqlx)?;
    }
    serde_json::from_value(upcast_payload(event_type, version, value)).map_err(bad)
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
        if let Some(rendered) = service.finished.get(&id) {
            yield Ok(Bytes::from(rendered.after(after)));
            return;
        }
        // A reply running on this node: its backlog comes from memory (once; a reload after a
        // missed batch reads the log).
        let (mut memory, mut live) = match service.follow(&id) {
            Some((kept, rx)) => (kept, Some(rx)),
            None => (None, None),
        };
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
            // The backlog borrows from whichever of these holds it: batches kept in memory, or
            // events read from the log.
            let kept: Vec<Committed>;
            let loaded: Vec<(i64, GenerationEvent)>;
            let from_memory = memory.is_some();
            let backlog: Vec<(i64, &GenerationEvent)> = if let Some(batches) = memory.take() {
                kept = batches;
                kept.iter()
                    .flat_map(|b| b.events.iter())
                    .filter(|(seq, _)| *seq > last)
                    .map(|(seq, e)| (*seq, e))
                    .collect()
            } else {
                loaded = match load_after(&service.db, service.keys(), &id, last).await {
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
                loaded.iter().map(|(seq, e)| (*seq, e)).collect()
            };
            // The backlog goes out as one write: a finished reply of a thousand chunks is one
            // body, not a thousand. Read from its start, a finished reply is kept as rendered.
            let mut text = String::new();
            let mut whole = (last == 0).then(|| Rendered {
                text: String::new(),
                frames: Vec::new(),
            });
            for (seq, event) in backlog {
                // The terminal event is in the log before its writer has made the end visible
                // (the thread freed, the projections caught up). While the writer on this node
                // is still at it, its publish announces the end: a reader never does earlier.
                // (What is in memory was published.)
                if !from_memory && event.terminal_status().is_some() && service.is_running(&id) {
                    break;
                }
                for part in renderer.render(seq, event) {
                    let frame = sse_event(&part);
                    if after.is_none_or(|a| part.id > a) {
                        text.push_str(&frame);
                    }
                    if let Some(whole) = &mut whole {
                        whole.frames.push((part.id, whole.text.len()));
                        whole.text.push_str(&frame);
                    }
                }
                last = seq;
                if renderer.is_done() {
                    if let Some(whole) = whole {
                        service.finished.put(&id, whole);
                    }
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

/// The rendered stream of a finished reply: every frame from the first, and where each starts.
pub struct Rendered {
    text: String,
    /// Each frame's part id and the offset of its first byte in `text`, in order.
    frames: Vec<(PartId, usize)>,
}

impl Rendered {
    /// The frames after part `after` (all of them for `None`), then `[DONE]`.
    fn after(&self, after: Option<PartId>) -> String {
        let start = match after {
            None => 0,
            Some(a) => {
                let i = self.frames.partition_point(|(id, _)| *id <= a);
                self.frames.get(i).map_or(self.text.len(), |(_, at)| *at)
            }
        };
        let mut out = String::with_capacity(self.text.len() - start + SSE_DONE.len());
        out.push_str(&self.text[start..]);
        out.push_str(SSE_DONE);
        out
    }

    fn size(&self) -> usize {
        self.text.len() + self.frames.len() * std::mem::size_of::<(PartId, usize)>()
    }
}

/// Bytes of rendered finished replies a node keeps (the least recently stored go first).
const FINISHED_BUDGET: usize = 64 * 1024 * 1024;

/// Finished replies as rendered, so that a resume or a replay of one is a copy from memory
/// instead of a read and a render of every event. A finished reply never changes, so an entry
/// is never stale; it is filled by the first reader that reads a finished reply from its start.
#[derive(Default)]
pub struct FinishedReplies {
    inner: std::sync::Mutex<Finished>,
}

#[derive(Default)]
struct Finished {
    replies: std::collections::HashMap<String, Arc<Rendered>>,
    order: std::collections::VecDeque<String>,
    bytes: usize,
}

impl FinishedReplies {
    fn lock(&self) -> std::sync::MutexGuard<'_, Finished> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Forgets every rendered reply (an account was erased: its replies must not stay in
    /// memory).
    pub fn clear(&self) {
        *self.lock() = Finished::default();
    }

    fn get(&self, id: &str) -> Option<Arc<Rendered>> {
        self.lock().replies.get(id).cloned()
    }

    fn put(&self, id: &str, rendered: Rendered) {
        let size = rendered.size();
        if size > FINISHED_BUDGET / 8 {
            return;
        }
        let mut finished = self.lock();
        if finished.replies.contains_key(id) {
            return;
        }
        while finished.bytes + size > FINISHED_BUDGET {
            let Some(oldest) = finished.order.pop_front() else {
                break;
            };
            if let Some(gone) = finished.replies.remove(&oldest) {
                finished.bytes -= gone.size();
            }
        }
        finished.bytes += size;
        finished.order.push_back(id.to_owned());
        finished.replies.insert(id.to_owned(), Arc::new(rendered));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Rendered {
        let mut r = Rendered {
            text: String::new(),
            frames: Vec::new(),
        };
        for id in [PartId(1, 0), PartId(2, 0), PartId(2, 1), PartId(3, 0)] {
            r.frames.push((id, r.text.len()));
            r.text.push_str(&format!("id: {id}\n\n"));
        }
        r
    }

    #[test]
    fn a_finished_reply_resumes_after_any_of_its_parts() {
        let r = rendered();
        assert_eq!(r.after(None), format!("{}{SSE_DONE}", r.text));
        assert_eq!(
            r.after(Some(PartId(2, 0))),
            format!("id: 2.1\n\nid: 3.0\n\n{SSE_DONE}")
        );
        assert_eq!(r.after(Some(PartId(3, 0))), SSE_DONE);
        // An id between two issued ones resumes at the next.
        assert_eq!(
            r.after(Some(PartId(1, 5))),
            format!("id: 2.0\n\nid: 2.1\n\nid: 3.0\n\n{SSE_DONE}")
        );
    }

    #[test]
    fn the_cache_keeps_to_its_budget_dropping_the_oldest() {
        let cache = FinishedReplies::default();
        let big = || Rendered {
            text: "x".repeat(FINISHED_BUDGET / 10),
            frames: vec![],
        };
        for i in 0..20 {
            cache.put(&format!("g{i}"), big());
        }
        let finished = cache.lock();
        assert!(finished.bytes <= FINISHED_BUDGET);
        assert!(finished.replies.contains_key("g19"));
        assert!(!finished.replies.contains_key("g0"));
    }
}
