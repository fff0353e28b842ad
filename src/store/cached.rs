//! An event store that keeps each stream's latest state in memory, so that a command costs no
//! read at all when its stream is cached, and otherwise reads only what it has not seen: a
//! command's latency does not grow with the stream's history.
//!
//! cqrs-es's `PersistedEventStore` replays every event of a stream on every command, and its
//! snapshot modes apply new events twice (a snapshot of 4 events loads as 7). This store is the
//! project's own snapshot mechanism, kept in memory and never trusted over the log:
//!
//! - `load_aggregate` takes the cached `(state, sequence)` of the stream and decides on it
//!   without reading the database. A stream that is not cached is replayed from the log (via
//!   sqlite-es's or postgres-es's repository, on the read pool).
//! - `commit` appends the new events at the next sequences through the node's group-commit
//!   writer ([`super::append`]). If anything else appended to the stream since the cached
//!   state — another node, a CLI process — the unique key refuses the append, cqrs-es reports a
//!   conflict, and the command bus retries it on a state read fresh from the log. A command
//!   *refused* on a cached state is retried once from the log too (`CommandBus::execute`), so a
//!   stale cache can neither accept nor refuse what the log would not. Once the append is
//!   durable the store caches the state the command left (cqrs-es's event sink has already
//!   applied the new events to it) and keeps the log cursor of its newest event for the bus.
//! - A failed command (refused, conflicting, or a database error) drops the taken state: the
//!   next command on the stream loads it from the log again.
//! - A caller that has just read a stream to be empty (a send that found no `ThreadCreated`)
//!   says so ([`StreamCache::assume_empty`]): the command decides on the default state without
//!   reading, verified by the append like any cached state.
//!
//! The command bus runs one command per stream at a time on a node, so taking a state out of the
//! cache for the length of a command is race-free. Each store holds a bounded number of streams
//! (its capacity, [`CAPACITY`] by default); when it is full the least recently used tenth is
//! dropped.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use cqrs_es::persist::{
    EventStoreAggregateContext, EventUpcaster, PersistedEventRepository, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};

use threadline_domain::personal::DataSubject;

use super::append::{AppendError, Appender, NewEvent};
use super::keys;
use super::log::Cursor;

/// Streams whose state stays cached per aggregate type, by default.
pub const CAPACITY: usize = 10_000;

struct Entry<A> {
    aggregate: A,
    sequence: usize,
    used: u64,
}

struct Cache<A> {
    entries: HashMap<String, Entry<A>>,
    /// The log cursor of each stream's latest append, until the bus takes it.
    cursors: HashMap<String, Cursor>,
    /// Streams a caller has just read to be empty in the log: the next command on one decides
    /// on the default state without reading it again (the append's sequence check verifies).
    empty: std::collections::HashSet<String>,
    clock: u64,
}

/// Hints of empty streams kept at most; past it they are dropped (a hint only saves a read).
const EMPTY_HINTS: usize = 10_000;

/// Reads through a `PersistedEventRepository`, writes through the node's [`Appender`], with an
/// in-memory cache of stream states in front.
pub struct CachedEventStore<R, A: Aggregate> {
    repo: R,
    appender: Appender,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    cache: StreamCache<A>,
    capacity: usize,
}

/// What the command bus sees of a store's cache (the framework owns the store itself).
pub struct StreamCache<A>(Arc<Mutex<Cache<A>>>);

impl<A> Clone for StreamCache<A> {
    fn clone(&self) -> Self {
        Self(self.0.clone())
    }
}

impl<A> StreamCache<A> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Cache<A>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether the state of `id` is cached (a command on it will not read the log).
    pub fn is_cached(&self, id: &str) -> bool {
        let cache = self.lock();
        cache.entries.contains_key(id) || cache.empty.contains(id)
    }

    /// Records that the caller found stream `id` empty in the log just now, so the next
    /// command on it need not read it: it decides on the default state, and if the stream was
    /// written meanwhile the append conflicts and the command runs again on the log's state.
    pub fn assume_empty(&self, id: &str) {
        let mut cache = self.lock();
        if cache.entries.contains_key(id) {
            return;
        }
        if cache.empty.len() >= EMPTY_HINTS {
            cache.empty.clear();
        }
        cache.empty.insert(id.to_owned());
    }

    /// The log cursor of the latest append to `id` through the store, taken out.
    pub fn take_cursor(&self, id: &str) -> Option<Cursor> {
        self.lock().cursors.remove(id)
    }
}

impl<R, A> CachedEventStore<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate,
{
    /// A store reading streams through `repo` and appending through `appender`, caching up to
    /// `capacity` streams; stored events pass through `upcasters` before they are read.
    pub fn new(
        repo: R,
        appender: Appender,
        upcasters: Vec<Box<dyn EventUpcaster>>,
        capacity: usize,
    ) -> Self {
        Self {
            repo,
            appender,
            upcasters,
            cache: StreamCache(Arc::new(Mutex::new(Cache {
                entries: HashMap::new(),
                cursors: HashMap::new(),
                empty: Default::default(),
                clock: 0,
            }))),
            capacity: capacity.max(10),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache<A>> {
        self.cache.lock()
    }

    /// A handle on this store's cache.
    pub fn stream_cache(&self) -> StreamCache<A> {
        self.cache.clone()
    }

    /// Takes the cached state of `id` out of the cache (the command owns it until commit):
    /// the default state for a stream hinted empty.
    fn take(&self, id: &str) -> Option<(A, usize)> {
        let mut cache = self.cache();
        if let Some(e) = cache.entries.remove(id) {
            return Some((e.aggregate, e.sequence));
        }
        cache.empty.remove(id).then(|| (A::default(), 0))
    }

    fn put(&self, id: String, aggregate: A, sequence: usize) {
        let mut cache = self.cache();
        if cache.entries.len() >= self.capacity {
            // Drop the least recently used tenth in one pass (amortised over the next inserts).
            let mut ages: Vec<u64> = cache.entries.values().map(|e| e.used).collect();
            let cut = self.capacity / 10;
            ages.select_nth_unstable(cut);
            let threshold = ages[cut];
            cache.entries.retain(|_, e| e.used > threshold);
        }
        cache.clock += 1;
        let used = cache.clock;
        cache.entries.insert(
            id,
            Entry {
                aggregate,
                sequence,
                used,
            },
        );
    }

    /// The stored events of stream `id`, opened, upcast and deserialized.
    async fn events(&self, id: &str) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let stored = self.repo.get_events::<A>(id).await?;
        let mut envelopes = Vec::with_capacity(stored.len());
        for mut event in stored {
            self.appender
                .keys()
                .open_stored(
                    &event.metadata,
                    &event.event_type,
                    &event.event_version,
                    &mut event.payload,
                )
                .await
                .map_err(|e| match e {
                    keys::KeyError::Database(e) => {
                        AggregateError::DatabaseConnectionError(Box::new(e))
                    }
                    e => AggregateError::UnexpectedError(e.to_string().into()),
                })?;
            let event = self.upcasters.iter().fold(event, |event, upcaster| {
                if upcaster.can_upcast(&event.event_type, &event.event_version) {
                    upcaster.upcast(event)
                } else {
                    event
                }
            });
            envelopes.push(EventEnvelope::<A>::try_from(event)?);
        }
        Ok(envelopes)
    }
}

impl<R, A> EventStore<A> for CachedEventStore<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate + DataSubject + Send + Sync,
{
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.events(aggregate_id).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        // A cached state is decided on as it is; the append's sequence check verifies it.
        let (aggregate, sequence) = match self.take(aggregate_id) {
            Some(cached) => cached,
            None => {
                let (mut aggregate, mut sequence) = (A::default(), 0);
                for envelope in self.events(aggregate_id).await? {
                    sequence = envelope.sequence;
                    aggregate.apply(envelope.payload);
                }
                (aggregate, sequence)
            }
        };
        Ok(EventStoreAggregateContext {
            aggregate_id: aggregate_id.to_owned(),
            aggregate,
            current_sequence: sequence,
            current_snapshot: None,
        })
    }

    async fn commit(
        &self,
        events: Vec<A::Event>,
        context: EventStoreAggregateContext<A>,
        metadata: HashMap<String, String>,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let EventStoreAggregateContext {
            aggregate_id,
            aggregate,
            current_sequence,
            ..
        } = context;
        let envelopes: Vec<EventEnvelope<A>> = events
            .into_iter()
            .zip(current_sequence + 1..)
            .map(|(payload, sequence)| EventEnvelope {
                aggregate_id: aggregate_id.clone(),
                sequence,
                payload,
                metadata: metadata.clone(),
            })
            .collect();
        let subject = aggregate.data_subject(&aggregate_id);
        let mut rows = Vec::with_capacity(envelopes.len());
        for envelope in &envelopes {
            let mut event = SerializedEvent::try_from(envelope)?;
            if let (Some(subject), Some(map)) = (&subject, event.metadata.as_object_mut()) {
                map.insert(keys::SUBJECT.to_owned(), subject.clone().into());
            }
            rows.push(NewEvent {
                aggregate_type: event.aggregate_type,
                aggregate_id: event.aggregate_id,
                sequence: event.sequence as i64,
                event_type: event.event_type,
                event_version: event.event_version,
                payload: event.payload,
                metadata: event.metadata,
            });
        }
        if !rows.is_empty() {
            let cursor = self.appender.append(rows).await.map_err(|e| match e {
                AppendError::Conflict => AggregateError::AggregateConflict,
                AppendError::Unavailable(m) => AggregateError::DatabaseConnectionError(m.into()),
                AppendError::Failed(m) => AggregateError::UnexpectedError(m.into()),
            })?;
            self.cache().cursors.insert(aggregate_id.clone(), cursor);
        }
        // The sink applied the new events to `aggregate` already.
        self.put(aggregate_id, aggregate, current_sequence + envelopes.len());
        Ok(envelopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::bus::{CommandBus, CommandError, CommandMeta};
    use crate::store::keys::KeyRing;
    use chrono::Utc;
    use sqlite_es::SqliteEventRepository;
    use threadline_domain::ledger::{CreditWindow, LedgerCommand, LedgerError};

    async fn store(dir: &std::path::Path) -> (threadline_projections::Db, sqlx::SqlitePool) {
        let db = crate::store::connect(None, dir).await.unwrap();
        crate::store::migrate(&db).await.unwrap();
        let threadline_projections::Db::Sqlite { writer, .. } = &db else {
            panic!("sqlite")
        };
        let writer = writer.clone();
        (db, writer)
    }

    fn reserve(g: &str, amount: u64) -> LedgerCommand {
        LedgerCommand::Reserve {
            generation_id: g.into(),
            amount,
            limit: Some(10),
            at: Utc::now(),
        }
    }

    /// Two "nodes": two buses with their own caches and writers over one database.
    fn two_nodes(db: &threadline_projections::Db) -> (CommandBus, CommandBus) {
        let node = || CommandBus::new(db.clone(), KeyRing::ephemeral(db.clone()));
        (node(), node())
    }

    /// The credits a refusal reports as used, if the command was refused as exhausted.
    fn used_when_refused<T>(result: Result<T, CommandError<LedgerError>>) -> Option<u64> {
        match result {
            Err(CommandError::Rejected(LedgerError::Exhausted { used, .. })) => Some(used),
            _ => None,
        }
    }

    #[tokio::test]
    async fn a_cached_state_follows_what_other_writers_appended() {
        let dir = tempfile::tempdir().unwrap();
        let (db, pool) = store(dir.path()).await;
        let (a, b) = two_nodes(&db);
        let meta = CommandMeta::system();
        a.execute::<CreditWindow>("w", reserve("g1", 4), &meta)
            .await
            .unwrap();
        b.execute::<CreditWindow>("w", reserve("g2", 4), &meta)
            .await
            .unwrap();
        // Node a's cached state is behind by b's event: its append conflicts and the retry
        // counts it.
        let refused = a
            .execute::<CreditWindow>("w", reserve("g3", 4), &meta)
            .await;
        assert_eq!(used_when_refused(refused), Some(8));
        a.execute::<CreditWindow>("w", reserve("g3", 2), &meta)
            .await
            .unwrap();
        let events = CachedEventStore::<_, CreditWindow>::new(
            SqliteEventRepository::new(pool),
            Appender::start(db.clone(), KeyRing::ephemeral(db)),
            threadline_domain::upcast::upcasters(),
            CAPACITY,
        )
        .load_events("w")
        .await
        .unwrap();
        let sequences: Vec<usize> = events.iter().map(|e| e.sequence).collect();
        assert_eq!(sequences, [1, 2, 3]);
    }

    #[tokio::test]
    async fn a_refusal_on_a_stale_cached_state_is_checked_against_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = store(dir.path()).await;
        let (a, b) = two_nodes(&db);
        let meta = CommandMeta::system();
        a.execute::<CreditWindow>("w", reserve("g1", 10), &meta)
            .await
            .unwrap();
        // Node b gives the credits back; node a's cache still says they are all used.
        b.execute::<CreditWindow>(
            "w",
            LedgerCommand::Release {
                generation_id: "g1".into(),
                at: Utc::now(),
            },
            &meta,
        )
        .await
        .unwrap();
        a.execute::<CreditWindow>("w", reserve("g2", 10), &meta)
            .await
            .expect("the log has room: a stale cache must not refuse");
    }

    #[tokio::test]
    async fn a_wrong_hint_of_an_empty_stream_is_corrected_by_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let (db, _) = store(dir.path()).await;
        let (a, b) = two_nodes(&db);
        let meta = CommandMeta::system();
        b.execute::<CreditWindow>("w", reserve("g1", 8), &meta)
            .await
            .unwrap();
        // Node a was told the stream is empty, but node b has used 8 of the 10 credits: the
        // decision on the empty state conflicts at the append, and the retry on the log's
        // state refuses.
        a.assume_new::<CreditWindow>("w");
        let refused = a
            .execute::<CreditWindow>("w", reserve("g2", 4), &meta)
            .await;
        assert_eq!(used_when_refused(refused), Some(8));
        // A hint on a stream the node has cached changes nothing.
        a.execute::<CreditWindow>("w", reserve("g3", 2), &meta)
            .await
            .unwrap();
        a.assume_new::<CreditWindow>("w");
        let refused = a
            .execute::<CreditWindow>("w", reserve("g4", 1), &meta)
            .await;
        assert_eq!(used_when_refused(refused), Some(10));
    }

    #[tokio::test]
    async fn a_full_cache_drops_its_least_recently_used_streams() {
        let dir = tempfile::tempdir().unwrap();
        let (db, pool) = store(dir.path()).await;
        let store = CachedEventStore::<_, CreditWindow>::new(
            SqliteEventRepository::new(pool),
            Appender::start(db.clone(), KeyRing::ephemeral(db)),
            vec![],
            CAPACITY,
        );
        for i in 0..CAPACITY + 1 {
            store.put(format!("s{i}"), CreditWindow::default(), 1);
        }
        let cache = store.cache();
        assert!(cache.entries.len() <= CAPACITY);
        assert!(
            cache.entries.contains_key(&format!("s{CAPACITY}")),
            "the newest stays"
        );
        assert!(!cache.entries.contains_key("s0"), "the oldest goes");
    }
}
