//! Which parts of which events are a person's data, and whose.
//!
//! The store seals these values with the data subject's key before an event is written and
//! opens them before it is read (`src/store/keys.rs`); erasing the account deletes the key, and
//! what it sealed reads as a redaction from then on. Everything else in an event (ids, counts,
//! timestamps, token usage, enum tags) stays in clear, so the books still add up after an
//! erasure and every event still decodes.
//!
//! Events are sealed from version [`SEALED_SINCE`] of their stream's events on; older events
//! were written in clear and are read as they are.

use serde_json::Value;

/// What a personal value reads as once its account is erased.
pub const REDACTED: &str = "[erased]";

/// `value` unless it is a redaction (projections store `NULL` for those where a value must
/// be unique or absent, such as an erased account's email).
pub fn unless_redacted(value: Option<String>) -> Option<String> {
    value.filter(|v| v != REDACTED)
}

/// The first event version whose personal values are sealed.
pub const SEALED_SINCE: &str = "2.0";

/// Personal values of each event type: paths into the event's body (`{"Type": {body}}`),
/// segments joined by `.`, `*` for every element of an array. A path that reaches `null` or
/// nothing is skipped.
pub const PERSONAL: &[(&str, &[&str])] = &[
    (
        "AccountCreated",
        &[
            "kind.email",
            "kind.name",
            "kind.password_hash",
            "kind.subject",
        ],
    ),
    ("SessionIssued", &["user_agent", "ip"]),
    (
        "PreferencesUpdated",
        &[
            "preferences.nickname",
            "preferences.biography",
            "preferences.custom_instructions",
        ],
    ),
    ("ApiKeyCreated", &["name"]),
    ("ProfileUpdated", &["name", "image_url"]),
    ("SubscriptionChanged", &["subscription.customer_id"]),
    ("ThreadCreated", &["title"]),
    ("ThreadRenamed", &["title"]),
    (
        "UserMessagePosted",
        &["text", "attachments.*.filename", "attachments.*.sha256"],
    ),
    (
        "HistoryCopied",
        &["messages.*.text", "messages.*.reasoning"],
    ),
    ("GenerationStarted", &["context.*.content"]),
    (
        "ChunksAppended",
        &[
            "chunks.*.text",
            "chunks.*.delta",
            "chunks.*.input",
            "chunks.*.output",
            "chunks.*.error_text",
            "chunks.*.data",
        ],
    ),
    ("FileUploaded", &["filename", "sha256"]),
];

/// The personal paths of `event_type` (none for most events).
pub fn paths(event_type: &str) -> &'static [&'static str] {
    PERSONAL
        .iter()
        .find(|(t, _)| *t == event_type)
        .map(|(_, p)| *p)
        .unwrap_or(&[])
}

/// Whether an event of `event_type` stored at `event_version` has sealed values.
pub fn is_sealed(event_type: &str, event_version: &str) -> bool {
    !paths(event_type).is_empty() && !crate::upcast::version_lt(event_version, SEALED_SINCE)
}

/// Calls `f` on every personal value of `payload` (an event of `event_type`, as stored):
/// each non-null value a path of the type reaches.
pub fn each_value<E>(
    event_type: &str,
    payload: &mut Value,
    f: &mut impl FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let paths = paths(event_type);
    if paths.is_empty() {
        return Ok(());
    }
    let Some(body) = payload.get_mut(event_type) else {
        return Ok(());
    };
    for path in paths {
        let segments: Vec<&str> = path.split('.').collect();
        walk(body, &segments, f)?;
    }
    Ok(())
}

fn walk<E>(
    value: &mut Value,
    path: &[&str],
    f: &mut impl FnMut(&mut Value) -> Result<(), E>,
) -> Result<(), E> {
    let Some((first, rest)) = path.split_first() else {
        return if value.is_null() { Ok(()) } else { f(value) };
    };
    match (*first, value) {
        ("*", Value::Array(items)) => {
            for item in items {
                walk(item, rest, f)?;
            }
            Ok(())
        }
        (key, Value::Object(map)) => match map.get_mut(key) {
            Some(inner) => walk(inner, rest, f),
            None => Ok(()),
        },
        _ => Ok(()),
    }
}

/// Whose personal data an aggregate's events carry: the account whose key seals them.
pub trait DataSubject {
    /// The data subject of the events this state (after them) has, on stream `aggregate_id`;
    /// `None` for streams without personal data.
    fn data_subject(&self, aggregate_id: &str) -> Option<String>;
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::convert::Infallible;

    fn upper(payload: &mut Value, event_type: &str) {
        each_value::<Infallible>(event_type, payload, &mut |v| {
            *v = Value::String(format!("<{v}>"));
            Ok(())
        })
        .unwrap();
    }

    #[test]
    fn only_the_personal_values_are_visited() {
        let mut chunks = json!({"ChunksAppended": {"first_index": 3, "chunks": [
            {"type": "text", "text": "hello"},
            {"type": "tool_input_available", "tool_call_id": "c1", "tool_name": "search",
             "input": {"q": "x"}},
            {"type": "step_finished", "usage": {"input_tokens": 1}, "finish_reason": "stop"},
        ]}});
        upper(&mut chunks, "ChunksAppended");
        assert_eq!(
            chunks,
            json!({"ChunksAppended": {"first_index": 3, "chunks": [
                {"type": "text", "text": "<\"hello\">"},
                {"type": "tool_input_available", "tool_call_id": "c1", "tool_name": "search",
                 "input": "<{\"q\":\"x\"}>"},
                {"type": "step_finished", "usage": {"input_tokens": 1}, "finish_reason": "stop"},
            ]}})
        );
        let mut created = json!({"ThreadCreated": {"owner": "a", "title": null}});
        upper(&mut created, "ThreadCreated");
        assert_eq!(
            created,
            json!({"ThreadCreated": {"owner": "a", "title": null}})
        );
        let mut other = json!({"CreditsAdded": {"amount": 5}});
        upper(&mut other, "CreditsAdded");
        assert_eq!(other, json!({"CreditsAdded": {"amount": 5}}));
    }

    #[test]
    fn sealing_starts_at_version_two() {
        assert!(!is_sealed("UserMessagePosted", "1.0"));
        assert!(is_sealed("UserMessagePosted", "2.0"));
        assert!(!is_sealed("ThreadPinned", "2.0"));
    }
}
