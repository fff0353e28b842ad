//! Chatbot UI (v4) export: `{version, history: [{id, name, messages: [{role, content}], model,
//! prompt, temperature, folderId}], folders, prompts}`.
//!
//! - Each entry of `history` is a conversation: `id` its external id, `name` its title.
//! - Linear: each kept message's parent is the previous kept one. Messages have no ids; they
//!   get `m0`, `m1`, … by position in the list (dropped ones keep their number).
//! - User and assistant messages are kept; other roles dropped. `content` is the text.
//! - `model.id` is the model of the assistant messages. The system `prompt`, `temperature`,
//!   `folders` and `prompts` are ignored. The export has no times.

use serde::Deserialize;
use serde_json::Value;

use super::json::{Doc, Id};
use super::tree::{self, Draft, Kind, RawNode};
use super::{MAX_MESSAGES_PER_CONVERSATION, Role, Source};

/// Whether the whole file is a Chatbot UI export (a list of conversations in `history`).
pub(crate) fn is_export(doc: &Doc, id: Id) -> bool {
    doc.get_arr(id, "history").is_some()
        && ["version", "folders", "prompts"]
            .iter()
            .any(|k| doc.has(id, k))
}

#[derive(Deserialize)]
struct Entry {
    id: Option<String>,
    name: Option<String>,
    model: Option<Model>,
}

#[derive(Deserialize)]
struct Model {
    id: Option<String>,
}

#[derive(Deserialize)]
struct CbMessage {
    role: Option<String>,
    content: Option<Value>,
}

pub(crate) fn draft(doc: &Doc, id: Id) -> Result<Draft, String> {
    if doc.obj(id).is_none() {
        return Err("not a conversation of a known format".into());
    }
    let entry: Entry = doc.pick(id, &["messages"])?;
    let messages = doc
        .get_arr(id, "messages")
        .ok_or("messages is not a list")?;
    if messages.len() > MAX_MESSAGES_PER_CONVERSATION {
        return Err(tree::too_many_messages(messages.len()));
    }
    let model = entry.model.and_then(|m| m.id);
    let mut nodes: Vec<RawNode> = Vec::with_capacity(messages.len());
    let mut previous: Option<String> = None;
    for (i, &m) in messages.iter().enumerate() {
        let message: CbMessage = doc
            .pick(m, &[])
            .map_err(|e| format!("message {}: {e}", i + 1))?;
        let text = match message.content {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let role = match message.role.as_deref() {
            Some("user") => Some(Role::User),
            Some("assistant") => Some(Role::Assistant),
            _ => None,
        };
        let kind = match role {
            Some(role) if !tree::blank(&text) => Kind::Keep {
                role,
                text,
                reasoning: String::new(),
                model: (role == Role::Assistant).then(|| model.clone()).flatten(),
            },
            _ => Kind::Drop,
        };
        let id = format!("m{i}");
        let parent = previous.clone();
        if matches!(kind, Kind::Keep { .. }) {
            previous = Some(id.clone());
        }
        nodes.push(RawNode {
            id,
            parent,
            children: Vec::new(),
            kind,
            created_at: None,
        });
    }
    Ok(Draft {
        source: Source::ChatbotUi,
        external_id: entry.id,
        title: entry.name,
        created_at: None,
        nodes,
        current: None,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::tests::{check, fixture};
    use super::super::{ImportError, parse};
    use super::*;

    #[test]
    fn the_export_yields_two_linear_conversations() {
        let parsed = parse(&fixture("chatbotui-export.json")).unwrap();
        check(&parsed);
        assert!(parsed.skipped.is_empty());
        assert_eq!(parsed.conversations.len(), 2);
        let c = &parsed.conversations[0];
        assert_eq!(c.source, Source::ChatbotUi);
        assert_eq!(c.external_id, "493cb218-9ebb-4d35-af8b-5aded3f351be");
        assert_eq!(c.title.as_deref(), Some("Hello what are you able to do?"));
        let ids: Vec<_> = c.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m1", "m2", "m3"]);
        for pair in c.messages.windows(2) {
            assert_eq!(pair[1].parent_id.as_ref(), Some(&pair[0].id));
        }
        assert_eq!(
            c.messages[2].text,
            "I like Entertainment part. Go ahead. Entertain me."
        );
        assert_eq!(c.messages[3].model.as_deref(), Some("gpt-4-1106-preview"));
        assert_eq!(c.messages[2].model, None);
        assert!(
            c.messages
                .iter()
                .all(|m| !m.text.contains("You are ChatGPT"))
        );
        assert_eq!(c.current_id.as_deref(), Some("m3"));
        assert_eq!(c.created_at, None);
        let cobol = &parsed.conversations[1];
        assert_eq!(
            cobol.title.as_deref(),
            Some("Give me the code that inverts ...")
        );
        assert_eq!(cobol.messages.len(), 2);
        assert_eq!(cobol.messages[1].model.as_deref(), Some("gpt-3.5-turbo"));
    }

    #[test]
    fn dropped_messages_are_stepped_over_and_bad_entries_skipped() {
        let file = serde_json::json!({"version": 4, "folders": [], "history": [
            {"name": "x", "messages": [
                {"role": "user", "content": "q"},
                {"role": "system", "content": "s"},
                {"role": "assistant", "content": ""},
                {"role": "assistant", "content": "a"},
            ]},
            {"name": "bad", "messages": 3},
            "not an object",
        ]});
        let parsed = parse(file.to_string().as_bytes()).unwrap();
        check(&parsed);
        let c = &parsed.conversations[0];
        let ids: Vec<_> = c.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["m0", "m3"]);
        assert_eq!(c.messages[1].parent_id.as_deref(), Some("m0"));
        assert!(c.external_id.starts_with("sha256-"));
        assert_eq!(parsed.skipped.len(), 2);
        assert_eq!(parsed.skipped[0].title.as_deref(), Some("bad"));
        assert_eq!(parsed.skipped[0].reason, "messages is not a list");
        assert_eq!(parsed.skipped[1].index, 2);
        // An empty Chatbot UI export is an export of nothing.
        let empty = parse(br#"{"version": 4, "history": [], "folders": [], "prompts": []}"#);
        assert_eq!(empty.map(|p| p.conversations.len()), Ok(0));
        assert_eq!(
            parse(br#"{"history": []}"#),
            Err(ImportError::UnknownFormat)
        );
    }
}
