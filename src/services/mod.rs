//! Use cases that take more than one command: what the thin HTTP handlers call.

pub mod accounts;
pub mod chat;
pub mod credits;
pub mod erasure;
pub mod export;
pub mod files;
pub mod import;
pub mod thread_view;
pub mod threads;
pub mod time_travel;
pub mod tools;
pub mod webhooks;
