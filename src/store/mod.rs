//! Storage wiring: connecting to SQLite or PostgreSQL, the project's migrations, reading the
//! global log, and executing commands through cqrs-es.
//!
//! # Layout
//! - [`connect`] and [`migrate`] (here): pools and schema for either backend.
//! - [`log`]: the global log as projections and the CLI read it.
//! - [`append`]: the node's one writer of the log (group commit for every stream).
//! - [`bus`]: the command bus (load, decide, append; conflict retry; read-your-writes).
//! - [`cached`]: the event store the bus runs on: each stream's state kept in memory, so a
//!   command reads only the events appended since the last one.
//! - [`direct`]: SQLite writes on a thread of their own (one hand-off per batch).
//! - [`written`]: the cursor each account and stream was last written at on this node (what a
//!   read waits for).
//! - [`seal`]: the log's hash chain (tamper evidence): the sealer and its verification.

pub mod append;
pub mod bus;
pub mod cached;
pub mod direct;
pub mod keys;
pub mod log;
pub mod seal;
pub mod written;

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use threadline_projections::{Backend, Db, Tx};

/// Why storage could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unsupported DATABASE_URL (expected postgres://, postgresql:// or sqlite://)")]
    UnsupportedUrl,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

/// Opens the database named by `database_url`, or the SQLite file in `data_dir` when it is unset.
pub async fn connect(database_url: Option<&str>, data_dir: &Path) -> Result<Db, StoreError> {
    match database_url {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            let options = PgConnectOptions::from_str(url)?.disable_statement_logging();
            // No ping before each acquire: it is a round trip per query, and a dead connection
            // fails the query it is used for, which the caller reports (503) and the pool
            // replaces.
            let pool = PgPoolOptions::new()
                .max_connections(32)
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(5))
                .connect_with(options)
                .await?;
            Ok(Db::Postgres(pool))
        }
        Some(url) if url.starts_with("sqlite:") => {
            open_sqlite(SqliteConnectOptions::from_str(url)?.create_if_missing(true)).await
        }
        Some(_) => Err(StoreError::UnsupportedUrl),
        None => {
            std::fs::create_dir_all(data_dir).map_err(|source| StoreError::DataDir {
                path: data_dir.display().to_string(),
                source,
            })?;
            let file = data_dir.join("threadline.db");
            open_sqlite(
                SqliteConnectOptions::new()
                    .filename(file)
                    .create_if_missing(true),
            )
            .await
        }
    }
}

/// Opens both SQLite pools. Statement logging is off on every connection (here and on
/// PostgreSQL): batched projection statements carry their values inline, and a log must
/// never hold password hashes, token hashes, emails or message text.
async fn open_sqlite(options: SqliteConnectOptions) -> Result<Db, StoreError> {
    let options = options
        .disable_statement_logging()
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30))
        .foreign_keys(true)
        .pragma("temp_store", "memory")
        // Freed pages are zeroed: a dropped projection table (an erasure rebuilds them all)
        // leaves no personal data behind in the file.
        .pragma("secure_delete", "ON")
        .pragma("cache_size", "-65536");
    // One writer connection: SQLite admits one writer at a time, and queueing in the pool is
    // cheaper and more predictable than SQLITE_BUSY retries between connections.
    // Connections to a local file do not go stale: no ping (one more hand-off to the
    // connection's thread) before each use.
    let writer = SqlitePoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.clone())
        .await?;
    let reader = SqlitePoolOptions::new()
        .max_connections(8)
        .test_before_acquire(false)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options.read_only(true))
        .await?;
    Ok(Db::Sqlite { writer, reader })
}

struct Migration {
    version: i64,
    name: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// The project's migrations, in order. Each is applied once, inside a transaction.
const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "event_log",
        sqlite: include_str!("../../migrations/sqlite/0001_event_log.sql"),
        postgres: include_str!("../../migrations/postgres/0001_event_log.sql"),
    },
    Migration {
        version: 2,
        name: "nodes",
        sqlite: include_str!("../../migrations/sqlite/0002_nodes.sql"),
        postgres: include_str!("../../migrations/postgres/0002_nodes.sql"),
    },
    Migration {
        version: 3,
        name: "log_seals",
        sqlite: include_str!("../../migrations/sqlite/0003_log_seals.sql"),
        postgres: include_str!("../../migrations/postgres/0003_log_seals.sql"),
    },
    Migration {
        version: 4,
        name: "account_keys",
        sqlite: include_str!("../../migrations/sqlite/0004_account_keys.sql"),
        postgres: include_str!("../../migrations/postgres/0004_account_keys.sql"),
    },
];

/// An arbitrary constant: the advisory lock that serialises migrations across nodes.
const MIGRATION_LOCK: i64 = 0x7468_726c_6d69_6772;

/// Applies the migrations that have not run yet. Safe to call from several nodes at once.
pub async fn migrate(db: &Db) -> Result<Vec<i64>, StoreError> {
    let create = "CREATE TABLE IF NOT EXISTS schema_migrations (
        version BIGINT PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)";
    let mut tx = db.begin().await?;
    if let Tx::Postgres(pg) = &mut tx {
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut **pg)
            .await?;
    }
    tx.execute_sql(create).await?;
    let applied: Vec<i64> = match &mut tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar("SELECT version FROM schema_migrations")
                .fetch_all(&mut **t)
                .await?
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar("SELECT version FROM schema_migrations")
                .fetch_all(&mut **t)
                .await?
        }
    };
    let mut ran = Vec::new();
    for m in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        let sql = match db.backend() {
            Backend::Sqlite => m.sqlite,
            Backend::Postgres => m.postgres,
        };
        tx.execute_sql(sql).await?;
        tx.execute(&threadline_projections::Stmt::new(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            vec![
                m.version.into(),
                m.name.into(),
                chrono::Utc::now().timestamp_micros().into(),
            ],
        ))
        .await?;
        tracing::info!(version = m.version, name = m.name, "applied migration");
        ran.push(m.version);
    }
    tx.commit().await?;
    Ok(ran)
}

/// Checks that the database answers (for `/readyz`).
pub async fn ping(db: &Db) -> Result<(), sqlx::Error> {
    threadline_projections::on_read!(db, pool => sqlx::query("SELECT 1").execute(pool).await.map(drop))
}
