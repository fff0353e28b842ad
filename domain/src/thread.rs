//! The `Thread` aggregate: a conversation's identity, title and flags.
//!
//! Replies are not part of this stream: each assistant reply is its own `Generation` aggregate,
//! so a thread's stream holds only a handful of events per exchange and a command on it stays
//! cheap however long the conversation grows. User messages are `UserMessagePosted` events on
//! this stream; the parent id makes the history a tree, and edits and regenerations add
//! siblings instead of rewriting history.
//!
//! Who may act on a thread is decided before a command reaches it: the HTTP layer checks the
//! caller against the thread-list projection (whose owner follows account links).

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::generation::GenerationStatus;
use crate::values::{AccountId, Title};

/// Where a title came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TitleSource {
    /// Set by the user (at creation or by renaming).
    User,
    /// Generated from the first exchange.
    Generated,
}

/// Commands the `Thread` aggregate accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum ThreadCommand {
    Create {
        owner: AccountId,
        title: Option<Title>,
        at: DateTime<Utc>,
    },
    Rename {
        title: Title,
        source: TitleSource,
        at: DateTime<Utc>,
    },
    SetArchived {
        archived: bool,
        at: DateTime<Utc>,
    },
    SetPinned {
        pinned: bool,
        at: DateTime<Utc>,
    },
    Delete {
        at: DateTime<Utc>,
    },
    /// Post a user message under `parent_id` (the root when `None`). Posting an id that exists
    /// with the same text writes nothing; with another text it is refused (the caller posts the
    /// edit as a new sibling message instead).
    PostUserMessage {
        message_id: String,
        parent_id: Option<String>,
        text: String,
        at: DateTime<Utc>,
    },
    /// Start an assistant reply to the user message `parent_id`. With `user_message`, that
    /// message is posted first in the same commit (its id is `parent_id`): a send that is
    /// refused (a reply already streaming, say) leaves nothing behind.
    StartReply {
        generation_id: String,
        message_id: String,
        parent_id: String,
        model: String,
        user_message: Option<NewUserMessage>,
        at: DateTime<Utc>,
    },
    /// Record how the reply ended (idempotent).
    FinishReply {
        generation_id: String,
        status: GenerationStatus,
        at: DateTime<Utc>,
    },
    /// Ask the active reply to stop.
    RequestStop {
        at: DateTime<Utc>,
    },
    /// Make the path through `message_id` current (its newest descendant becomes the leaf).
    ChooseCurrent {
        message_id: String,
        at: DateTime<Utc>,
    },
    /// Hide a message and its subtree from every read (the log keeps them).
    HideMessage {
        message_id: String,
        at: DateTime<Utc>,
    },
    /// Create the thread with a history copied from elsewhere: the path of another thread
    /// (a branch), a shared snapshot (a copy) or another app's export (an import).
    CreateWithHistory {
        owner: AccountId,
        title: Option<Title>,
        origin: HistoryOrigin,
        messages: Vec<CopiedMessage>,
        /// The message whose path is current (the newest message when `None`).
        current_message_id: Option<String>,
        at: DateTime<Utc>,
    },
    /// Freeze a read-only link to the path up to `message_id`.
    Share {
        share_id: String,
        message_id: String,
        at: DateTime<Utc>,
    },
    /// Revoke a share link.
    RevokeShare {
        share_id: String,
        at: DateTime<Utc>,
    },
    /// Several commands as one: each is decided on the state the ones before it left, and
    /// their events are appended together, all or none (a new thread and its first reply; a
    /// reply's end and the thread's title).
    Batch(Vec<ThreadCommand>),
}

/// Where a copied history came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum HistoryOrigin {
    /// The path of `thread_id` up to `message_id`.
    Branch {
        thread_id: String,
        message_id: String,
    },
    /// A shared snapshot, continued as a copy.
    Share { share_id: String },
    /// A conversation exported by another app (or by Threadline).
    Import { source: String, external_id: String },
}

/// Who wrote a copied message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopiedRole {
    User,
    Assistant,
}

/// One message of a copied history, parents before children.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopiedMessage {
    pub id: String,
    pub parent_id: Option<String>,
    pub role: CopiedRole,
    pub text: String,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// A user message posted together with the reply to it (see [`ThreadCommand::StartReply`]).
#[derive(Debug, Clone, PartialEq)]
pub struct NewUserMessage {
    /// The parent of the new message (the root when `None`).
    pub parent_id: Option<String>,
    pub text: String,
    pub attachments: Vec<Attachment>,
}

/// A file a user message carries (its bytes are the file's, in the file store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    pub file_id: String,
    /// The bytes' digest: their key in the file store.
    pub sha256: String,
    pub media_type: String,
    pub filename: String,
    pub size: u64,
}

/// Events of the `Thread` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ThreadEvent {
    ThreadCreated {
        owner: AccountId,
        title: Option<Title>,
        at: DateTime<Utc>,
    },
    ThreadRenamed {
        title: Title,
        source: TitleSource,
        at: DateTime<Utc>,
    },
    ThreadArchived {
        at: DateTime<Utc>,
    },
    ThreadUnarchived {
        at: DateTime<Utc>,
    },
    ThreadPinned {
        at: DateTime<Utc>,
    },
    ThreadUnpinned {
        at: DateTime<Utc>,
    },
    ThreadDeleted {
        at: DateTime<Utc>,
    },
    UserMessagePosted {
        message_id: String,
        parent_id: Option<String>,
        text: String,
        /// Files attached to the message (absent in events written before attachments).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        attachments: Vec<Attachment>,
        at: DateTime<Utc>,
    },
    ReplyStarted {
        generation_id: String,
        message_id: String,
        parent_id: String,
        model: String,
        at: DateTime<Utc>,
    },
    ReplyFinished {
        generation_id: String,
        status: GenerationStatus,
        at: DateTime<Utc>,
    },
    ReplyStopRequested {
        generation_id: String,
        at: DateTime<Utc>,
    },
    CurrentMessageChosen {
        message_id: String,
        at: DateTime<Utc>,
    },
    /// `message_id` and its subtree are hidden; `parent_id` is where the path falls back to.
    MessageHidden {
        message_id: String,
        parent_id: Option<String>,
        at: DateTime<Utc>,
    },
    /// Follows `ThreadCreated` in the same commit.
    HistoryCopied {
        origin: HistoryOrigin,
        messages: Vec<CopiedMessage>,
        current_message_id: Option<String>,
        at: DateTime<Utc>,
    },
    ThreadShared {
        share_id: String,
        message_id: String,
        at: DateTime<Utc>,
    },
    ShareRevoked {
        share_id: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for ThreadEvent {
    fn event_type(&self) -> String {
        match self {
            Self::ThreadCreated { .. } => "ThreadCreated",
            Self::ThreadRenamed { .. } => "ThreadRenamed",
            Self::ThreadArchived { .. } => "ThreadArchived",
            Self::ThreadUnarchived { .. } => "ThreadUnarchived",
            Self::ThreadPinned { .. } => "ThreadPinned",
            Self::ThreadUnpinned { .. } => "ThreadUnpinned",
            Self::ThreadDeleted { .. } => "ThreadDeleted",
            Self::UserMessagePosted { .. } => "UserMessagePosted",
            Self::ReplyStarted { .. } => "ReplyStarted",
            Self::ReplyFinished { .. } => "ReplyFinished",
            Self::ReplyStopRequested { .. } => "ReplyStopRequested",
            Self::CurrentMessageChosen { .. } => "CurrentMessageChosen",
            Self::MessageHidden { .. } => "MessageHidden",
            Self::HistoryCopied { .. } => "HistoryCopied",
            Self::ThreadShared { .. } => "ThreadShared",
            Self::ShareRevoked { .. } => "ShareRevoked",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::personal::SEALED_SINCE.to_owned()
    }
}

/// Why a thread command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThreadError {
    #[error("a thread with this id already exists")]
    AlreadyExists,
    #[error("the thread does not exist")]
    NotFound,
    #[error("a message with this id already exists with other content")]
    MessageExists,
    #[error("the parent message does not exist in this thread")]
    ParentNotFound,
    #[error("a reply is already streaming in this thread")]
    ReplyInProgress,
    #[error("no reply is streaming in this thread")]
    NoActiveReply,
    #[error("no such message in this thread")]
    MessageNotFound,
    #[error("no such share of this thread")]
    ShareNotFound,
    #[error("the copied history is not a tree of valid messages: {0}")]
    InvalidHistory(String),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum State {
    #[default]
    New,
    Live,
    Deleted,
}

/// The `Thread` aggregate's state: only what its rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Thread {
    state: State,
    /// Whose key seals the thread's personal data: the owner it was created for.
    #[serde(default)]
    owner: Option<AccountId>,
    title: Option<Title>,
    archived: bool,
    pinned: bool,
    /// Message id → (parent id, user text; empty for assistant messages).
    messages: BTreeMap<String, (Option<String>, String)>,
    /// Hidden messages (their subtrees are hidden too).
    #[serde(default)]
    hidden: BTreeSet<String>,
    active_reply: Option<String>,
    /// The assistant message the active reply fills.
    #[serde(default)]
    active_message: Option<String>,
    /// Live share ids.
    #[serde(default)]
    shares: BTreeSet<String>,
}

impl crate::personal::DataSubject for Thread {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        self.owner.as_ref().map(ToString::to_string)
    }
}

impl Aggregate for Thread {
    const TYPE: &'static str = "Thread";
    type Command = ThreadCommand;
    type Event = ThreadEvent;
    type Error = ThreadError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        for event in self.decide(command)? {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            ThreadEvent::ThreadCreated { owner, title, .. } => {
                self.state = State::Live;
                self.owner = Some(owner);
                self.title = title;
            }
            ThreadEvent::ThreadRenamed { title, .. } => self.title = Some(title),
            ThreadEvent::ThreadArchived { .. } => self.archived = true,
            ThreadEvent::ThreadUnarchived { .. } => self.archived = false,
            ThreadEvent::ThreadPinned { .. } => self.pinned = true,
            ThreadEvent::ThreadUnpinned { .. } => self.pinned = false,
            ThreadEvent::ThreadDeleted { .. } => self.state = State::Deleted,
            ThreadEvent::UserMessagePosted {
                message_id,
                parent_id,
                text,
                ..
            } => {
                self.messages.insert(message_id, (parent_id, text));
            }
            ThreadEvent::ReplyStarted {
                generation_id,
                message_id,
                parent_id,
                ..
            } => {
                self.messages
                    .insert(message_id.clone(), (Some(parent_id), String::new()));
                self.active_reply = Some(generation_id);
                self.active_message = Some(message_id);
            }
            ThreadEvent::ReplyFinished { generation_id, .. } => {
                if self.active_reply.as_ref() == Some(&generation_id) {
                    self.active_reply = None;
                    self.active_message = None;
                }
            }
            ThreadEvent::ReplyStopRequested { .. } | ThreadEvent::CurrentMessageChosen { .. } => {}
            ThreadEvent::MessageHidden { message_id, .. } => {
                self.hidden.insert(message_id);
            }
            ThreadEvent::HistoryCopied { messages, .. } => {
                for m in messages {
                    let text = match m.role {
                        CopiedRole::User => m.text,
                        CopiedRole::Assistant => String::new(),
                    };
                    self.messages.insert(m.id, (m.parent_id, text));
                }
            }
            ThreadEvent::ThreadShared { share_id, .. } => {
                self.shares.insert(share_id);
            }
            ThreadEvent::ShareRevoked { share_id, .. } => {
                self.shares.remove(&share_id);
            }
        }
    }
}

impl Thread {
    /// Decides the events a command produces; none when the thread is already as asked
    /// (repeating a rename, archive or pin is harmless and writes nothing).
    fn decide(&self, command: ThreadCommand) -> Result<Vec<ThreadEvent>, ThreadError> {
        use ThreadCommand as C;
        use ThreadEvent as E;
        if let C::Batch(commands) = command {
            let mut state = self.clone();
            let mut all = Vec::new();
            for command in commands {
                let events = state.decide(command)?;
                for event in &events {
                    state.apply(event.clone());
                }
                all.extend(events);
            }
            return Ok(all);
        }
        if let C::Create { owner, title, at } = command {
            return match self.state {
                State::New => Ok(vec![E::ThreadCreated { owner, title, at }]),
                // A deleted id stays taken: its history is still in the log.
                State::Live | State::Deleted => Err(ThreadError::AlreadyExists),
            };
        }
        if let C::CreateWithHistory {
            owner,
            title,
            origin,
            messages,
            current_message_id,
            at,
        } = command
        {
            if self.state != State::New {
                return Err(ThreadError::AlreadyExists);
            }
            check_history(&messages, current_message_id.as_deref())?;
            // An imported conversation was last active at its newest message, not now.
            let active = messages
                .iter()
                .filter_map(|m| m.created_at)
                .fold(at, DateTime::max);
            return Ok(vec![
                E::ThreadCreated { owner, title, at },
                E::HistoryCopied {
                    origin,
                    messages,
                    current_message_id,
                    at: active,
                },
            ]);
        }
        if self.state != State::Live {
            return Err(ThreadError::NotFound);
        }
        Ok(match command {
            C::Create { .. } | C::CreateWithHistory { .. } | C::Batch(_) => vec![],
            C::Rename { title, source, at } => (self.title.as_ref() != Some(&title))
                .then_some(E::ThreadRenamed { title, source, at })
                .into_iter()
                .collect(),
            C::SetArchived { archived, at } => (self.archived != archived)
                .then_some(if archived {
                    E::ThreadArchived { at }
                } else {
                    E::ThreadUnarchived { at }
                })
                .into_iter()
                .collect(),
            C::SetPinned { pinned, at } => (self.pinned != pinned)
                .then_some(if pinned {
                    E::ThreadPinned { at }
                } else {
                    E::ThreadUnpinned { at }
                })
                .into_iter()
                .collect(),
            C::Delete { at } => vec![E::ThreadDeleted { at }],
            C::PostUserMessage {
                message_id,
                parent_id,
                text,
                at,
            } => self
                .post(message_id, parent_id, text, Vec::new(), at)?
                .into_iter()
                .collect(),
            C::StartReply {
                generation_id,
                message_id,
                parent_id,
                model,
                user_message,
                at,
            } => {
                if self.active_reply.is_some() {
                    return Err(ThreadError::ReplyInProgress);
                }
                let mut events = Vec::new();
                if let Some(NewUserMessage {
                    parent_id: under,
                    text,
                    attachments,
                }) = user_message
                {
                    events.extend(self.post(parent_id.clone(), under, text, attachments, at)?);
                } else if self.visible(&parent_id).is_err() {
                    return Err(ThreadError::ParentNotFound);
                }
                if self.messages.contains_key(&message_id) || message_id == parent_id {
                    return Err(ThreadError::MessageExists);
                }
                events.push(E::ReplyStarted {
                    generation_id,
                    message_id,
                    parent_id,
                    model,
                    at,
                });
                events
            }
            C::FinishReply {
                generation_id,
                status,
                at,
            } => (self.active_reply.as_ref() == Some(&generation_id))
                .then_some(E::ReplyFinished {
                    generation_id,
                    status,
                    at,
                })
                .into_iter()
                .collect(),
            C::RequestStop { at } => {
                let Some(generation_id) = self.active_reply.clone() else {
                    return Err(ThreadError::NoActiveReply);
                };
                vec![E::ReplyStopRequested { generation_id, at }]
            }
            C::ChooseCurrent { message_id, at } => {
                self.visible(&message_id)?;
                vec![E::CurrentMessageChosen { message_id, at }]
            }
            C::HideMessage { message_id, at } => {
                let parent_id = self.visible(&message_id)?;
                if let Some(active) = &self.active_message
                    && self.descends_from(active, &message_id)
                {
                    return Err(ThreadError::ReplyInProgress);
                }
                vec![E::MessageHidden {
                    message_id,
                    parent_id,
                    at,
                }]
            }
            C::Share {
                share_id,
                message_id,
                at,
            } => {
                self.visible(&message_id)?;
                if self.shares.contains(&share_id) {
                    return Ok(vec![]);
                }
                vec![E::ThreadShared {
                    share_id,
                    message_id,
                    at,
                }]
            }
            C::RevokeShare { share_id, at } => {
                if !self.shares.contains(&share_id) {
                    return Err(ThreadError::ShareNotFound);
                }
                vec![E::ShareRevoked { share_id, at }]
            }
        })
    }

    /// The parent of `id` when it is a message of this thread and neither it nor an ancestor
    /// is hidden.
    fn visible(&self, id: &str) -> Result<Option<String>, ThreadError> {
        let (parent, _) = self.messages.get(id).ok_or(ThreadError::MessageNotFound)?;
        let mut at = Some(id);
        let mut steps = 0;
        while let Some(current) = at {
            if self.hidden.contains(current) {
                return Err(ThreadError::MessageNotFound);
            }
            at = self.messages.get(current).and_then(|(p, _)| p.as_deref());
            steps += 1;
            if steps > self.messages.len() {
                break;
            }
        }
        Ok(parent.clone())
    }

    /// Whether `id` is `ancestor` or lies below it.
    fn descends_from(&self, id: &str, ancestor: &str) -> bool {
        let mut at = Some(id);
        let mut steps = 0;
        while let Some(current) = at {
            if current == ancestor {
                return true;
            }
            at = self.messages.get(current).and_then(|(p, _)| p.as_deref());
            steps += 1;
            if steps > self.messages.len() {
                return false;
            }
        }
        false
    }

    /// The event that posts a user message; `None` when the same message is already there.
    fn post(
        &self,
        message_id: String,
        parent_id: Option<String>,
        text: String,
        attachments: Vec<Attachment>,
        at: DateTime<Utc>,
    ) -> Result<Option<ThreadEvent>, ThreadError> {
        if let Some((_, existing)) = self.messages.get(&message_id) {
            return if *existing == text {
                Ok(None)
            } else {
                Err(ThreadError::MessageExists)
            };
        }
        if let Some(parent) = &parent_id
            && self.visible(parent).is_err()
        {
            return Err(ThreadError::ParentNotFound);
        }
        Ok(Some(ThreadEvent::UserMessagePosted {
            message_id,
            parent_id,
            text,
            attachments,
            at,
        }))
    }
}

/// Checks a copied history: valid unique ids, parents before children, a current message
/// that exists.
fn check_history(messages: &[CopiedMessage], current: Option<&str>) -> Result<(), ThreadError> {
    let mut seen = BTreeSet::new();
    for m in messages {
        crate::values::MessageId::parse(&m.id)
            .map_err(|e| ThreadError::InvalidHistory(format!("{}: {e}", m.id)))?;
        if let Some(parent) = &m.parent_id
            && !seen.contains(parent.as_str())
        {
            return Err(ThreadError::InvalidHistory(format!(
                "{} comes before its parent {parent}",
                m.id
            )));
        }
        if !seen.insert(m.id.as_str()) {
            return Err(ThreadError::InvalidHistory(format!("{} twice", m.id)));
        }
    }
    if let Some(current) = current
        && !seen.contains(current)
    {
        return Err(ThreadError::InvalidHistory(format!(
            "the current message {current} is not in it"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_threads_personal_data_belongs_to_the_owner_it_was_created_for() {
        use crate::personal::DataSubject;
        let owner = AccountId(uuid::Uuid::from_u128(7));
        let mut thread = Thread::default();
        assert_eq!(thread.data_subject("t1"), None);
        cqrs_es::Aggregate::apply(
            &mut thread,
            ThreadEvent::ThreadCreated {
                owner,
                title: None,
                at: chrono::Utc::now(),
            },
        );
        assert_eq!(thread.data_subject("t1"), Some(owner.to_string()));
    }
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    type ThreadTest = TestFramework<Thread>;

    fn at() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }

    fn owner() -> AccountId {
        AccountId(Uuid::from_u128(1))
    }

    fn title(s: &str) -> Title {
        Title::parse(s).unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn created() -> ThreadEvent {
        ThreadEvent::ThreadCreated {
            owner: owner(),
            title: None,
            at: at(),
        }
    }

    #[test]
    fn a_thread_is_created_with_an_optional_title() {
        ThreadTest::with(())
            .given_no_previous_events()
            .when(ThreadCommand::Create {
                owner: owner(),
                title: Some(title("Trip")),
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadCreated {
                owner: owner(),
                title: Some(title("Trip")),
                at: at(),
            }]);
    }

    #[test]
    fn a_thread_id_is_never_reused_even_after_deletion() {
        let create = ThreadCommand::Create {
            owner: owner(),
            title: None,
            at: at(),
        };
        ThreadTest::with(())
            .given(vec![created()])
            .when(create.clone())
            .then_expect_error(ThreadError::AlreadyExists);
        ThreadTest::with(())
            .given(vec![created(), ThreadEvent::ThreadDeleted { at: at() }])
            .when(create)
            .then_expect_error(ThreadError::AlreadyExists);
    }

    #[test]
    fn a_batch_decides_each_command_on_what_the_ones_before_left() {
        ThreadTest::with(())
            .given_no_previous_events()
            .when(ThreadCommand::Batch(vec![
                ThreadCommand::Create {
                    owner: owner(),
                    title: None,
                    at: at(),
                },
                ThreadCommand::Rename {
                    title: title("First"),
                    source: TitleSource::Generated,
                    at: at(),
                },
            ]))
            .then_expect_events(vec![
                created(),
                ThreadEvent::ThreadRenamed {
                    title: title("First"),
                    source: TitleSource::Generated,
                    at: at(),
                },
            ]);
    }

    #[test]
    fn a_batch_with_one_refused_command_writes_nothing() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::Batch(vec![
                ThreadCommand::Rename {
                    title: title("Fine"),
                    source: TitleSource::User,
                    at: at(),
                },
                ThreadCommand::Create {
                    owner: owner(),
                    title: None,
                    at: at(),
                },
            ]))
            .then_expect_error(ThreadError::AlreadyExists);
    }

    #[test]
    fn a_thread_is_renamed() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::Rename {
                title: title("New"),
                source: TitleSource::User,
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadRenamed {
                title: title("New"),
                source: TitleSource::User,
                at: at(),
            }]);
    }

    #[test]
    fn renaming_to_the_same_title_writes_nothing() {
        ThreadTest::with(())
            .given(vec![
                created(),
                ThreadEvent::ThreadRenamed {
                    title: title("Same"),
                    source: TitleSource::User,
                    at: at(),
                },
            ])
            .when(ThreadCommand::Rename {
                title: title("Same"),
                source: TitleSource::User,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn archiving_and_unarchiving_toggle_and_repeat_harmlessly() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::SetArchived {
                archived: true,
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadArchived { at: at() }]);
        ThreadTest::with(())
            .given(vec![created(), ThreadEvent::ThreadArchived { at: at() }])
            .when(ThreadCommand::SetArchived {
                archived: true,
                at: at(),
            })
            .then_expect_events(vec![]);
        ThreadTest::with(())
            .given(vec![created(), ThreadEvent::ThreadArchived { at: at() }])
            .when(ThreadCommand::SetArchived {
                archived: false,
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadUnarchived { at: at() }]);
    }

    #[test]
    fn pinning_and_unpinning_toggle() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::SetPinned {
                pinned: true,
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadPinned { at: at() }]);
        ThreadTest::with(())
            .given(vec![created(), ThreadEvent::ThreadPinned { at: at() }])
            .when(ThreadCommand::SetPinned {
                pinned: false,
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ThreadUnpinned { at: at() }]);
    }

    #[test]
    fn a_thread_is_deleted_once() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::Delete { at: at() })
            .then_expect_events(vec![ThreadEvent::ThreadDeleted { at: at() }]);
        ThreadTest::with(())
            .given(vec![created(), ThreadEvent::ThreadDeleted { at: at() }])
            .when(ThreadCommand::Delete { at: at() })
            .then_expect_error(ThreadError::NotFound);
    }

    fn posted(id: &str, parent: Option<&str>, text: &str) -> ThreadEvent {
        ThreadEvent::UserMessagePosted {
            message_id: id.into(),
            parent_id: parent.map(Into::into),
            text: text.into(),
            attachments: Vec::new(),
            at: at(),
        }
    }

    fn post(id: &str, parent: Option<&str>, text: &str) -> ThreadCommand {
        ThreadCommand::PostUserMessage {
            message_id: id.into(),
            parent_id: parent.map(Into::into),
            text: text.into(),
            at: at(),
        }
    }

    fn reply_started(generation: &str, message: &str, parent: &str) -> ThreadEvent {
        ThreadEvent::ReplyStarted {
            generation_id: generation.into(),
            message_id: message.into(),
            parent_id: parent.into(),
            model: "echo".into(),
            at: at(),
        }
    }

    fn start_reply(generation: &str, message: &str, parent: &str) -> ThreadCommand {
        ThreadCommand::StartReply {
            generation_id: generation.into(),
            message_id: message.into(),
            parent_id: parent.into(),
            model: "echo".into(),
            user_message: None,
            at: at(),
        }
    }

    /// A send: the user message `user` (under `under`) and the reply to it, in one command.
    fn send(generation: &str, reply: &str, user: &str, under: Option<&str>) -> ThreadCommand {
        ThreadCommand::StartReply {
            generation_id: generation.into(),
            message_id: reply.into(),
            parent_id: user.into(),
            model: "echo".into(),
            user_message: Some(NewUserMessage {
                parent_id: under.map(Into::into),
                text: "hi".into(),
                attachments: Vec::new(),
            }),
            at: at(),
        }
    }

    #[test]
    fn a_sent_message_carries_its_attachments_into_its_event() {
        let file = Attachment {
            file_id: "f1".into(),
            sha256: "ab".repeat(32),
            media_type: "image/png".into(),
            filename: "dot.png".into(),
            size: 3,
        };
        let mut command = send("g1", "a1", "m1", None);
        if let ThreadCommand::StartReply {
            user_message: Some(m),
            ..
        } = &mut command
        {
            m.attachments = vec![file.clone()];
        }
        let ThreadEvent::UserMessagePosted {
            message_id,
            parent_id,
            text,
            at,
            ..
        } = posted("m1", None, "hi")
        else {
            unreachable!()
        };
        ThreadTest::with(())
            .given(vec![created()])
            .when(command)
            .then_expect_events(vec![
                ThreadEvent::UserMessagePosted {
                    message_id,
                    parent_id,
                    text,
                    attachments: vec![file],
                    at,
                },
                reply_started("g1", "a1", "m1"),
            ]);
    }

    #[test]
    fn events_without_attachments_read_and_write_as_before() {
        let json = serde_json::to_value(posted("m1", None, "hi")).unwrap();
        assert!(
            json["UserMessagePosted"].get("attachments").is_none(),
            "{json}"
        );
        let read: ThreadEvent = serde_json::from_value(json).unwrap();
        assert_eq!(read, posted("m1", None, "hi"));
    }

    #[test]
    fn a_send_posts_the_message_and_starts_its_reply_together() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(send("g1", "a1", "m1", None))
            .then_expect_events(vec![
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ]);
    }

    #[test]
    fn a_send_refused_because_a_reply_streams_posts_nothing() {
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ])
            .when(send("g2", "a2", "m2", Some("a1")))
            .then_expect_error(ThreadError::ReplyInProgress);
    }

    #[test]
    fn a_resent_message_is_not_posted_twice() {
        ThreadTest::with(())
            .given(vec![created(), posted("m1", None, "hi")])
            .when(send("g1", "a1", "m1", None))
            .then_expect_events(vec![reply_started("g1", "a1", "m1")]);
    }

    #[test]
    fn a_send_under_a_missing_parent_is_refused() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(send("g1", "a1", "m1", Some("nope")))
            .then_expect_error(ThreadError::ParentNotFound);
    }

    #[test]
    fn a_user_message_is_posted_under_an_existing_parent() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(post("m1", None, "hi"))
            .then_expect_events(vec![posted("m1", None, "hi")]);
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ])
            .when(post("m2", Some("a1"), "more"))
            .then_expect_events(vec![posted("m2", Some("a1"), "more")]);
        ThreadTest::with(())
            .given(vec![created()])
            .when(post("m2", Some("nope"), "x"))
            .then_expect_error(ThreadError::ParentNotFound);
    }

    #[test]
    fn reposting_a_message_is_harmless_but_changing_it_is_refused() {
        ThreadTest::with(())
            .given(vec![created(), posted("m1", None, "hi")])
            .when(post("m1", None, "hi"))
            .then_expect_events(vec![]);
        ThreadTest::with(())
            .given(vec![created(), posted("m1", None, "hi")])
            .when(post("m1", None, "edited"))
            .then_expect_error(ThreadError::MessageExists);
    }

    #[test]
    fn one_reply_streams_at_a_time() {
        ThreadTest::with(())
            .given(vec![created(), posted("m1", None, "hi")])
            .when(start_reply("g1", "a1", "m1"))
            .then_expect_events(vec![reply_started("g1", "a1", "m1")]);
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ])
            .when(start_reply("g2", "a2", "m1"))
            .then_expect_error(ThreadError::ReplyInProgress);
    }

    #[test]
    fn a_finished_reply_frees_the_thread_for_the_next_one() {
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
                ThreadEvent::ReplyFinished {
                    generation_id: "g1".into(),
                    status: GenerationStatus::Completed,
                    at: at(),
                },
            ])
            .when(start_reply("g2", "a2", "m1"))
            .then_expect_events(vec![reply_started("g2", "a2", "m1")]);
    }

    #[test]
    fn finishing_another_or_an_already_finished_reply_writes_nothing() {
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ])
            .when(ThreadCommand::FinishReply {
                generation_id: "other".into(),
                status: GenerationStatus::Completed,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_stop_is_requested_only_while_a_reply_streams() {
        ThreadTest::with(())
            .given(vec![
                created(),
                posted("m1", None, "hi"),
                reply_started("g1", "a1", "m1"),
            ])
            .when(ThreadCommand::RequestStop { at: at() })
            .then_expect_events(vec![ThreadEvent::ReplyStopRequested {
                generation_id: "g1".into(),
                at: at(),
            }]);
        ThreadTest::with(())
            .given(vec![created()])
            .when(ThreadCommand::RequestStop { at: at() })
            .then_expect_error(ThreadError::NoActiveReply);
    }

    #[test]
    fn a_reply_needs_an_existing_user_message() {
        ThreadTest::with(())
            .given(vec![created()])
            .when(start_reply("g1", "a1", "m1"))
            .then_expect_error(ThreadError::ParentNotFound);
    }

    #[test]
    fn commands_on_a_missing_or_deleted_thread_are_refused() {
        for given in [
            vec![],
            vec![created(), ThreadEvent::ThreadDeleted { at: at() }],
        ] {
            ThreadTest::with(())
                .given(given)
                .when(ThreadCommand::SetPinned {
                    pinned: true,
                    at: at(),
                })
                .then_expect_error(ThreadError::NotFound);
        }
    }

    fn tree() -> Vec<ThreadEvent> {
        // u1 ─ a1 ─ u2 ─ a2
        //         └ u3 (an edit of u2)
        vec![
            created(),
            posted("u1", None, "hi"),
            reply_started("g1", "a1", "u1"),
            ThreadEvent::ReplyFinished {
                generation_id: "g1".into(),
                status: GenerationStatus::Completed,
                at: at(),
            },
            posted("u2", Some("a1"), "more"),
            posted("u3", Some("a1"), "other"),
        ]
    }

    #[test]
    fn the_current_path_is_chosen_through_a_visible_message() {
        ThreadTest::with(())
            .given(tree())
            .when(ThreadCommand::ChooseCurrent {
                message_id: "u2".into(),
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::CurrentMessageChosen {
                message_id: "u2".into(),
                at: at(),
            }]);
        ThreadTest::with(())
            .given(tree())
            .when(ThreadCommand::ChooseCurrent {
                message_id: "nope".into(),
                at: at(),
            })
            .then_expect_error(ThreadError::MessageNotFound);
    }

    #[test]
    fn a_hidden_message_takes_its_subtree_with_it() {
        let mut hidden = tree();
        hidden.push(ThreadEvent::MessageHidden {
            message_id: "a1".into(),
            parent_id: Some("u1".into()),
            at: at(),
        });
        ThreadTest::with(())
            .given(tree())
            .when(ThreadCommand::HideMessage {
                message_id: "a1".into(),
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::MessageHidden {
                message_id: "a1".into(),
                parent_id: Some("u1".into()),
                at: at(),
            }]);
        for below in ["u2", "a1"] {
            ThreadTest::with(())
                .given(hidden.clone())
                .when(ThreadCommand::ChooseCurrent {
                    message_id: below.into(),
                    at: at(),
                })
                .then_expect_error(ThreadError::MessageNotFound);
        }
        ThreadTest::with(())
            .given(hidden)
            .when(post("u9", Some("u2"), "under a hidden one"))
            .then_expect_error(ThreadError::ParentNotFound);
    }

    #[test]
    fn a_subtree_with_a_streaming_reply_cannot_be_hidden() {
        let mut streaming = tree();
        streaming.push(reply_started("g2", "a2", "u2"));
        ThreadTest::with(())
            .given(streaming)
            .when(ThreadCommand::HideMessage {
                message_id: "u2".into(),
                at: at(),
            })
            .then_expect_error(ThreadError::ReplyInProgress);
    }

    fn copied(id: &str, parent: Option<&str>, role: CopiedRole) -> CopiedMessage {
        CopiedMessage {
            id: id.into(),
            parent_id: parent.map(Into::into),
            role,
            text: format!("text of {id}"),
            reasoning: String::new(),
            model: None,
            created_at: None,
        }
    }

    fn with_history(messages: Vec<CopiedMessage>, current: Option<&str>) -> ThreadCommand {
        ThreadCommand::CreateWithHistory {
            owner: owner(),
            title: None,
            origin: HistoryOrigin::Branch {
                thread_id: "src".into(),
                message_id: "a1".into(),
            },
            messages,
            current_message_id: current.map(Into::into),
            at: at(),
        }
    }

    #[test]
    fn a_branch_is_a_new_thread_with_the_copied_path() {
        let history = vec![
            copied("u1", None, CopiedRole::User),
            copied("a1", Some("u1"), CopiedRole::Assistant),
        ];
        ThreadTest::with(())
            .given_no_previous_events()
            .when(with_history(history.clone(), Some("a1")))
            .then_expect_events(vec![
                created(),
                ThreadEvent::HistoryCopied {
                    origin: HistoryOrigin::Branch {
                        thread_id: "src".into(),
                        message_id: "a1".into(),
                    },
                    messages: history.clone(),
                    current_message_id: Some("a1".into()),
                    at: at(),
                },
            ]);
        // Importing again into the same id is refused (imports are idempotent by id).
        ThreadTest::with(())
            .given(vec![created()])
            .when(with_history(history, None))
            .then_expect_error(ThreadError::AlreadyExists);
    }

    #[test]
    fn an_imported_history_was_last_active_at_its_newest_message() {
        let later = at() + chrono::Duration::days(3);
        let mut answer = copied("a1", Some("u1"), CopiedRole::Assistant);
        answer.created_at = Some(later);
        let history = vec![copied("u1", None, CopiedRole::User), answer];
        let events = Thread::default()
            .decide(with_history(history, None))
            .unwrap();
        assert!(
            matches!(&events[..], [ThreadEvent::ThreadCreated { at: created, .. }, ThreadEvent::HistoryCopied { at: active, .. }] if *created == at() && *active == later),
            "{events:?}"
        );
    }

    #[test]
    fn a_copied_history_must_be_a_tree_in_order() {
        for (messages, current) in [
            (vec![copied("a1", Some("u1"), CopiedRole::Assistant)], None),
            (
                vec![
                    copied("u1", None, CopiedRole::User),
                    copied("u1", None, CopiedRole::User),
                ],
                None,
            ),
            (vec![copied("../x", None, CopiedRole::User)], None),
            (vec![copied("u1", None, CopiedRole::User)], Some("zz")),
        ] {
            let refused = Thread::default().decide(with_history(messages, current));
            assert!(
                matches!(refused, Err(ThreadError::InvalidHistory(_))),
                "{refused:?}"
            );
        }
    }

    #[test]
    fn messages_continue_under_a_copied_history() {
        ThreadTest::with(())
            .given(vec![
                created(),
                ThreadEvent::HistoryCopied {
                    origin: HistoryOrigin::Share {
                        share_id: "s".into(),
                    },
                    messages: vec![copied("u1", None, CopiedRole::User)],
                    current_message_id: None,
                    at: at(),
                },
            ])
            .when(post("u2", Some("u1"), "next"))
            .then_expect_events(vec![posted("u2", Some("u1"), "next")]);
    }

    #[test]
    fn a_share_is_made_once_and_revoked_once() {
        let shared = ThreadEvent::ThreadShared {
            share_id: "s1".into(),
            message_id: "a1".into(),
            at: at(),
        };
        ThreadTest::with(())
            .given(tree())
            .when(ThreadCommand::Share {
                share_id: "s1".into(),
                message_id: "a1".into(),
                at: at(),
            })
            .then_expect_events(vec![shared.clone()]);
        let mut given = tree();
        given.push(shared);
        ThreadTest::with(())
            .given(given.clone())
            .when(ThreadCommand::RevokeShare {
                share_id: "s1".into(),
                at: at(),
            })
            .then_expect_events(vec![ThreadEvent::ShareRevoked {
                share_id: "s1".into(),
                at: at(),
            }]);
        given.push(ThreadEvent::ShareRevoked {
            share_id: "s1".into(),
            at: at(),
        });
        ThreadTest::with(())
            .given(given)
            .when(ThreadCommand::RevokeShare {
                share_id: "s1".into(),
                at: at(),
            })
            .then_expect_error(ThreadError::ShareNotFound);
    }
}
