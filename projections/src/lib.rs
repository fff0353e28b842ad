//! Threadline's read models: each projection is a pure fold from events to changes, plus the SQL
//! that writes those changes and answers the API's reads, once per backend.
//!
//! # Layout
//! - [`db`]: the two backends behind one `Db` handle, SQL statements with typed arguments.
//! - [`event`]: `StoredEvent`, one row of the global log as projections see it.
//! - [`projection`]: the `Projection` trait the projector runtime drives, and table naming for
//!   rebuilds into shadow tables.
//! - [`accounts`]: accounts and sessions (authentication reads).
//! - [`catalog`]: the model catalog.
//! - [`usage`]: use per meter and window, purchased-credit books, the ledger lines behind them.
//! - [`facts`]: one row per reply with its payer, tokens, credits and cost (admin reports).
//! - [`threads`]: the thread list per account.
//! - [`messages`]: each thread's message tree and each reply's progress.
//! - [`search`]: full-text search over titles and messages (FTS5 / tsvector).
//! - [`shares`]: share links and the message each one freezes the path at.
//! - [`files`]: uploaded attachments' metadata by owner.
//! - [`mcp_servers`]: the registered MCP servers.
//! - [`audit`]: the admin audit trail (every admin's change, by whom and under which request).

pub mod accounts;
pub mod audit;
pub mod catalog;
pub mod db;
pub mod event;
pub mod facts;
pub mod files;
pub mod mcp_servers;
pub mod messages;
pub mod projection;
pub mod search;
pub mod shares;
pub mod threads;
pub mod usage;

pub use db::{Arg, Backend, Db, Stmt, Tx};
pub use event::StoredEvent;
pub use projection::{Projection, ProjectionError, Tables};

/// Every projection of the product, in the order the projector runs them.
pub fn all() -> Vec<Box<dyn Projection>> {
    vec![
        Box::new(accounts::Accounts),
        Box::new(threads::Threads),
        Box::new(messages::Messages),
        Box::new(catalog::Catalog),
        Box::new(usage::UsageLedger),
        Box::new(facts::UsageFacts),
        Box::new(shares::Shares),
        Box::new(search::Search),
        Box::new(files::Files),
        Box::new(mcp_servers::McpServers),
        Box::new(audit::AdminAudit),
    ]
}

/// Microseconds since the Unix epoch: how projections store instants (sortable on both backends).
pub fn micros(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_micros()
}

/// RFC 3339 (UTC, microseconds) for an instant stored by [`micros`].
pub fn rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}
