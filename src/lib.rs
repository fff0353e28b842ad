//! Threadline: an event-sourced CQRS backend for AI chat applications.
//!
//! # Layout
//! - [`startup`]: `Application::build` — the one way the server is assembled.
//! - [`routes`]: HTTP handlers, one file per action.
//! - [`services`]: use cases spanning several commands (sign-up, linking, sending a message).
//! - [`chat`]: running replies, streaming them durably, resuming and stopping them.
//! - [`providers`]: model provider adapters.
//! - [`feed`]: the per-account live feed of thread changes.
//! - [`files`]: attachments (type sniffing, the content-addressed store); [`import`]: other
//!   apps' exports; [`tools`]: what models may call (the guarded web fetch, readable text).
//! - [`store`]: database connection, migrations, the global log, the command bus.
//! - [`projector`]: the runtime that keeps projections caught up, and rebuilds.
//! - [`reports`]: admin usage reports and ledger statements (API and CLI); [`reprice`]: the
//!   usage of a period priced again under other prices and plans.
//! - [`billing`]: webhook signatures, checkout and portal links; [`identity`]: external JWTs.
//! - [`auth`], [`extract`], [`middleware`], [`error`]: request plumbing; [`clock`]: a real or
//!   virtual clock to wait on.
//! - [`cli`]: the command line, one file per subcommand.

pub mod auth;
pub mod billing;
pub mod chat;
pub mod cli;
pub mod clock;
pub mod config;
pub mod error;
pub mod extract;
pub mod feed;
pub mod files;
pub mod identity;
pub mod import;
pub mod keyed_lock;
pub mod ledger;
pub mod metrics;
pub mod middleware;
pub mod mock_upstream;
pub mod projector;
pub mod providers;
pub mod reports;
pub mod reprice;
pub mod revocation;
pub mod routes;
pub mod services;
pub mod startup;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tools;
