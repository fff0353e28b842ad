//! Streamed replies: starting a generation, running it, serving its stream, stopping it, and
//! recovering replies whose node died.
//!
//! # Layout
//! - [`ChatService`] (here): the node's registry of running generations, start/stop, recovery.
//! - [`writer`]: the task that runs one generation (provider → durable chunks → clients).
//! - [`reader`]: the SSE stream of a generation (backlog from the log, then live).
//! - [`render`]: generation events → AI SDK UI message stream parts.

pub mod reader;
pub mod render;
pub mod replay;
pub mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use threadline_domain::generation::{Generation, GenerationCommand, GenerationEvent};
use threadline_domain::thread::{Thread, ThreadCommand};
use threadline_projections::Db;
use threadline_projections::messages;
use tokio::sync::{broadcast, watch};

use crate::providers::registry::{self, ProviderRegistry};
use crate::store::append::{AppendError, Appender, NewEvent};
use crate::store::bus::{CommandBus, CommandMeta};

/// Events of a running generation as committed: `(sequence, event)`, with the commit's time.
pub struct Batch {
    pub committed_at: std::time::Instant,
    pub events: Vec<(i64, GenerationEvent)>,
}

/// A committed batch, shared by every reader of the generation.
pub type Committed = Arc<Batch>;

/// A generation running on this node.
pub struct LiveGeneration {
    events: broadcast::Sender<Committed>,
    /// Every batch published so far, so that a reader on this node starts from memory
    /// instead of reading the log; `None` once the reply outgrew [`LIVE_BACKLOG`] events.
    backlog: Mutex<Option<Backlog>>,
    stop: watch::Sender<bool>,
}

/// Events of a running reply kept in memory for its readers, at most; a longer reply's readers
/// read their backlog from the log.
const LIVE_BACKLOG: usize = 4096;

#[derive(Default)]
struct Backlog {
    batches: Vec<Committed>,
    events: usize,
}

impl LiveGeneration {
    fn new(first: Committed) -> Self {
        let (events, _) = broadcast::channel(1024);
        let (stop, _) = watch::channel(false);
        let backlog = Backlog {
            events: first.events.len(),
            batches: vec![first],
        };
        Self {
            events,
            backlog: Mutex::new(Some(backlog)),
            stop,
        }
    }

    fn backlog(&self) -> std::sync::MutexGuard<'_, Option<Backlog>> {
        self.backlog
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Hands a committed batch to the readers (and keeps it for the ones still to come).
    pub(crate) fn publish(&self, batch: Committed) {
        let mut backlog = self.backlog();
        if let Some(kept) = backlog.as_mut() {
            kept.events += batch.events.len();
            if kept.events > LIVE_BACKLOG {
                *backlog = None;
            } else {
                kept.batches.push(batch.clone());
            }
        }
        // Sent under the backlog's lock: a reader that takes the backlog and subscribes
        // under it misses no batch and gets none twice.
        let _ = self.events.send(batch);
    }

    /// The batches published so far (`None` when they are no longer kept) and a receiver of
    /// the ones that follow.
    fn follow(&self) -> (Option<Vec<Committed>>, broadcast::Receiver<Committed>) {
        let backlog = self.backlog();
        let kept = backlog.as_ref().map(|b| b.batches.clone());
        (kept, self.events.subscribe())
    }
}

/// Signals shared by every part of a node: "the log changed" (local commits and, on
/// PostgreSQL, other nodes' commits) and stop requests from other nodes.
#[derive(Clone)]
pub struct Signals {
    log_changed: Arc<watch::Sender<u64>>,
}

impl Default for Signals {
    fn default() -> Self {
        Self {
            log_changed: Arc::new(watch::Sender::new(0)),
        }
    }
}

impl Signals {
    /// Tells readers that new events may be in the log.
    pub fn log_changed(&self) {
        self.log_changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Subscribes to "the log changed".
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.log_changed.subscribe()
    }
}

/// Runs and serves replies on this node.
pub struct ChatService {
    pub db: Db,
    pub bus: CommandBus,
    pub projector: crate::projector::Projector,
    pub registry: ProviderRegistry,
    pub node_id: String,
    pub signals: Signals,
    pub metrics: crate::metrics::Metrics,
    pub(crate) http: reqwest::Client,
    /// Model calls one reply may make (`THREADLINE_TOOL_STEPS`).
    tool_steps: std::sync::atomic::AtomicU32,
    appender: Appender,
    live: Mutex<HashMap<String, Arc<LiveGeneration>>>,
    /// Finished replies as rendered, for resumes and replays.
    pub(crate) finished: reader::FinishedReplies,
    /// One lock per thread, held by a send from its checks until its reply has started: the
    /// sends racing on one thread take turns, so a loser sees the winner's reply and is
    /// refused before it reserves anything.
    pub turns: crate::keyed_lock::KeyedLocks<String>,
}

/// What starting a reply needs.
pub struct StartReply {
    pub generation_id: String,
    /// What the reply answers: a thread's message, or a call of the stateless API.
    pub origin: threadline_domain::generation::Origin,
    pub message_id: String,
    pub model: registry::Model,
    pub context: Vec<crate::providers::ChatMessage>,
    /// The thread's title is generated after this reply when it has none.
    pub needs_title: bool,
    pub first_user_text: String,
    pub meta: CommandMeta,
    /// When the request arrived (for overhead and time-to-first-chunk metrics).
    pub received: std::time::Instant,
    /// What this reply reserved (nothing for a free model without a budget), settled or
    /// released when it ends.
    pub reservation: Reservation,
    /// The account and tier the reply is charged to.
    pub payer: threadline_domain::generation::Payer,
    /// The reply's tools (none: the model is offered none and no tool runs first).
    pub tools: Option<ReplyTools>,
    /// What the caller sets of the model call itself (the OpenAI-compatible API's
    /// `temperature`, `max_tokens`, `tool_choice`).
    pub options: crate::providers::CallOptions,
    /// Tools the caller runs itself (the OpenAI-compatible API's `tools`): offered to the
    /// model, and a step that calls them ends the reply with its calls.
    pub client_tools: Vec<crate::providers::ToolSpec>,
}

/// The tools of one reply.
pub struct ReplyTools {
    /// What the model is offered, and what runs the calls.
    pub toolbox: Arc<dyn crate::tools::ToolRunner>,
    /// The tool run for the message before the model answers.
    pub forced: Option<ForcedRun>,
}

/// A tool chosen for the message (`tool` in the chat body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForcedTool {
    /// One web search for the message's text; the model answers from the results.
    Search,
    /// A research run ([`crate::tools::research`]); the model answers from its material.
    Research,
}

impl ForcedTool {
    /// The chat body's `tool` (and `/v1/chat/check`'s): `None` for an absent one, a 422 naming
    /// the field for one that does not exist.
    pub fn parse(tool: Option<&str>) -> Result<Option<ForcedTool>, crate::error::ApiError> {
        match tool {
            None => Ok(None),
            Some("search" | "web_search") => Ok(Some(ForcedTool::Search)),
            Some("research") => Ok(Some(ForcedTool::Research)),
            Some(other) => Err(crate::error::ApiError::invalid_field(
                "tool",
                format!("unknown tool {other:?}: use search (or web_search) or research"),
            )),
        }
    }

    /// `search` or `research`.
    pub fn name(self) -> &'static str {
        match self {
            ForcedTool::Search => "search",
            ForcedTool::Research => "research",
        }
    }

    /// The meter one run spends.
    pub fn meter(self) -> threadline_domain::plans::Meter {
        match self {
            ForcedTool::Search => threadline_domain::plans::Meter::WebSearches,
            ForcedTool::Research => threadline_domain::plans::Meter::ResearchRuns,
        }
    }
}

/// A chosen tool's run: its credit was reserved when the message was sent.
#[derive(Debug, Clone)]
pub struct ForcedRun {
    pub kind: ForcedTool,
    /// Names the run's reservation.
    pub run_id: String,
    pub reservation: Reservation,
}

pub use crate::ledger::Reservation;

impl ChatService {
    /// A service for this node.
    pub fn new(
        db: Db,
        bus: CommandBus,
        projector: crate::projector::Projector,
        registry: ProviderRegistry,
        signals: Signals,
    ) -> Arc<Self> {
        Arc::new(Self {
            projector,
            appender: bus.appender().clone(),
            db,
            bus,
            registry,
            node_id: uuid::Uuid::now_v7().to_string(),
            signals,
            metrics: crate::metrics::Metrics::default(),
            http: reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            live: Mutex::new(HashMap::new()),
            finished: Default::default(),
            turns: Default::default(),
            tool_steps: std::sync::atomic::AtomicU32::new(crate::config::DEFAULT_TOOL_STEPS),
        })
    }

    /// Sets the most model calls one reply may make (at least one).
    pub fn set_tool_steps(&self, steps: u32) {
        self.tool_steps
            .store(steps.max(1), std::sync::atomic::Ordering::Relaxed);
    }

    /// The most model calls one reply may make.
    pub fn tool_steps(&self) -> u32 {
        self.tool_steps.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn registry(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<LiveGeneration>>> {
        self.live
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether this node is still running (or finishing) generation `id`.
    pub fn is_running(&self, generation_id: &str) -> bool {
        self.registry().contains_key(generation_id)
    }

    /// For a reply running on this node: the batches it has published so far (when they are
    /// still kept) and a receiver of the ones that follow.
    pub fn follow(
        &self,
        generation_id: &str,
    ) -> Option<(Option<Vec<Committed>>, broadcast::Receiver<Committed>)> {
        let live = self.registry().get(generation_id).cloned()?;
        Some(live.follow())
    }

    /// Appends `GenerationStarted` (so the reply is resumable the moment this returns) and
    /// spawns the writer task that runs it.
    pub async fn start(self: &Arc<Self>, reply: StartReply) -> Result<(), crate::error::ApiError> {
        let mut generation = Generation::default();
        let context = reply
            .context
            .iter()
            .map(|m| threadline_domain::generation::ContextMessage {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect();
        let started = generation
            .decide(GenerationCommand::Start {
                message_id: reply.message_id.clone(),
                origin: reply.origin.clone(),
                model: reply.model.id.clone(),
                provider: reply.model.provider.name().to_owned(),
                context,
                node_id: self.node_id.clone(),
                charged_to: Some(reply.payer.clone()),
                at: Utc::now(),
            })
            .map_err(|e| crate::error::ApiError::Internal(e.to_string()))?;
        let mut metadata = writer::metadata(&reply.meta);
        // The reply's text is the payer's data: the caller, whom the thread was checked to be
        // owned by.
        metadata[crate::store::keys::SUBJECT] = reply.payer.account_id.clone().into();
        self.append(&reply.generation_id, 1, &started, &metadata)
            .await
            .map_err(|e| crate::error::ApiError::Unavailable(e.to_string()))?;
        for event in &started {
            generation.fold(event);
        }
        let first = Arc::new(Batch {
            committed_at: std::time::Instant::now(),
            events: (1..).zip(started).collect(),
        });
        let live = Arc::new(LiveGeneration::new(first));
        self.registry()
            .insert(reply.generation_id.clone(), live.clone());
        self.committed();
        tokio::spawn(writer::run(self.clone(), reply, generation, live, metadata));
        Ok(())
    }

    /// Durably appends events of generation `id` at sequences `first_sequence..` through the
    /// node's group-commit writer.
    pub(crate) async fn append(
        &self,
        id: &str,
        first_sequence: i64,
        events: &[GenerationEvent],
        metadata: &serde_json::Value,
    ) -> Result<crate::store::log::Cursor, AppendError> {
        use cqrs_es::DomainEvent;
        let mut rows = Vec::with_capacity(events.len());
        for (event, sequence) in events.iter().zip(first_sequence..) {
            rows.push(NewEvent {
                aggregate_type: "Generation".into(),
                aggregate_id: id.to_owned(),
                sequence,
                event_type: event.event_type(),
                event_version: event.event_version(),
                payload: serde_json::to_value(event)
                    .map_err(|e| AppendError::Failed(e.to_string()))?,
                metadata: metadata.clone(),
            });
        }
        self.appender.append(rows).await
    }

    /// The keys the node seals and opens personal values with.
    pub fn keys(&self) -> &crate::store::keys::KeyRing {
        self.appender.keys()
    }

    /// After a local commit: wake the projector and live readers.
    fn committed(&self) {
        self.projector.wake();
        self.signals.log_changed();
    }

    fn finished(&self, generation_id: &str) {
        self.registry().remove(generation_id);
    }

    /// Stops a generation if it runs on this node; returns whether it did.
    pub fn stop_local(&self, generation_id: &str) -> bool {
        match self.registry().get(generation_id) {
            Some(live) => {
                live.stop.send_replace(true);
                true
            }
            None => false,
        }
    }

    /// Stops a generation wherever it runs: here directly, elsewhere through PostgreSQL.
    pub async fn stop(&self, generation_id: &str) -> Result<(), sqlx::Error> {
        if self.stop_local(generation_id) {
            return Ok(());
        }
        if let Db::Postgres(pool) = &self.db {
            sqlx::query("SELECT pg_notify('threadline_stop', $1)")
                .bind(generation_id)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Marks replies whose node is gone as interrupted (keeping every committed chunk) and
    /// frees their threads. On SQLite there is one node, so every running reply not owned by
    /// this process is orphaned; on PostgreSQL a node is gone when its heartbeat is stale.
    pub async fn recover_orphans(&self) -> Result<usize, crate::error::ApiError> {
        let running = messages::running(&self.db).await?;
        let alive = live_nodes(&self.db, &self.node_id).await?;
        let mut recovered = 0;
        for generation in running {
            if alive.contains(&generation.node_id) || self.registry().contains_key(&generation.id) {
                continue;
            }
            let thread = Some(generation.thread_id.as_str()).filter(|t| !t.is_empty());
            if writer::interrupt(self, &generation.id, thread).await {
                recovered += 1;
            }
        }
        Ok(recovered)
    }

    /// Records this node as alive.
    pub async fn heartbeat(&self) -> Result<(), sqlx::Error> {
        self.db
            .execute(&threadline_projections::Stmt::new(
                "INSERT INTO nodes (id, heartbeat_at) VALUES ($1, $2) \
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = excluded.heartbeat_at",
                vec![
                    self.node_id.as_str().into(),
                    Utc::now().timestamp_micros().into(),
                ],
            ))
            .await
            .map(drop)
    }

    /// Heartbeats and recovers orphaned replies until `stop` turns true.
    pub async fn run_maintenance(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        loop {
            if let Err(e) = self.heartbeat().await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            match self.recover_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(replies = n, "marked replies of a dead node interrupted"),
                Err(e) => tracing::warn!(error = %e, "orphan recovery failed"),
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// Settles a reply's reservation (`charge`: with the actual cost when known) or gives
    /// it back (`None`).
    pub async fn close_reservation(
        &self,
        reservation: &Reservation,
        generation_id: &str,
        charge: Option<Option<u64>>,
        meta: &CommandMeta,
    ) {
        if reservation.charges.is_empty() {
            return;
        }
        crate::ledger::close(&self.bus, reservation, generation_id, charge, meta).await;
        self.committed();
    }

    /// Ends a thread's reply on the thread stream (frees it for the next one), with the
    /// thread's new title in the same append when there is one. A client reading the thread
    /// after the stream ends sees the finished reply: alone on the database, this node's reads
    /// wait for it (`AppState::fresh_for_account`); beside other nodes (PostgreSQL) the stream
    /// ends only once the projections show it.
    async fn finish_on_thread(
        &self,
        thread_id: &str,
        generation_id: &str,
        status: threadline_domain::generation::GenerationStatus,
        title: Option<threadline_domain::values::Title>,
        meta: &CommandMeta,
    ) {
        let at = Utc::now();
        let finish = ThreadCommand::FinishReply {
            generation_id: generation_id.to_owned(),
            status,
            at,
        };
        let command = match title {
            Some(title) => ThreadCommand::Batch(vec![
                finish,
                ThreadCommand::Rename {
                    title,
                    source: threadline_domain::thread::TitleSource::Generated,
                    at,
                },
            ]),
            None => finish,
        };
        let result = self.bus.execute::<Thread>(thread_id, command, meta).await;
        self.committed();
        match result {
            Ok(Some(_)) if matches!(self.db, Db::Sqlite { .. }) => {}
            Ok(Some(cursor)) => {
                if !self.projector.wait_for(cursor, FINISH_VISIBLE).await {
                    tracing::warn!(
                        generation_id,
                        "projections did not show the finished reply in time"
                    );
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, thread_id, generation_id, "cannot finish the reply on its thread")
            }
        }
    }
}

/// The generation streaming in a thread, for resume and for sends: see below.
/// The generation streaming in `thread` now: from the thread-list projection, or — when that
/// has not caught up — from the thread's own stream in the log (a reply started and not
/// finished).
pub async fn active_generation(
    db: &Db,
    thread: &threadline_projections::threads::ThreadRow,
) -> Result<Option<String>, sqlx::Error> {
    if let Some(id) = &thread.active_generation_id {
        // The reply may have ended already (its end is folded before the thread's).
        let ended = messages::generation(db, id)
            .await?
            .is_some_and(|g| !g.is_running());
        return Ok((!ended).then(|| id.clone()));
    }
    active_generation_in_log(db, &thread.id).await
}

/// The generation streaming in thread `id` according to the thread's own stream in the log (a
/// reply started and not finished): for when the projections have not caught up.
pub async fn active_generation_in_log(db: &Db, id: &str) -> Result<Option<String>, sqlx::Error> {
    use threadline_domain::thread::ThreadEvent;
    let latest =
        |event_type: &'static str| crate::store::log::latest_payload(db, "Thread", id, event_type);
    let started: Option<ThreadEvent> = latest("ReplyStarted")
        .await?
        .and_then(|p| serde_json::from_value(p).ok());
    let Some(ThreadEvent::ReplyStarted { generation_id, .. }) = started else {
        return Ok(None);
    };
    let finished: Option<ThreadEvent> = latest("ReplyFinished")
        .await?
        .and_then(|p| serde_json::from_value(p).ok());
    Ok(match finished {
        Some(ThreadEvent::ReplyFinished {
            generation_id: done,
            ..
        }) if done == generation_id => None,
        _ => Some(generation_id),
    })
}

/// How long the end of a stream waits for the projections to show the finished reply.
const FINISH_VISIBLE: Duration = Duration::from_secs(3);
/// How often a node records that it is alive.
const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node silent for this long is dead.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);

async fn live_nodes(db: &Db, me: &str) -> Result<Vec<String>, sqlx::Error> {
    if let Db::Sqlite { .. } = db {
        return Ok(vec![me.to_owned()]);
    }
    let since = Utc::now().timestamp_micros() - NODE_TIMEOUT.as_micros() as i64;
    let mut nodes: Vec<String> = threadline_projections::on_read!(db, pool =>
        sqlx::query_scalar("SELECT id FROM nodes WHERE heartbeat_at > $1")
            .bind(since)
            .fetch_all(pool)
            .await)?;
    nodes.push(me.to_owned());
    Ok(nodes)
}

/// Forwards PostgreSQL notifications to this node: commits of any node wake the projector and
/// live readers; stop requests reach the node running the reply.
pub async fn listen(
    db: Db,
    projector: crate::projector::Projector,
    chat: Arc<ChatService>,
    mut stop: watch::Receiver<bool>,
) {
    let Db::Postgres(pool) = &db else {
        return;
    };
    loop {
        let listener = forward_notifications(pool, &projector, &chat);
        tokio::select! {
            Err(e) = listener => {
                tracing::warn!(error = %e, "notification listener lost; reconnecting");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            _ = stop.changed() => return,
        }
    }
}

/// Receives notifications until the connection fails.
async fn forward_notifications(
    pool: &sqlx::PgPool,
    projector: &crate::projector::Projector,
    chat: &ChatService,
) -> Result<std::convert::Infallible, sqlx::Error> {
    let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
    listener
        .listen_all([
            "threadline_events",
            "threadline_checkpoints",
            "threadline_stop",
        ])
        .await?;
    loop {
        let note = listener.recv().await?;
        match note.channel() {
            "threadline_stop" => {
                chat.stop_local(note.payload());
            }
            _ => {
                projector.wake();
                chat.signals.log_changed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use threadline_domain::generation::Chunk;

    fn batch(first: i64, n: usize) -> Committed {
        let events = (0..n)
            .map(|i| {
                let chunk = Chunk::Text { text: "w ".into() };
                let event = GenerationEvent::ChunksAppended {
                    first_index: (first as u64) + i as u64,
                    chunks: vec![chunk],
                };
                (first + i as i64, event)
            })
            .collect();
        Arc::new(Batch {
            committed_at: std::time::Instant::now(),
            events,
        })
    }

    #[test]
    fn a_reader_gets_what_was_published_then_what_follows_once() {
        let live = LiveGeneration::new(batch(1, 1));
        live.publish(batch(2, 3));
        let (kept, mut rx) = live.follow();
        let sequences: Vec<i64> = kept
            .unwrap()
            .iter()
            .flat_map(|b| b.events.iter().map(|(s, _)| *s))
            .collect();
        assert_eq!(sequences, [1, 2, 3, 4]);
        live.publish(batch(5, 1));
        assert_eq!(rx.try_recv().unwrap().events[0].0, 5);
        assert!(rx.try_recv().is_err(), "nothing twice");
    }

    #[test]
    fn a_long_reply_is_no_longer_kept_and_its_readers_read_the_log() {
        let live = LiveGeneration::new(batch(1, 1));
        live.publish(batch(2, LIVE_BACKLOG));
        let (kept, _) = live.follow();
        assert!(kept.is_none());
        live.publish(batch(2 + LIVE_BACKLOG as i64, 1));
        assert!(live.follow().0.is_none(), "once dropped, never partly kept");
    }
}
