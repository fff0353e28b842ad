//! Threadline's own thread export (an object, or an array of them):
//! `{"format": "threadline.thread", "version": 1, id, title, created_at, current_message_id,
//! messages: [{id, parent_id, role, text, reasoning, model, status, created_at, …}]}`.
//!
//! - `role` `user` or `assistant` is kept, any other dropped; `text` and `reasoning` as given;
//!   `model` on assistant messages. Times are RFC 3339.
//! - `status` and every other field are ignored; messages keep their ids (mapped only if
//!   invalid), so a re-import of the same export gives the same conversation.
//! - A `version` other than 1 is skipped.

use serde::Deserialize;

use super::json::{Doc, Id};
use super::tree::{self, Draft, Kind, RawNode};
use super::{MAX_MESSAGES_PER_CONVERSATION, Role, Source};

/// The `format` of a Threadline thread export.
pub const FORMAT: &str = "threadline.thread";
/// The export version read.
pub const VERSION: u64 = 1;

pub(crate) fn matches(doc: &Doc, id: Id) -> bool {
    doc.get_str(id, "format") == Some(FORMAT)
}

#[derive(Deserialize)]
struct Header {
    version: Option<u64>,
    id: Option<String>,
    title: Option<String>,
    created_at: Option<String>,
    current_message_id: Option<String>,
}

#[derive(Deserialize)]
struct TlMessage {
    id: Option<String>,
    parent_id: Option<String>,
    role: Option<String>,
    text: Option<String>,
    reasoning: Option<String>,
    model: Option<String>,
    created_at: Option<String>,
}

pub(crate) fn draft(doc: &Doc, id: Id) -> Result<Draft, String> {
    let header: Header = doc.pick(id, &["messages"])?;
    if let Some(version) = header.version.filter(|v| *v != VERSION) {
        return Err(format!("unsupported export version {version}"));
    }
    let messages = doc
        .get_arr(id, "messages")
        .ok_or("messages is not a list")?;
    if messages.len() > MAX_MESSAGES_PER_CONVERSATION {
        return Err(tree::too_many_messages(messages.len()));
    }
    let mut nodes = Vec::with_capacity(messages.len());
    for (i, &m) in messages.iter().enumerate() {
        let message: TlMessage = doc
            .pick(m, &[])
            .map_err(|e| format!("message {}: {e}", i + 1))?;
        let Some(message_id) = message.id else {
            return Err(format!("message {} has no id", i + 1));
        };
        let text = message.text.unwrap_or_default();
        let reasoning = message.reasoning.unwrap_or_default();
        let kind = match message.role.as_deref() {
            Some("user") => Kind::Keep {
                role: Role::User,
                text,
                reasoning,
                model: None,
            },
            Some("assistant") => Kind::Keep {
                role: Role::Assistant,
                text,
                reasoning,
                model: message.model,
            },
            _ => Kind::Drop,
        };
        nodes.push(RawNode {
            id: message_id,
            parent: message.parent_id,
            children: Vec::new(),
            kind,
            created_at: message.created_at.as_deref().and_then(tree::from_rfc3339),
        });
    }
    Ok(Draft {
        source: Source::Threadline,
        external_id: header.id,
        title: header.title,
        created_at: header.created_at.as_deref().and_then(tree::from_rfc3339),
        nodes,
        current: header.current_message_id,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use serde_json::{Value, json};

    use super::super::tests::check;
    use super::super::{Parsed, parse};
    use super::*;

    fn export() -> Value {
        json!({
            "format": "threadline.thread",
            "version": 1,
            "id": "thr_01",
            "title": "  Trip\tplanning  ",
            "created_at": "2025-03-01T10:00:00+01:00",
            "current_message_id": "a2",
            "share_id": "ignored",
            "messages": [
                {"id": "u1", "parent_id": null, "role": "user", "text": "Where to?",
                 "reasoning": "", "model": null, "status": "complete",
                 "created_at": "2025-03-01T09:00:01Z", "sibling_index": 0},
                {"id": "a1", "parent_id": "u1", "role": "assistant", "text": "Lisbon.",
                 "reasoning": "Warm in March.", "model": "gpt-4o", "status": "complete",
                 "created_at": "2025-03-01T09:00:02Z"},
                {"id": "a2", "parent_id": "u1", "role": "assistant", "text": "Porto.\u{0}",
                 "reasoning": "", "model": "gpt-4o", "status": "stopped",
                 "created_at": "2025-03-01T09:00:03Z"},
                {"id": "e1", "parent_id": "a2", "role": "assistant", "text": "",
                 "reasoning": "", "model": "gpt-4o", "status": "failed"},
            ],
        })
    }

    fn one(value: &Value) -> Parsed {
        let parsed = parse(value.to_string().as_bytes()).unwrap();
        check(&parsed);
        parsed
    }

    #[test]
    fn an_export_reads_back_as_it_was_written() {
        let parsed = one(&export());
        assert!(parsed.skipped.is_empty());
        let c = &parsed.conversations[0];
        assert_eq!(c.source, Source::Threadline);
        assert_eq!(c.external_id, "thr_01");
        assert_eq!(c.title.as_deref(), Some("Trip planning"));
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2025-03-01T09:00:00+00:00"
        );
        let ids: Vec<_> = c.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["u1", "a1", "a2"], "the empty failed reply is dropped");
        assert_eq!(c.messages[1].reasoning, "Warm in March.");
        assert_eq!(c.messages[2].parent_id.as_deref(), Some("u1"));
        assert_eq!(c.messages[2].text, "Porto.");
        assert_eq!(c.messages[2].model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            c.messages[0].created_at.unwrap().to_rfc3339(),
            "2025-03-01T09:00:01+00:00"
        );
        assert_eq!(c.current_id.as_deref(), Some("a2"));
        assert_eq!(one(&export()), parsed);
    }

    #[test]
    fn arrays_versions_and_broken_messages() {
        let mut v2 = export();
        v2["version"] = 2.into();
        let mut no_id = export();
        no_id["messages"][1].as_object_mut().unwrap().remove("id");
        let mut wrong_type = export();
        wrong_type["messages"][0]["text"] = 5.into();
        let parsed = one(&json!([export(), v2, no_id, wrong_type]));
        assert_eq!(parsed.conversations.len(), 1);
        let reasons: Vec<_> = parsed.skipped.iter().map(|s| s.reason.as_str()).collect();
        assert_eq!(reasons[0], "unsupported export version 2");
        assert_eq!(reasons[1], "message 2 has no id");
        assert!(
            reasons[2].starts_with("message 1: invalid type"),
            "{reasons:?}"
        );
        assert_eq!(parsed.skipped[0].title.as_deref(), Some("Trip planning"));
    }
}
