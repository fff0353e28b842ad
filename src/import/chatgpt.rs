//! ChatGPT `conversations.json`: an array of conversations, or one conversation object (the
//! `backend-api/conversation/{id}` shape).
//!
//! A conversation is a tree: `mapping` is node id → `{id, message|null, parent, children}`,
//! walked by parent and children (its key order is not chronological), and `current_node` is the
//! current leaf. The mapping keys are the message ids. A conversation without `mapping` is
//! skipped and reported.
//!
//! | export | becomes |
//! |---|---|
//! | **kept** | |
//! | user `text` / `multimodal_text` message | a user message |
//! | assistant `text` / `multimodal_text` message to `all` (or no recipient) | an assistant message, `model` from `metadata.model_slug` |
//! | **mapped** | |
//! | `thoughts` (`thoughts[] {summary, content}`) | `reasoning` of the next kept assistant message below it: each thought as its summary and content on two lines, thoughts a blank line apart (a thought repeating the previous summary with no content is left out); dropped when a user message comes first |
//! | `reasoning_recap` ("Thought for 47s") | a last paragraph of that same `reasoning` |
//! | citation markers `【…†…】` in assistant text | removed, replaced by nothing (`environments【3:0†source】.` → `environments.`) |
//! | a visible `tool` message with `image_asset_pointer` parts (an image generation's result) | an assistant message `[image]` (one per image) |
//! | `multimodal_text` parts | strings kept, `image_asset_pointer` parts become `[image]`, other parts with a `text` keep it; parts a blank line apart |
//! | `create_time` (float epoch seconds, may be null or absent) | `created_at` |
//! | `conversation_id` (else `id`), `title`, `create_time`, `current_node` | the conversation's external id, title, time, current leaf |
//! | **dropped** (children re-attached to the nearest kept ancestor) | |
//! | nodes with `message: null` (the root) | — |
//! | `system` messages | — |
//! | `user_editable_context` and any `metadata.is_user_system_message: true` (custom instructions) | — |
//! | hidden messages: `metadata.is_visually_hidden_from_conversation: true` | — |
//! | role `tool` (browsing results, `tether_*`, commentary, hidden images) | — |
//! | assistant messages with a `recipient` other than `all` (tool calls: `browser`, `web.run`, `internal_tool`) | — |
//! | content types `code`, `tether_browsing_display`, `tether_quote`, `execution_output` and any other not named above | — |
//! | empty assistant (and user) messages: tool-call placeholders, empty final answers | — |
//! | every other field (`weight`, `status`, `end_turn`, `channel`, `metadata.citations`, `gizmo_id`, …) | ignored |

use serde::Deserialize;
use serde_json::Value;

use super::Role;
use super::Source;
use super::json::{Doc, Id};
use super::tree::{self, Draft, Kind, RawNode};

/// What `[image]` stands for.
pub const IMAGE_PLACEHOLDER: &str = "[image]";

/// Whether a conversation object looks like ChatGPT's (a corrupted one without `mapping`
/// included, so that it is reported).
pub(crate) fn matches(doc: &Doc, id: Id) -> bool {
    [
        "mapping",
        "current_node",
        "conversation_id",
        "default_model_slug",
    ]
    .iter()
    .any(|k| doc.has(id, k))
        || (doc.has(id, "create_time") && doc.has(id, "update_time"))
}

#[derive(Deserialize)]
struct Header {
    id: Option<String>,
    conversation_id: Option<String>,
    title: Option<String>,
    create_time: Option<f64>,
    current_node: Option<String>,
}

#[derive(Deserialize)]
struct MappingNode {
    message: Option<RawMessage>,
    parent: Option<String>,
    children: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct RawMessage {
    author: Option<Author>,
    create_time: Option<f64>,
    content: Option<Content>,
    recipient: Option<String>,
    metadata: Option<Metadata>,
}

#[derive(Deserialize)]
struct Author {
    role: Option<String>,
}

#[derive(Deserialize)]
struct Content {
    content_type: Option<String>,
    parts: Option<Vec<Value>>,
    thoughts: Option<Vec<Thought>>,
    /// The text of a `reasoning_recap`.
    content: Option<Value>,
}

#[derive(Deserialize)]
struct Thought {
    summary: Option<String>,
    content: Option<String>,
}

#[derive(Deserialize, Default)]
struct Metadata {
    is_visually_hidden_from_conversation: Option<bool>,
    is_user_system_message: Option<bool>,
    model_slug: Option<String>,
}

pub(crate) fn draft(doc: &Doc, id: Id) -> Result<Draft, String> {
    let header: Header = doc.pick(id, &["mapping"])?;
    let mapping = match doc.get(id, "mapping") {
        None => return Err("no mapping".into()),
        Some(m) => doc.obj(m).ok_or("mapping is not an object")?,
    };
    if mapping.len() > super::MAX_MESSAGES_PER_CONVERSATION {
        return Err(tree::too_many_messages(mapping.len()));
    }
    let mut nodes = Vec::with_capacity(mapping.len());
    for (key, node) in mapping {
        let node: MappingNode = doc
            .pick(*node, &[])
            .map_err(|e| format!("mapping node {:?}: {e}", tree::clip(key)))?;
        let created_at = node
            .message
            .as_ref()
            .and_then(|m| m.create_time)
            .and_then(tree::from_epoch);
        nodes.push(RawNode {
            id: key.clone(),
            parent: node.parent,
            children: node.children.unwrap_or_default(),
            kind: node.message.map_or(Kind::Drop, kind),
            created_at,
        });
    }
    Ok(Draft {
        source: Source::ChatGpt,
        external_id: header.conversation_id.or(header.id),
        title: header.title,
        created_at: header.create_time.and_then(tree::from_epoch),
        nodes,
        current: header.current_node,
    })
}

/// What a message becomes (the table in the module docs).
fn kind(message: RawMessage) -> Kind {
    let meta = message.metadata.unwrap_or_default();
    if meta.is_visually_hidden_from_conversation == Some(true)
        || meta.is_user_system_message == Some(true)
    {
        return Kind::Drop;
    }
    let Some(content) = message.content else {
        return Kind::Drop;
    };
    let content_type = content.content_type.as_deref().unwrap_or_default();
    let role = message.author.and_then(|a| a.role).unwrap_or_default();
    match (role.as_str(), content_type) {
        ("user", "text" | "multimodal_text") => Kind::Keep {
            role: Role::User,
            text: parts_text(content.parts.as_deref().unwrap_or_default()),
            reasoning: String::new(),
            model: None,
        },
        ("assistant", _) if message.recipient.as_deref().is_some_and(|r| r != "all") => Kind::Drop,
        ("assistant", "text" | "multimodal_text") => Kind::Keep {
            role: Role::Assistant,
            text: strip_citations(&parts_text(content.parts.as_deref().unwrap_or_default())),
            reasoning: String::new(),
            model: meta.model_slug,
        },
        // A generated image arrives as a visible tool message: it is the answer the person saw.
        ("tool", "multimodal_text") => {
            match image_parts(content.parts.as_deref().unwrap_or_default()) {
                0 => Kind::Drop,
                n => Kind::Keep {
                    role: Role::Assistant,
                    text: vec![IMAGE_PLACEHOLDER; n].join("\n\n"),
                    reasoning: String::new(),
                    model: meta.model_slug,
                },
            }
        }
        ("assistant", "thoughts") => Kind::Reasoning(thoughts_text(
            content.thoughts.as_deref().unwrap_or_default(),
        )),
        ("assistant", "reasoning_recap") => Kind::Reasoning(
            content
                .content
                .as_ref()
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        ),
        _ => Kind::Drop,
    }
}

/// How many of `parts` are images.
fn image_parts(parts: &[Value]) -> usize {
    parts
        .iter()
        .filter(|part| {
            part.get("content_type").and_then(Value::as_str) == Some("image_asset_pointer")
        })
        .count()
}

/// The text of `parts`: strings as they are, images as `[image]`, a blank line apart.
fn parts_text(parts: &[Value]) -> String {
    parts
        .iter()
        .filter_map(|part| match part {
            Value::String(s) => Some(s.as_str()),
            Value::Object(o) => match o.get("content_type").and_then(Value::as_str) {
                Some("image_asset_pointer") => Some(IMAGE_PLACEHOLDER),
                _ => o.get("text").and_then(Value::as_str),
            },
            _ => None,
        })
        .filter(|s| !tree::blank(s))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// `thoughts[]` as text: summary and content on two lines, a blank line between thoughts.
fn thoughts_text(thoughts: &[Thought]) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut previous_summary: Option<&str> = None;
    for thought in thoughts {
        let summary = thought.summary.as_deref().unwrap_or_default().trim();
        let content = thought.content.as_deref().unwrap_or_default().trim();
        if content.is_empty() && previous_summary == Some(summary) {
            continue;
        }
        previous_summary = Some(summary);
        let text = [summary, content]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        if !text.is_empty() {
            out.push(text);
        }
    }
    out.join("\n\n")
}

/// Longest citation marker removed, in characters between the brackets.
const MAX_MARKER_CHARS: usize = 300;

/// `text` without its citation markers: `【`, then text holding a `†` and no bracket, then `】`
/// (`【3:0†source】`, `【13†source】`, `【0†Title†www.example.com】`), replaced by nothing.
pub fn strip_citations(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('【') {
        out.push_str(&rest[..start]);
        let after = &rest[start + '【'.len_utf8()..];
        let marker_end = after.find('】').filter(|&end| {
            let inner = &after[..end];
            inner.contains('†')
                && !inner.contains('【')
                && inner.chars().count() <= MAX_MARKER_CHARS
        });
        match marker_end {
            Some(end) => rest = &after[end + '】'.len_utf8()..],
            None => {
                out.push('【');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::super::tests::{check, fixture};
    use super::super::{Conversation, Message, Parsed, Skipped, parse};
    use super::*;

    fn parsed(name: &str) -> Parsed {
        let parsed = parse(&fixture(name)).unwrap();
        check(&parsed);
        parsed
    }

    fn message<'a>(c: &'a Conversation, id: &str) -> &'a Message {
        c.messages
            .iter()
            .find(|m| m.id == id)
            .unwrap_or_else(|| panic!("no message {id}"))
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
    fn the_2024_export_drops_system_browsing_and_tool_messages() {
        let parsed = parsed("chatgpt-export.json");
        assert!(parsed.skipped.is_empty());
        assert_eq!(parsed.conversations.len(), 2);
        let c = &parsed.conversations[0];
        assert_eq!(c.source, Source::ChatGpt);
        assert_eq!(c.external_id, "d6523d1e-7ec3-474f-a363-0e9dffdb3d93");
        assert_eq!(c.title.as_deref(), Some("Conversation 1. Web Search"));
        assert_eq!(
            c.created_at.unwrap().to_rfc3339(),
            "2024-01-07T12:18:35.775304+00:00"
        );
        // 17 nodes: the null root, a hidden system message, 2 searches, 2 clicks, 5 tool results
        // dropped; 3 questions and 3 answers kept.
        assert_eq!(
            ids(c),
            [
                "bbb277e8-11d0-44f4-86c9-01dc3027228a",
                "5c57c3b5-35df-4b1c-ab2d-8ca76cc63629",
                "bbb2682f-b4f7-49f8-b842-5352f8b6e3c0",
                "9e0f92f9-9b23-464a-98ec-2b034164f2ec",
                "bbb26113-6bb3-40ef-91a2-02b92f6fd1d0",
                "88a0cf9f-e860-4b34-8e7e-65f8346f4862",
            ]
        );
        assert_eq!(
            c.messages[0].parent_id, None,
            "the system message was the parent"
        );
        // The first answer hung below 2 searches, 2 clicks and 3 results: now below the question.
        assert_eq!(
            c.messages[1].parent_id.as_deref(),
            Some(c.messages[0].id.as_str())
        );
        assert_eq!(
            c.messages.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::User, Role::Assistant].repeat(3)
        );
        assert_eq!(c.messages[1].model.as_deref(), Some("gpt-4"));
        assert!(
            c.messages[1].text.contains("of the vehicle."),
            "{}",
            c.messages[1].text
        );
        assert!(c.messages.iter().all(|m| !m.text.contains('【')));
        assert_eq!(
            c.current_id.as_deref(),
            Some("88a0cf9f-e860-4b34-8e7e-65f8346f4862")
        );
        let second = &parsed.conversations[1];
        assert_eq!(second.title.as_deref(), Some("Conversation 2"));
        assert_eq!(second.messages.len(), 4);
        assert_eq!(
            second.messages[3].model.as_deref(),
            Some("text-davinci-002-render-sha")
        );
        assert_eq!(
            second.current_id.as_deref(),
            Some("73a2fe12-36bd-4cc2-8460-8108d16cc42d")
        );
    }

    #[test]
    fn the_tree_keeps_both_branch_points_and_the_interrupted_reply() {
        let parsed = parsed("chatgpt-tree.json");
        let c = &parsed.conversations[0];
        assert_eq!(c.title.as_deref(), Some("Assist user with summary"));
        assert_eq!(c.messages.len(), 11);
        // An edit: two user messages answer the first reply.
        assert_eq!(
            children(c, "bda8a275-886d-4f59-b38c-d7037144f0d5"),
            [
                "aaa24023-b02f-4d49-b568-5856b41750c0",
                "aaa236a3-cdfc-4eb1-b5c5-790c6641f880"
            ]
        );
        // A regenerate: two replies to "tell me a joke".
        assert_eq!(
            children(c, "aaa20127-b9e3-44f6-afbe-a2475838625a"),
            [
                "d0d2a7df-d2fc-4df9-bf0a-1c5121e227ae",
                "f63b8e17-aa5c-4ca6-a1bf-d4d285e269b8"
            ]
        );
        // The off-path branch ends in an `in_progress`, interrupted reply, kept.
        assert!(
            message(c, "ada93f81-f59e-4b31-933d-1357efd68bfc")
                .text
                .starts_with("Sure! Here's a short story")
        );
        assert_eq!(
            c.current_id.as_deref(),
            Some("f63b8e17-aa5c-4ca6-a1bf-d4d285e269b8")
        );
    }

    #[test]
    fn citation_markers_are_removed_and_a_dangling_parent_is_a_root() {
        let parsed = parsed("chatgpt-citations.json");
        let c = &parsed.conversations[0];
        assert_eq!(c.title.as_deref(), Some("Citation Convo"));
        // Two nodes, a tool result whose parent is not in the file, and the answer.
        assert_eq!(ids(c), ["4b3aec6b-5146-4bad-ae8e-204fdb6accda"]);
        let text = &c.messages[0].text;
        assert_eq!(c.messages[0].parent_id, None);
        assert!(!text.contains('【') && !text.contains('†') && !text.contains('】'));
        assert!(
            text.contains("hybrid environments.\n\nIn a major development"),
            "{text}"
        );
        assert!(text.ends_with("operating online."), "{text}");
        // `current_node` names a node the fragment lacks; the only leaf stands in.
        assert_eq!(
            c.current_id.as_deref(),
            Some("4b3aec6b-5146-4bad-ae8e-204fdb6accda")
        );
    }

    #[test]
    fn the_corrupted_modern_entry_is_skipped_and_reported_and_context_is_dropped() {
        let parsed = parsed("chatgpt-modern-export.json");
        assert_eq!(
            parsed.skipped,
            [Skipped {
                index: 1,
                external_id: Some("6b0f0d9c-0000-4000-8000-000000000002".into()),
                title: Some("Corrupted entry".into()),
                reason: "no mapping".into(),
            }]
        );
        assert_eq!(parsed.conversations.len(), 2);
        let c = &parsed.conversations[0];
        assert_eq!(c.title.as_deref(), Some("Deploying the staging cluster"));
        // `client-created-root` (null) and `ctx-node` (user_editable_context) dropped.
        assert_eq!(ids(c), ["user-1", "assistant-1", "user-2", "assistant-2"]);
        assert_eq!(c.messages[0].parent_id, None);
        assert_eq!(c.messages[1].model, None);
        assert_eq!(c.messages[3].model.as_deref(), Some("o4-mini"));
        assert!(c.messages.iter().all(|m| !m.text.contains("SRE")));
        assert_eq!(c.current_id.as_deref(), Some("assistant-2"));
        assert_eq!(c.messages[0].created_at.unwrap().timestamp(), 1_756_000_001);
        let pasta = &parsed.conversations[1];
        assert_eq!(pasta.title.as_deref(), Some("Weeknight pasta"));
        assert_eq!(ids(pasta), ["user-3", "assistant-3"]);
        assert_eq!(pasta.messages[1].text, "Puttanesca.");
    }

    #[test]
    fn thoughts_and_recaps_become_the_next_answers_reasoning() {
        let parsed = parsed("pionxzh-thinking-summaries.json");
        let c = &parsed.conversations[0];
        assert_eq!(c.external_id, "fixture");
        assert_eq!(c.title.as_deref(), Some("Fixture"));
        assert_eq!(c.created_at.unwrap().timestamp(), 1);
        // n2/n5 (calls to web.run), n3/n6 (their results), n4/n7/n8 (thoughts), n9 (recap) and
        // the rootless n0 dropped.
        assert_eq!(ids(c), ["n1", "n10", "n11", "n14"]);
        assert_eq!(message(c, "n10").parent_id.as_deref(), Some("n1"));
        assert_eq!(message(c, "n1").text, "question 1");
        assert_eq!(message(c, "n1").reasoning, "");
        assert_eq!(message(c, "n10").text, "answer 1");
        assert_eq!(
            message(c, "n10").reasoning,
            "summary 1\nthought 1\n\nsummary 2\nthought 2\n\nsummary 3\nthought 3\n\n\
             summary 4\n\nsummary 5\n\nThought for 29s"
        );
        assert_eq!(
            message(c, "n14").reasoning,
            "summary 6\nthought 4\n\nsummary 7\n\nThought for 14s"
        );
        assert_eq!(message(c, "n14").model.as_deref(), Some("gpt-5-6-thinking"));
        assert_eq!(message(c, "n1").model, None, "user messages carry no model");
        assert!(c.messages.iter().all(|m| m.created_at.is_none()));
        assert_eq!(c.current_id.as_deref(), Some("n14"));
    }

    #[test]
    fn generated_images_are_the_answers_and_tool_output_is_dropped() {
        let parsed = parsed("pionxzh-image-generation.json");
        let c = &parsed.conversations[0];
        // Each answer is a visible tool image; the hidden images, tool text, recaps and the
        // empty (hidden) final answers go.
        assert_eq!(ids(c), ["n1", "n2", "n7", "n8", "n13", "n16", "n19", "n20"]);
        assert_eq!(
            c.messages.iter().map(|m| m.role).collect::<Vec<_>>(),
            [Role::User, Role::Assistant].repeat(4)
        );
        assert_eq!(message(c, "n1").text, "[image]\n\nquestion 1");
        assert_eq!(message(c, "n2").text, "[image]");
        assert_eq!(message(c, "n7").parent_id.as_deref(), Some("n2"));
        assert_eq!(message(c, "n19").parent_id.as_deref(), Some("n16"));
        assert!(c.messages.iter().all(|m| !m.text.contains("tool text")));
        // `current_node` n24 is a hidden empty answer: its nearest kept ancestor stands in.
        assert_eq!(c.current_id.as_deref(), Some("n20"));
    }

    fn node(parent: Option<&str>, children: &[&str], role: &str, text: &str) -> Value {
        serde_json::json!({
            "parent": parent,
            "children": children,
            "message": {"author": {"role": role}, "content": {"content_type": "text", "parts": [text]}},
        })
    }

    fn one(conversation: Value) -> Parsed {
        let parsed = parse(conversation.to_string().as_bytes()).unwrap();
        check(&parsed);
        parsed
    }

    #[test]
    fn a_cycle_in_the_mapping_is_broken_not_followed() {
        let parsed = one(serde_json::json!({
            "id": "cyc",
            "current_node": "b",
            "mapping": {
                "a": node(Some("b"), &["b"], "user", "question"),
                "b": node(Some("a"), &["a"], "assistant", "answer"),
                "c": node(Some("c"), &[], "user", "self-parented"),
            },
        }));
        let c = &parsed.conversations[0];
        // The self-parented `c` is a root; then the cycle is broken at its first node.
        assert_eq!(ids(c), ["c", "a", "b"]);
        assert_eq!(c.messages[0].parent_id, None);
        assert_eq!(c.messages[1].parent_id, None);
        assert_eq!(c.messages[2].parent_id.as_deref(), Some("a"));
        assert_eq!(c.current_id.as_deref(), Some("b"));
    }

    #[test]
    fn malformed_conversations_are_skipped_with_a_reason() {
        let file = serde_json::json!([
            {"id": "null-mapping", "title": " T ", "mapping": null},
            {"id": "list-mapping", "mapping": []},
            {"id": "bad-node", "mapping": {"a": {"parent": 7}}},
            {"id": "empty", "mapping": {}},
            {"id": "only-system", "mapping": {"a": node(None, &[], "system", "be nice")}},
            {"id": "ok", "mapping": {"a": node(None, &[], "user", "hi")}},
        ]);
        let parsed = one(file);
        assert_eq!(parsed.conversations.len(), 1);
        let reasons: Vec<_> = parsed
            .skipped
            .iter()
            .map(|s| {
                (
                    s.index,
                    s.external_id.as_deref().unwrap(),
                    s.reason.as_str(),
                )
            })
            .collect();
        assert_eq!(reasons[0], (0, "null-mapping", "mapping is not an object"));
        assert_eq!(parsed.skipped[0].title.as_deref(), Some("T"));
        assert_eq!(reasons[1], (1, "list-mapping", "mapping is not an object"));
        assert_eq!(reasons[2].1, "bad-node");
        assert!(
            reasons[2].2.starts_with("mapping node \"a\": invalid type"),
            "{reasons:?}"
        );
        assert_eq!(reasons[3], (3, "empty", "no user or assistant messages"));
        assert_eq!(
            reasons[4],
            (4, "only-system", "no user or assistant messages")
        );
    }

    #[test]
    fn a_conversation_of_too_many_messages_is_skipped() {
        let mut mapping = serde_json::Map::new();
        for i in 0..=super::super::MAX_MESSAGES_PER_CONVERSATION {
            mapping.insert(format!("n{i}"), node(None, &[], "user", "x"));
        }
        let parsed = one(serde_json::json!([{"id": "big", "mapping": mapping}]));
        assert!(parsed.conversations.is_empty());
        assert_eq!(
            parsed.skipped[0].reason,
            "20001 messages, more than the 20000 a conversation may hold"
        );
    }

    #[test]
    fn odd_ids_are_mapped_and_parents_follow() {
        let parsed = one(serde_json::json!({
            "id": "odd",
            "current_node": "b b",
            "mapping": {
                "a/1": node(None, &["b b"], "user", "q"),
                "b b": node(Some("a/1"), &[], "assistant", "a"),
            },
        }));
        let c = &parsed.conversations[0];
        assert!(c.messages[0].id.starts_with("a_1-"));
        assert!(c.messages[1].id.starts_with("b_b-"));
        assert_eq!(c.messages[1].parent_id.as_ref(), Some(&c.messages[0].id));
        assert_eq!(c.current_id.as_ref(), Some(&c.messages[1].id));
    }

    #[test]
    fn hidden_messages_and_tool_calls_are_dropped_with_children_reattached() {
        let mut hidden = node(Some("u"), &["t"], "assistant", "secret");
        hidden["message"]["metadata"] =
            serde_json::json!({"is_visually_hidden_from_conversation": true});
        let mut call = node(Some("h"), &["a"], "assistant", "search(\"x\")");
        call["message"]["recipient"] = "browser".into();
        call["message"]["content"]["content_type"] = "code".into();
        let mut answer = node(Some("t"), &[], "assistant", "done \u{7}【1†source】");
        answer["message"]["metadata"] = serde_json::json!({"model_slug": "gpt-4o"});
        let parsed = one(serde_json::json!({
            "id": "h",
            "mapping": {
                "u": node(None, &["h"], "user", "q"),
                "h": hidden,
                "t": call,
                "a": answer,
            },
        }));
        let c = &parsed.conversations[0];
        assert_eq!(ids(c), ["u", "a"]);
        assert_eq!(c.messages[1].parent_id.as_deref(), Some("u"));
        assert_eq!(c.messages[1].text, "done ");
        assert_eq!(c.messages[1].model.as_deref(), Some("gpt-4o"));
    }

    #[test]
    fn citation_stripping_leaves_other_brackets_alone() {
        assert_eq!(strip_citations("a【1†source】b"), "ab");
        assert_eq!(strip_citations("a【0†T†www.x.com】"), "a");
        assert_eq!(
            strip_citations("【not a marker】 and 【 open"),
            "【not a marker】 and 【 open"
        );
        assert_eq!(strip_citations("【【2†s】"), "【");
        assert_eq!(strip_citations("no markers"), "no markers");
    }
}
