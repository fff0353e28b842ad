//! The command bus: every state change of the product goes through [`CommandBus::execute`].
//!
//! Each aggregate type has a cqrs-es `CqrsFramework` (with no queries) whose event store is a
//! [`CachedEventStore`] (`src/store/cached.rs`): it reads streams through sqlite-es's
//! `SqliteEventRepository` or postgres-es's `PostgresEventRepository` (on the read pool) and
//! appends through the node's group-commit writer ([`super::append::Appender`]). cqrs-es 0.5's
//! plain `PersistedEventStore` replays a whole stream on every command and its snapshot modes
//! apply new events twice, so neither is used: the cached store keeps each stream's state in
//! memory after a command, so the next one reads nothing (a stream not in memory is replayed
//! once). Commands on one stream take turns on this node (a per-stream lock). The bus loads the
//! aggregate through that store, lets it decide, appends the events with correlation, causation
//! and actor metadata, retries up to 8 times (`CONFLICT_RETRIES`) when another writer appended
//! to the same stream first (and once when a cached state was refused), and returns the log
//! cursor of the stream's latest event — the writer reports it — so the caller can wait for
//! its projections.

use std::collections::HashMap;
use std::sync::Arc;

use super::append::Appender;
use super::cached::{CachedEventStore, StreamCache};
use super::keys::KeyRing;
use super::written::Written;
use cqrs_es::{Aggregate, AggregateError, CqrsFramework};
use postgres_es::PostgresEventRepository;
use sqlite_es::SqliteEventRepository;
use threadline_domain::account::Account;
use threadline_domain::billing::WebhookDelivery;
use threadline_domain::catalog::CatalogModel;
use threadline_domain::email::EmailRegistration;
use threadline_domain::file::File;
use threadline_domain::ledger::CreditWindow;
use threadline_domain::mcp::McpServer;
use threadline_domain::personal::DataSubject;
use threadline_domain::thread::Thread;
use threadline_projections::Db;
use uuid::Uuid;

use super::log::{self, Cursor};

/// How often a command is retried when its stream changed between load and append.
const CONFLICT_RETRIES: usize = 8;

/// The actor of commands an operator runs on the command line.
pub const OPERATOR: &str = "cli";

/// Where a command came from, recorded in every event's metadata.
#[derive(Debug, Clone)]
pub struct CommandMeta {
    /// Ties together everything one request caused (the request id).
    pub correlation_id: String,
    /// What caused this command: the request id, or the event a policy reacted to.
    pub causation_id: String,
    /// The account on whose behalf the command runs, if any.
    pub actor: Option<String>,
    /// An admin's command: recorded as
    /// `"role": "admin"`, which puts its events on the admin audit trail.
    pub admin: bool,
}

impl CommandMeta {
    /// Metadata for a command caused directly by a request.
    pub fn for_request(request_id: &str, actor: Option<String>) -> Self {
        Self {
            correlation_id: request_id.to_owned(),
            causation_id: request_id.to_owned(),
            actor,
            admin: false,
        }
    }

    /// Metadata for an admin's command caused by a request.
    pub fn for_admin(request_id: &str, admin: &str) -> Self {
        Self {
            admin: true,
            ..Self::for_request(request_id, Some(admin.to_owned()))
        }
    }

    /// Metadata for an operator's command on the command line (`threadline accounts erase`):
    /// actor `cli`, on the admin audit trail.
    pub fn operator() -> Self {
        let id = Uuid::now_v7().to_string();
        Self {
            admin: true,
            ..Self::for_request(&id, Some(OPERATOR.to_owned()))
        }
    }

    /// Metadata for a command started by the server itself (CLI, maintenance).
    pub fn system() -> Self {
        let id = Uuid::now_v7().to_string();
        Self::for_request(&id, None)
    }

    fn to_map(&self) -> HashMap<String, String> {
        let mut map = HashMap::from([
            ("correlation_id".to_owned(), self.correlation_id.clone()),
            ("causation_id".to_owned(), self.causation_id.clone()),
        ]);
        if let Some(actor) = &self.actor {
            map.insert("actor".to_owned(), actor.clone());
        }
        if self.admin {
            use threadline_projections::audit::{ADMIN_ROLE, ROLE_KEY};
            map.insert(ROLE_KEY.to_owned(), ADMIN_ROLE.to_owned());
        }
        map
    }
}

/// A command refused by its aggregate, or a failure to run it.
#[derive(Debug, thiserror::Error)]
pub enum CommandError<E: std::error::Error> {
    /// The aggregate refused the command (a rule of the domain).
    #[error(transparent)]
    Rejected(E),
    /// Other writers kept winning the race for this stream.
    #[error("the resource is being changed concurrently")]
    Conflict,
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a bug or a corrupt log).
    #[error("unexpected storage error: {0}")]
    Internal(String),
}

/// One aggregate type's cqrs-es framework on the configured backend, with its store's cache.
pub struct Framework<A: Aggregate + DataSubject> {
    cqrs: Cqrs<A>,
    cache: StreamCache<A>,
}

enum Cqrs<A: Aggregate + DataSubject> {
    Sqlite(CqrsFramework<A, CachedEventStore<SqliteEventRepository, A>>),
    Postgres(CqrsFramework<A, CachedEventStore<PostgresEventRepository, A>>),
}

impl<A> Framework<A>
where
    A: Aggregate<Services = ()> + DataSubject + 'static,
    A::Command: Clone,
{
    fn new(db: &Db, appender: &Appender) -> Self {
        Self::with_capacity(db, appender, super::cached::CAPACITY)
    }

    /// A framework whose store keeps the state of up to `capacity` streams in memory.
    fn with_capacity(db: &Db, appender: &Appender, capacity: usize) -> Self {
        let upcasters = threadline_domain::upcast::upcasters;
        let appender = appender.clone();
        match db {
            Db::Sqlite { reader, .. } => {
                let repo = SqliteEventRepository::new(reader.clone());
                let store = CachedEventStore::new(repo, appender, upcasters(), capacity);
                let cache = store.stream_cache();
                let cqrs = Cqrs::Sqlite(CqrsFramework::new(store, vec![], ()));
                Framework { cqrs, cache }
            }
            Db::Postgres(pool) => {
                let repo = PostgresEventRepository::new(pool.clone());
                let store = CachedEventStore::new(repo, appender, upcasters(), capacity);
                let cache = store.stream_cache();
                let cqrs = Cqrs::Postgres(CqrsFramework::new(store, vec![], ()));
                Framework { cqrs, cache }
            }
        }
    }

    async fn execute_once(
        &self,
        id: &str,
        command: A::Command,
        meta: HashMap<String, String>,
    ) -> Result<(), AggregateError<A::Error>> {
        match &self.cqrs {
            Cqrs::Sqlite(f) => f.execute_with_metadata(id, command, meta).await,
            Cqrs::Postgres(f) => f.execute_with_metadata(id, command, meta).await,
        }
    }
}

/// Threads whose state stays in memory on a node (the recently active conversations).
const THREADS_CACHED: usize = 1_000;

/// Executes commands on every aggregate of the domain.
#[derive(Clone)]
pub struct CommandBus {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// The node's one writer of the log (group commit), shared with the reply writers.
    appender: Appender,
    /// One async lock per stream being written on this node: commands on one aggregate queue
    /// here instead of racing to append (cross-node races are left to the conflict retry).
    streams: crate::keyed_lock::KeyedLocks<(&'static str, String)>,
    accounts: Framework<Account>,
    emails: Framework<EmailRegistration>,
    threads: Framework<Thread>,
    catalog: Framework<CatalogModel>,
    files: Framework<File>,
    ledger: Framework<CreditWindow>,
    deliveries: Framework<WebhookDelivery>,
    mcp_servers: Framework<McpServer>,
    /// What this node's commands wrote last, per account and per stream.
    written: Written,
}

/// Picks the framework of an aggregate type out of the bus.
pub trait Routed: Aggregate<Services = ()> + DataSubject + Sized + 'static
where
    Self::Command: Clone,
{
    #[doc(hidden)]
    fn framework(bus: &CommandBus) -> &Framework<Self>;
}

impl Routed for Account {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.accounts
    }
}

impl Routed for EmailRegistration {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.emails
    }
}

impl Routed for Thread {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.threads
    }
}

impl Routed for CreditWindow {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.ledger
    }
}

impl Routed for WebhookDelivery {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.deliveries
    }
}

impl Routed for CatalogModel {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.catalog
    }
}

impl Routed for McpServer {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.mcp_servers
    }
}

impl Routed for File {
    fn framework(bus: &CommandBus) -> &Framework<Self> {
        &bus.inner.files
    }
}

impl CommandBus {
    /// A bus writing to `db`, with the node's group-commit writer (started here, inside a
    /// Tokio runtime).
    pub fn new(db: Db, keys: KeyRing) -> Self {
        let appender = Appender::start(db.clone(), keys);
        let a = &appender;
        Self {
            inner: Arc::new(Inner {
                accounts: Framework::new(&db, a),
                emails: Framework::new(&db, a),
                // A thread's state holds its user messages' texts: fewer of them stay cached.
                threads: Framework::with_capacity(&db, a, THREADS_CACHED),
                catalog: Framework::new(&db, a),
                files: Framework::new(&db, a),
                ledger: Framework::new(&db, a),
                deliveries: Framework::new(&db, a),
                mcp_servers: Framework::new(&db, a),
                streams: Default::default(),
                written: Written::default(),
                appender,
                db,
            }),
        }
    }

    /// What this node's commands wrote last (the cursors reads wait for).
    pub fn written(&self) -> &Written {
        &self.inner.written
    }

    /// The node's group-commit writer, for appends outside cqrs-es (a reply's events).
    pub fn appender(&self) -> &Appender {
        &self.inner.appender
    }

    /// Tells the bus that stream `id` of type `A` was found empty in the log a moment ago
    /// (a thread about to be created): its next command decides without reading the stream.
    pub fn assume_new<A>(&self, id: &str)
    where
        A: Routed,
        A::Command: Clone,
    {
        A::framework(self).cache.assume_empty(id);
    }

    /// Runs `command` against aggregate `id` of type `A`. Returns the log cursor of the
    /// stream's newest event afterwards (`None` for a stream that is still empty).
    pub async fn execute<A>(
        &self,
        id: &str,
        command: A::Command,
        meta: &CommandMeta,
    ) -> Result<Option<Cursor>, CommandError<A::Error>>
    where
        A: Routed,
        A::Command: Clone,
        A::Error: Clone,
    {
        let framework = A::framework(self);
        let guard = self.inner.streams.lock((A::TYPE, id.to_owned())).await;
        let mut attempt = 0;
        let mut cached = framework.cache.is_cached(id);
        let result = loop {
            match framework
                .execute_once(id, command.clone(), meta.to_map())
                .await
            {
                Ok(()) => break Ok(()),
                Err(e) if is_conflict(&e) && attempt < CONFLICT_RETRIES => {
                    attempt += 1;
                    // The failed command dropped the cached state: the next one reads the log.
                    cached = false;
                    tracing::debug!(
                        aggregate = A::TYPE,
                        id,
                        attempt,
                        "append conflict, retrying"
                    );
                    let jitter = rand::random::<u64>() % (2 << attempt.min(6));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) if is_conflict(&e) => break Err(CommandError::Conflict),
                // A refusal on a cached state is checked once against the log (the failed
                // command dropped the state, so this attempt reads it fresh).
                Err(AggregateError::UserError(_)) if cached => cached = false,
                Err(AggregateError::UserError(e)) => break Err(CommandError::Rejected(e)),
                Err(AggregateError::DatabaseConnectionError(e)) => {
                    break Err(CommandError::Unavailable(e.to_string()));
                }
                Err(e) => break Err(classify(e.to_string())),
            }
        };
        let appended = framework.cache.take_cursor(id);
        drop(guard);
        result?;
        if let Some(cursor) = appended {
            let written = &self.inner.written;
            written.record(A::TYPE, id, meta.actor.as_deref(), cursor);
            return Ok(appended);
        }
        // The command wrote nothing (an idempotent repeat): its stream's newest event is what
        // the caller waits for.
        log::last_cursor_of(&self.inner.db, A::TYPE, id)
            .await
            .map_err(|e| classify(e.to_string()))
    }
}

/// Whether another writer appended to the stream first. On SQLite the stream key is a unique
/// constraint (the primary key is the log position), which sqlite-es reports as an unknown
/// error rather than `AggregateConflict`.
fn is_conflict<E: std::error::Error>(e: &AggregateError<E>) -> bool {
    match e {
        AggregateError::AggregateConflict => true,
        AggregateError::UnexpectedError(inner) => inner
            .to_string()
            .contains("UNIQUE constraint failed: events.aggregate_type"),
        _ => false,
    }
}

/// sqlx reports pool timeouts and I/O failures as generic errors through cqrs-es; treat those
/// as the database being unavailable (503), the rest as internal (500).
fn classify<E: std::error::Error>(message: String) -> CommandError<E> {
    let lower = message.to_lowercase();
    if lower.contains("pool timed out")
        || lower.contains("connection")
        || lower.contains("io error")
        || lower.contains("database is locked")
    {
        CommandError::Unavailable(message)
    } else {
        CommandError::Internal(message)
    }
}
