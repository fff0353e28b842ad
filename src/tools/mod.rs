//! Tools that reach outside Threadline for a model or a user.
//!
//! # Layout
//! - [`fetch`]: the guarded web fetch (SSRF checks, size, time and redirect limits) behind the
//!   `read_site` tool and file-by-URL attachments.
//! - [`readable`]: the readable text of what was fetched (HTML main content, plain text, PDF).

pub mod fetch;
pub mod readable;
