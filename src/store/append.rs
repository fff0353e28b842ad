//! The node's one writer of the event log: group commit for every stream.
//!
//! Every append on the node — a reply's chunk batch, a thread command, a credit reservation —
//! is a job queued to one task. The task takes whatever has queued up (at most [`MAX_ROWS`]
//! rows) and writes it as **one multi-row `INSERT`**: one statement, so one
//! round trip and one implicit transaction (SQLite in autocommit mode, PostgreSQL's
//! single-statement transaction), whatever the number of streams in it. Under load one commit
//! carries the appends of many replies and commands; when idle a job is committed at once.
//!
//! What stays exactly as before:
//! - **Optimistic concurrency**: the unique key `(aggregate_type, aggregate_id, sequence)`
//!   refuses an append whose stream moved on. When a group fails, each job is retried on its
//!   own, so only the job that lost the race gets [`AppendError::Conflict`].
//! - **Global order**: positions come from the database as before (SQLite's rowid on its one
//!   writer connection; PostgreSQL's identity plus `tx_id`), and the writer hands every job the
//!   log cursor of its newest event, so callers wait for projections without asking the
//!   database where their write landed.
//! - **Notifications**: PostgreSQL's statement trigger sends one `NOTIFY` per commit.

use serde_json::Value;
use sqlx::Row as _;
use threadline_projections::Db;
use tokio::sync::{mpsc, oneshot};

use super::direct::{DirectError, DirectWriter};
use super::keys::{self, KeyError, KeyRing};
use super::log::Cursor;

/// Rows per statement at most (SQLite binds 7 parameters a row, within its 32,766 limit).
const MAX_ROWS: usize = 2_000;

/// One event to append, its personal values still in clear.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub aggregate_type: String,
    pub aggregate_id: String,
    pub sequence: i64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Value,
    /// Names the data subject (`"subject"`) when the payload has personal values.
    pub metadata: Value,
}

/// An event as written: its personal values sealed, payload and metadata as JSON text.
#[derive(Debug)]
struct Row {
    aggregate_type: String,
    aggregate_id: String,
    sequence: i64,
    event_type: String,
    event_version: String,
    payload: String,
    metadata: String,
}

/// Why an append was not written (none of its events were).
#[derive(Debug, Clone, thiserror::Error)]
pub enum AppendError {
    /// Another writer appended to one of the streams first.
    #[error("another writer appended to the stream first")]
    Conflict,
    /// The database could not be reached.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else.
    #[error("cannot append events: {0}")]
    Failed(String),
}

impl AppendError {
    fn of(e: &sqlx::Error) -> Self {
        match e {
            sqlx::Error::Database(db) if db.is_unique_violation() => AppendError::Conflict,
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::WorkerCrashed => AppendError::Unavailable(e.to_string()),
            sqlx::Error::Database(db) if db.message().contains("database is locked") => {
                AppendError::Unavailable(e.to_string())
            }
            _ => AppendError::Failed(e.to_string()),
        }
    }

    fn of_direct(e: &DirectError) -> Self {
        use rusqlite::ErrorCode;
        match e {
            DirectError::Pool(e) => AppendError::of(e),
            DirectError::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => match f.code {
                ErrorCode::ConstraintViolation
                    if f.extended_code == SQLITE_CONSTRAINT_UNIQUE
                        || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    AppendError::Conflict
                }
                ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked | ErrorCode::CannotOpen => {
                    AppendError::Unavailable(e.to_string())
                }
                _ => AppendError::Failed(e.to_string()),
            },
            DirectError::Stopped => AppendError::Unavailable(e.to_string()),
            DirectError::Sqlite(_) => AppendError::Failed(e.to_string()),
        }
    }
}

/// SQLite's extended result codes for a unique and a primary-key violation.
const SQLITE_CONSTRAINT_UNIQUE: std::ffi::c_int = 2067;
const SQLITE_CONSTRAINT_PRIMARYKEY: std::ffi::c_int = 1555;

struct Job {
    events: std::sync::Arc<[Row]>,
    done: oneshot::Sender<Result<Cursor, AppendError>>,
}

/// Handle on the node's writer task.
#[derive(Clone)]
pub struct Appender {
    jobs: mpsc::Sender<Job>,
    keys: KeyRing,
}

impl Appender {
    /// Starts the writer task on `db` (inside a Tokio runtime), sealing personal values with
    /// `keys`.
    pub fn start(db: Db, keys: KeyRing) -> Self {
        let (jobs, rx) = mpsc::channel(8192);
        tokio::spawn(run(db, rx));
        Self { jobs, keys }
    }

    /// The keys this appender seals with (and its readers open with).
    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// Durably appends `events` (all or none) and returns the log cursor of the last one.
    /// `events` must not be empty. Personal values are sealed here, on the caller's task,
    /// so the one writer task does no cryptography.
    pub async fn append(&self, events: Vec<NewEvent>) -> Result<Cursor, AppendError> {
        if events.is_empty() {
            return Err(AppendError::Failed("nothing to append".into()));
        }
        let mut rows = Vec::with_capacity(events.len());
        for mut event in events {
            self.keys
                .seal_payload(
                    keys::subject_of(&event.metadata),
                    &event.event_type,
                    &mut event.payload,
                )
                .await
                .map_err(|e| match e {
                    KeyError::Database(e) => AppendError::of(&e),
                    e => AppendError::Failed(e.to_string()),
                })?;
            rows.push(Row {
                aggregate_type: event.aggregate_type,
                aggregate_id: event.aggregate_id,
                sequence: event.sequence,
                event_type: event.event_type,
                event_version: event.event_version,
                payload: event.payload.to_string(),
                metadata: event.metadata.to_string(),
            });
        }
        let events = rows.into();
        let stopped = || AppendError::Unavailable("the appender has stopped".into());
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Job { events, done })
            .await
            .map_err(|_| stopped())?;
        wait.await.map_err(|_| stopped())?
    }
}

async fn run(db: Db, mut rx: mpsc::Receiver<Job>) {
    let direct = match &db {
        Db::Sqlite { writer, .. } => DirectWriter::for_pool(writer).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot open the SQLite writer thread; appends go through the pool");
            None
        }),
        Db::Postgres(_) => None,
    };
    let mut next: Option<Job> = None;
    loop {
        let first = match next.take() {
            Some(job) => job,
            None => match rx.recv().await {
                Some(job) => job,
                None => return,
            },
        };
        let mut rows = first.events.len();
        let mut jobs = vec![first];
        while rows < MAX_ROWS {
            let Ok(job) = rx.try_recv() else { break };
            if rows + job.events.len() > MAX_ROWS {
                next = Some(job);
                break;
            }
            rows += job.events.len();
            jobs.push(job);
        }
        match (&db, &direct) {
            (Db::Sqlite { writer, .. }, Some(direct)) => {
                commit_direct(writer, direct, jobs).await;
            }
            _ => commit_group(&db, jobs).await,
        }
    }
}

/// SQLite: the jobs in one transaction on the writer thread, each within a savepoint, so a
/// job that lost a race is rolled back alone and the others commit — one hand-off for the
/// whole group. Each row is one execution of one prepared statement.
async fn commit_direct(lock: &sqlx::SqlitePool, direct: &DirectWriter, jobs: Vec<Job>) {
    let groups: Vec<std::sync::Arc<[Row]>> = jobs.iter().map(|j| j.events.clone()).collect();
    let written = direct
        .write(lock, move |conn| {
            let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
            let mut results = Vec::with_capacity(groups.len());
            {
                let mut insert = tx.prepare_cached(
                    "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                     event_version, payload, metadata) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )?;
                for rows in &groups {
                    tx.execute_batch("SAVEPOINT job")?;
                    let mut last = Ok(0);
                    for e in rows.iter() {
                        last = insert
                            .execute(rusqlite::params![
                                e.aggregate_type,
                                e.aggregate_id,
                                e.sequence,
                                e.event_type,
                                e.event_version,
                                e.payload,
                                e.metadata,
                            ])
                            .map(|_| tx.last_insert_rowid());
                        if last.is_err() {
                            break;
                        }
                    }
                    match last {
                        Ok(position) => {
                            tx.execute_batch("RELEASE job")?;
                            results.push(Ok((0, position)));
                        }
                        Err(e) => {
                            tx.execute_batch("ROLLBACK TO job; RELEASE job")?;
                            results.push(Err(AppendError::of_direct(&DirectError::Sqlite(e))));
                        }
                    }
                }
            }
            tx.commit()?;
            Ok(results)
        })
        .await;
    match written {
        Ok(results) => {
            for (job, result) in jobs.into_iter().zip(results) {
                let _ = job.done.send(result);
            }
        }
        Err(e) => {
            let error = AppendError::of_direct(&e);
            for job in jobs {
                let _ = job.done.send(Err(error.clone()));
            }
        }
    }
}

/// Writes the jobs in one statement; when that fails and there are several, each on its own,
/// so one job's conflict does not fail the others.
async fn commit_group(db: &Db, jobs: Vec<Job>) {
    let all: Vec<&Row> = jobs.iter().flat_map(|j| j.events.iter()).collect();
    match insert(db, &all).await {
        Ok(cursors) => {
            let mut offset = 0;
            for job in jobs {
                offset += job.events.len();
                let cursor = cursors
                    .get(offset - 1)
                    .copied()
                    .ok_or_else(|| AppendError::Failed("fewer rows returned than written".into()));
                let _ = job.done.send(cursor);
            }
        }
        Err(e) if jobs.len() > 1 => {
            tracing::debug!(error = %e, "group commit failed; committing its jobs one by one");
            for job in jobs {
                let events: Vec<&Row> = job.events.iter().collect();
                let result = match insert(db, &events).await {
                    Ok(cursors) => cursors
                        .last()
                        .copied()
                        .ok_or_else(|| AppendError::Failed("no rows returned".into())),
                    Err(e) => Err(AppendError::of(&e)),
                };
                let _ = job.done.send(result);
            }
        }
        Err(e) => {
            let error = AppendError::of(&e);
            for job in jobs {
                let _ = job.done.send(Err(error.clone()));
            }
        }
    }
}

const POSTGRES_INSERT: &str = "INSERT INTO events \
    (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata) \
    SELECT t, i, s, e, v, p::json, m::json \
    FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[]) \
      AS u(t, i, s, e, v, p, m) \
    RETURNING tx_id::text::bigint, position";

/// One multi-row insert of `events`; their cursors in the order given. Positions increase in
/// the order rows are inserted (and every row of the statement shares its transaction), so
/// the cursors, sorted, line up with `events`.
async fn insert(db: &Db, events: &[&Row]) -> Result<Vec<Cursor>, sqlx::Error> {
    let mut cursors: Vec<Cursor> = match db {
        Db::Sqlite { writer, .. } => {
            let mut sql = String::with_capacity(160 + events.len() * 24);
            sql.push_str(
                "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, \
                 event_version, payload, metadata) VALUES ",
            );
            for i in 0..events.len() {
                if i > 0 {
                    sql.push(',');
                }
                sql.push_str("(?,?,?,?,?,?,?)");
            }
            let mut query = sqlx::query(&sql).persistent(false);
            for e in events {
                query = query
                    .bind(e.aggregate_type.as_str())
                    .bind(e.aggregate_id.as_str())
                    .bind(e.sequence)
                    .bind(e.event_type.as_str())
                    .bind(e.event_version.as_str())
                    .bind(e.payload.as_str())
                    .bind(e.metadata.as_str());
            }
            // Positions are rowids: on the one writer connection a statement's rows take
            // consecutive ones, the last of which SQLite reports (no rows to send back).
            let last = query.execute(writer).await?.last_insert_rowid();
            let first = last + 1 - events.len() as i64;
            (first..=last).map(|p| (0, p)).collect()
        }
        Db::Postgres(pool) => {
            let column =
                |f: fn(&Row) -> &str| -> Vec<&str> { events.iter().map(|e| f(e)).collect() };
            let sequences: Vec<i64> = events.iter().map(|e| e.sequence).collect();
            let rows = sqlx::query(POSTGRES_INSERT)
                .bind(column(|e| &e.aggregate_type))
                .bind(column(|e| &e.aggregate_id))
                .bind(sequences)
                .bind(column(|e| &e.event_type))
                .bind(column(|e| &e.event_version))
                .bind(column(|e| &e.payload))
                .bind(column(|e| &e.metadata))
                .fetch_all(pool)
                .await?;
            rows.iter()
                .map(|r| Ok((r.try_get::<i64, _>(0)?, r.try_get::<i64, _>(1)?)))
                .collect::<Result<_, sqlx::Error>>()?
        }
    };
    cursors.sort_unstable();
    Ok(cursors)
}
