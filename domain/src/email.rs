//! The `EmailRegistration` aggregate: one stream per normalised email address, so that two
//! sign-ups racing for one address are decided by the event store's optimistic concurrency.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;
use crate::values::AccountId;

/// Commands of an email address's stream (its aggregate id is the normalised address).
#[derive(Debug, Clone, PartialEq)]
pub enum EmailCommand {
    Claim {
        account_id: AccountId,
        at: DateTime<Utc>,
    },
    /// Gives the address back: a registration that claimed it was refused before its account
    /// was created. Only the claimant can release it; anything else writes nothing.
    Release {
        account_id: AccountId,
        at: DateTime<Utc>,
    },
}

/// Events of an email address's stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum EmailEvent {
    EmailClaimed {
        account_id: AccountId,
        at: DateTime<Utc>,
    },
    EmailReleased {
        account_id: AccountId,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for EmailEvent {
    fn event_type(&self) -> String {
        match self {
            Self::EmailClaimed { .. } => "EmailClaimed".to_owned(),
            Self::EmailReleased { .. } => "EmailReleased".to_owned(),
        }
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Why an email command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("the email address is already registered")]
    AlreadyClaimed,
}

/// Which account, if any, owns the address.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EmailRegistration {
    owner: Option<AccountId>,
}

impl crate::personal::DataSubject for EmailRegistration {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
    }
}

impl Aggregate for EmailRegistration {
    const TYPE: &'static str = "EmailRegistration";
    type Command = EmailCommand;
    type Event = EmailEvent;
    type Error = EmailError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        match command {
            EmailCommand::Claim { account_id, at } => {
                if self.owner.is_some() {
                    return Err(EmailError::AlreadyClaimed);
                }
                sink.write(EmailEvent::EmailClaimed { account_id, at }, self)
                    .await;
                Ok(())
            }
            EmailCommand::Release { account_id, at } => {
                if self.owner == Some(account_id) {
                    sink.write(EmailEvent::EmailReleased { account_id, at }, self)
                        .await;
                }
                Ok(())
            }
        }
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            EmailEvent::EmailClaimed { account_id, .. } => self.owner = Some(account_id),
            EmailEvent::EmailReleased { .. } => self.owner = None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;
    use uuid::Uuid;

    fn claimed(n: u128) -> EmailEvent {
        EmailEvent::EmailClaimed {
            account_id: AccountId(Uuid::from_u128(n)),
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_free_address_is_claimed() {
        TestFramework::<EmailRegistration>::with(())
            .given_no_previous_events()
            .when(EmailCommand::Claim {
                account_id: AccountId(Uuid::from_u128(1)),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_events(vec![claimed(1)]);
    }

    #[test]
    fn a_claimed_address_is_refused_to_everyone() {
        TestFramework::<EmailRegistration>::with(())
            .given(vec![claimed(1)])
            .when(EmailCommand::Claim {
                account_id: AccountId(Uuid::from_u128(2)),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_error(EmailError::AlreadyClaimed);
    }

    fn release(n: u128) -> EmailCommand {
        EmailCommand::Release {
            account_id: AccountId(Uuid::from_u128(n)),
            at: DateTime::UNIX_EPOCH,
        }
    }

    #[test]
    fn a_released_address_can_be_claimed_again() {
        TestFramework::<EmailRegistration>::with(())
            .given(vec![claimed(1)])
            .when(release(1))
            .then_expect_events(vec![EmailEvent::EmailReleased {
                account_id: AccountId(Uuid::from_u128(1)),
                at: DateTime::UNIX_EPOCH,
            }]);
        TestFramework::<EmailRegistration>::with(())
            .given(vec![
                claimed(1),
                EmailEvent::EmailReleased {
                    account_id: AccountId(Uuid::from_u128(1)),
                    at: DateTime::UNIX_EPOCH,
                },
            ])
            .when(EmailCommand::Claim {
                account_id: AccountId(Uuid::from_u128(2)),
                at: DateTime::UNIX_EPOCH,
            })
            .then_expect_events(vec![claimed(2)]);
    }

    #[test]
    fn only_the_claimant_releases_an_address() {
        TestFramework::<EmailRegistration>::with(())
            .given(vec![claimed(1)])
            .when(release(2))
            .then_expect_events(vec![]);
    }
}
