//! `GET /v1/threads/{id}`: one thread with its messages.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::Value;

use threadline_projections::messages;
use threadline_projections::threads::ThreadRow;

use super::{ThreadJson, owned};
use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::AppState;

#[derive(Debug, Serialize)]
pub struct ThreadWithMessages {
    #[serde(flatten)]
    pub thread: ThreadJson,
    /// The messages of the thread's current path, oldest first, as AI SDK `UIMessage`s.
    pub messages: Vec<serde_json::Value>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let thread = owned(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(view(&state, thread).await?))
}

/// The thread with its current path.
pub async fn view(state: &AppState, thread: ThreadRow) -> Result<ThreadWithMessages, ApiError> {
    let tree = messages::tree_of(&state.db, &thread.id).await?;
    let generations = messages::generations_of(&state.db, &thread.id).await?;
    let out = tree
        .current_path()
        .iter()
        .map(|p| {
            let generation = p
                .message
                .generation_id
                .as_ref()
                .and_then(|g| generations.get(g));
            ui_message(p, generation)
        })
        .collect();
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
