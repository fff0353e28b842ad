//! The two storage backends behind one handle.
//!
//! SQL that is the same on both backends is written once with `$1`-style placeholders (SQLite
//! reads `$N` as a named parameter, numbered by first appearance, so each statement uses its
//! placeholders in order). [`on_read!`] and [`Tx`] run one generic body against whichever pool is
//! configured, compiled once per backend.

use sqlx::{PgPool, Postgres, Sqlite, SqlitePool, Transaction};

/// Which database a `Db` talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Connection pools. On SQLite every write goes through `writer` (one connection), so writers
/// never race on locks; reads use `reader`.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite {
        writer: SqlitePool,
        reader: SqlitePool,
    },
    Postgres(PgPool),
}

impl Db {
    /// The backend of this handle.
    pub fn backend(&self) -> Backend {
        match self {
            Db::Sqlite { .. } => Backend::Sqlite,
            Db::Postgres(_) => Backend::Postgres,
        }
    }

    /// Starts a write transaction. On SQLite it is `BEGIN IMMEDIATE`, so the write lock is
    /// taken up front (waiting on the busy timeout) instead of failing on upgrade later.
    pub async fn begin(&self) -> Result<Tx<'static>, sqlx::Error> {
        Ok(match self {
            Db::Sqlite { writer, .. } => Tx::Sqlite(writer.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Runs one statement outside any transaction.
    pub async fn execute(&self, stmt: &Stmt) -> Result<u64, sqlx::Error> {
        let mut tx = self.begin().await?;
        let n = tx.execute(stmt).await?;
        tx.commit().await?;
        Ok(n)
    }
}

/// Runs `$body` with `$pool` bound to the read pool of `$db`, compiled once per backend.
#[macro_export]
macro_rules! on_read {
    ($db:expr, $pool:ident => $body:expr) => {
        match $db {
            $crate::db::Db::Sqlite { reader: $pool, .. } => $body,
            $crate::db::Db::Postgres($pool) => $body,
        }
    };
}

/// An open write transaction on either backend.
pub enum Tx<'c> {
    Sqlite(Transaction<'c, Sqlite>),
    Postgres(Transaction<'c, Postgres>),
}

impl Tx<'_> {
    /// Executes one statement, returning the number of rows it touched.
    pub async fn execute(&mut self, stmt: &Stmt) -> Result<u64, sqlx::Error> {
        Ok(match self {
            Tx::Sqlite(tx) => crate::bind_args!(sqlx::query(&stmt.sql), &stmt.args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
            Tx::Postgres(tx) => crate::bind_args!(sqlx::query(&stmt.sql), &stmt.args)
                .execute(&mut **tx)
                .await?
                .rows_affected(),
        })
    }

    /// Executes many statements in one round trip: the arguments are rendered as SQL literals
    /// (see [`Stmt::render`]) and the batch goes to the database as one script. A statement
    /// that cannot be rendered runs on its own, with bound parameters.
    pub async fn execute_batch(&mut self, stmts: &[Stmt]) -> Result<(), sqlx::Error> {
        for part in batch_parts(stmts) {
            match part {
                Ok(script) => self.execute_sql(&script).await?,
                Err(stmt) => {
                    self.execute(stmt).await?;
                }
            }
        }
        Ok(())
    }

    /// Executes plain SQL without arguments (DDL).
    pub async fn execute_sql(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        match self {
            // A `&str` without arguments runs unprepared (PostgreSQL's simple query protocol),
            // so `sql` may hold several statements. (`sqlx::raw_sql` would do the same but its
            // future is not provably `Send` inside spawned tasks.)
            Tx::Sqlite(tx) => sqlx::Executor::execute(&mut **tx, sql).await.map(drop),
            Tx::Postgres(tx) => sqlx::Executor::execute(&mut **tx, sql).await.map(drop),
        }
    }

    /// Commits the transaction.
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await,
            Tx::Postgres(tx) => tx.commit().await,
        }
    }

    /// The backend of this transaction.
    pub fn backend(&self) -> Backend {
        match self {
            Tx::Sqlite(_) => Backend::Sqlite,
            Tx::Postgres(_) => Backend::Postgres,
        }
    }
}

/// A typed statement argument. Typed nulls matter on PostgreSQL, which checks parameter types.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    I64(i64),
    OptI64(Option<i64>),
    Text(String),
    OptText(Option<String>),
    Bool(bool),
}

impl From<i64> for Arg {
    fn from(v: i64) -> Self {
        Arg::I64(v)
    }
}

impl From<Option<i64>> for Arg {
    fn from(v: Option<i64>) -> Self {
        Arg::OptI64(v)
    }
}

impl From<String> for Arg {
    fn from(v: String) -> Self {
        Arg::Text(v)
    }
}

impl From<&str> for Arg {
    fn from(v: &str) -> Self {
        Arg::Text(v.to_owned())
    }
}

impl From<Option<String>> for Arg {
    fn from(v: Option<String>) -> Self {
        Arg::OptText(v)
    }
}

impl From<bool> for Arg {
    fn from(v: bool) -> Self {
        Arg::Bool(v)
    }
}

/// One SQL statement with its arguments: what a projection's fold turns into.
#[derive(Debug, Clone, PartialEq)]
pub struct Stmt {
    pub sql: String,
    pub args: Vec<Arg>,
}

impl Stmt {
    /// A statement with arguments bound to `$1`, `$2`, … in order.
    pub fn new(sql: impl Into<String>, args: Vec<Arg>) -> Self {
        Self {
            sql: sql.into(),
            args,
        }
    }
}

impl Stmt {
    /// The statement with its `$N` placeholders replaced by SQL literals, for batching many
    /// statements into one round trip. Text is quoted by doubling single quotes (standard SQL,
    /// and PostgreSQL's default `standard_conforming_strings`). Returns `None` when a text
    /// argument holds a NUL character, which neither backend takes in a literal, or when a
    /// placeholder has no argument.
    pub fn render(&self) -> Option<String> {
        let mut out = String::with_capacity(self.sql.len() + 32);
        let mut chars = self.sql.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                out.push(c);
                continue;
            }
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            let index: usize = digits.parse().ok()?;
            out.push_str(&literal(self.args.get(index.checked_sub(1)?)?)?);
        }
        Some(out)
    }
}

/// Splits a batch into scripts of rendered statements (`Ok`) and statements that must run
/// with bound parameters (`Err`), keeping their order.
fn batch_parts(stmts: &[Stmt]) -> Vec<Result<String, &Stmt>> {
    let mut parts = Vec::new();
    let mut script = String::new();
    for stmt in stmts {
        match stmt.render() {
            Some(sql) => {
                script.push_str(&sql);
                script.push_str(";\n");
            }
            None => {
                if !script.is_empty() {
                    parts.push(Ok(std::mem::take(&mut script)));
                }
                parts.push(Err(stmt));
            }
        }
    }
    if !script.is_empty() {
        parts.push(Ok(script));
    }
    parts
}

fn literal(arg: &Arg) -> Option<String> {
    Some(match arg {
        Arg::I64(v) | Arg::OptI64(Some(v)) => v.to_string(),
        Arg::OptI64(None) | Arg::OptText(None) => "NULL".to_owned(),
        Arg::Text(s) | Arg::OptText(Some(s)) => {
            if s.contains('\0') {
                return None;
            }
            format!("'{}'", s.replace('\'', "''"))
        }
        Arg::Bool(true) => "TRUE".to_owned(),
        Arg::Bool(false) => "FALSE".to_owned(),
    })
}

/// Binds typed arguments, in order, to a `query` or `query_as` of either backend.
#[macro_export]
macro_rules! bind_args {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                $crate::db::Arg::I64(v) => query.bind(*v),
                $crate::db::Arg::OptI64(v) => query.bind(*v),
                $crate::db::Arg::Text(v) => query.bind(v.as_str()),
                $crate::db::Arg::OptText(v) => query.bind(v.as_deref()),
                $crate::db::Arg::Bool(v) => query.bind(*v),
            };
        }
        query
    }};
}

impl Db {
    /// `"sqlite"` or `"postgres"`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend() {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rendering_inlines_arguments_as_quoted_literals() {
        let mut args = vec![
            Arg::Text("it's".into()),
            Arg::I64(-5),
            Arg::OptText(None),
            Arg::Bool(true),
        ];
        args.extend((0..5).map(Arg::I64));
        args.push(Arg::Text("x".into()));
        let stmt = Stmt::new(
            "UPDATE t SET a = $1, b = $2, c = $3, d = $4 WHERE id = $10",
            args,
        );
        assert_eq!(
            stmt.render().unwrap(),
            "UPDATE t SET a = 'it''s', b = -5, c = NULL, d = TRUE WHERE id = 'x'"
        );
    }

    #[test]
    fn a_nul_character_or_a_missing_argument_is_not_rendered() {
        assert!(
            Stmt::new("SELECT $1", vec![Arg::Text("a\0b".into())])
                .render()
                .is_none()
        );
        assert!(Stmt::new("SELECT $2", vec![Arg::I64(1)]).render().is_none());
    }

    #[test]
    fn backslashes_stay_literal() {
        let stmt = Stmt::new("SELECT $1", vec![Arg::Text(r"a\b'".into())]);
        assert_eq!(stmt.render().unwrap(), r"SELECT 'a\b'''");
    }
}
