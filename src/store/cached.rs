//! An event store that keeps each stream's latest state in memory, so that a command reads only
//! the events appended since the last command on this node, not the whole stream: a command's
//! latency does not grow with the stream's history.
//!
//! cqrs-es's `PersistedEventStore` replays every event of a stream on every command, and its
//! snapshot modes apply new events twice (a snapshot of 4 events loads as 7). This store is the project's own snapshot
//! mechanism, kept in memory and never trusted over the log:
//!
//! - `load_aggregate` takes the cached `(state, sequence)` of the stream (or starts empty) and
//!   applies the events after that sequence from the database: the ones other nodes appended
//!   meanwhile, usually none. The result is exactly the state a full replay would give.
//! - `commit` appends with the next sequences (a conflict fails as before and the command bus
//!   retries) and, once the insert succeeded, caches the state the command left (cqrs-es's event
//!   sink has already applied the new events to it).
//! - A failed command (refused, conflicting, or a database error) drops the taken state: the next
//!   command on the stream loads it from the log again.
//!
//! The command bus runs one command per stream at a time on a node, so taking a state out of the
//! cache for the length of a command is race-free. Each store holds a bounded number of streams
//! (its capacity, [`CAPACITY`] by default); when it is full the least recently used tenth is
//! dropped.

use std::collections::HashMap;
use std::sync::Mutex;

use cqrs_es::persist::{
    EventStoreAggregateContext, EventUpcaster, PersistedEventRepository, SerializedEvent,
};
use cqrs_es::{Aggregate, AggregateError, EventEnvelope, EventStore};

/// Streams whose state stays cached per aggregate type, by default.
pub const CAPACITY: usize = 10_000;

struct Entry<A> {
    aggregate: A,
    sequence: usize,
    used: u64,
}

struct Cache<A> {
    entries: HashMap<String, Entry<A>>,
    clock: u64,
}

/// A `PersistedEventRepository` with an in-memory cache of stream states in front.
pub struct CachedEventStore<R, A: Aggregate> {
    repo: R,
    upcasters: Vec<Box<dyn EventUpcaster>>,
    cache: Mutex<Cache<A>>,
    capacity: usize,
}

impl<R, A> CachedEventStore<R, A>
where
    R: PersistedEventRepository,
    A: Aggregate,
{
    /// A store over `repo` caching up to `capacity` streams; stored events pass through
    /// `upcasters` before they are read.
    pub fn new(repo: R, upcasters: Vec<Box<dyn EventUpcaster>>, capacity: usize) -> Self {
        Self {
            repo,
            upcasters,
            cache: Mutex::new(Cache {
                entries: HashMap::new(),
                clock: 0,
            }),
            capacity: capacity.max(10),
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, Cache<A>> {
        self.cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the cached state of `id` out of the cache (the command owns it until commit).
    fn take(&self, id: &str) -> Option<(A, usize)> {
        self.cache()
            .entries
            .remove(id)
            .map(|e| (e.aggregate, e.sequence))
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

    /// Stored events after `sequence`, upcast and deserialized.
    async fn events_after(
        &self,
        id: &str,
        sequence: usize,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        let stored = if sequence == 0 {
            self.repo.get_events::<A>(id).await?
        } else {
            self.repo.get_last_events::<A>(id, sequence).await?
        };
        let mut envelopes = Vec::with_capacity(stored.len());
        for event in stored {
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
    A: Aggregate + Send + Sync,
{
    type AC = EventStoreAggregateContext<A>;

    async fn load_events(
        &self,
        aggregate_id: &str,
    ) -> Result<Vec<EventEnvelope<A>>, AggregateError<A::Error>> {
        self.events_after(aggregate_id, 0).await
    }

    async fn load_aggregate(
        &self,
        aggregate_id: &str,
    ) -> Result<EventStoreAggregateContext<A>, AggregateError<A::Error>> {
        let (mut aggregate, mut sequence) = self.take(aggregate_id).unwrap_or_default();
        for envelope in self.events_after(aggregate_id, sequence).await? {
            sequence = envelope.sequence;
            aggregate.apply(envelope.payload);
        }
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
        let serialized = envelopes
            .iter()
            .map(SerializedEvent::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        if !serialized.is_empty() {
            self.repo.persist::<A>(&serialized, None).await?;
        }
        // The sink applied the new events to `aggregate` already.
        self.put(aggregate_id, aggregate, current_sequence + envelopes.len());
        Ok(envelopes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use cqrs_es::CqrsFramework;
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

    #[tokio::test]
    async fn a_cached_state_follows_what_other_writers_appended() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, pool) = store(dir.path()).await;
        // Two "nodes": two stores with their own caches over one database.
        let node = |pool: sqlx::SqlitePool| {
            CqrsFramework::new(
                CachedEventStore::<_, CreditWindow>::new(
                    SqliteEventRepository::new(pool),
                    threadline_domain::upcast::upcasters(),
                    CAPACITY,
                ),
                vec![],
                (),
            )
        };
        let (a, b) = (node(pool.clone()), node(pool.clone()));
        a.execute("w", reserve("g1", 4)).await.unwrap();
        b.execute("w", reserve("g2", 4)).await.unwrap();
        // Node a's cache is behind by b's event: it must count it.
        let refused = a.execute("w", reserve("g3", 4)).await;
        assert!(matches!(
            refused,
            Err(AggregateError::UserError(LedgerError::Exhausted {
                used: 8,
                limit: 10
            }))
        ));
        a.execute("w", reserve("g3", 2)).await.unwrap();
        let events = CachedEventStore::<_, CreditWindow>::new(
            SqliteEventRepository::new(pool),
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
    async fn a_full_cache_drops_its_least_recently_used_streams() {
        let dir = tempfile::tempdir().unwrap();
        let (_db, pool) = store(dir.path()).await;
        let store = CachedEventStore::<_, CreditWindow>::new(
            SqliteEventRepository::new(pool),
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
