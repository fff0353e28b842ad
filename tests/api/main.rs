//! Integration tests: the real server on a random port with a fresh database per test.
//! SQLite by default; PostgreSQL when `TEST_DATABASE_URL` points at a server (each test then
//! creates its own database there).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod abuse;
mod account_details;
mod accounts;
mod api_keys;
mod audit_trail;
mod billing;
mod capabilities;
mod chat;
mod concurrency;
mod credits;
mod docs;
mod erasure;
mod errors;
mod event_log_tools;
mod export;
mod feed;
mod files;
mod global_order;
mod helpers;
mod identity;
mod import;
mod logs;
mod mcp;
mod mcp_server;
mod models;
mod nodes;
mod openai_api;
mod openapi;
mod plans;
mod preferences;
mod races;
mod rebuild;
mod replay;
mod reprice;
mod revocation;
mod search;
mod threads;
mod time_travel;
mod tools;
mod tree;
mod verify;
mod web_app;
