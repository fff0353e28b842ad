//! Conversation exports of other chat apps, read into one normalized shape.
//!
//! Pure: bytes in, [`Parsed`] out; no I/O, no database. [`parse`] detects the format:
//!
//! | format | looks like | module |
//! |---|---|---|
//! | ChatGPT `conversations.json` | an array of `{mapping, current_node, …}`, or one such object | [`chatgpt`] |
//! | LibreChat JSON export | `{conversationId, recursive, messages, options}` | [`librechat`] |
//! | Open WebUI | `[{id, title, chat: {history: {messages, currentId}}}]`, or one | [`openwebui`] |
//! | Chatbot UI v4 | `{version, history: [{messages: [{role, content}]}], folders, prompts}` | [`chatbotui`] |
//! | Threadline's thread export | `{"format": "threadline.thread", "version": 1, …}`, or an array | [`threadline`] |
//! | Threadline's account export | a zip of `threads/*.json` ([`parse_file`]) | [`archive`] |
//!
//! An array may mix formats: each entry is detected on its own.
//!
//! # Rules every format shares
//! - Only user and assistant messages are kept; each format's module says what else it drops.
//!   A dropped message's children are re-attached to its nearest kept ancestor, so the tree
//!   keeps its branch points; a message with neither text nor reasoning is dropped.
//! - [`Conversation::messages`] lists parents before children (depth-first, children in the
//!   export's order); a parent the export does not hold makes the message a root.
//! - Message ids are kept when they are 1–128 characters of `[A-Za-z0-9_-]`, and otherwise
//!   mapped deterministically (invalid characters replaced by `_`, plus 16 hex digits of a
//!   SHA-256 of the original id). Formats without message ids get `m0`, `m1`, … by position.
//! - Text and reasoning lose control characters but tab, line feed and carriage return; titles
//!   and model names become one trimmed line of at most 200 characters.
//! - Models are recorded on assistant messages only.
//! - `external_id` is the export's conversation id (hashed when it is longer than 200
//!   characters or holds control characters); without one, `sha256-` and 32 hex digits of a
//!   hash of the source, title and messages.
//! - `current_id` is the export's current leaf, or its nearest kept ancestor when that leaf
//!   was dropped; when the export names none, the only leaf of a conversation that has one.
//! - A conversation's `created_at`, when the export gives none, is its earliest message's.
//! - Epoch times are read as seconds, or as milliseconds, microseconds or nanoseconds when
//!   too large to be seconds; RFC 3339 times are converted to UTC; unreadable times are `None`.
//!
//! # Failures
//! A conversation that cannot be read (no `mapping`, a field of the wrong type, more than
//! [`MAX_MESSAGES_PER_CONVERSATION`] messages, no user or assistant message at all, an entry of
//! no known format) is [skipped](Skipped) with its reason; the others are still read. Only the
//! whole file fails: it is not JSON ([`ImportError::NotJson`]), no part of it has a known shape
//! ([`ImportError::UnknownFormat`]), or it holds more than [`MAX_CONVERSATIONS`] conversations
//! ([`ImportError::TooMany`]). An empty array is an export of no conversations. Nesting costs
//! no stack (the JSON parser is iterative), and nothing here panics.

pub mod archive;
pub mod chatbotui;
pub mod chatgpt;
mod json;
pub mod librechat;
pub mod openwebui;
pub mod threadline;
mod tree;

use chrono::{DateTime, Utc};
use serde::Serialize;

use json::{Doc, Id, Node};
use tree::Draft;

/// Most conversations one file may hold.
pub const MAX_CONVERSATIONS: usize = 10_000;
/// Most messages (as the export counts them, dropped ones included) one conversation may hold.
pub const MAX_MESSAGES_PER_CONVERSATION: usize = 20_000;

/// The app an export comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    ChatGpt,
    LibreChat,
    OpenWebUi,
    ChatbotUi,
    Threadline,
}

impl Source {
    /// The source's name: `chatgpt`, `librechat`, `openwebui`, `chatbotui` or `threadline`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ChatGpt => "chatgpt",
            Self::LibreChat => "librechat",
            Self::OpenWebUi => "openwebui",
            Self::ChatbotUi => "chatbotui",
            Self::Threadline => "threadline",
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

/// One message of an imported conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Message {
    /// 1–128 characters of `[A-Za-z0-9_-]`, unique within the conversation.
    pub id: String,
    /// A message earlier in [`Conversation::messages`], or `None` for a root.
    pub parent_id: Option<String>,
    pub role: Role,
    /// No control characters but `\t`, `\n` and `\r`.
    pub text: String,
    /// Reasoning (thinking) text when the export has it, else empty.
    pub reasoning: String,
    pub model: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
}

/// One imported conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conversation {
    pub source: Source,
    /// The export's own conversation id, or a hash of the content when it has none.
    pub external_id: String,
    /// Trimmed, at most 200 characters, no control characters.
    pub title: Option<String>,
    pub created_at: Option<DateTime<Utc>>,
    /// Parents before children; never empty.
    pub messages: Vec<Message>,
    /// The current leaf (a mapped id in `messages`).
    pub current_id: Option<String>,
}

/// A conversation of the file that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// Its position in the file's list of conversations (0 for a file of one).
    pub index: usize,
    pub external_id: Option<String>,
    pub title: Option<String>,
    pub reason: String,
}

/// What a file yields.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Parsed {
    pub conversations: Vec<Conversation>,
    pub skipped: Vec<Skipped>,
}

/// Why a whole file cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImportError {
    #[error("the file is not JSON: {0}")]
    NotJson(String),
    #[error("the file is not a conversation export of a known format")]
    UnknownFormat,
    #[error("the file holds more than {limit} conversations")]
    TooMany { limit: usize },
    #[error("the archive unpacks to more than {limit} bytes")]
    TooLarge { limit: u64 },
}

/// Reads an uploaded file: a Threadline account export (zip, see [`archive`]) or a JSON export
/// of any known format ([`parse`]).
pub fn parse_file(bytes: &[u8]) -> Result<Parsed, ImportError> {
    if archive::is_zip(bytes) {
        archive::parse_archive(bytes)
    } else {
        parse(bytes)
    }
}

/// Reads an export of any known format.
pub fn parse(bytes: &[u8]) -> Result<Parsed, ImportError> {
    let doc = Doc::parse(bytes).map_err(ImportError::NotJson)?;
    let root = doc.root();
    let entries: Vec<(Id, Option<Source>)> = match doc.node(root) {
        Node::Arr(items) => {
            if items.len() > MAX_CONVERSATIONS {
                return Err(ImportError::TooMany {
                    limit: MAX_CONVERSATIONS,
                });
            }
            if items.is_empty() {
                return Ok(Parsed::default());
            }
            let entries: Vec<_> = items.iter().map(|&i| (i, detect(&doc, i))).collect();
            if entries.iter().all(|(_, source)| source.is_none()) {
                return Err(ImportError::UnknownFormat);
            }
            entries
        }
        Node::Obj(_) if chatbotui::is_export(&doc, root) => {
            let history = doc.get_arr(root, "history").unwrap_or_default();
            if history.len() > MAX_CONVERSATIONS {
                return Err(ImportError::TooMany {
                    limit: MAX_CONVERSATIONS,
                });
            }
            history
                .iter()
                .map(|&i| (i, Some(Source::ChatbotUi)))
                .collect()
        }
        Node::Obj(_) => match detect(&doc, root) {
            Some(source) => vec![(root, Some(source))],
            None => return Err(ImportError::UnknownFormat),
        },
        _ => return Err(ImportError::UnknownFormat),
    };
    let mut parsed = Parsed::default();
    for (index, (id, source)) in entries.into_iter().enumerate() {
        let result = match source {
            Some(source) => draft(source, &doc, id).and_then(Draft::build),
            None => Err("not a conversation of a known format".to_owned()),
        };
        match result {
            Ok(conversation) => parsed.conversations.push(conversation),
            Err(reason) => {
                let (external_id, title) = describe(source, &doc, id);
                parsed.skipped.push(Skipped {
                    index,
                    external_id: external_id.and_then(|s| tree::clean_line(s, 200)),
                    title: title.and_then(|s| tree::clean_line(s, tree::MAX_TITLE_CHARS)),
                    reason,
                });
            }
        }
    }
    Ok(parsed)
}

/// The format of one conversation object.
fn detect(doc: &Doc, id: Id) -> Option<Source> {
    doc.obj(id)?;
    if threadline::matches(doc, id) {
        Some(Source::Threadline)
    } else if chatgpt::matches(doc, id) {
        Some(Source::ChatGpt)
    } else if openwebui::matches(doc, id) {
        Some(Source::OpenWebUi)
    } else if librechat::matches(doc, id) {
        Some(Source::LibreChat)
    } else {
        None
    }
}

fn draft(source: Source, doc: &Doc, id: Id) -> Result<Draft, String> {
    match source {
        Source::ChatGpt => chatgpt::draft(doc, id),
        Source::LibreChat => librechat::draft(doc, id),
        Source::OpenWebUi => openwebui::draft(doc, id),
        Source::ChatbotUi => chatbotui::draft(doc, id),
        Source::Threadline => threadline::draft(doc, id),
    }
}

/// The id and title of a conversation that could not be read, as far as they can be found.
fn describe(source: Option<Source>, doc: &Doc, id: Id) -> (Option<&str>, Option<&str>) {
    let first = |keys: &[&str]| keys.iter().find_map(|k| doc.get_str(id, k));
    let chat = doc.get(id, "chat");
    match source {
        Some(Source::ChatGpt) => (first(&["conversation_id", "id"]), first(&["title"])),
        Some(Source::LibreChat) => (first(&["conversationId"]), first(&["title"])),
        Some(Source::OpenWebUi) => (
            first(&["id"]),
            first(&["title"]).or_else(|| chat.and_then(|c| doc.get_str(c, "title"))),
        ),
        Some(Source::ChatbotUi) => (first(&["id"]), first(&["name"])),
        Some(Source::Threadline) | None => (first(&["id"]), first(&["title"])),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::collections::HashSet;

    use super::*;

    pub(crate) const FIXTURES: [&str; 12] = [
        "chatbotui-export.json",
        "chatgpt-citations.json",
        "chatgpt-export.json",
        "chatgpt-modern-export.json",
        "chatgpt-tree.json",
        "librechat-export.json",
        "librechat-linear.json",
        "librechat-opts-nonr-branches.json",
        "librechat-tree.json",
        "openwebui-export.json",
        "pionxzh-image-generation.json",
        "pionxzh-thinking-summaries.json",
    ];

    pub(crate) fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/imports/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Every invariant [`Conversation`] promises.
    pub(crate) fn check(parsed: &Parsed) {
        for c in &parsed.conversations {
            assert!(!c.messages.is_empty());
            assert!(!c.external_id.is_empty());
            if let Some(title) = &c.title {
                threadline_domain::values::Title::parse(title).unwrap();
                assert_eq!(title.trim(), title);
            }
            let mut seen = HashSet::new();
            for m in &c.messages {
                threadline_domain::values::MessageId::parse(&m.id)
                    .unwrap_or_else(|e| panic!("{:?}: {e}", m.id));
                if let Some(parent) = &m.parent_id {
                    assert!(seen.contains(parent.as_str()), "{} before its parent", m.id);
                }
                assert!(seen.insert(m.id.as_str()), "{} twice", m.id);
                threadline_domain::values::check_prose(&m.text).unwrap();
                threadline_domain::values::check_prose(&m.reasoning).unwrap();
                assert!(!m.text.trim().is_empty() || !m.reasoning.trim().is_empty());
                if m.role == Role::User {
                    assert_eq!(m.model, None);
                }
            }
            if let Some(current) = &c.current_id {
                assert!(seen.contains(current.as_str()));
            }
        }
    }

    #[test]
    fn every_fixture_parses_keeps_the_invariants_and_parses_the_same_twice() {
        for name in FIXTURES {
            let bytes = fixture(name);
            let parsed = parse(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(!parsed.conversations.is_empty(), "{name}");
            check(&parsed);
            assert_eq!(parse(&bytes).unwrap(), parsed, "{name}");
        }
    }

    #[test]
    fn each_fixture_is_detected_as_its_format() {
        for (name, source) in [
            ("chatbotui-export.json", Source::ChatbotUi),
            ("chatgpt-export.json", Source::ChatGpt),
            ("pionxzh-thinking-summaries.json", Source::ChatGpt),
            ("librechat-tree.json", Source::LibreChat),
            ("librechat-linear.json", Source::LibreChat),
            ("openwebui-export.json", Source::OpenWebUi),
        ] {
            let parsed = parse(&fixture(name)).unwrap();
            assert!(
                parsed.conversations.iter().all(|c| c.source == source),
                "{name}"
            );
        }
        assert_eq!(Source::OpenWebUi.as_str(), "openwebui");
        assert_eq!(
            serde_json::to_value(Source::ChatbotUi).unwrap(),
            serde_json::json!("chatbotui")
        );
    }

    #[test]
    fn a_file_that_is_not_json_is_not_json() {
        for bytes in [
            &b""[..],
            b"hello",
            b"{\"a\":",
            b"\xff\xfe\x00",
            b"[1,]",
            b"{} x",
        ] {
            assert!(
                matches!(parse(bytes), Err(ImportError::NotJson(_))),
                "{bytes:?}"
            );
        }
    }

    #[test]
    fn json_of_no_known_shape_is_an_unknown_format() {
        for s in [
            "{}",
            "null",
            "42",
            "\"conversations\"",
            "[1, 2]",
            "[[]]",
            "[{}]",
            r#"{"messages": []}"#,
            r#"{"history": "x", "version": 4}"#,
        ] {
            assert_eq!(parse(s.as_bytes()), Err(ImportError::UnknownFormat), "{s}");
        }
        assert_eq!(parse(b"[]"), Ok(Parsed::default()));
    }

    #[test]
    fn deeply_nested_garbage_neither_overflows_nor_imports() {
        let depth = 200_000;
        let arrays = "[".repeat(depth) + &"]".repeat(depth);
        assert_eq!(parse(arrays.as_bytes()), Err(ImportError::UnknownFormat));
        let objects = "{\"a\":".repeat(depth) + "1" + &"}".repeat(depth);
        assert_eq!(parse(objects.as_bytes()), Err(ImportError::UnknownFormat));
        // Deep garbage inside a message skips that conversation only.
        let deep = "[".repeat(depth) + &"]".repeat(depth);
        let file = format!(
            r#"[{{"id": "bad", "mapping": {{"a": {{"id": "a", "message": {{"author": {{"role": "user"}},
                "content": {{"content_type": "text", "parts": {deep}}}}}}}}}}},
               {{"id": "good", "mapping": {{"a": {{"id": "a", "message": {{"author": {{"role": "user"}},
                "content": {{"content_type": "text", "parts": ["hi"]}}}}}}}}}}]"#
        );
        let parsed = parse(file.as_bytes()).unwrap();
        assert_eq!(parsed.conversations.len(), 1);
        assert_eq!(parsed.conversations[0].external_id, "good");
        assert_eq!(parsed.skipped.len(), 1);
        assert_eq!(parsed.skipped[0].external_id.as_deref(), Some("bad"));
        assert!(
            parsed.skipped[0].reason.contains("nested"),
            "{:?}",
            parsed.skipped
        );
    }

    #[test]
    fn more_conversations_than_the_limit_is_too_many() {
        let file = format!("[{}{{}}]", "{},".repeat(MAX_CONVERSATIONS));
        assert_eq!(
            parse(file.as_bytes()),
            Err(ImportError::TooMany {
                limit: MAX_CONVERSATIONS
            })
        );
        let history = format!(
            r#"{{"version": 4, "history": [{}{{}}]}}"#,
            "{},".repeat(MAX_CONVERSATIONS)
        );
        assert_eq!(
            parse(history.as_bytes()),
            Err(ImportError::TooMany {
                limit: MAX_CONVERSATIONS
            })
        );
    }

    #[test]
    fn entries_of_no_known_format_in_an_array_are_skipped_with_the_rest_read() {
        let mut file = fixture("chatgpt-tree.json");
        while file.last().is_some_and(u8::is_ascii_whitespace) {
            file.pop();
        }
        assert_eq!(file.pop(), Some(b']'));
        file.extend_from_slice(br#", {"id": "x", "title": "Stray"}, 7]"#);
        let parsed = parse(&file).unwrap();
        assert_eq!(parsed.conversations.len(), 1);
        assert_eq!(
            parsed.skipped,
            [
                Skipped {
                    index: 1,
                    external_id: Some("x".into()),
                    title: Some("Stray".into()),
                    reason: "not a conversation of a known format".into(),
                },
                Skipped {
                    index: 2,
                    external_id: None,
                    title: None,
                    reason: "not a conversation of a known format".into(),
                },
            ]
        );
    }

    #[test]
    fn formats_can_mix_in_one_array() {
        let file = format!(
            "[{}, {}]",
            String::from_utf8(fixture("librechat-linear.json")).unwrap(),
            String::from_utf8(fixture("pionxzh-thinking-summaries.json")).unwrap()
        );
        let parsed = parse(file.as_bytes()).unwrap();
        let sources: Vec<_> = parsed.conversations.iter().map(|c| c.source).collect();
        assert_eq!(sources, [Source::LibreChat, Source::ChatGpt]);
    }
}
