//! LibreChat's JSON export of one conversation:
//! `{conversationId, title, endpoint, branches, recursive, options, messages}`.
//!
//! - `recursive: true`: `messages` holds the roots, each with its replies nested in `children`
//!   (walked without recursion, so a long conversation nests as deep as it likes); the nesting
//!   decides the parent. `recursive: false`: a flat list, `parentMessageId` decides the parent.
//!   When `recursive` is absent, nested `children` mean recursive.
//! - A parent of `00000000-0000-0000-0000-000000000000`, `null`, or an id not in the file makes a
//!   root.
//! - `isCreatedByUser` decides the role; without it, a `sender` of `user` (any case) is the
//!   user and any other sender the assistant.
//! - The text is `text`; when that is empty, the `text` parts of `content[]` (newer exports),
//!   and `think` parts become the reasoning. Other parts (tool calls, images) are dropped.
//! - Messages flagged `error: true` (error notices in place of a reply) are dropped.
//! - `model` is the message's, else `options.model`; `createdAt` (RFC 3339) the time.
//! - `conversationId` is the external id. The export names no current message.

use serde::Deserialize;
use serde_json::Value;

use super::json::{Doc, Id};
use super::tree::{self, Draft, Kind, RawNode};
use super::{MAX_MESSAGES_PER_CONVERSATION, Role, Source};

/// The parent id LibreChat gives a root.
pub const NO_PARENT: &str = "00000000-0000-0000-0000-000000000000";

pub(crate) fn matches(doc: &Doc, id: Id) -> bool {
    doc.get_arr(id, "messages").is_some()
        && (doc.has(id, "conversationId") || doc.has(id, "recursive"))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Header {
    conversation_id: Option<String>,
    title: Option<String>,
    recursive: Option<bool>,
    options: Option<Options>,
}

#[derive(Deserialize)]
struct Options {
    model: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LcMessage {
    message_id: Option<String>,
    parent_message_id: Option<String>,
    is_created_by_user: Option<bool>,
    sender: Option<String>,
    text: Option<String>,
    content: Option<Vec<Value>>,
    model: Option<String>,
    created_at: Option<String>,
    error: Option<bool>,
}

pub(crate) fn draft(doc: &Doc, id: Id) -> Result<Draft, String> {
    let header: Header = doc.pick(id, &["messages"])?;
    let top = doc
        .get_arr(id, "messages")
        .ok_or("messages is not a list")?;
    let recursive = header.recursive.unwrap_or_else(|| {
        top.iter()
            .any(|&m| doc.get_arr(m, "children").is_some_and(|c| !c.is_empty()))
    });
    let total = count(doc, top, recursive);
    if total > MAX_MESSAGES_PER_CONVERSATION {
        return Err(tree::too_many_messages(total));
    }
    let default_model = header.options.and_then(|o| o.model);
    let mut nodes = Vec::new();
    // Each entry: a message and, in a recursive export, the id of the one it is nested in.
    let mut stack: Vec<(Id, Option<String>)> = top.iter().rev().map(|&m| (m, None)).collect();
    while let Some((m, enclosing)) = stack.pop() {
        let message: LcMessage = doc
            .pick(m, &["children"])
            .map_err(|e| format!("message {}: {e}", nodes.len() + 1))?;
        let Some(message_id) = message.message_id.clone() else {
            return Err(format!("message {} has no messageId", nodes.len() + 1));
        };
        if recursive && let Some(children) = doc.get_arr(m, "children") {
            stack.extend(
                children
                    .iter()
                    .rev()
                    .map(|&c| (c, Some(message_id.clone()))),
            );
        }
        let parent = if recursive {
            enclosing
        } else {
            message.parent_message_id.clone().filter(|p| p != NO_PARENT)
        };
        nodes.push(RawNode {
            id: message_id,
            parent,
            children: Vec::new(),
            created_at: message.created_at.as_deref().and_then(tree::from_rfc3339),
            kind: kind(message, default_model.as_deref()),
        });
    }
    Ok(Draft {
        source: Source::LibreChat,
        external_id: header.conversation_id,
        title: header.title,
        created_at: None,
        nodes,
        current: None,
    })
}

/// How many messages the export holds (nested ones included when `recursive`).
fn count(doc: &Doc, top: &[Id], recursive: bool) -> usize {
    if !recursive {
        return top.len();
    }
    let mut total = 0;
    let mut stack: Vec<Id> = top.to_vec();
    while let Some(m) = stack.pop() {
        total += 1;
        if let Some(children) = doc.get_arr(m, "children") {
            stack.extend_from_slice(children);
        }
    }
    total
}

fn kind(message: LcMessage, default_model: Option<&str>) -> Kind {
    if message.error == Some(true) {
        return Kind::Drop;
    }
    let user = message.is_created_by_user.unwrap_or_else(|| {
        message
            .sender
            .as_deref()
            .is_some_and(|s| s.trim().eq_ignore_ascii_case("user"))
    });
    let parts = message.content.as_deref().unwrap_or_default();
    let text = match message.text {
        Some(text) if !tree::blank(&text) => text,
        _ => tree::join_paragraphs(parts_of(parts, "text")),
    };
    let reasoning = tree::join_paragraphs(parts_of(parts, "think"));
    if user {
        Kind::Keep {
            role: Role::User,
            text,
            reasoning: String::new(),
            model: None,
        }
    } else {
        Kind::Keep {
            role: Role::Assistant,
            text,
            reasoning,
            model: message.model.or_else(|| default_model.map(str::to_owned)),
        }
    }
}

/// The strings of the `content[]` parts of type `kind`: `{type, [kind]: "…"}` or
/// `{type, [kind]: {value: "…"}}`.
fn parts_of<'a>(parts: &'a [Value], kind: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    parts
        .iter()
        .filter(move |p| p.get("type").and_then(Value::as_str) == Some(kind))
        .filter_map(move |p| {
            let v = p.get(kind)?;
            v.as_str()
                .or_else(|| v.get("value").and_then(Value::as_str))
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::tests::{check, fixture};
    use super::super::{Conversation, Parsed, parse};
    use super::*;

    fn parsed(name: &str) -> Parsed {
        let parsed = parse(&fixture(name)).unwrap();
        check(&parsed);
        assert!(parsed.skipped.is_empty());
        parsed
    }

    fn ids(c: &Conversation) -> Vec<&str> {
        c.messages.iter().map(|m| m.id.as_str()).collect()
    }

    fn children<'a>(c: &'a Conversation, id: &str) -> Vec<&'a str> {
        c.messages
            .iter()
            .filter(|m| m.parent_id.as_deref() == Some(id))
            .map(|m| m.id.as_str())
            .collect()
    }

    #[test]
    fn a_recursive_export_is_a_chain_with_the_options_model() {
        let parsed = parsed("librechat-export.json");
        assert_eq!(parsed.conversations.len(), 1);
        let c = &parsed.conversations[0];
        assert_eq!(c.source, Source::LibreChat);
        assert_eq!(c.external_id, "af1ea676-f525-444f-a9ed-7c8dbf062733");
        assert_eq!(c.title.as_deref(), Some("Conversation 1. Web Search"));
        assert_eq!(c.messages.len(), 6);
        for pair in c.messages.windows(2) {
            assert_eq!(pair[1].parent_id.as_ref(), Some(&pair[0].id));
        }
        assert_eq!(
            c.messages.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::User, Role::Assistant].repeat(3)
        );
        // Every message's `model` is null: the assistant's comes from `options`.
        assert_eq!(c.messages[1].model.as_deref(), Some("gpt-3.5-turbo"));
        assert_eq!(c.messages[0].model, None);
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2024-04-09T14:32:05.230+00:00"
        );
        assert_eq!(
            c.current_id.as_deref(),
            Some("645b925b-ef14-451f-9be3-814de55a5ae4")
        );
    }

    #[test]
    fn a_recursive_tree_keeps_its_branches() {
        let parsed = parsed("librechat-tree.json");
        let c = &parsed.conversations[0];
        assert_eq!(
            c.title.as_deref(),
            Some("Troubleshooting Python Virtual Environment Activation Issue")
        );
        assert_eq!(
            ids(c),
            [
                "9501f99d-9bbb-40cb-bbb2-16d79aeceb72",
                "4c395510-fdfd-4556-b034-f9440f025e91",
                "6e4c95ca-fcb1-4869-adc3-b4bcec83a270",
                "5da2cdce-87f7-46b4-87c5-e8224e5d5125",
                "64ed7568-bdcf-42a9-b34a-73386d4d99dc",
                "f82cca6f-7d2b-4fc1-9d5a-636acc137368",
                "ad7b6ec6-aaa4-434c-9188-def6aadbb2bf",
                "d3e12088-962e-42ce-900d-edd6816acae5",
                "1f062c99-ff0a-4cf4-a1cf-7150261a24e2",
            ]
        );
        assert_eq!(
            children(c, "4c395510-fdfd-4556-b034-f9440f025e91"),
            [
                "6e4c95ca-fcb1-4869-adc3-b4bcec83a270",
                "d3e12088-962e-42ce-900d-edd6816acae5"
            ]
        );
        assert_eq!(
            children(c, "6e4c95ca-fcb1-4869-adc3-b4bcec83a270"),
            [
                "5da2cdce-87f7-46b4-87c5-e8224e5d5125",
                "64ed7568-bdcf-42a9-b34a-73386d4d99dc"
            ]
        );
        assert_eq!(c.messages[2].role, Role::User);
        assert_eq!(c.messages[2].text, "thanks");
        assert_eq!(c.messages[8].model.as_deref(), Some("gpt-4-turbo"));
        // Three leaves and no current message in the export.
        assert_eq!(c.current_id, None);
    }

    #[test]
    fn a_flat_export_with_branches_keeps_both_roots_and_both_replies() {
        let parsed = parsed("librechat-opts-nonr-branches.json");
        let c = &parsed.conversations[0];
        assert_eq!(c.external_id, "27b593be-9500-479c-94cb-050cab8f5033");
        assert_eq!(c.title.as_deref(), Some("Original"));
        assert_eq!(c.messages.len(), 5);
        let roots: Vec<_> = c
            .messages
            .iter()
            .filter(|m| m.parent_id.is_none())
            .map(|m| m.text.as_str())
            .collect();
        assert_eq!(roots, ["tell me a long story", "tell me a long long story"]);
        assert_eq!(
            children(c, "115a6247-8fb0-4937-a536-12956669098d"),
            [
                "069b9c22-7649-45a9-b90b-fc050533ea21",
                "303e4c2c-f03e-4e0a-8551-c96ec73be5fe"
            ]
        );
        assert_eq!(
            children(c, "599e1908-8c52-4a73-ba6b-f6dffbd79ba0"),
            ["de9a4e7c-020d-4856-a5a6-ce6794efef99"]
        );
        assert_eq!(c.current_id, None);
    }

    #[test]
    fn a_flat_linear_export() {
        let parsed = parsed("librechat-linear.json");
        let c = &parsed.conversations[0];
        assert_eq!(c.title.as_deref(), Some("Adventure Across Time and Space"));
        assert_eq!(
            ids(c),
            [
                "ed3fdaaa-e174-4d70-89a9-b06e70939723",
                "113b8336-4b19-4f91-8eed-741b3dc2940e"
            ]
        );
        assert_eq!(
            c.messages[0].parent_id, None,
            "`parentMessageId: null` is a root"
        );
        assert_eq!(c.messages[1].model.as_deref(), Some("gpt-4o"));
        assert_eq!(
            c.current_id.as_deref(),
            Some("113b8336-4b19-4f91-8eed-741b3dc2940e")
        );
    }

    fn one(export: Value) -> Parsed {
        let parsed = parse(export.to_string().as_bytes()).unwrap();
        check(&parsed);
        parsed
    }

    #[test]
    fn a_missing_parent_makes_a_root_and_a_missing_id_skips() {
        let parsed = one(serde_json::json!([
            {"conversationId": "c1", "recursive": false, "messages": [
                {"messageId": "a", "parentMessageId": "gone", "sender": "user", "text": "q"},
                {"messageId": "b", "parentMessageId": "a", "sender": "GPT-4", "text": "x"},
            ]},
            {"conversationId": "c2", "title": "No ids", "recursive": false, "messages": [
                {"parentMessageId": null, "isCreatedByUser": true, "text": "q"},
            ]},
            {"conversationId": "c3", "recursive": false, "messages": "nope"},
        ]));
        let c = &parsed.conversations[0];
        assert_eq!(ids(c), ["a", "b"]);
        assert_eq!(c.messages[0].parent_id, None);
        assert_eq!(c.messages[1].role, Role::Assistant);
        assert_eq!(parsed.skipped.len(), 2);
        assert_eq!(parsed.skipped[0].reason, "message 1 has no messageId");
        assert_eq!(parsed.skipped[0].title.as_deref(), Some("No ids"));
        assert_eq!(parsed.skipped[1].index, 2);
        assert_eq!(
            parsed.skipped[1].reason,
            "not a conversation of a known format"
        );
    }

    #[test]
    fn content_parts_errors_and_think_parts() {
        let parsed = one(serde_json::json!({
            "conversationId": "c", "recursive": false, "messages": [
                {"messageId": "u", "isCreatedByUser": true, "text": "q"},
                {"messageId": "e", "parentMessageId": "u", "isCreatedByUser": false, "error": true,
                 "text": "{\"type\":\"no_user_key\"}"},
                {"messageId": "a", "parentMessageId": "e", "isCreatedByUser": false, "text": "",
                 "model": "o3", "content": [
                    {"type": "think", "think": "hmm"},
                    {"type": "tool_call", "tool_call": {"name": "x"}},
                    {"type": "text", "text": "part one"},
                    {"type": "text", "text": {"value": "part two"}},
                 ]},
            ]
        }));
        let c = &parsed.conversations[0];
        assert_eq!(ids(c), ["u", "a"]);
        assert_eq!(c.messages[1].parent_id.as_deref(), Some("u"));
        assert_eq!(c.messages[1].text, "part one\n\npart two");
        assert_eq!(c.messages[1].reasoning, "hmm");
        assert_eq!(c.messages[1].model.as_deref(), Some("o3"));
    }

    #[test]
    fn a_long_recursive_conversation_nests_deeper_than_serde_json_allows() {
        let n = 5_000;
        let mut text =
            String::from(r#"{"conversationId": "deep", "recursive": true, "messages": "#);
        for i in 0..n {
            let role = if i % 2 == 0 { "true" } else { "false" };
            text.push_str(&format!(
                r#"[{{"messageId": "m{i}", "isCreatedByUser": {role}, "text": "t{i}", "children": "#
            ));
        }
        text.push_str("[]");
        text.push_str(&"}]".repeat(n));
        text.push('}');
        assert!(serde_json::from_str::<Value>(&text).is_err());
        let parsed = parse(text.as_bytes()).unwrap();
        check(&parsed);
        let c = &parsed.conversations[0];
        assert_eq!(c.messages.len(), n);
        assert_eq!(c.messages[n - 1].parent_id.as_deref(), Some("m4998"));
        assert_eq!(c.current_id.as_deref(), Some("m4999"));
    }
}
