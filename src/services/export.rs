//! Exports: one thread as JSON (the whole tree, in the versioned `threadline.thread` schema),
//! Markdown or CSV (the current path); and everything an account owns as a zip archive,
//! streamed in constant memory.
//!
//! # The `threadline.thread` schema, version 1
//!
//! ```json
//! {"format": "threadline.thread", "version": 1,
//!  "id": "…", "title": "…" | null, "created_at": "RFC 3339", "updated_at": "…",
//!  "archived": false, "pinned": false, "origin": {…} | null,
//!  "current_message_id": "…" | null,
//!  "messages": [{"id", "parent_id", "role": "user" | "assistant", "text", "reasoning",
//!                "model", "status", "created_at", "usage": {…} | null, "cost_micros",
//!                "attachments"?: [{"file_id", "media_type", "filename", "size"}],
//!                "parts"?: [[offset, {"kind": "call" | "output" | "error" | "step" | "data", …}]]}]}
//! ```
//!
//! A reply's `parts` are its tool calls (`{kind: "call", id, name, input}`), their results
//! (`output` / `error`), step boundaries and data parts, each after `offset` characters of its
//! `text`. `messages` holds every visible message of every branch, parents before children;
//! `current_message_id` is the leaf of the current path. Importing the file
//! (`POST /v1/me/import`) gives the same thread back.
//!
//! # The account archive (`GET /v1/me/export`, `application/zip`)
//!
//! `account.json` (the profile), `preferences.json`, `threads/<id>.json` (one per thread, the
//! schema above), `files.json` (every file the account holds: `id`, `filename`, `media_type`,
//! `size`, `sha256`, `created_at`, `path`) with each file's bytes at its `path`
//! (`files/<id>/<filename>`), and `ledger.csv` (every credit movement with running balances).
//! Written entry by entry: only one thread or one file is in memory at a time.

use std::cell::RefCell;
use std::io::Write;
use std::rc::Rc;

use actix_web::web::Bytes;
use futures::Stream;
use serde_json::{Value, json};
use threadline_projections::messages::{self, GenerationRow, MessageRow};
use threadline_projections::rfc3339;
use threadline_projections::threads::{self, ListQuery, ThreadRow};

use crate::error::ApiError;
use crate::state::AppState;

/// The schema's name and version.
pub const FORMAT: &str = "threadline.thread";
pub const VERSION: u32 = 1;

fn message_json(m: &MessageRow, generation: Option<&GenerationRow>) -> Value {
    let usage = generation.and_then(|g| {
        Some(json!({
            "input_tokens": g.input_tokens?,
            "output_tokens": g.output_tokens?,
            "reasoning_tokens": g.reasoning_tokens?,
            "cached_input_tokens": g.cached_input_tokens?,
        }))
    });
    let mut out = json!({
        "id": m.id,
        "parent_id": m.parent_id,
        "role": m.role,
        "text": m.text,
        "reasoning": m.reasoning,
        "model": m.model,
        "status": m.status,
        "created_at": rfc3339(m.created_at),
        "usage": usage,
        "cost_micros": generation.and_then(|g| g.cost_micros),
    });
    let attachments = m.attachments();
    if !attachments.is_empty() {
        out["attachments"] = json!(attachments);
    }
    let parts = m.reply_parts();
    if !parts.is_empty() {
        out["parts"] = json!(parts);
    }
    out
}

/// A thread in the `threadline.thread` schema.
pub async fn thread_json(state: &AppState, thread: &ThreadRow) -> Result<Value, ApiError> {
    let tree = messages::tree_of(&state.db, &thread.id).await?;
    let generations = messages::generations_of(&state.db, &thread.id).await?;
    let current = tree.current_path().last().map(|p| p.message.id.clone());
    let messages: Vec<Value> = tree
        .messages
        .iter()
        .map(|m| {
            let g = m.generation_id.as_ref().and_then(|g| generations.get(g));
            message_json(m, g)
        })
        .collect();
    Ok(json!({
        "format": FORMAT,
        "version": VERSION,
        "id": thread.id,
        "title": thread.title,
        "created_at": rfc3339(thread.created_at),
        "updated_at": rfc3339(thread.updated_at),
        "archived": thread.archived,
        "pinned": thread.pinned,
        "origin": thread.origin.as_deref().and_then(|o| serde_json::from_str::<Value>(o).ok()),
        "current_message_id": current,
        "messages": messages,
    }))
}

/// The current path as Markdown.
pub async fn thread_markdown(state: &AppState, thread: &ThreadRow) -> Result<String, ApiError> {
    let tree = messages::tree_of(&state.db, &thread.id).await?;
    let mut out = format!(
        "# {}\n\n",
        thread.title.as_deref().unwrap_or("Untitled thread")
    );
    for p in tree.current_path() {
        let m = &p.message;
        let who = match (m.role.as_str(), &m.model) {
            ("assistant", Some(model)) => format!("Assistant ({model})"),
            ("assistant", None) => "Assistant".to_owned(),
            _ => "User".to_owned(),
        };
        out.push_str(&format!("## {who} · {}\n\n", rfc3339(m.created_at)));
        if !m.reasoning.is_empty() {
            for line in m.reasoning.lines() {
                out.push_str(&format!("> {line}\n"));
            }
            out.push('\n');
        }
        out.push_str(m.text.trim_end());
        out.push_str("\n\n");
    }
    Ok(out)
}

/// One CSV field, quoted when it needs to be (RFC 4180).
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_owned()
    }
}

/// The current path as CSV: `id,parent_id,role,model,created_at,text`.
pub async fn thread_csv(state: &AppState, thread: &ThreadRow) -> Result<String, ApiError> {
    let tree = messages::tree_of(&state.db, &thread.id).await?;
    let mut out = String::from("id,parent_id,role,model,created_at,text\r\n");
    for p in tree.current_path() {
        let m = &p.message;
        let row = [
            csv_field(&m.id),
            csv_field(m.parent_id.as_deref().unwrap_or_default()),
            csv_field(&m.role),
            csv_field(m.model.as_deref().unwrap_or_default()),
            csv_field(&rfc3339(m.created_at)),
            csv_field(&m.text),
        ];
        out.push_str(&row.join(","));
        out.push_str("\r\n");
    }
    Ok(out)
}

/// A `Write` whose bytes are taken out after each entry (the zip writer needs a sink).
#[derive(Clone, Default)]
struct Drain(Rc<RefCell<Vec<u8>>>);

impl Write for Drain {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drain {
    fn take(&self) -> Bytes {
        Bytes::from(std::mem::take(&mut *self.0.borrow_mut()))
    }
}

/// Threads read per page while the archive is written.
const PAGE: i64 = 100;

/// The account archive, streamed. `profile` and `preferences` are the caller's, ready to write.
pub fn account_zip(
    state: actix_web::web::Data<AppState>,
    account_id: String,
    profile: Value,
    preferences: Value,
) -> impl Stream<Item = Result<Bytes, actix_web::Error>> {
    async_stream::stream! {
        let drain = Drain::default();
        let mut zip = zip::ZipWriter::new_stream(drain.clone());
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .large_file(false);
        let fail = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "account export failed mid-stream");
            actix_web::error::ErrorInternalServerError("the export failed")
        };
        macro_rules! entry {
            ($name:expr, $bytes:expr) => {{
                let written = zip
                    .start_file($name, options)
                    .map_err(|e| fail(&e))
                    .and_then(|()| zip.write_all($bytes).map_err(|e| fail(&e)));
                match written {
                    Ok(()) => {
                        let out = drain.take();
                        if !out.is_empty() {
                            yield Ok(out);
                        }
                    }
                    Err(e) => {
                        yield Err(e);
                        return;
                    }
                }
            }};
        }
        entry!("account.json", &serde_json::to_vec_pretty(&profile).unwrap_or_default());
        entry!("preferences.json", &serde_json::to_vec_pretty(&preferences).unwrap_or_default());
        for archived in [false, true] {
            let mut after = None;
            loop {
                let query = ListQuery {
                    archived,
                    pinned: None,
                    after: after.clone(),
                    only: None,
                    limit: PAGE,
                };
                let page = match threads::list(&state.db, &account_id, &query).await {
                    Ok(page) => page,
                    Err(e) => {
                        yield Err(fail(&e));
                        return;
                    }
                };
                for thread in &page {
                    match thread_json(&state, thread).await {
                        Ok(json) => {
                            entry!(
                                format!("threads/{}.json", thread.id),
                                &serde_json::to_vec_pretty(&json).unwrap_or_default()
                            );
                        }
                        Err(e) => {
                            yield Err(fail(&e));
                            return;
                        }
                    }
                }
                match page.last() {
                    Some(last) if page.len() as i64 == PAGE => {
                        after = Some((last.last_activity_at, last.id.clone()));
                    }
                    _ => break,
                }
            }
        }
        let files = match threadline_projections::files::of_owner(&state.db, &account_id).await {
            Ok(files) => files,
            Err(e) => {
                yield Err(fail(&e));
                return;
            }
        };
        let listed: Vec<Value> = files
            .iter()
            .map(|f| json!({
                "id": f.id, "filename": f.filename, "media_type": f.media_type, "size": f.size,
                "sha256": f.sha256, "created_at": rfc3339(f.created_at),
                "path": file_path(&f.id, &f.filename),
            }))
            .collect();
        entry!("files.json", &serde_json::to_vec_pretty(&listed).unwrap_or_default());
        for f in &files {
            match state.files.read(&f.sha256).await {
                Ok(bytes) => entry!(file_path(&f.id, &f.filename), &bytes),
                Err(e) => {
                    // The bytes went missing from storage: the archive says so instead.
                    tracing::warn!(error = %e, file_id = %f.id, "an exported file is unreadable");
                    entry!(
                        format!("{}.missing.txt", file_path(&f.id, &f.filename)),
                        format!("The bytes of this file could not be read: {e}").as_bytes()
                    );
                }
            }
        }
        match crate::reports::statement(&state.db, &account_id).await {
            Ok(statement) => entry!("ledger.csv", statement.to_csv().as_bytes()),
            Err(e) => {
                yield Err(fail(&crate::reports::describe(&e)));
                return;
            }
        }
        match zip.finish() {
            Ok(_) => yield Ok(drain.take()),
            Err(e) => yield Err(fail(&e)),
        }
    }
}

/// Where a file's bytes sit in the archive: its id keeps equal names apart; the name is the
/// cleaned one it was stored under (no directories).
fn file_path(id: &str, filename: &str) -> String {
    format!(
        "files/{id}/{}",
        crate::files::sniff::clean_filename(filename)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_only_when_they_must_be() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\"\nbye"), "\"say \"\"hi\"\"\nbye\"");
    }
}
