//! The `Account` aggregate: who a caller is, the sessions they hold, and the link from an
//! anonymous account into a registered one.
//!
//! An account is either anonymous (created on demand, holds only sessions) or registered (email,
//! optional name, argon2id password hash computed outside the domain). Registering or logging in
//! with an anonymous session links the anonymous account into the registered one: the registered
//! stream records `AnonymousAccountLinked`, the anonymous stream records `AccountLinkedInto` after
//! revoking its sessions, and projections move everything the anonymous account owned.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::values::{AccountId, DisplayName, Email, SessionId};

/// What kind of account a stream holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AccountKind {
    /// Created on demand for a visitor; may later be linked into a registered account.
    Anonymous,
    /// Signed up with email and password.
    Registered {
        email: Email,
        name: Option<DisplayName>,
        /// PHC string of an argon2id hash; never the password.
        password_hash: String,
    },
    /// Known through a JWT from an external identity provider; the stream id is derived from
    /// the issuer and subject, so the first request of a new subject creates it exactly once.
    External {
        issuer: Option<String>,
        subject: String,
        email: Option<String>,
        name: Option<String>,
        /// The provider marks the user anonymous (a guest session).
        anonymous: bool,
    },
}

/// A subscription as the billing provider last reported it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// `polar` or `stripe`.
    pub provider: String,
    pub subscription_id: String,
    /// The provider's customer id (Stripe's billing portal needs it).
    pub customer_id: Option<String>,
    /// The provider's status (`active`, `trialing`, `canceled`, `past_due`, …).
    pub status: String,
    /// The subscription grants the pro tier until this moment (the end of the paid period;
    /// `None` once it is revoked or expired).
    pub pro_until: Option<DateTime<Utc>>,
    /// When the provider produced this state (deliveries can arrive out of order: an older
    /// state never replaces a newer one of the same subscription).
    #[serde(default)]
    pub as_of: Option<DateTime<Utc>>,
}

impl Subscription {
    /// Whether this state is older than `current` (same subscription, both times known).
    pub fn is_older_than(&self, current: &Subscription) -> bool {
        self.subscription_id == current.subscription_id
            && matches!((self.as_of, current.as_of), (Some(new), Some(old)) if new < old)
    }
}

/// What the frontend keeps for a user. `theme` and `mode` are opaque to the server;
/// `custom_instructions`, `nickname` and `biography` shape the system prompt.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Preferences {
    pub nickname: Option<String>,
    pub biography: Option<String>,
    pub custom_instructions: Option<String>,
    pub default_model: Option<String>,
    /// Models pinned in the model picker; never empty once set.
    pub pinned_models: Vec<String>,
    pub theme: Option<String>,
    pub mode: Option<String>,
}

/// Limits of each preference, in characters (and entries for `pinned_models`).
pub mod limits {
    pub const NICKNAME: u64 = 50;
    pub const BIOGRAPHY: u64 = 1_000;
    pub const CUSTOM_INSTRUCTIONS: u64 = 3_000;
    pub const MODEL_ID: u64 = 128;
    pub const PINNED_MODELS: u64 = 30;
    pub const THEME: u64 = 64;
}

/// Commands the `Account` aggregate accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountCommand {
    CreateAnonymous {
        at: DateTime<Utc>,
    },
    Register {
        email: Email,
        name: Option<DisplayName>,
        password_hash: String,
        at: DateTime<Utc>,
    },
    IssueSession {
        session_id: SessionId,
        /// Hex SHA-256 of the bearer token; the token itself is never stored.
        token_hash: String,
        user_agent: Option<String>,
        ip: Option<String>,
        at: DateTime<Utc>,
    },
    RevokeSession {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    /// Sent to the registered account: take in the anonymous account `anonymous`.
    AbsorbAnonymous {
        anonymous: AccountId,
        at: DateTime<Utc>,
    },
    /// Sent to the anonymous account: it now lives on inside `target`.
    LinkInto {
        target: AccountId,
        at: DateTime<Utc>,
    },
    /// Replaces the preferences (the caller merges a patch into the current ones first).
    SetPreferences {
        preferences: Preferences,
        at: DateTime<Utc>,
    },
    /// Creates a personal API key (only its hash and visible prefix are recorded).
    CreateApiKey {
        key_id: uuid::Uuid,
        name: String,
        prefix: String,
        key_hash: String,
        at: DateTime<Utc>,
    },
    RevokeApiKey {
        key_id: uuid::Uuid,
        at: DateTime<Utc>,
    },
    /// Creates the account of an external identity; does nothing when it exists.
    CreateExternal {
        issuer: Option<String>,
        subject: String,
        email: Option<String>,
        name: Option<String>,
        anonymous: bool,
        at: DateTime<Utc>,
    },
    /// Records the subscription's latest state (does nothing when it is unchanged).
    ChangeSubscription {
        subscription: Subscription,
        at: DateTime<Utc>,
    },
    /// Changes the profile: each `Some` replaces a field (`Some(None)` clears it).
    UpdateProfile {
        name: Option<Option<DisplayName>>,
        image_url: Option<Option<String>>,
        at: DateTime<Utc>,
    },
    /// Records that a session was used (at most every few minutes; the caller decides).
    TouchSession {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    /// Erases the account (its data key is deleted by the caller once this is written): every
    /// session and API key stops working and no command is accepted after.
    Erase {
        at: DateTime<Utc>,
    },
}

/// Most live API keys an account may hold.
pub const MAX_API_KEYS: usize = 20;

/// Events of the `Account` stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum AccountEvent {
    AccountCreated {
        kind: AccountKind,
        at: DateTime<Utc>,
    },
    SessionIssued {
        session_id: SessionId,
        token_hash: String,
        user_agent: Option<String>,
        ip: Option<String>,
        at: DateTime<Utc>,
    },
    SessionRevoked {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    /// On the registered account: the anonymous account was linked into this one.
    AnonymousAccountLinked {
        anonymous_account_id: AccountId,
        at: DateTime<Utc>,
    },
    /// On the anonymous account: it was linked into `target_account_id`.
    AccountLinkedInto {
        target_account_id: AccountId,
        at: DateTime<Utc>,
    },
    PreferencesUpdated {
        preferences: Preferences,
        at: DateTime<Utc>,
    },
    ApiKeyCreated {
        key_id: uuid::Uuid,
        name: String,
        prefix: String,
        key_hash: String,
        at: DateTime<Utc>,
    },
    ApiKeyRevoked {
        key_id: uuid::Uuid,
        at: DateTime<Utc>,
    },
    SubscriptionChanged {
        subscription: Subscription,
        at: DateTime<Utc>,
    },
    /// The profile as it is now (both fields, changed or not).
    ProfileUpdated {
        name: Option<String>,
        image_url: Option<String>,
        at: DateTime<Utc>,
    },
    SessionSeen {
        session_id: SessionId,
        at: DateTime<Utc>,
    },
    /// The account was erased: its personal data in the log was sealed with a key that no
    /// longer exists. Its sessions and API keys are revoked by this event.
    AccountErased { at: DateTime<Utc> },
}

impl DomainEvent for AccountEvent {
    fn event_type(&self) -> String {
        match self {
            Self::AccountCreated { .. } => "AccountCreated",
            Self::SessionIssued { .. } => "SessionIssued",
            Self::SessionRevoked { .. } => "SessionRevoked",
            Self::AnonymousAccountLinked { .. } => "AnonymousAccountLinked",
            Self::AccountLinkedInto { .. } => "AccountLinkedInto",
            Self::PreferencesUpdated { .. } => "PreferencesUpdated",
            Self::ApiKeyCreated { .. } => "ApiKeyCreated",
            Self::ApiKeyRevoked { .. } => "ApiKeyRevoked",
            Self::SubscriptionChanged { .. } => "SubscriptionChanged",
            Self::ProfileUpdated { .. } => "ProfileUpdated",
            Self::SessionSeen { .. } => "SessionSeen",
            Self::AccountErased { .. } => "AccountErased",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        crate::personal::SEALED_SINCE.to_owned()
    }
}

/// Why an account command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccountError {
    #[error("the account already exists")]
    AlreadyExists,
    #[error("the account does not exist")]
    NotFound,
    #[error("the session does not exist or was already revoked")]
    SessionNotFound,
    #[error("only an anonymous account can be linked into another")]
    NotAnonymous,
    #[error("an anonymous account can only be linked into a registered account")]
    NotRegistered,
    #[error("the anonymous account was already linked into another account")]
    AlreadyLinked,
    #[error("an account cannot be linked into itself")]
    LinkToSelf,
    #[error("pinned models must not be empty")]
    NoPinnedModel,
    #[error("the API key does not exist or was already revoked")]
    ApiKeyNotFound,
    #[error("an account holds at most 20 live API keys")]
    TooManyApiKeys,
    #[error("the account was erased")]
    Erased,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
enum State {
    #[default]
    New,
    Anonymous,
    Registered,
    LinkedInto(AccountId),
    Erased,
}

/// The `Account` aggregate's state: only what its rules need.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Account {
    state: State,
    active_sessions: BTreeSet<uuid::Uuid>,
    preferences: Option<Preferences>,
    #[serde(default)]
    api_keys: BTreeSet<uuid::Uuid>,
    #[serde(default)]
    subscription: Option<Subscription>,
    /// The display name and picture, as last set.
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    image_url: Option<String>,
}

impl Aggregate for Account {
    const TYPE: &'static str = "Account";
    type Command = AccountCommand;
    type Event = AccountEvent;
    type Error = AccountError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let events = self.decide(command)?;
        for event in events {
            sink.write(event, self).await;
        }
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            AccountEvent::AccountCreated { kind, .. } => {
                self.name = match &kind {
                    AccountKind::Registered { name, .. } => {
                        name.as_ref().map(|n| n.as_str().to_owned())
                    }
                    AccountKind::External { name, .. } => name.clone(),
                    AccountKind::Anonymous => None,
                };
                self.state = match kind {
                    AccountKind::Anonymous => State::Anonymous,
                    AccountKind::Registered { .. } | AccountKind::External { .. } => {
                        State::Registered
                    }
                };
            }
            AccountEvent::SessionIssued { session_id, .. } => {
                self.active_sessions.insert(session_id.0);
            }
            AccountEvent::SessionRevoked { session_id, .. } => {
                self.active_sessions.remove(&session_id.0);
            }
            AccountEvent::AnonymousAccountLinked { .. } => {}
            AccountEvent::AccountLinkedInto {
                target_account_id, ..
            } => self.state = State::LinkedInto(target_account_id),
            AccountEvent::PreferencesUpdated { preferences, .. } => {
                self.preferences = Some(preferences)
            }
            AccountEvent::ApiKeyCreated { key_id, .. } => {
                self.api_keys.insert(key_id);
            }
            AccountEvent::ApiKeyRevoked { key_id, .. } => {
                self.api_keys.remove(&key_id);
            }
            AccountEvent::SubscriptionChanged { subscription, .. } => {
                self.subscription = Some(subscription)
            }
            AccountEvent::ProfileUpdated {
                name, image_url, ..
            } => {
                self.name = name;
                self.image_url = image_url;
            }
            AccountEvent::SessionSeen { .. } => {}
            AccountEvent::AccountErased { .. } => {
                *self = Account {
                    state: State::Erased,
                    ..Account::default()
                };
            }
        }
    }
}

impl crate::personal::DataSubject for Account {
    fn data_subject(&self, aggregate_id: &str) -> Option<String> {
        Some(aggregate_id.to_owned())
    }
}

impl Account {
    fn decide(&self, command: AccountCommand) -> Result<Vec<AccountEvent>, AccountError> {
        use AccountCommand as C;
        use AccountEvent as E;
        match command {
            C::CreateAnonymous { at } => {
                self.require_new()?;
                Ok(vec![E::AccountCreated {
                    kind: AccountKind::Anonymous,
                    at,
                }])
            }
            C::Register {
                email,
                name,
                password_hash,
                at,
            } => {
                self.require_new()?;
                Ok(vec![E::AccountCreated {
                    kind: AccountKind::Registered {
                        email,
                        name,
                        password_hash,
                    },
                    at,
                }])
            }
            C::IssueSession {
                session_id,
                token_hash,
                user_agent,
                ip,
                at,
            } => {
                self.require_open()?;
                Ok(vec![E::SessionIssued {
                    session_id,
                    token_hash,
                    user_agent,
                    ip,
                    at,
                }])
            }
            C::RevokeSession { session_id, at } => {
                if !self.active_sessions.contains(&session_id.0) {
                    return Err(AccountError::SessionNotFound);
                }
                Ok(vec![E::SessionRevoked { session_id, at }])
            }
            C::AbsorbAnonymous { anonymous, at } => match self.state {
                State::New => Err(AccountError::NotFound),
                State::Registered => Ok(vec![E::AnonymousAccountLinked {
                    anonymous_account_id: anonymous,
                    at,
                }]),
                State::Anonymous | State::LinkedInto(_) => Err(AccountError::NotRegistered),
                State::Erased => Err(AccountError::Erased),
            },
            C::SetPreferences { preferences, at } => {
                self.require_open()?;
                if preferences.pinned_models.is_empty() {
                    return Err(AccountError::NoPinnedModel);
                }
                if self.preferences.as_ref() == Some(&preferences) {
                    return Ok(vec![]);
                }
                Ok(vec![E::PreferencesUpdated { preferences, at }])
            }
            C::CreateApiKey {
                key_id,
                name,
                prefix,
                key_hash,
                at,
            } => {
                self.require_open()?;
                if self.api_keys.len() >= MAX_API_KEYS {
                    return Err(AccountError::TooManyApiKeys);
                }
                Ok(vec![E::ApiKeyCreated {
                    key_id,
                    name,
                    prefix,
                    key_hash,
                    at,
                }])
            }
            C::RevokeApiKey { key_id, at } => {
                if !self.api_keys.contains(&key_id) {
                    return Err(AccountError::ApiKeyNotFound);
                }
                Ok(vec![E::ApiKeyRevoked { key_id, at }])
            }
            C::CreateExternal {
                issuer,
                subject,
                email,
                name,
                anonymous,
                at,
            } => {
                if self.state != State::New {
                    return Ok(vec![]);
                }
                Ok(vec![E::AccountCreated {
                    kind: AccountKind::External {
                        issuer,
                        subject,
                        email,
                        name,
                        anonymous,
                    },
                    at,
                }])
            }
            C::ChangeSubscription { subscription, at } => {
                self.require_open()?;
                let current = self.subscription.as_ref();
                if current == Some(&subscription)
                    || current.is_some_and(|c| subscription.is_older_than(c))
                {
                    return Ok(vec![]);
                }
                Ok(vec![E::SubscriptionChanged { subscription, at }])
            }
            C::UpdateProfile {
                name,
                image_url,
                at,
            } => {
                self.require_open()?;
                let name = name.map_or(self.name.clone(), |n| n.map(|n| n.as_str().to_owned()));
                let image_url = image_url.unwrap_or(self.image_url.clone());
                if name == self.name && image_url == self.image_url {
                    return Ok(vec![]);
                }
                Ok(vec![E::ProfileUpdated {
                    name,
                    image_url,
                    at,
                }])
            }
            C::Erase { at } => match self.state {
                State::New => Err(AccountError::NotFound),
                State::Erased => Err(AccountError::Erased),
                _ => Ok(vec![E::AccountErased { at }]),
            },
            C::TouchSession { session_id, at } => {
                if !self.active_sessions.contains(&session_id.0) {
                    return Err(AccountError::SessionNotFound);
                }
                Ok(vec![E::SessionSeen { session_id, at }])
            }
            C::LinkInto { target, at } => match self.state {
                State::New => Err(AccountError::NotFound),
                State::Registered => Err(AccountError::NotAnonymous),
                State::LinkedInto(_) => Err(AccountError::AlreadyLinked),
                State::Erased => Err(AccountError::Erased),
                State::Anonymous => {
                    // The anonymous identity ends here: its sessions stop working.
                    let mut events: Vec<_> = self
                        .active_sessions
                        .iter()
                        .map(|id| E::SessionRevoked {
                            session_id: SessionId(*id),
                            at,
                        })
                        .collect();
                    events.push(E::AccountLinkedInto {
                        target_account_id: target,
                        at,
                    });
                    Ok(events)
                }
            },
        }
    }

    fn require_new(&self) -> Result<(), AccountError> {
        match self.state {
            State::New => Ok(()),
            _ => Err(AccountError::AlreadyExists),
        }
    }

    fn require_open(&self) -> Result<(), AccountError> {
        match self.state {
            State::New => Err(AccountError::NotFound),
            State::LinkedInto(_) => Err(AccountError::AlreadyLinked),
            State::Erased => Err(AccountError::Erased),
            State::Anonymous | State::Registered => Ok(()),
        }
    }
}

/// Checks that `target` may absorb `anonymous` before any event is written, so that a refused
/// link leaves neither stream changed.
pub fn check_link(anonymous: AccountId, target: AccountId) -> Result<(), AccountError> {
    if anonymous == target {
        return Err(AccountError::LinkToSelf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    type AccountTest = TestFramework<Account>;

    fn at() -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()
    }

    fn session(n: u128) -> SessionId {
        SessionId(Uuid::from_u128(n))
    }

    fn email() -> Email {
        Email::parse("ada@example.com").unwrap_or_else(|e| unreachable!("{e}"))
    }

    fn registered() -> AccountEvent {
        AccountEvent::AccountCreated {
            kind: AccountKind::Registered {
                email: email(),
                name: None,
                password_hash: "$argon2id$stub".into(),
            },
            at: at(),
        }
    }

    fn anonymous() -> AccountEvent {
        AccountEvent::AccountCreated {
            kind: AccountKind::Anonymous,
            at: at(),
        }
    }

    fn issued(n: u128) -> AccountEvent {
        AccountEvent::SessionIssued {
            session_id: session(n),
            token_hash: format!("hash{n}"),
            user_agent: None,
            ip: None,
            at: at(),
        }
    }

    fn issue(n: u128) -> AccountCommand {
        AccountCommand::IssueSession {
            session_id: session(n),
            token_hash: format!("hash{n}"),
            user_agent: None,
            ip: None,
            at: at(),
        }
    }

    #[test]
    fn an_account_is_erased_once_and_accepts_nothing_after() {
        AccountTest::with(())
            .given(vec![registered(), issued(1)])
            .when(AccountCommand::Erase { at: at() })
            .then_expect_events(vec![AccountEvent::AccountErased { at: at() }]);
        let erased = vec![
            registered(),
            issued(1),
            AccountEvent::AccountErased { at: at() },
        ];
        AccountTest::with(())
            .given(erased.clone())
            .when(AccountCommand::Erase { at: at() })
            .then_expect_error(AccountError::Erased);
        AccountTest::with(())
            .given(erased.clone())
            .when(issue(2))
            .then_expect_error(AccountError::Erased);
        // Its sessions are gone with it: none can be touched.
        AccountTest::with(())
            .given(erased)
            .when(AccountCommand::TouchSession {
                session_id: session(1),
                at: at(),
            })
            .then_expect_error(AccountError::SessionNotFound);
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::Erase { at: at() })
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn an_anonymous_account_linked_away_can_still_be_erased() {
        let target = AccountId(Uuid::from_u128(9));
        AccountTest::with(())
            .given(vec![
                anonymous(),
                AccountEvent::AccountLinkedInto {
                    target_account_id: target,
                    at: at(),
                },
            ])
            .when(AccountCommand::Erase { at: at() })
            .then_expect_events(vec![AccountEvent::AccountErased { at: at() }]);
    }

    #[test]
    fn an_anonymous_account_is_created() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::CreateAnonymous { at: at() })
            .then_expect_events(vec![anonymous()]);
    }

    #[test]
    fn an_account_is_not_created_twice() {
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(AccountCommand::CreateAnonymous { at: at() })
            .then_expect_error(AccountError::AlreadyExists);
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(AccountCommand::Register {
                email: email(),
                name: None,
                password_hash: "$argon2id$stub".into(),
                at: at(),
            })
            .then_expect_error(AccountError::AlreadyExists);
    }

    #[test]
    fn a_registration_records_email_and_hash() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::Register {
                email: email(),
                name: None,
                password_hash: "$argon2id$stub".into(),
                at: at(),
            })
            .then_expect_events(vec![registered()]);
    }

    #[test]
    fn a_session_is_issued_to_an_existing_account() {
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(issue(1))
            .then_expect_events(vec![issued(1)]);
    }

    #[test]
    fn no_session_is_issued_to_a_missing_account() {
        AccountTest::with(())
            .given_no_previous_events()
            .when(issue(1))
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn a_live_session_is_revoked_once() {
        let revoke = AccountCommand::RevokeSession {
            session_id: session(1),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered(), issued(1)])
            .when(revoke.clone())
            .then_expect_events(vec![AccountEvent::SessionRevoked {
                session_id: session(1),
                at: at(),
            }]);
        AccountTest::with(())
            .given(vec![
                registered(),
                issued(1),
                AccountEvent::SessionRevoked {
                    session_id: session(1),
                    at: at(),
                },
            ])
            .when(revoke)
            .then_expect_error(AccountError::SessionNotFound);
    }

    #[test]
    fn an_unknown_session_cannot_be_revoked() {
        AccountTest::with(())
            .given(vec![registered(), issued(1)])
            .when(AccountCommand::RevokeSession {
                session_id: session(2),
                at: at(),
            })
            .then_expect_error(AccountError::SessionNotFound);
    }

    #[test]
    fn a_registered_account_absorbs_an_anonymous_one() {
        let anon = AccountId(Uuid::from_u128(9));
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::AbsorbAnonymous {
                anonymous: anon,
                at: at(),
            })
            .then_expect_events(vec![AccountEvent::AnonymousAccountLinked {
                anonymous_account_id: anon,
                at: at(),
            }]);
    }

    #[test]
    fn an_anonymous_account_cannot_absorb_another() {
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(AccountCommand::AbsorbAnonymous {
                anonymous: AccountId(Uuid::from_u128(9)),
                at: at(),
            })
            .then_expect_error(AccountError::NotRegistered);
    }

    #[test]
    fn linking_an_anonymous_account_revokes_its_sessions_and_records_the_target() {
        let target = AccountId(Uuid::from_u128(7));
        AccountTest::with(())
            .given(vec![anonymous(), issued(1), issued(2)])
            .when(AccountCommand::LinkInto { target, at: at() })
            .then_expect_events(vec![
                AccountEvent::SessionRevoked {
                    session_id: session(1),
                    at: at(),
                },
                AccountEvent::SessionRevoked {
                    session_id: session(2),
                    at: at(),
                },
                AccountEvent::AccountLinkedInto {
                    target_account_id: target,
                    at: at(),
                },
            ]);
    }

    #[test]
    fn a_linked_account_is_not_linked_again_and_gets_no_sessions() {
        let linked = AccountEvent::AccountLinkedInto {
            target_account_id: AccountId(Uuid::from_u128(7)),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![anonymous(), linked.clone()])
            .when(AccountCommand::LinkInto {
                target: AccountId(Uuid::from_u128(8)),
                at: at(),
            })
            .then_expect_error(AccountError::AlreadyLinked);
        AccountTest::with(())
            .given(vec![anonymous(), linked])
            .when(issue(3))
            .then_expect_error(AccountError::AlreadyLinked);
    }

    #[test]
    fn a_registered_account_is_never_linked_into_another() {
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::LinkInto {
                target: AccountId(Uuid::from_u128(8)),
                at: at(),
            })
            .then_expect_error(AccountError::NotAnonymous);
    }

    #[test]
    fn preferences_are_set_unless_unchanged_or_without_a_pinned_model() {
        let prefs = Preferences {
            nickname: Some("Ada".into()),
            pinned_models: vec!["echo".into()],
            ..Preferences::default()
        };
        let updated = AccountEvent::PreferencesUpdated {
            preferences: prefs.clone(),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(AccountCommand::SetPreferences {
                preferences: prefs.clone(),
                at: at(),
            })
            .then_expect_events(vec![updated.clone()]);
        AccountTest::with(())
            .given(vec![anonymous(), updated])
            .when(AccountCommand::SetPreferences {
                preferences: prefs,
                at: at(),
            })
            .then_expect_events(vec![]);
        AccountTest::with(())
            .given(vec![anonymous()])
            .when(AccountCommand::SetPreferences {
                preferences: Preferences::default(),
                at: at(),
            })
            .then_expect_error(AccountError::NoPinnedModel);
    }

    #[test]
    fn api_keys_are_created_and_revoked_once() {
        let id = Uuid::from_u128(3);
        let created = AccountEvent::ApiKeyCreated {
            key_id: id,
            name: "ci".into(),
            prefix: "tlk_abcd".into(),
            key_hash: "h".into(),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::CreateApiKey {
                key_id: id,
                name: "ci".into(),
                prefix: "tlk_abcd".into(),
                key_hash: "h".into(),
                at: at(),
            })
            .then_expect_events(vec![created.clone()]);
        let revoked = AccountEvent::ApiKeyRevoked {
            key_id: id,
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered(), created.clone()])
            .when(AccountCommand::RevokeApiKey {
                key_id: id,
                at: at(),
            })
            .then_expect_events(vec![revoked.clone()]);
        AccountTest::with(())
            .given(vec![registered(), created, revoked])
            .when(AccountCommand::RevokeApiKey {
                key_id: id,
                at: at(),
            })
            .then_expect_error(AccountError::ApiKeyNotFound);
    }

    #[test]
    fn an_account_is_not_linked_into_itself() {
        let id = AccountId(Uuid::from_u128(1));
        assert_eq!(check_link(id, id), Err(AccountError::LinkToSelf));
    }

    fn subscription(status: &str, until: Option<i64>) -> Subscription {
        Subscription {
            provider: "polar".into(),
            subscription_id: "sub_1".into(),
            customer_id: None,
            status: status.into(),
            pro_until: until.and_then(|t| DateTime::from_timestamp(t, 0)),
            as_of: None,
        }
    }

    #[test]
    fn an_older_state_of_the_same_subscription_is_ignored() {
        let at = |t| DateTime::from_timestamp(t, 0);
        let revoked = Subscription {
            as_of: at(2_000),
            ..subscription("canceled", None)
        };
        let stale_active = Subscription {
            as_of: at(1_000),
            ..subscription("active", Some(1_800_000_000))
        };
        AccountTest::with(())
            .given(vec![
                registered(),
                AccountEvent::SubscriptionChanged {
                    subscription: revoked,
                    at: at(2_000).unwrap(),
                },
            ])
            .when(AccountCommand::ChangeSubscription {
                subscription: stale_active.clone(),
                at: at(2_001).unwrap(),
            })
            .then_expect_events(vec![]);
        let new_subscription = Subscription {
            subscription_id: "sub_2".into(),
            ..stale_active
        };
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::ChangeSubscription {
                subscription: new_subscription.clone(),
                at: at(2_001).unwrap(),
            })
            .then_expect_events(vec![AccountEvent::SubscriptionChanged {
                subscription: new_subscription,
                at: at(2_001).unwrap(),
            }]);
    }

    #[test]
    fn a_subscription_change_is_recorded_once() {
        let changed = AccountEvent::SubscriptionChanged {
            subscription: subscription("active", Some(1_800_000_000)),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::ChangeSubscription {
                subscription: subscription("active", Some(1_800_000_000)),
                at: at(),
            })
            .then_expect_events(vec![changed.clone()]);
        AccountTest::with(())
            .given(vec![registered(), changed])
            .when(AccountCommand::ChangeSubscription {
                subscription: subscription("active", Some(1_800_000_000)),
                at: at(),
            })
            .then_expect_events(vec![]);
        AccountTest::with(())
            .given_no_previous_events()
            .when(AccountCommand::ChangeSubscription {
                subscription: subscription("active", None),
                at: at(),
            })
            .then_expect_error(AccountError::NotFound);
    }

    #[test]
    fn an_external_identity_is_created_once() {
        let create = AccountCommand::CreateExternal {
            issuer: Some("https://idp".into()),
            subject: "user_1".into(),
            email: None,
            name: None,
            anonymous: false,
            at: at(),
        };
        let created = AccountEvent::AccountCreated {
            kind: AccountKind::External {
                issuer: Some("https://idp".into()),
                subject: "user_1".into(),
                email: None,
                name: None,
                anonymous: false,
            },
            at: at(),
        };
        AccountTest::with(())
            .given_no_previous_events()
            .when(create.clone())
            .then_expect_events(vec![created.clone()]);
        AccountTest::with(())
            .given(vec![created])
            .when(create)
            .then_expect_events(vec![]);
    }

    #[test]
    fn a_profile_patch_keeps_what_it_does_not_name_and_clears_what_is_null() {
        let name = |n: &str| Some(DisplayName::parse(n).unwrap_or_else(|e| unreachable!("{e}")));
        let updated = |name: Option<&str>, image: Option<&str>| AccountEvent::ProfileUpdated {
            name: name.map(Into::into),
            image_url: image.map(Into::into),
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered()])
            .when(AccountCommand::UpdateProfile {
                name: Some(name("Ada")),
                image_url: None,
                at: at(),
            })
            .then_expect_events(vec![updated(Some("Ada"), None)]);
        AccountTest::with(())
            .given(vec![
                registered(),
                updated(Some("Ada"), Some("https://x/a.png")),
            ])
            .when(AccountCommand::UpdateProfile {
                name: None,
                image_url: Some(None),
                at: at(),
            })
            .then_expect_events(vec![updated(Some("Ada"), None)]);
        AccountTest::with(())
            .given(vec![registered(), updated(Some("Ada"), None)])
            .when(AccountCommand::UpdateProfile {
                name: Some(name("Ada")),
                image_url: None,
                at: at(),
            })
            .then_expect_events(vec![]);
    }

    #[test]
    fn only_a_live_session_is_touched() {
        let issued = AccountEvent::SessionIssued {
            session_id: session(1),
            token_hash: "h".into(),
            user_agent: None,
            ip: None,
            at: at(),
        };
        AccountTest::with(())
            .given(vec![registered(), issued.clone()])
            .when(AccountCommand::TouchSession {
                session_id: session(1),
                at: at(),
            })
            .then_expect_events(vec![AccountEvent::SessionSeen {
                session_id: session(1),
                at: at(),
            }]);
        AccountTest::with(())
            .given(vec![registered(), issued])
            .when(AccountCommand::TouchSession {
                session_id: session(2),
                at: at(),
            })
            .then_expect_error(AccountError::SessionNotFound);
    }
}
