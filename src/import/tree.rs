//! What every format shares: a conversation read from an export becomes a [`Draft`] of raw
//! nodes (original ids and parent ids, each node kept, dropped or carrying reasoning), and
//! [`Draft::build`] turns it into a [`Conversation`]:
//!
//! - a parent that is missing (or the node itself) makes the node a root; a node with no parent
//!   at all takes as parent a node that lists it among its children;
//! - the tree is walked depth-first from the roots (in input order), children in the order the
//!   export lists them, then the others in input order; nodes left over hang in or below
//!   cycles, and the cycle above the first of them in input order is cut at the node reached first going up (so
//!   a cycle loses one edge, never its nodes);
//! - a dropped node's children are re-attached to its nearest kept ancestor;
//! - reasoning nodes add their text to the next kept assistant message below them; a user
//!   message in between discards it;
//! - a message with neither text nor reasoning of its own is dropped like any other node;
//! - ids that are not 1–128 characters of `[A-Za-z0-9_-]` are mapped (see [`map_ids`]);
//! - the current leaf is the named node's nearest kept ancestor-or-self; when the export names
//!   none (or one that is not there) and the conversation has exactly one leaf, that leaf.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use super::{Conversation, MAX_MESSAGES_PER_CONVERSATION, Message, Role, Source};

/// What a raw node becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A user or assistant message (`reasoning` is the message's own).
    Keep {
        role: Role,
        text: String,
        reasoning: String,
        model: Option<String>,
    },
    /// Reasoning for the next kept assistant message.
    Reasoning(String),
    /// Not part of the conversation (its children are re-attached).
    Drop,
}

/// A node as the export has it.
#[derive(Debug, Clone)]
pub(crate) struct RawNode {
    pub(crate) id: String,
    pub(crate) parent: Option<String>,
    /// The export's order of this node's children, when it gives one.
    pub(crate) children: Vec<String>,
    pub(crate) kind: Kind,
    pub(crate) created_at: Option<DateTime<Utc>>,
}

/// A conversation as the export has it.
#[derive(Debug, Clone)]
pub(crate) struct Draft {
    pub(crate) source: Source,
    pub(crate) external_id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) created_at: Option<DateTime<Utc>>,
    pub(crate) nodes: Vec<RawNode>,
    pub(crate) current: Option<String>,
}

/// A kept message before ids are mapped.
struct Out {
    node: usize,
    parent: Option<usize>,
    reasoning: String,
}

impl Draft {
    /// The normalized conversation, or why there is none.
    pub(crate) fn build(self) -> Result<Conversation, String> {
        let n = self.nodes.len();
        if n > MAX_MESSAGES_PER_CONVERSATION {
            return Err(too_many_messages(n));
        }
        let mut index: HashMap<&str, usize> = HashMap::with_capacity(n);
        for (i, node) in self.nodes.iter().enumerate() {
            if index.insert(node.id.as_str(), i).is_some() {
                return Err(format!("message id {:?} appears twice", clip(&node.id)));
            }
        }
        // A node with no parent at all may be listed as a child (the pionxzh roots).
        let mut listed_by: HashMap<usize, usize> = HashMap::new();
        for (i, node) in self.nodes.iter().enumerate() {
            for child in &node.children {
                if let Some(&c) = index.get(child.as_str()) {
                    listed_by.entry(c).or_insert(i);
                }
            }
        }
        let parent: Vec<Option<usize>> = self
            .nodes
            .iter()
            .enumerate()
            .map(|(i, node)| match &node.parent {
                Some(p) => index.get(p.as_str()).copied().filter(|&p| p != i),
                None => listed_by.get(&i).copied().filter(|&p| p != i),
            })
            .collect();
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); n];
        let mut placed = vec![false; n];
        for (i, node) in self.nodes.iter().enumerate() {
            for child in &node.children {
                if let Some(&c) = index.get(child.as_str())
                    && parent[c] == Some(i)
                    && !placed[c]
                {
                    placed[c] = true;
                    children[i].push(c);
                }
            }
        }
        for (c, p) in parent.iter().enumerate() {
            if let Some(p) = *p
                && !placed[c]
            {
                children[p].push(c);
            }
        }

        // Depth-first, each entry with its nearest kept ancestor and the pending reasoning.
        let mut visited = vec![false; n];
        let mut anchor: Vec<Option<usize>> = vec![None; n];
        let mut out: Vec<Out> = Vec::new();
        let mut stack: Vec<(usize, Option<usize>, String)> = Vec::new();
        let mut roots = (0..n).filter(|&i| parent[i].is_none()).collect::<Vec<_>>();
        roots.reverse();
        let mut next_unvisited = 0;
        loop {
            let (i, above, mut pending) = if let Some(entry) = stack.pop() {
                entry
            } else if let Some(root) = roots.pop() {
                (root, None, String::new())
            } else {
                // What is left hangs in or below a cycle: up from the first such node to the
                // cycle, whose node reached first becomes a root.
                while next_unvisited < n && visited[next_unvisited] {
                    next_unvisited += 1;
                }
                if next_unvisited == n {
                    break;
                }
                let mut x = next_unvisited;
                let mut walked = HashSet::new();
                while walked.insert(x) {
                    match parent[x] {
                        Some(p) if !visited[p] => x = p,
                        _ => break,
                    }
                }
                (x, None, String::new())
            };
            if visited[i] {
                continue;
            }
            visited[i] = true;
            let mut here = above;
            match &self.nodes[i].kind {
                Kind::Keep {
                    role,
                    text,
                    reasoning,
                    ..
                } if !(blank(text) && blank(reasoning)) => {
                    let reasoning = match role {
                        Role::Assistant => join_paragraphs([pending.as_str(), reasoning]),
                        Role::User => reasoning.clone(),
                    };
                    pending.clear();
                    out.push(Out {
                        node: i,
                        parent: above,
                        reasoning,
                    });
                    here = Some(out.len() - 1);
                }
                Kind::Reasoning(r) => pending = join_paragraphs([pending.as_str(), r]),
                Kind::Keep { .. } | Kind::Drop => {}
            }
            anchor[i] = here;
            for &c in children[i].iter().rev() {
                if !visited[c] {
                    stack.push((c, here, pending.clone()));
                }
            }
        }
        if out.is_empty() {
            return Err("no user or assistant messages".into());
        }

        let ids = map_ids(out.iter().map(|o| self.nodes[o.node].id.as_str()));
        let mut messages = Vec::with_capacity(out.len());
        for (o, id) in out.iter().zip(&ids) {
            let node = &self.nodes[o.node];
            let Kind::Keep {
                role, text, model, ..
            } = &node.kind
            else {
                continue;
            };
            messages.push(Message {
                id: id.clone(),
                parent_id: o.parent.and_then(|p| ids.get(p).cloned()),
                role: *role,
                text: clean_text(text),
                reasoning: clean_text(&o.reasoning),
                model: model
                    .as_deref()
                    .and_then(|m| clean_line(m, MAX_MODEL_CHARS)),
                created_at: node.created_at,
            });
        }
        let named = self
            .current
            .as_deref()
            .and_then(|c| index.get(c))
            .and_then(|&c| anchor[c])
            .and_then(|o| ids.get(o).cloned());
        let current_id = named.or_else(|| {
            let parents: HashSet<&str> = messages
                .iter()
                .filter_map(|m| m.parent_id.as_deref())
                .collect();
            let mut leaves = messages.iter().filter(|m| !parents.contains(m.id.as_str()));
            match (leaves.next(), leaves.next()) {
                (Some(leaf), None) => Some(leaf.id.clone()),
                _ => None,
            }
        });
        let title = self
            .title
            .as_deref()
            .and_then(|t| clean_line(t, MAX_TITLE_CHARS));
        let created_at = self
            .created_at
            .or_else(|| messages.iter().filter_map(|m| m.created_at).min());
        let external_id = self
            .external_id
            .as_deref()
            .and_then(clean_external_id)
            .unwrap_or_else(|| content_hash(self.source, title.as_deref(), &messages));
        Ok(Conversation {
            source: self.source,
            external_id,
            title,
            created_at,
            messages,
            current_id,
        })
    }
}

/// Longest title kept, in characters.
pub(crate) const MAX_TITLE_CHARS: usize = 200;
/// Longest model name kept, in characters.
const MAX_MODEL_CHARS: usize = 200;
/// Longest external id kept as is, in characters (longer ones are hashed).
const MAX_EXTERNAL_ID_CHARS: usize = 200;

pub(crate) fn too_many_messages(n: usize) -> String {
    format!("{n} messages, more than the {MAX_MESSAGES_PER_CONVERSATION} a conversation may hold")
}

/// Whether `s` holds nothing but white space and control characters.
pub(crate) fn blank(s: &str) -> bool {
    s.chars().all(|c| c.is_whitespace() || c.is_control())
}

/// Non-empty paragraphs joined by a blank line.
pub(crate) fn join_paragraphs<'a>(parts: impl IntoIterator<Item = &'a str>) -> String {
    parts
        .into_iter()
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Prose: control characters but tab, line feed and carriage return removed.
pub(crate) fn clean_text(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
        .collect()
}

/// One line: tabs and line breaks become spaces, other control characters go, then trimmed
/// and cut to `max` characters; `None` when nothing is left.
pub(crate) fn clean_line(s: &str, max: usize) -> Option<String> {
    let line: String = s
        .chars()
        .filter_map(|c| match c {
            '\t' | '\n' | '\r' => Some(' '),
            c if c.is_control() => None,
            c => Some(c),
        })
        .collect();
    let cut: String = line.trim().chars().take(max).collect();
    let cut = cut.trim_end();
    (!cut.is_empty()).then(|| cut.to_owned())
}

/// The export's id of a conversation: kept when it is a printable line of at most 200
/// characters, else replaced by its hash.
fn clean_external_id(s: &str) -> Option<String> {
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.chars().count() <= MAX_EXTERNAL_ID_CHARS && !trimmed.chars().any(char::is_control) {
        return Some(trimmed.to_owned());
    }
    Some(format!("sha256-{}", short_hash(&[trimmed.as_bytes()], 16)))
}

/// The first `bytes` bytes of the SHA-256 of the length-prefixed `parts`, in hex.
pub(crate) fn short_hash(parts: &[&[u8]], bytes: usize) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    hex::encode(digest.get(..bytes).unwrap_or(&digest))
}

/// The id of a conversation whose export has none: a hash of what it says.
fn content_hash(source: Source, title: Option<&str>, messages: &[Message]) -> String {
    let mut parts: Vec<&[u8]> = vec![source.as_str().as_bytes(), title.unwrap_or("").as_bytes()];
    for m in messages {
        parts.push(m.id.as_bytes());
        parts.push(m.parent_id.as_deref().unwrap_or("").as_bytes());
        parts.push(match m.role {
            Role::User => b"user",
            Role::Assistant => b"assistant",
        });
        parts.push(m.text.as_bytes());
    }
    format!("sha256-{}", short_hash(&parts, 16))
}

/// Longest message id.
pub(crate) const MAX_ID_LEN: usize = 128;

/// Whether `s` is 1–128 characters of `[A-Za-z0-9_-]`.
pub(crate) fn is_valid_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Message ids for the original ids `ids` (unique among themselves): a valid id is kept; any
/// other becomes its first 100 characters with each invalid one replaced by `_`, a `-` and 16
/// hex digits of the SHA-256 of the whole original (just the digits for an empty id). A mapped
/// id that meets one already taken is hashed again with a counter, so the result is unique and
/// depends only on the ids and their order.
pub(crate) fn map_ids<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let ids: Vec<&str> = ids.into_iter().collect();
    let mut taken: HashSet<String> = ids
        .iter()
        .filter(|id| is_valid_id(id))
        .map(|id| (*id).to_owned())
        .collect();
    ids.iter()
        .map(|&id| {
            if is_valid_id(id) {
                return id.to_owned();
            }
            let prefix: String = id
                .chars()
                .take(100)
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut salt: u64 = 0;
            loop {
                let salt_bytes = salt.to_be_bytes();
                let parts: &[&[u8]] = if salt == 0 {
                    &[id.as_bytes()]
                } else {
                    &[id.as_bytes(), &salt_bytes]
                };
                let hash = short_hash(parts, 8);
                let candidate = if prefix.is_empty() {
                    hash
                } else {
                    format!("{prefix}-{hash}")
                };
                if taken.insert(candidate.clone()) {
                    return candidate;
                }
                salt += 1;
            }
        })
        .collect()
}

/// A time given as seconds since the epoch (values too large for seconds are read as
/// milliseconds, microseconds or nanoseconds), to the microsecond; `None` when negative or not
/// finite.
pub(crate) fn from_epoch(value: f64) -> Option<DateTime<Utc>> {
    if !value.is_finite() || value < 0.0 {
        return None;
    }
    let seconds = if value >= 1e17 {
        value / 1e9
    } else if value >= 1e14 {
        value / 1e6
    } else if value >= 1e11 {
        value / 1e3
    } else {
        value
    };
    let micros = (seconds * 1e6).round();
    if micros >= i64::MAX as f64 {
        return None;
    }
    DateTime::from_timestamp_micros(micros as i64)
}

/// An RFC 3339 time, in UTC.
pub(crate) fn from_rfc3339(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// At most 60 characters of `s`, for error messages.
pub(crate) fn clip(s: &str) -> String {
    let mut out: String = s.chars().take(60).filter(|c| !c.is_control()).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;

    fn keep(id: &str, parent: Option<&str>, role: Role, text: &str) -> RawNode {
        RawNode {
            id: id.into(),
            parent: parent.map(Into::into),
            children: Vec::new(),
            kind: Kind::Keep {
                role,
                text: text.into(),
                reasoning: String::new(),
                model: None,
            },
            created_at: None,
        }
    }

    fn draft(nodes: Vec<RawNode>, current: Option<&str>) -> Draft {
        Draft {
            source: Source::Threadline,
            external_id: None,
            title: None,
            created_at: None,
            nodes,
            current: current.map(Into::into),
        }
    }

    #[test]
    fn ids_are_kept_when_valid_and_mapped_deterministically_when_not() {
        let ids = map_ids(["ok-id_1", "a.b", "a:b", "", "é", &"x".repeat(129)]);
        assert_eq!(ids[0], "ok-id_1");
        assert!(ids[1].starts_with("a_b-") && ids[2].starts_with("a_b-"));
        assert_ne!(ids[1], ids[2]);
        assert_eq!(ids[3].len(), 16);
        assert!(ids[4].starts_with("_-"));
        assert!(ids.iter().all(|id| is_valid_id(id)), "{ids:?}");
        assert_eq!(
            ids,
            map_ids(["ok-id_1", "a.b", "a:b", "", "é", &"x".repeat(129)])
        );
        // A valid id that happens to equal another's mapped form keeps it; the other moves.
        let mapped = map_ids(["a.b"]).remove(0);
        let both = map_ids(["a.b", mapped.as_str()]);
        assert_eq!(both[1], mapped);
        assert_ne!(both[0], mapped);
        assert!(is_valid_id(&both[0]));
    }

    #[test]
    fn epoch_times_accept_seconds_and_larger_units() {
        let t = from_epoch(1_704_629_915.775_304).unwrap();
        assert_eq!(t.to_rfc3339(), "2024-01-07T12:18:35.775304+00:00");
        assert_eq!(from_epoch(1_700_000_000_000.0), from_epoch(1_700_000_000.0));
        assert_eq!(from_epoch(1.0).unwrap().timestamp(), 1);
        assert_eq!(from_epoch(-1.0), None);
        assert_eq!(from_epoch(f64::NAN), None);
        assert_eq!(from_epoch(f64::MAX), None);
    }

    #[test]
    fn lines_and_text_lose_control_characters() {
        assert_eq!(
            clean_line("  a\tb\u{0}c\nd  ", 200).as_deref(),
            Some("a bc d")
        );
        assert_eq!(clean_line(" \u{7} ", 200), None);
        assert_eq!(
            clean_line(&"é".repeat(300), 200).unwrap().chars().count(),
            200
        );
        assert_eq!(clean_text("a\u{1b}[0m\tb\r\n\u{85}c"), "a[0m\tb\r\nc");
    }

    #[test]
    fn dropped_nodes_hand_their_children_to_the_nearest_kept_ancestor() {
        let mut drop = keep("d", Some("u"), Role::Assistant, "");
        drop.kind = Kind::Drop;
        let mut think = keep("r", Some("d"), Role::Assistant, "");
        think.kind = Kind::Reasoning("because".into());
        let c = draft(
            vec![
                keep("a", Some("r"), Role::Assistant, "answer"),
                think,
                drop,
                keep("u", None, Role::User, "question"),
            ],
            None,
        )
        .build()
        .unwrap();
        let ids: Vec<_> = c.messages.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(ids, ["u", "a"]);
        assert_eq!(c.messages[1].parent_id.as_deref(), Some("u"));
        assert_eq!(c.messages[1].reasoning, "because");
        assert_eq!(c.current_id.as_deref(), Some("a"));
    }

    #[test]
    fn a_cycle_loses_an_edge_not_its_nodes() {
        let c = draft(
            vec![
                keep("a", Some("b"), Role::User, "1"),
                keep("b", Some("a"), Role::Assistant, "2"),
            ],
            Some("b"),
        )
        .build()
        .unwrap();
        assert_eq!(c.messages.len(), 2);
        assert_eq!(c.messages[0].parent_id, None);
        assert_eq!(c.messages[1].parent_id.as_deref(), Some("a"));
        assert_eq!(c.current_id.as_deref(), Some("b"));
    }

    #[test]
    fn a_cycle_is_cut_inside_it_even_when_a_descendant_comes_first() {
        let c = draft(
            vec![
                keep("c", Some("b"), Role::User, "below the cycle"),
                keep("a", Some("b"), Role::User, "1"),
                keep("b", Some("a"), Role::Assistant, "2"),
            ],
            None,
        )
        .build()
        .unwrap();
        let shape: Vec<_> = c
            .messages
            .iter()
            .map(|m| (m.id.as_str(), m.parent_id.as_deref()))
            .collect();
        assert_eq!(shape, [("b", None), ("c", Some("b")), ("a", Some("b"))]);
    }

    #[test]
    fn duplicate_ids_and_empty_conversations_are_refused() {
        let dup = draft(
            vec![
                keep("a", None, Role::User, "1"),
                keep("a", None, Role::User, "2"),
            ],
            None,
        );
        assert!(dup.build().unwrap_err().contains("twice"));
        let empty = draft(vec![keep("a", None, Role::User, " ")], None);
        assert_eq!(empty.build().unwrap_err(), "no user or assistant messages");
    }

    #[test]
    fn a_conversation_without_an_id_is_named_by_its_content() {
        let one = || draft(vec![keep("a", None, Role::User, "hi")], None);
        let a = one().build().unwrap();
        assert_eq!(a.external_id, one().build().unwrap().external_id);
        assert!(a.external_id.starts_with("sha256-"));
        let mut other = one();
        other.nodes[0].kind = Kind::Keep {
            role: Role::User,
            text: "hello".into(),
            reasoning: String::new(),
            model: None,
        };
        assert_ne!(a.external_id, other.build().unwrap().external_id);
    }
}
