//! SQLite writes on a thread of their own: a batch of statements costs one hand-off.
//!
//! sqlx drives each SQLite connection from a worker thread and hands every statement (and each
//! of its results) across a channel, so a projector batch of a few hundred statements is a few
//! hundred futex wake-ups, and a rendered script is parsed anew on every batch. A
//! [`DirectWriter`] owns one `rusqlite` connection on a dedicated thread: a job is a closure
//! that runs there whole — `BEGIN`, every statement through the connection's prepared-statement
//! cache, `COMMIT` — and answers once.
//!
//! It is a second connection to the same file, so it must never contend with the sqlx writer
//! (SQLite's busy handler sleeps in steps of milliseconds): [`DirectWriter::write`] holds the
//! sqlx writer pool's one connection while the job runs, which makes the pool the node's
//! write lock for both. rusqlite links the same `libsqlite3-sys` as sqlx.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::{Connection, ToSql};
use sqlx::SqlitePool;
use threadline_projections::{Arg, Stmt};
use tokio::sync::oneshot;

/// Prepared statements kept per connection: every distinct SQL text a fold produces, with room
/// for the variable-length ones.
const STATEMENT_CACHE: usize = 512;

/// Why a direct write failed.
#[derive(Debug, thiserror::Error)]
pub enum DirectError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Pool(#[from] sqlx::Error),
    #[error("the SQLite writer thread has stopped")]
    Stopped,
}

type Job = Box<dyn FnOnce(&mut Connection) + Send>;

/// Handle on the writer thread; the thread ends when the last handle is dropped.
#[derive(Clone)]
pub struct DirectWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DirectWriter")
    }
}

impl DirectWriter {
    /// A writer for the database file of `pool`, or `None` when it has no file of its own
    /// (an in-memory database cannot be shared with a second connection).
    pub fn for_pool(pool: &SqlitePool) -> Result<Option<Self>, DirectError> {
        let path = pool.connect_options().get_filename().to_path_buf();
        if path.as_os_str().is_empty() || path == Path::new(":memory:") {
            return Ok(None);
        }
        Self::open(path).map(Some)
    }

    /// Opens `path` on a new thread, with the pragmas of the sqlx connections.
    pub fn open(path: PathBuf) -> Result<Self, DirectError> {
        let conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(30))?;
        for (pragma, value) in [
            ("journal_mode", "WAL"),
            ("synchronous", "NORMAL"),
            ("foreign_keys", "ON"),
            ("temp_store", "memory"),
            ("secure_delete", "ON"),
            ("cache_size", "-65536"),
        ] {
            conn.pragma_update(None, pragma, value)?;
        }
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        let (jobs, rx) = mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                let mut conn = conn;
                while let Ok(job) = rx.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|_| DirectError::Stopped)?;
        Ok(Self { jobs })
    }

    /// Runs `job` on the writer thread while holding `lock`'s one connection (the sqlx writer
    /// pool), so no other write on the node runs beside it.
    pub async fn write<T, F>(&self, lock: &SqlitePool, job: F) -> Result<T, DirectError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DirectError> + Send + 'static,
    {
        let _held = lock.acquire().await?;
        self.run(job).await
    }

    /// Runs `job` on the writer thread without the write lock: reads (WAL readers see what
    /// has committed), one hand-off for the whole result.
    pub async fn run<T, F>(&self, job: F) -> Result<T, DirectError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T, DirectError> + Send + 'static,
    {
        let (done, wait) = oneshot::channel();
        self.jobs
            .send(Box::new(move |conn| {
                let _ = done.send(job(conn));
            }))
            .map_err(|_| DirectError::Stopped)?;
        wait.await.map_err(|_| DirectError::Stopped)?
    }
}

/// Executes `stmt` through the connection's statement cache, binding its arguments to `$1`,
/// `$2`, … by name (so a statement may use them in any order, or one twice). Returns the rows
/// it changed.
pub fn execute(conn: &Connection, stmt: &Stmt) -> Result<usize, rusqlite::Error> {
    if stmt.args.is_empty() {
        return conn.execute(&stmt.sql, []);
    }
    let mut prepared = conn.prepare_cached(&stmt.sql)?;
    for (i, arg) in stmt.args.iter().enumerate() {
        let name = format!("${}", i + 1);
        let Some(index) = prepared.parameter_index(&name)? else {
            continue;
        };
        prepared.raw_bind_parameter(index, value(arg))?;
    }
    prepared.raw_execute()
}

fn value(arg: &Arg) -> &dyn ToSql {
    match arg {
        Arg::I64(v) => v,
        Arg::OptI64(v) => v,
        Arg::Text(v) => v,
        Arg::OptText(v) => v,
        Arg::Bool(v) => v,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn arguments_bind_by_name_in_any_order() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c INTEGER)")
            .unwrap();
        let insert = Stmt::new(
            "INSERT INTO t (b, a, c) VALUES ($2, $1, $1 + $3)",
            vec![7.into(), "seven".into(), Arg::Bool(true)],
        );
        assert_eq!(execute(&conn, &insert).unwrap(), 1);
        assert_eq!(execute(&conn, &insert).unwrap(), 1);
        let null = Stmt::new(
            "UPDATE t SET b = $1 WHERE rowid = $2",
            vec![Arg::OptText(None), 2.into()],
        );
        assert_eq!(execute(&conn, &null).unwrap(), 1);
        let rows: Vec<(i64, Option<String>, i64)> = conn
            .prepare("SELECT a, b, c FROM t ORDER BY rowid")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(rows, vec![(7, Some("seven".into()), 8), (7, None, 8)]);
    }
}
