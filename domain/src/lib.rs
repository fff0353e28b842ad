//! Threadline's domain: aggregates, their commands and events, and the value types they use.
//!
//! Nothing here does I/O. External facts a command needs (the time, a password hash, a token
//! hash) arrive inside the command, so every rule can be tested with cqrs-es's `TestFramework`.
//!
//! # Layout
//! - [`values`]: parsed value types (`ThreadId`, `Email`, `Title`, …) that cannot hold bad input.
//! - [`account`]: the `Account` aggregate (anonymous and registered accounts, sessions, linking).
//! - [`billing`]: idempotent webhook deliveries and the subscription → tier rule.
//! - [`catalog`]: the model catalog (one stream per model id), access levels and prices.
//! - [`mcp`]: remote MCP servers (one stream per server name) whose tools models may call.
//! - [`email`]: the `EmailRegistration` aggregate that makes an email address unique.
//! - [`file`]: the `File` aggregate (an attachment's metadata; the bytes are in the file store).
//! - [`thread`]: the `Thread` aggregate (creation, titles, archive/pin, deletion, the message
//!   tree, which reply is active).
//! - [`ledger`]: use per account, meter and window (reserve, settle, release) and purchased
//!   credits.
//! - [`plans`]: tiers' meters, limits and windows (the policy the ledger's commands carry).
//! - [`generation`]: the `Generation` aggregate (one assistant reply and its chunks).
//! - [`upcast`]: the upcaster path every stored event passes through before it is deserialized.

pub mod account;
pub mod billing;
pub mod catalog;
pub mod email;
pub mod file;
pub mod generation;
pub mod ledger;
pub mod mcp;
pub mod personal;
pub mod plans;
pub mod thread;
pub mod upcast;
pub mod values;

/// The version every event of this crate is written with today. An event whose shape changes
/// gets a new version and an upcaster in [`upcast`] from the older one.
pub const EVENT_VERSION: &str = "1.0";
