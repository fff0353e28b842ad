//! Verifying a projection: rebuilding it from the log into shadow tables and comparing them
//! with the live tables row by row, while the server keeps serving.
//!
//! The live tables keep moving, so the two are compared at one point of the log: the
//! projection's checkpoint as one read-only snapshot sees it (REPEATABLE READ on PostgreSQL; a
//! read transaction of SQLite's WAL). The projector writes a batch's rows and its checkpoint in
//! one transaction, so that snapshot's live tables hold exactly the events up to its
//! checkpoint. The shadow tables are folded up to the checkpoint without any lock first (a
//! checkpoint only moves forward, so they never pass the point compared at), then up to
//! exactly the snapshot's checkpoint, and read outside the snapshot: nothing else writes them.
//! The live tables and checkpoints are only read, under no lock, so neither the projector nor
//! the log's readers wait for a verify.
//!
//! Rows are compared by primary key, both sides streamed in the same order (every value
//! rendered as text by the database, sorted byte-wise on both backends), so memory stays
//! bounded by [`SHOWN`] differences per table, whatever the size of the tables.
//!
//! # Layout
//! - [`verify`]: one projection, into a [`VerifyReport`] of [`TableReport`]s.
//! - [`Difference`]: one row (or a table's columns) that differs; its `Display` is one line.
//! - [`Shape`], [`rendered_rows`]: a table's columns rendered as text, in key order (also
//!   `rebuild::dump_table`).

use std::cmp::Ordering;
use std::fmt;

use futures::stream::{BoxStream, StreamExt, TryStreamExt};
use sqlx::Row;
use threadline_projections::{Backend, Db, Projection, Tables, Tx};

use super::rebuild::fold_batch;
use super::{Projector, ProjectorError};
use crate::store::log::{Cursor, cursor_id};

/// Differences kept (and shown) per table; the rest are only counted.
pub const SHOWN: usize = 20;

/// Catch-up passes before the snapshot: each folds up to the checkpoint as it is when the pass
/// starts. Whatever a busy server adds after the last pass is folded in the snapshot.
const CATCH_UP_PASSES: usize = 5;

/// Why a projection could not be verified (a difference is not an error: see
/// [`VerifyReport`]).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Projector(#[from] ProjectorError),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error(
        "shadow tables of {name} exist ({tables}): a rebuild or verify of {name} is running, or \
         one was interrupted; if none is running, drop them and verify again"
    )]
    ShadowTablesExist { name: String, tables: String },
    #[error("{name} is at version {stored} in the database but {code} in this binary")]
    Version {
        name: String,
        stored: i64,
        code: i64,
    },
    #[error(
        "the {name} checkpoint went back from {} to {} (rebuilt meanwhile?); verify again",
        cursor_id(*.from),
        cursor_id(*.to)
    )]
    CheckpointMoved {
        name: String,
        from: Cursor,
        to: Cursor,
    },
    #[error(
        "the {name} checkpoint {} is past the last event this node can read ({})",
        cursor_id(*.checkpoint),
        cursor_id(*.read)
    )]
    CheckpointPastLog {
        name: String,
        checkpoint: Cursor,
        read: Cursor,
    },
}

/// What verifying one projection found.
#[derive(Debug, Clone)]
pub struct VerifyReport {
    /// The projection.
    pub name: String,
    /// Events folded into the shadow tables.
    pub events: u64,
    /// The checkpoint the tables were compared at.
    pub at: Cursor,
    /// One report per table of the projection, in the projection's order.
    pub tables: Vec<TableReport>,
}

impl VerifyReport {
    /// The number of differences over all tables.
    pub fn differences(&self) -> u64 {
        self.tables.iter().map(|t| t.total).sum()
    }

    /// Whether the live tables are what the log says they should be.
    pub fn is_identical(&self) -> bool {
        self.differences() == 0
    }
}

/// The differences of one table: the first [`SHOWN`], and how many there are in all.
#[derive(Debug, Clone)]
pub struct TableReport {
    /// The table's base name (`threads`), as the live table is named.
    pub table: String,
    /// The first [`SHOWN`] differences, in key order.
    pub shown: Vec<Difference>,
    /// Every difference, shown or not.
    pub total: u64,
}

impl TableReport {
    fn new(table: &str) -> Self {
        Self {
            table: table.to_owned(),
            shown: Vec::new(),
            total: 0,
        }
    }

    fn record(&mut self, difference: Difference) {
        self.total += 1;
        if self.shown.len() < SHOWN {
            self.shown.push(difference);
        }
    }
}

/// One row as `(column, value)` pairs, each value rendered as an SQL literal (`'text'`, `42`,
/// `NULL`).
pub type Cells = Vec<(String, String)>;

/// One way the live table differs from its rebuild.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Difference {
    /// The tables have different columns (their rows are not compared).
    Columns {
        live: Vec<String>,
        rebuild: Vec<String>,
    },
    /// A row the live table has and the rebuild does not.
    OnlyLive(Cells),
    /// A row the rebuild has and the live table does not.
    OnlyRebuild(Cells),
    /// A row both have under the same key, with different values.
    Changed {
        key: Cells,
        columns: Vec<ChangedColumn>,
    },
}

/// A column whose value differs between the live row and the rebuilt one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangedColumn {
    pub column: String,
    pub live: String,
    pub rebuild: String,
}

/// Longest value shown, in characters; a longer one is cut with `…`.
const SHOWN_VALUE: usize = 80;

fn short(value: &str) -> String {
    match value.char_indices().nth(SHOWN_VALUE) {
        Some((end, _)) => format!("{}…", &value[..end]),
        None => value.to_owned(),
    }
}

fn cells(cells: &Cells) -> String {
    cells
        .iter()
        .map(|(column, value)| format!("{column}={}", short(value)))
        .collect::<Vec<_>>()
        .join(" ")
}

impl fmt::Display for Difference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |columns: &[String]| {
            if columns.is_empty() {
                "(no table)".to_owned()
            } else {
                format!("({})", columns.join(", "))
            }
        };
        match self {
            Difference::Columns { live, rebuild } => write!(
                f,
                "columns differ: live {}, rebuild {}",
                list(live),
                list(rebuild)
            ),
            Difference::OnlyLive(row) => write!(f, "only in live: {}", cells(row)),
            Difference::OnlyRebuild(row) => write!(f, "only in the rebuild: {}", cells(row)),
            Difference::Changed { key, columns } => {
                let changes = columns
                    .iter()
                    .map(|c| {
                        format!(
                            "{}: live {}, rebuild {}",
                            c.column,
                            short(&c.live),
                            short(&c.rebuild)
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("; ");
                write!(f, "row {}: {changes}", cells(key))
            }
        }
    }
}

/// Rebuilds the projection `name` into shadow tables and compares them with the live tables,
/// calling `progress` with the number of events folded so far. The shadow tables are dropped
/// again, whatever the outcome; the live tables and the checkpoint are only read.
pub async fn verify(
    projector: &Projector,
    name: &str,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<VerifyReport, VerifyError> {
    let projection = projector
        .projections()
        .iter()
        .find(|p| p.name() == name)
        .ok_or_else(|| ProjectorError::UnknownProjection(name.to_owned()))?;
    let db = projector.db();
    let nonce = chrono::Utc::now().timestamp_millis().to_string();
    let shadow = Tables::shadow(&nonce).on(db.backend());
    create_shadow(db, projection.as_ref(), &shadow).await?;
    let compared = fold_and_compare(projector, projection.as_ref(), &shadow, progress).await;
    let dropped = drop_shadow(db, projection.as_ref(), &shadow).await;
    let (events, at, tables) = compared?;
    dropped?;
    Ok(VerifyReport {
        name: name.to_owned(),
        events,
        at,
        tables,
    })
}

/// Creates the shadow tables, refusing to when they exist: they would be a running rebuild's
/// (or another verify's), which dropping them would spoil.
async fn create_shadow(
    db: &Db,
    projection: &dyn Projection,
    shadow: &Tables,
) -> Result<(), VerifyError> {
    let mut tx = db.begin().await?;
    let mut existing = Vec::new();
    for table in projection.tables() {
        let table = shadow.name(table);
        if table_exists(&mut tx, &table).await? {
            existing.push(table);
        }
    }
    if !existing.is_empty() {
        return Err(VerifyError::ShadowTablesExist {
            name: projection.name().to_owned(),
            tables: existing.join(", "),
        });
    }
    for ddl in projection.ddl(db.backend(), shadow) {
        tx.execute_sql(&ddl).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn table_exists(tx: &mut Tx<'_>, table: &str) -> Result<bool, sqlx::Error> {
    match tx {
        Tx::Sqlite(t) => {
            sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = $1)",
            )
            .bind(table)
            .fetch_one(&mut **t)
            .await
        }
        Tx::Postgres(t) => {
            sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(table)
                .fetch_one(&mut **t)
                .await
        }
    }
}

async fn drop_shadow(
    db: &Db,
    projection: &dyn Projection,
    shadow: &Tables,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    for table in projection.tables() {
        tx.execute_sql(&format!("DROP TABLE IF EXISTS {}", shadow.name(table)))
            .await?;
    }
    tx.commit().await
}

/// Folds the shadow tables up to the live checkpoint and compares them with the live tables
/// there: the events folded, the checkpoint, and each table's differences.
async fn fold_and_compare(
    projector: &Projector,
    projection: &dyn Projection,
    shadow: &Tables,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(u64, Cursor, Vec<TableReport>), VerifyError> {
    let name = projection.name();
    let mut cursor = Cursor::default();
    let mut events = 0u64;
    let db = projector.db();
    for _ in 0..CATCH_UP_PASSES {
        let (_, target) = checkpoint(db, name).await?;
        let before = events;
        fold_until(
            projector,
            projection,
            shadow,
            &mut cursor,
            target,
            &mut events,
            progress,
        )
        .await?;
        if events - before < super::BATCH_SIZE as u64 {
            break;
        }
    }

    let mut snapshot = Snapshot::begin(db).await?;
    let (version, at) = snapshot.checkpoint(name).await?;
    if version != projection.version() {
        return Err(VerifyError::Version {
            name: name.to_owned(),
            stored: version,
            code: projection.version(),
        });
    }
    if at < cursor {
        return Err(VerifyError::CheckpointMoved {
            name: name.to_owned(),
            from: cursor,
            to: at,
        });
    }
    fold_until(
        projector,
        projection,
        shadow,
        &mut cursor,
        at,
        &mut events,
        progress,
    )
    .await?;
    if cursor < at {
        return Err(VerifyError::CheckpointPastLog {
            name: name.to_owned(),
            checkpoint: at,
            read: cursor,
        });
    }

    let live = Tables::live().on(db.backend());
    let mut tables = Vec::with_capacity(projection.tables().len());
    for table in projection.tables() {
        tables.push(
            compare_table(
                &mut snapshot,
                db,
                table,
                &live.name(table),
                &shadow.name(table),
            )
            .await?,
        );
    }
    snapshot.end().await?;
    Ok((events, at, tables))
}

/// Folds events after `cursor` into the shadow tables until `until`, one transaction per
/// batch.
async fn fold_until(
    projector: &Projector,
    projection: &dyn Projection,
    shadow: &Tables,
    cursor: &mut Cursor,
    until: Cursor,
    events: &mut u64,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<(), ProjectorError> {
    let db = projector.db();
    while *cursor < until {
        let mut tx = db.begin().await?;
        let folded = fold_batch(&mut tx, projector, &[projection], shadow, cursor, until).await?;
        tx.commit().await?;
        *events += folded.events;
        progress(*events);
        if folded.events == 0 {
            break;
        }
    }
    Ok(())
}

/// The checkpoint of `name` as it is now (no lock, no snapshot).
async fn checkpoint(db: &Db, name: &str) -> Result<(i64, Cursor), VerifyError> {
    let row: Option<(i64, i64, i64)> = threadline_projections::on_read!(db, pool =>
        sqlx::query_as(CHECKPOINT).bind(name).fetch_optional(pool).await)?;
    checkpoint_found(name, row)
}

const CHECKPOINT: &str =
    "SELECT version, tx_id, position FROM projection_checkpoints WHERE name = $1";

fn checkpoint_found(
    name: &str,
    row: Option<(i64, i64, i64)>,
) -> Result<(i64, Cursor), VerifyError> {
    let (version, tx_id, position) =
        row.ok_or_else(|| ProjectorError::UnknownProjection(name.to_owned()))?;
    Ok((version, (tx_id, position)))
}

/// A read-only transaction that sees the whole database at one point for all its statements:
/// REPEATABLE READ on PostgreSQL (with no transaction id, it holds back neither the log's
/// order nor the projector); on SQLite a read transaction on the read pool, whose WAL
/// snapshot starts at its first read.
enum Snapshot {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Snapshot {
    async fn begin(db: &Db) -> Result<Self, sqlx::Error> {
        Ok(match db {
            Db::Sqlite { reader, .. } => Snapshot::Sqlite(reader.begin().await?),
            Db::Postgres(pool) => Snapshot::Postgres(
                pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                    .await?,
            ),
        })
    }

    /// The checkpoint of `name`: the first read, which fixes the snapshot on SQLite.
    async fn checkpoint(&mut self, name: &str) -> Result<(i64, Cursor), VerifyError> {
        let row: Option<(i64, i64, i64)> = match self {
            Snapshot::Sqlite(t) => {
                sqlx::query_as(CHECKPOINT)
                    .bind(name)
                    .fetch_optional(&mut **t)
                    .await?
            }
            Snapshot::Postgres(t) => {
                sqlx::query_as(CHECKPOINT)
                    .bind(name)
                    .fetch_optional(&mut **t)
                    .await?
            }
        };
        checkpoint_found(name, row)
    }

    async fn shape(&mut self, table: &str) -> Result<Shape, sqlx::Error> {
        let columns = match self {
            Snapshot::Sqlite(t) => {
                sqlx::query_as(SQLITE_COLUMNS)
                    .bind(table)
                    .fetch_all(&mut **t)
                    .await?
            }
            Snapshot::Postgres(t) => {
                sqlx::query_as(POSTGRES_COLUMNS)
                    .bind(table)
                    .fetch_all(&mut **t)
                    .await?
            }
        };
        Ok(Shape::new(self.backend(), columns))
    }

    fn rows<'a>(&'a mut self, sql: &'a str) -> BoxStream<'a, Result<Vec<String>, sqlx::Error>> {
        match self {
            Snapshot::Sqlite(t) => sqlx::query(sql)
                .fetch(&mut **t)
                .map(|row| row.and_then(|row| texts(&row)))
                .boxed(),
            Snapshot::Postgres(t) => sqlx::query(sql)
                .fetch(&mut **t)
                .map(|row| row.and_then(|row| texts(&row)))
                .boxed(),
        }
    }

    fn backend(&self) -> Backend {
        match self {
            Snapshot::Sqlite(_) => Backend::Sqlite,
            Snapshot::Postgres(_) => Backend::Postgres,
        }
    }

    async fn end(self) -> Result<(), sqlx::Error> {
        match self {
            Snapshot::Sqlite(t) => t.rollback().await,
            Snapshot::Postgres(t) => t.rollback().await,
        }
    }
}

/// Compares the live table (read in `snapshot`) with its rebuild (read on the pool) row by
/// row, both in key order.
async fn compare_table(
    snapshot: &mut Snapshot,
    db: &Db,
    base: &str,
    live: &str,
    shadow: &str,
) -> Result<TableReport, sqlx::Error> {
    let mut report = TableReport::new(base);
    let shape = snapshot.shape(live).await?;
    let rebuilt = Shape::read(db, shadow).await?;
    if shape.columns != rebuilt.columns || shape.columns.is_empty() {
        report.record(Difference::Columns {
            live: shape.columns,
            rebuild: rebuilt.columns,
        });
        return Ok(report);
    }
    let (live_sql, shadow_sql) = (shape.select(live), shape.select(shadow));
    let mut live_rows = snapshot.rows(&live_sql);
    let mut shadow_rows = rows(db, &shadow_sql);
    let mut l = live_rows.try_next().await?;
    let mut s = shadow_rows.try_next().await?;
    loop {
        let order = match (&l, &s) {
            (None, None) => break,
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (Some(a), Some(b)) => shape.compare_keys(a, b),
        };
        match order {
            Ordering::Less => {
                if let Some(row) = l.take() {
                    report.record(Difference::OnlyLive(shape.cells(row)));
                }
                l = live_rows.try_next().await?;
            }
            Ordering::Greater => {
                if let Some(row) = s.take() {
                    report.record(Difference::OnlyRebuild(shape.cells(row)));
                }
                s = shadow_rows.try_next().await?;
            }
            Ordering::Equal => {
                if let (Some(a), Some(b)) = (l.take(), s.take())
                    && a != b
                {
                    report.record(shape.changed(&a, &b));
                }
                l = live_rows.try_next().await?;
                s = shadow_rows.try_next().await?;
            }
        }
    }
    Ok(report)
}

/// A table's columns, the SQL that renders each as text, and which of them key a row (its
/// primary key, or every column when it has none).
#[derive(Debug, Clone)]
pub struct Shape {
    columns: Vec<String>,
    rendered: Vec<String>,
    key: Vec<usize>,
}

/// `(name, declared type, position in the primary key from 1, or 0)` of each column, in order.
/// A virtual table (FTS5) lists its columns with no key.
const SQLITE_COLUMNS: &str = "SELECT name, type, pk FROM pragma_table_info($1) ORDER BY cid";

const POSTGRES_COLUMNS: &str = "SELECT c.column_name::text, c.data_type::text, \
    COALESCE((SELECT k.ordinal_position FROM information_schema.table_constraints t \
      JOIN information_schema.key_column_usage k ON k.constraint_schema = t.constraint_schema \
       AND k.constraint_name = t.constraint_name \
      WHERE t.constraint_type = 'PRIMARY KEY' AND t.table_schema = c.table_schema \
        AND t.table_name = c.table_name AND k.column_name = c.column_name), 0)::bigint \
    FROM information_schema.columns c \
    WHERE c.table_schema = current_schema() AND c.table_name = $1 \
    ORDER BY c.ordinal_position";

impl Shape {
    /// The shape of `table` as the pool sees it now.
    pub async fn read(db: &Db, table: &str) -> Result<Self, sqlx::Error> {
        let columns = match db {
            Db::Sqlite { reader, .. } => {
                sqlx::query_as(SQLITE_COLUMNS)
                    .bind(table)
                    .fetch_all(reader)
                    .await?
            }
            Db::Postgres(pool) => {
                sqlx::query_as(POSTGRES_COLUMNS)
                    .bind(table)
                    .fetch_all(pool)
                    .await?
            }
        };
        Ok(Self::new(db.backend(), columns))
    }

    fn new(backend: Backend, columns: Vec<(String, String, i64)>) -> Self {
        let mut keyed: Vec<(i64, usize)> = columns
            .iter()
            .enumerate()
            .filter(|(_, (_, _, pk))| *pk > 0)
            .map(|(i, (_, _, pk))| (*pk, i))
            .collect();
        keyed.sort();
        let key = if keyed.is_empty() {
            (0..columns.len()).collect()
        } else {
            keyed.into_iter().map(|(_, i)| i).collect()
        };
        let rendered = columns
            .iter()
            .map(|(name, kind, _)| render(backend, name, kind))
            .collect();
        Self {
            columns: columns.into_iter().map(|(name, _, _)| name).collect(),
            rendered,
            key,
        }
    }

    /// The column names, in the table's order.
    pub fn columns(&self) -> &[String] {
        &self.columns
    }

    /// Every row of `table` (of this shape), each column rendered as text, ordered by the key
    /// (then by the other columns), byte-wise on both backends so both sides of a comparison
    /// come in the order [`Shape::compare_keys`] expects. (A table with no columns is read
    /// as it is: its absence is the database's error.)
    fn select(&self, table: &str) -> String {
        if self.columns.is_empty() {
            return format!("SELECT * FROM {table}");
        }
        let select = self
            .rendered
            .iter()
            .zip(&self.columns)
            .map(|(expr, name)| format!("{expr} AS {}", quote(name)))
            .collect::<Vec<_>>()
            .join(", ");
        let order = self
            .key
            .iter()
            .copied()
            .chain((0..self.columns.len()).filter(|i| !self.key.contains(i)))
            .map(|i| (i + 1).to_string())
            .collect::<Vec<_>>()
            .join(", ");
        format!("SELECT {select} FROM {table} ORDER BY {order}")
    }

    fn compare_keys(&self, a: &[String], b: &[String]) -> Ordering {
        self.key
            .iter()
            .map(|&i| a.get(i).cmp(&b.get(i)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }

    fn cells(&self, row: Vec<String>) -> Cells {
        self.columns.iter().cloned().zip(row).collect()
    }

    fn changed(&self, live: &[String], rebuild: &[String]) -> Difference {
        let key = self
            .key
            .iter()
            .filter_map(|&i| Some((self.columns.get(i)?.clone(), live.get(i)?.clone())))
            .collect();
        let columns = self
            .columns
            .iter()
            .zip(live.iter().zip(rebuild))
            .filter(|(_, (l, r))| l != r)
            .map(|(column, (l, r))| ChangedColumn {
                column: column.clone(),
                live: l.clone(),
                rebuild: r.clone(),
            })
            .collect();
        Difference::Changed { key, columns }
    }
}

/// The SQL rendering one column's value as non-null text that tells every value apart: an SQL
/// literal (SQLite's `quote`: `'text'`, `42`, `NULL`, `X'00'`); on PostgreSQL text quoted and
/// anything else in its text form, under the byte-wise "C" collation.
fn render(backend: Backend, name: &str, kind: &str) -> String {
    let column = quote(name);
    match backend {
        Backend::Sqlite => format!("quote({column})"),
        Backend::Postgres => match kind {
            "text" | "character varying" | "character" => {
                format!("quote_nullable({column}) COLLATE \"C\"")
            }
            _ => format!("COALESCE({column}::text, 'NULL') COLLATE \"C\""),
        },
    }
}

fn quote(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

/// The rows of `table` read on the pool, streamed in key order.
fn rows<'a>(db: &'a Db, sql: &'a str) -> BoxStream<'a, Result<Vec<String>, sqlx::Error>> {
    match db {
        Db::Sqlite { reader, .. } => sqlx::query(sql)
            .fetch(reader)
            .map(|row| row.and_then(|row| texts(&row)))
            .boxed(),
        Db::Postgres(pool) => sqlx::query(sql)
            .fetch(pool)
            .map(|row| row.and_then(|row| texts(&row)))
            .boxed(),
    }
}

/// Every row of `table`, rendered as [`Shape`] renders them, in key order.
pub async fn rendered_rows(
    db: &Db,
    shape: &Shape,
    table: &str,
) -> Result<Vec<Vec<String>>, sqlx::Error> {
    let sql = shape.select(table);
    rows(db, &sql).try_collect().await
}

fn texts<R: Row>(row: &R) -> Result<Vec<String>, sqlx::Error>
where
    usize: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    (0..row.len())
        .map(|i| row.try_get::<String, _>(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape() -> Shape {
        Shape::new(
            Backend::Sqlite,
            vec![
                ("id".into(), "TEXT".into(), 1),
                ("title".into(), "TEXT".into(), 0),
                ("at".into(), "BIGINT".into(), 0),
            ],
        )
    }

    #[test]
    fn rows_are_keyed_by_the_primary_key_and_ordered_by_it_first() {
        let shape = shape();
        assert_eq!(
            shape.select("threads"),
            "SELECT quote(\"id\") AS \"id\", quote(\"title\") AS \"title\", \
             quote(\"at\") AS \"at\" FROM threads ORDER BY 1, 2, 3"
        );
        let row = |id: &str, title: &str| vec![id.to_owned(), title.to_owned(), "1".to_owned()];
        assert_eq!(
            shape.compare_keys(&row("'a'", "'x'"), &row("'a'", "'y'")),
            Ordering::Equal
        );
        assert_eq!(
            shape.compare_keys(&row("'a'", "'x'"), &row("'b'", "'a'")),
            Ordering::Less
        );
    }

    #[test]
    fn a_table_without_a_primary_key_is_keyed_by_every_column() {
        let shape = Shape::new(
            Backend::Postgres,
            vec![
                ("owner".into(), "text".into(), 0),
                ("at".into(), "bigint".into(), 0),
            ],
        );
        assert_eq!(shape.key, vec![0, 1]);
        assert_eq!(
            shape.select("docs"),
            "SELECT quote_nullable(\"owner\") COLLATE \"C\" AS \"owner\", \
             COALESCE(\"at\"::text, 'NULL') COLLATE \"C\" AS \"at\" FROM docs ORDER BY 1, 2"
        );
    }

    #[test]
    fn a_changed_row_names_its_key_and_the_columns_that_differ() {
        let shape = shape();
        let live = vec!["'t1'".to_owned(), "'tampered'".to_owned(), "5".to_owned()];
        let rebuild = vec!["'t1'".to_owned(), "'renamed'".to_owned(), "5".to_owned()];
        let difference = shape.changed(&live, &rebuild);
        assert_eq!(
            difference.to_string(),
            "row id='t1': title: live 'tampered', rebuild 'renamed'"
        );
    }

    #[test]
    fn long_values_are_cut_when_shown() {
        let row = vec![("body".to_owned(), format!("'{}'", "é".repeat(200)))];
        let shown = Difference::OnlyLive(row).to_string();
        assert!(shown.ends_with('…'), "{shown}");
        assert_eq!(
            shown.chars().count(),
            "only in live: body=".len() + SHOWN_VALUE + 1
        );
    }

    #[test]
    fn a_table_report_keeps_the_first_differences_and_counts_the_rest() {
        let mut report = TableReport::new("threads");
        for i in 0..(SHOWN + 5) {
            report.record(Difference::OnlyLive(vec![("id".into(), i.to_string())]));
        }
        assert_eq!(report.shown.len(), SHOWN);
        assert_eq!(report.total, (SHOWN + 5) as u64);
    }
}
