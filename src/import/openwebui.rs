//! Open WebUI's chat export: an array of `{id, title, chat, created_at, …}` (or one of them, or
//! a bare `chat` object), where `chat.history.messages` is id → `{parentId, childrenIds, role,
//! content, timestamp, model}` and `chat.history.currentId` the current leaf.
//!
//! - User and assistant messages are kept; other roles (`system`) dropped.
//! - In the content, `<details type="reasoning">…</details>` blocks become the reasoning (their
//!   `<summary>` left out, HTML entities decoded, the `> ` quoting Open WebUI adds taken off,
//!   several blocks a blank line apart); `<details type="tool_calls">` and
//!   `<details type="code_interpreter">` blocks are dropped; other `<details>` stay in the
//!   text. An unclosed block runs to the end. A leading `<think>…</think>` (older versions)
//!   also becomes the reasoning. The text is trimmed when a block was taken out.
//! - Content given as a list of parts keeps the `text` of each part.
//! - The `output[]` array (the same reasoning and tool calls, structured) is ignored.
//! - `timestamp` (epoch seconds) is the time; `id`, `title` (else `chat.title`) and
//!   `created_at` (else `chat.timestamp`) describe the conversation.

use serde::Deserialize;
use serde_json::Value;

use super::json::{Doc, Id};
use super::tree::{self, Draft, Kind, RawNode};
use super::{MAX_MESSAGES_PER_CONVERSATION, Role, Source};

pub(crate) fn matches(doc: &Doc, id: Id) -> bool {
    let history = |chat: Id| {
        doc.get(chat, "history")
            .is_some_and(|h| doc.obj(h).is_some())
    };
    doc.get(id, "chat")
        .is_some_and(|chat| doc.obj(chat).is_some() && history(chat))
        || history(id)
}

#[derive(Deserialize)]
struct Header {
    id: Option<String>,
    title: Option<String>,
    created_at: Option<f64>,
    timestamp: Option<f64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct OwMessage {
    parent_id: Option<String>,
    children_ids: Option<Vec<String>>,
    role: Option<String>,
    content: Option<Value>,
    timestamp: Option<f64>,
    model: Option<String>,
}

pub(crate) fn draft(doc: &Doc, id: Id) -> Result<Draft, String> {
    let chat = doc
        .get(id, "chat")
        .filter(|&c| doc.obj(c).is_some())
        .unwrap_or(id);
    let skip = ["chat", "history", "messages"];
    let entry: Header = doc.pick(id, &skip)?;
    let inner: Header = if chat == id {
        Header {
            id: None,
            title: None,
            created_at: None,
            timestamp: None,
        }
    } else {
        doc.pick(chat, &skip)?
    };
    let history = doc
        .get(chat, "history")
        .filter(|&h| doc.obj(h).is_some())
        .ok_or("no chat.history")?;
    let messages = doc
        .get(history, "messages")
        .and_then(|m| doc.obj(m))
        .ok_or("chat.history.messages is not an object")?;
    if messages.len() > MAX_MESSAGES_PER_CONVERSATION {
        return Err(tree::too_many_messages(messages.len()));
    }
    let mut nodes = Vec::with_capacity(messages.len());
    for (key, m) in messages {
        let message: OwMessage = doc
            .pick(*m, &["output"])
            .map_err(|e| format!("message {:?}: {e}", tree::clip(key)))?;
        let text = match &message.content {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Array(parts)) => tree::join_paragraphs(
                parts
                    .iter()
                    .filter_map(|p| p.get("text").and_then(Value::as_str)),
            ),
            _ => String::new(),
        };
        let kind = match message.role.as_deref() {
            Some("user") => {
                let (text, _) = split_content(&text);
                Kind::Keep {
                    role: Role::User,
                    text,
                    reasoning: String::new(),
                    model: None,
                }
            }
            Some("assistant") => {
                let (text, reasoning) = split_content(&text);
                Kind::Keep {
                    role: Role::Assistant,
                    text,
                    reasoning,
                    model: message.model,
                }
            }
            _ => Kind::Drop,
        };
        nodes.push(RawNode {
            id: key.clone(),
            parent: message.parent_id,
            children: message.children_ids.unwrap_or_default(),
            kind,
            created_at: message.timestamp.and_then(tree::from_epoch),
        });
    }
    Ok(Draft {
        source: Source::OpenWebUi,
        external_id: entry.id.or(inner.id),
        title: entry.title.or(inner.title),
        created_at: entry
            .created_at
            .or(inner.created_at)
            .or(entry.timestamp)
            .or(inner.timestamp)
            .and_then(tree::from_epoch),
        nodes,
        current: doc.get_str(history, "currentId").map(str::to_owned),
    })
}

const OPEN: &str = "<details";
const CLOSE: &str = "</details>";

/// Where the next `<details` tag (followed by white space or `>`) starts in `s`.
fn find_open(s: &str) -> Option<usize> {
    let mut from = 0;
    while let Some(at) = s[from..].find(OPEN) {
        let at = from + at;
        let after = &s[at + OPEN.len()..];
        if after.starts_with(|c: char| c == '>' || c.is_whitespace()) {
            return Some(at);
        }
        from = at + OPEN.len();
    }
    None
}

/// The value of attribute `type` in an opening tag.
fn type_of(tag: &str) -> Option<&str> {
    let at = tag.find("type=")?;
    let value = &tag[at + "type=".len()..];
    let quote = value.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &value[1..];
    value.find(quote).map(|end| &value[..end])
}

/// `content` split into its text and its reasoning (see the module docs).
pub fn split_content(content: &str) -> (String, String) {
    let mut text = String::with_capacity(content.len());
    let mut reasoning: Vec<String> = Vec::new();
    let mut removed = false;
    let mut rest = content;
    while let Some(start) = find_open(rest) {
        text.push_str(&rest[..start]);
        let block = &rest[start..];
        let Some(gt) = block.find('>') else {
            text.push_str(block);
            rest = "";
            break;
        };
        let tag = &block[..gt];
        let body = &block[gt + 1..];
        // The matching close, counting nested blocks; an unclosed block runs to the end.
        let mut depth = 1;
        let mut at = 0;
        let (inner, after) = loop {
            let next_open = find_open(&body[at..]).map(|i| at + i);
            let next_close = body[at..].find(CLOSE).map(|i| at + i);
            match (next_open, next_close) {
                (Some(o), Some(c)) if o < c => {
                    depth += 1;
                    at = o + OPEN.len();
                }
                (_, Some(c)) => {
                    depth -= 1;
                    at = c + CLOSE.len();
                    if depth == 0 {
                        break (&body[..c], &body[at..]);
                    }
                }
                (_, None) => break (body, ""),
            }
        };
        match type_of(tag) {
            Some("reasoning") => {
                reasoning.push(reasoning_text(inner));
                removed = true;
            }
            Some("tool_calls" | "code_interpreter") => removed = true,
            _ => text.push_str(&block[..block.len() - after.len()]),
        }
        rest = after;
    }
    text.push_str(rest);
    if let Some(after_open) = text.trim_start().strip_prefix("<think>")
        && let Some(end) = after_open.find("</think>")
    {
        reasoning.insert(0, after_open[..end].trim().to_owned());
        text = after_open[end + "</think>".len()..].to_owned();
        removed = true;
    }
    if removed {
        text = text.trim().to_owned();
    }
    (
        text,
        tree::join_paragraphs(reasoning.iter().map(String::as_str)),
    )
}

/// The reasoning inside a `<details type="reasoning">` block.
fn reasoning_text(inner: &str) -> String {
    let inner = match (inner.find("<summary>"), inner.find("</summary>")) {
        (Some(s), Some(e)) if s < e => {
            format!("{}{}", &inner[..s], &inner[e + "</summary>".len()..])
        }
        _ => inner.to_owned(),
    };
    let decoded = unescape_html(&inner);
    let lines: Vec<&str> = decoded.trim().lines().collect();
    let quoted = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .all(|l| l.trim_start().starts_with('>'));
    if !quoted {
        return decoded.trim().to_owned();
    }
    lines
        .iter()
        .map(|l| {
            let l = l.trim_start();
            let l = l.strip_prefix('>').unwrap_or(l);
            l.strip_prefix(' ').unwrap_or(l)
        })
        .collect::<Vec<_>>()
        .join("\n")
        .trim()
        .to_owned()
}

/// `s` with `&amp;`, `&lt;`, `&gt;`, `&quot;`, `&apos;` and numeric character references
/// decoded; anything else left as it is.
fn unescape_html(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let decoded = after.find(';').filter(|&end| end <= 10).and_then(|end| {
            let name = &after[..end];
            let c = match name {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => {
                    let n = name.strip_prefix('#')?;
                    let code = match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                        None => n.parse().ok()?,
                    };
                    char::from_u32(code)
                }
            }?;
            Some((c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &after[end + 1..];
            }
            None => {
                out.push('&');
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
    use super::super::{Conversation, Parsed, parse};
    use super::*;

    fn one(value: Value) -> Parsed {
        let parsed = parse(value.to_string().as_bytes()).unwrap();
        check(&parsed);
        parsed
    }

    fn ids(c: &Conversation) -> Vec<&str> {
        c.messages.iter().map(|m| m.id.as_str()).collect()
    }

    #[test]
    fn the_export_yields_three_chats_with_reasoning_and_tool_calls_taken_out() {
        let parsed = parse(&fixture("openwebui-export.json")).unwrap();
        check(&parsed);
        assert!(parsed.skipped.is_empty());
        let c: Vec<_> = parsed.conversations.iter().collect();
        assert_eq!(
            c.iter().map(|c| c.external_id.as_str()).collect::<Vec<_>>(),
            ["reasoning-chat", "tool-chat", "simple-chat"]
        );
        assert_eq!(c[0].title.as_deref(), Some("Chat with reasoning"));
        assert_eq!(c[0].created_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(ids(c[0]), ["ra1", "ra2"]);
        let answer = &c[0].messages[1];
        assert_eq!(answer.parent_id.as_deref(), Some("ra1"));
        assert_eq!(answer.text, "255");
        assert_eq!(answer.reasoning, "Let me break this down...");
        assert_eq!(answer.model.as_deref(), Some("deepseek-r1"));
        assert_eq!(answer.created_at.unwrap().timestamp(), 1_700_000_010);
        assert_eq!(c[0].current_id.as_deref(), Some("ra2"));

        assert_eq!(c[1].title.as_deref(), Some("Chat with tool call"));
        assert_eq!(
            c[1].messages[1].text,
            "The weather in Paris is 18C with rain."
        );
        assert_eq!(c[1].messages[1].reasoning, "");
        assert!(
            c.iter()
                .all(|c| c.messages.iter().all(|m| !m.text.contains("<details")))
        );

        assert_eq!(c[2].messages[1].text, "Hi there!");
        assert_eq!(c[2].messages[1].model.as_deref(), Some("llama3.1:latest"));
        assert_eq!(c[2].current_id.as_deref(), Some("sa2"));
    }

    #[test]
    fn a_single_chat_with_branches_follows_children_ids() {
        let parsed = one(serde_json::json!({
            "id": "one",
            "chat": {"title": "From chat", "timestamp": 1_700_000_000_000_u64, "history": {
                "currentId": "b2",
                "messages": {
                    "b2": {"parentId": "u", "childrenIds": [], "role": "assistant", "content": "second"},
                    "s": {"parentId": null, "childrenIds": ["u"], "role": "system", "content": "be brief"},
                    "b1": {"parentId": "u", "childrenIds": [], "role": "assistant", "content": "first"},
                    "u": {"parentId": "s", "childrenIds": ["b1", "b2"], "role": "user", "content": "q"},
                }
            }}
        }));
        let c = &parsed.conversations[0];
        assert_eq!(c.title.as_deref(), Some("From chat"));
        assert_eq!(c.created_at.unwrap().timestamp(), 1_700_000_000);
        assert_eq!(ids(c), ["u", "b1", "b2"]);
        assert_eq!(
            c.messages[0].parent_id, None,
            "the system message is dropped"
        );
        assert_eq!(c.current_id.as_deref(), Some("b2"));
    }

    #[test]
    fn chats_without_history_are_skipped() {
        let parsed = one(serde_json::json!([
            {"id": "a", "title": "No history", "chat": {"history": {"messages": []}}},
            {"id": "b", "chat": {"history": {"messages": {"x": {"role": "user", "content": "hi"}}}}},
        ]));
        assert_eq!(parsed.conversations.len(), 1);
        assert_eq!(
            parsed.skipped[0].reason,
            "chat.history.messages is not an object"
        );
        assert_eq!(parsed.skipped[0].title.as_deref(), Some("No history"));
    }

    #[test]
    fn details_blocks_are_split_out() {
        let split = |s: &str| split_content(s);
        assert_eq!(
            split(
                "<details type=\"reasoning\" done=\"true\">\n<summary>Thought</summary>\n> a &amp; b\n> c\n</details>\nAnswer"
            ),
            ("Answer".into(), "a & b\nc".into())
        );
        assert_eq!(
            split(
                "<details type=\"tool_calls\" done=\"true\"><summary>x</summary><details type=\"result\">r</details></details>ok"
            ),
            ("ok".into(), String::new())
        );
        assert_eq!(
            split("<details><summary>Spoiler</summary>hidden</details> kept"),
            (
                "<details><summary>Spoiler</summary>hidden</details> kept".into(),
                String::new()
            )
        );
        assert_eq!(
            split("<details type=\"reasoning\"><summary>Thinking…</summary>still going"),
            (String::new(), "still going".into())
        );
        assert_eq!(
            split("<think>hmm</think>\n\nyes"),
            ("yes".into(), "hmm".into())
        );
        assert_eq!(
            split("<detailsx> a & b &#x41;&#66;&bogus;"),
            ("<detailsx> a & b &#x41;&#66;&bogus;".into(), String::new())
        );
        assert_eq!(unescape_html("&#x41;&#66;&bogus; &"), "AB&bogus; &");
        assert_eq!(
            split("<details type=\"reasoning\""),
            ("<details type=\"reasoning\"".into(), String::new())
        );
    }
}
