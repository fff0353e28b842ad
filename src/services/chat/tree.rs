//! The message tree rules of a send, without I/O: which user message a reply answers (new,
//! resent, edited as a sibling, or regenerated), and the conversation sent to the model (the
//! path from the root to that message, rebuilt from the log).

use threadline_domain::thread::{Attachment, NewUserMessage};
use threadline_projections::messages::{self, MessageRow, Tree};

use crate::error::ApiError;
use crate::providers::ChatMessage;

/// The user message a reply answers: its id and text, and the message to post when it is new.
pub struct UserTurn {
    pub id: String,
    pub text: String,
    pub new: Option<NewUserMessage>,
}

/// Plans the user message. A known id with the same text is reused (a resend); with another
/// text it is an edit, posted as a new sibling under the same parent; otherwise the message is
/// new, under the end of the current path.
pub fn plan_user_message(tree: &Tree, client_id: Option<String>, text: String) -> UserTurn {
    let all = &tree.messages;
    let existing = client_id
        .as_deref()
        .and_then(|id| all.iter().find(|m| m.id == id));
    let (id, parent_id) = match existing {
        Some(m) if m.role == "user" && m.text == text => {
            return UserTurn {
                id: m.id.clone(),
                text,
                new: None,
            };
        }
        Some(m) => (new_message_id(), m.parent_id.clone()),
        None => (
            client_id.unwrap_or_else(new_message_id),
            tree.current_path().last().map(|p| p.message.id.clone()),
        ),
    };
    UserTurn {
        id,
        text: text.clone(),
        new: Some(NewUserMessage {
            parent_id,
            text,
            attachments: Vec::new(),
        }),
    }
}

pub fn new_message_id() -> String {
    format!("msg-{}", uuid::Uuid::now_v7().simple())
}

/// The user message whose reply is regenerated: the parent of `message_id` (or of the newest
/// assistant message).
pub fn regenerate_target(
    all: &[MessageRow],
    message_id: Option<&str>,
) -> Result<(String, String), ApiError> {
    let assistant = match message_id {
        Some(id) => all.iter().find(|m| m.id == id),
        None => all.iter().rev().find(|m| m.role == "assistant"),
    }
    .ok_or(ApiError::NotFound("message"))?;
    let parent = match assistant.role.as_str() {
        "user" => assistant,
        _ => assistant
            .parent_id
            .as_deref()
            .and_then(|p| all.iter().find(|m| m.id == p))
            .ok_or(ApiError::NotFound("message"))?,
    };
    Ok((parent.id.clone(), parent.text.clone()))
}

/// The conversation sent to the model: the path from the root to the user message, rebuilt
/// from the log (client-supplied history is never trusted). `posted_under` is the parent of a
/// user message this request just posted (not in `all` yet).
/// Each message comes with the files it carries (`new_files` for the message just posted).
pub fn context_with_files(
    all: &[MessageRow],
    user_id: &str,
    user_text: &str,
    posted_under: Option<Option<String>>,
    new_files: Vec<Attachment>,
) -> Vec<(ChatMessage, Vec<Attachment>)> {
    let leaf = match &posted_under {
        Some(parent) => parent.as_deref(),
        None => Some(user_id),
    };
    let path = if leaf.is_some() {
        messages::current_path_to(all, leaf)
    } else {
        Vec::new()
    };
    let mut context: Vec<(ChatMessage, Vec<Attachment>)> = path
        .iter()
        .filter(|p| !(p.message.role == "assistant" && p.message.text.is_empty()))
        .map(|p| {
            let message = ChatMessage {
                role: p.message.role.clone(),
                content: p.message.text.clone(),
                parts: Vec::new(),
                ..Default::default()
            };
            (message, p.message.attachments())
        })
        .collect();
    if context.last().is_none_or(|(m, _)| m.role != "user") {
        let message = ChatMessage {
            role: "user".into(),
            content: user_text.to_owned(),
            parts: Vec::new(),
            ..Default::default()
        };
        context.push((message, new_files));
    }
    context
}

#[cfg(test)]
mod tests {
    use super::*;
    use threadline_domain::generation::GenerationStatus;

    /// A conversation: `(id, parent, role, text)`, in posting order.
    fn thread(rows: &[(&str, Option<&str>, &str, &str)]) -> Vec<MessageRow> {
        rows.iter()
            .enumerate()
            .map(|(i, (id, parent, role, text))| MessageRow {
                thread_id: "t".into(),
                id: (*id).into(),
                parent_id: parent.map(Into::into),
                role: (*role).into(),
                text: (*text).into(),
                reasoning: String::new(),
                model: None,
                generation_id: None,
                status: GenerationStatus::Completed.as_str().into(),
                position: i as i64,
                created_at: i as i64,
                hidden: false,
                attachments: None,
                parts: None,
            })
            .collect()
    }

    fn tree(messages: Vec<MessageRow>) -> Tree {
        Tree {
            messages,
            head: None,
        }
    }

    fn two_exchanges() -> Vec<MessageRow> {
        thread(&[
            ("u1", None, "user", "hi"),
            ("a1", Some("u1"), "assistant", "hello"),
            ("u2", Some("a1"), "user", "how are you"),
            ("a2", Some("u2"), "assistant", "fine"),
        ])
    }

    #[test]
    fn a_new_message_goes_under_the_end_of_the_current_path() {
        let turn = plan_user_message(&tree(two_exchanges()), Some("u3".into()), "more".into());
        assert_eq!(turn.id, "u3");
        assert_eq!(
            turn.new,
            Some(NewUserMessage {
                parent_id: Some("a2".into()),
                text: "more".into(),
                attachments: Vec::new(),
            })
        );
    }

    #[test]
    fn a_resent_message_is_reused_and_an_edited_one_becomes_a_sibling() {
        let all = tree(two_exchanges());
        let resent = plan_user_message(&all, Some("u2".into()), "how are you".into());
        assert_eq!((resent.id.as_str(), resent.new), ("u2", None));
        let edited = plan_user_message(&all, Some("u2".into()), "how old are you".into());
        assert_ne!(edited.id, "u2", "an edit gets a new id");
        assert_eq!(
            edited.new.and_then(|m| m.parent_id),
            Some("a1".into()),
            "under the edited message's parent"
        );
    }

    #[test]
    fn regenerating_answers_the_user_message_of_the_reply() {
        let all = two_exchanges();
        assert_eq!(
            regenerate_target(&all, Some("a1")).unwrap(),
            ("u1".into(), "hi".into())
        );
        assert_eq!(
            regenerate_target(&all, None).unwrap(),
            ("u2".into(), "how are you".into()),
            "the newest reply by default"
        );
        assert_eq!(
            regenerate_target(&all, Some("u2")).unwrap().0,
            "u2",
            "naming the user message itself works too"
        );
        assert!(regenerate_target(&all, Some("nope")).is_err());
    }

    #[test]
    fn the_context_is_the_path_to_the_message_without_empty_replies() {
        let mut all = two_exchanges();
        all[1].text.clear(); // a reply that produced nothing
        let context_for = |all: &[MessageRow], id: &str, text: &str, under| {
            context_with_files(all, id, text, under, Vec::new())
        };
        let roles = |c: &[(ChatMessage, Vec<Attachment>)]| {
            c.iter()
                .map(|(m, _)| format!("{}:{}", m.role, m.content))
                .collect::<Vec<_>>()
        };
        // A message posted now under a2 (not in `all` yet) ends the context.
        assert_eq!(
            roles(&context_for(&all, "u3", "more", Some(Some("a2".into())))),
            ["user:hi", "user:how are you", "assistant:fine", "user:more"]
        );
        // Regenerating u2: the path up to it, nothing after.
        assert_eq!(
            roles(&context_for(&all, "u2", "how are you", None)),
            ["user:hi", "user:how are you"]
        );
        // The first message of a thread.
        assert_eq!(
            roles(&context_for(&[], "u1", "hi", Some(None))),
            ["user:hi"]
        );
    }
}
