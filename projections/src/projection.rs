//! The contract between a projection and the projector runtime.

use crate::db::{Backend, Stmt};
use crate::event::StoredEvent;

/// Why a projection could not apply an event.
#[derive(Debug, thiserror::Error)]
pub enum ProjectionError {
    #[error("event {event_type} at position {position} cannot be decoded: {source}")]
    Decode {
        event_type: String,
        position: i64,
        source: serde_json::Error,
    },
}

/// Names of a projection's tables: the live ones (empty suffix) or a rebuild's shadow tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tables {
    suffix: String,
    nonce: String,
    backend: Backend,
}

impl Tables {
    /// The live tables the API reads.
    pub fn live() -> Self {
        Self {
            suffix: String::new(),
            nonce: "0".into(),
            backend: Backend::Sqlite,
        }
    }

    /// Shadow tables for a rebuild. `nonce` keeps index names unique: an index keeps its name
    /// when its table is renamed into place, so each rebuild needs fresh ones.
    pub fn shadow(nonce: &str) -> Self {
        Self {
            suffix: "__rebuild".into(),
            nonce: nonce.into(),
            backend: Backend::Sqlite,
        }
    }

    /// The same tables on `backend` (the projector says which; statements whose SQL differs
    /// between backends read it with [`Tables::backend`]).
    pub fn on(mut self, backend: Backend) -> Self {
        self.backend = backend;
        self
    }

    /// The backend these tables live on.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The actual name of the table `base`.
    pub fn name(&self, base: &str) -> String {
        format!("{base}{}", self.suffix)
    }

    /// A unique name for an index on `base`.
    pub fn index(&self, base: &str, what: &str) -> String {
        format!("ix_{base}{}_{what}_{}", self.suffix, self.nonce)
    }

    /// Whether these are the live tables.
    pub fn is_live(&self) -> bool {
        self.suffix.is_empty()
    }
}

/// A read model: a pure fold from events to SQL statements, with its own tables.
pub trait Projection: Send + Sync {
    /// Stable name (the checkpoint key and the CLI's argument).
    fn name(&self) -> &'static str;

    /// Schema version: bump it when the tables or the fold change, and the projection is
    /// rebuilt from position 0 on the next start.
    fn version(&self) -> i64;

    /// Base names of the tables this projection owns.
    fn tables(&self) -> &'static [&'static str];

    /// `CREATE TABLE` / `CREATE INDEX` statements for the given names.
    fn ddl(&self, backend: Backend, tables: &Tables) -> Vec<String>;

    /// The statements that fold one event into the tables. Pure: no I/O, no clock.
    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError>;
}

/// Decodes an event's payload, naming the event in the error.
pub fn decode<E: serde::de::DeserializeOwned>(event: &StoredEvent) -> Result<E, ProjectionError> {
    event.decode().map_err(|source| ProjectionError::Decode {
        event_type: event.event_type.clone(),
        position: event.position,
        source,
    })
}

/// The column type of a boolean flag on each backend.
pub fn bool_type(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => "INTEGER",
        Backend::Postgres => "BOOLEAN",
    }
}
