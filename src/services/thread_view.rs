//! How the API shows a thread: its row as JSON ([`ThreadJson`]) and its current path as AI SDK
//! `UIMessage`s ([`view`], [`ui_message`]) — for the thread routes, shares and the time-travel
//! audit alike.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;
use threadline_projections::messages;
use threadline_projections::threads::ThreadRow;
use threadline_projections::{Db, rfc3339};

/// A thread as the API returns it.
#[derive(Debug, Serialize)]
pub struct ThreadJson {
    pub id: String,
    pub title: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub last_activity_at: String,
    pub archived: bool,
    pub pinned: bool,
    /// The generation streaming a reply now (resume it with `GET /v1/chat/{id}/stream`).
    pub active_generation_id: Option<String>,
    /// Where the history came from: a branch, a copy of a share, an import.
    pub origin: Option<serde_json::Value>,
}

impl From<ThreadRow> for ThreadJson {
    fn from(t: ThreadRow) -> Self {
        Self {
            id: t.id,
            title: t.title,
            created_at: rfc3339(t.created_at),
            updated_at: rfc3339(t.updated_at),
            last_activity_at: rfc3339(t.last_activity_at),
            archived: t.archived,
            pinned: t.pinned,
            active_generation_id: t.active_generation_id,
            origin: t
                .origin
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok()),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ThreadWithMessages {
    #[serde(flatten)]
    pub thread: ThreadJson,
    /// The messages of the thread's current path, oldest first, as AI SDK `UIMessage`s.
    pub messages: Vec<serde_json::Value>,
}

/// `path`'s messages as `UIMessage`s, each reply with its generation's details.
pub fn ui_messages(
    path: &[messages::PathMessage],
    generations: &std::collections::HashMap<String, messages::GenerationRow>,
) -> Vec<Value> {
    path.iter()
        .map(|p| {
            let generation = p
                .message
                .generation_id
                .as_ref()
                .and_then(|g| generations.get(g));
            ui_message(p, generation)
        })
        .collect()
}

/// The thread with its current path.
pub async fn view(db: &Db, thread: ThreadRow) -> Result<ThreadWithMessages, sqlx::Error> {
    let tree = messages::tree_of(db, &thread.id).await?;
    let generations = messages::generations_of(db, &thread.id).await?;
    let out = ui_messages(&tree.current_path(), &generations);
    Ok(ThreadWithMessages {
        thread: thread.into(),
        messages: out,
    })
}

/// An assistant message's text with its tool calls, steps and data parts in place, as the
/// AI SDK's parts: `text`, `dynamic-tool` (`input-available`, `output-available` or
/// `output-error`), `step-start`, `data-{name}`.
fn reply_parts(m: &messages::MessageRow, parts: &mut Vec<Value>) {
    use messages::ReplyPart;
    let mut text = m.text.chars();
    let mut taken = 0;
    let mut push_text = |parts: &mut Vec<Value>, upto: Option<usize>| {
        let segment: String = match upto {
            Some(at) => {
                let n = at.saturating_sub(taken);
                taken += n;
                text.by_ref().take(n).collect()
            }
            None => text.by_ref().collect(),
        };
        if !segment.is_empty() {
            parts.push(serde_json::json!({"type": "text", "text": segment, "state": "done"}));
        }
    };
    let mut calls: std::collections::HashMap<String, usize> = Default::default();
    for (at, part) in m.reply_parts() {
        push_text(parts, Some(at));
        match part {
            ReplyPart::Call { id, name, input } => {
                calls.insert(id.clone(), parts.len());
                parts.push(serde_json::json!({
                    "type": "dynamic-tool", "toolName": name, "toolCallId": id,
                    "state": "input-available", "input": input,
                }));
            }
            ReplyPart::Output { id, output } => {
                if let Some(call) = calls.get(&id).and_then(|i| parts.get_mut(*i)) {
                    call["state"] = "output-available".into();
                    call["output"] = output;
                }
            }
            ReplyPart::Error { id, error } => {
                if let Some(call) = calls.get(&id).and_then(|i| parts.get_mut(*i)) {
                    call["state"] = "output-error".into();
                    call["errorText"] = error.into();
                }
            }
            ReplyPart::Step => parts.push(serde_json::json!({"type": "step-start"})),
            ReplyPart::Data { name, id, data } => {
                let mut part = serde_json::json!({"type": format!("data-{name}"), "data": data});
                if let Some(id) = id {
                    part["id"] = id.into();
                }
                parts.push(part);
            }
        }
    }
    push_text(parts, None);
}

/// A message of a thread's current path as the API returns it: the AI SDK's `UIMessage` shape
/// (`id`, `role`, `parts`) plus `metadata` with the tree and reply details.
pub fn ui_message(
    p: &messages::PathMessage,
    generation: Option<&messages::GenerationRow>,
) -> Value {
    let m = &p.message;
    let mut parts = Vec::new();
    if m.role == "assistant" {
        parts.push(serde_json::json!({"type": "step-start"}));
        if !m.reasoning.is_empty() {
            parts.push(
                serde_json::json!({"type": "reasoning", "text": m.reasoning, "state": "done"}),
            );
        }
        reply_parts(m, &mut parts);
    } else {
        parts.push(serde_json::json!({"type": "text", "text": m.text}));
        // Attached files as the AI SDK's `file` parts, at the owner's URL of the bytes.
        for a in m.attachments() {
            parts.push(serde_json::json!({
                "type": "file",
                "mediaType": a.media_type,
                "filename": a.filename,
                "url": format!("/v1/files/{}/content", a.file_id),
            }));
        }
    }
    let mut metadata = BTreeMap::new();
    metadata.insert("parent_id", serde_json::json!(m.parent_id));
    metadata.insert("sibling_ids", serde_json::json!(p.sibling_ids));
    metadata.insert("sibling_index", serde_json::json!(p.sibling_index));
    metadata.insert("sibling_count", serde_json::json!(p.sibling_ids.len()));
    metadata.insert(
        "created_at",
        serde_json::json!(threadline_projections::rfc3339(m.created_at)),
    );
    metadata.insert("status", serde_json::json!(m.status));
    if m.role == "assistant" {
        metadata.insert("model", serde_json::json!(m.model));
        metadata.insert("generation_id", serde_json::json!(m.generation_id));
        if let Some(g) = generation {
            metadata.insert("finish_reason", serde_json::json!(g.finish_reason));
            metadata.insert("error", serde_json::json!(g.error));
            if let (Some(input), Some(output), Some(reasoning), Some(cached)) = (
                g.input_tokens,
                g.output_tokens,
                g.reasoning_tokens,
                g.cached_input_tokens,
            ) {
                metadata.insert(
                    "usage",
                    serde_json::json!({
                        "input_tokens": input,
                        "output_tokens": output,
                        "reasoning_tokens": reasoning,
                        "cached_input_tokens": cached,
                    }),
                );
                metadata.insert("cost_micros", serde_json::json!(g.cost_micros));
            }
        }
    }
    serde_json::json!({"id": m.id, "role": m.role, "parts": parts, "metadata": metadata})
}
