//! Billing: webhook deliveries made idempotent, and how a provider's subscription state maps
//! to the pro tier.
//!
//! Each delivery is a `WebhookDelivery` stream (`{provider}:{delivery id}`): `Receive` records
//! it, the effects run (a subscription change, credits added), `MarkProcessed` closes it. A
//! redelivery of a processed delivery is refused (`AlreadyProcessed`: the route answers 200
//! without doing anything); a delivery received but never processed (the process died in
//! between) runs its effects again, which are idempotent themselves.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;

/// Commands of a webhook delivery.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryCommand {
    Receive {
        event_type: String,
        at: DateTime<Utc>,
    },
    MarkProcessed {
        /// What the delivery did (`subscription`, `credits`, `ignored`).
        outcome: String,
        at: DateTime<Utc>,
    },
}

/// Events of a webhook delivery.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DeliveryEvent {
    DeliveryReceived {
        event_type: String,
        at: DateTime<Utc>,
    },
    DeliveryProcessed {
        outcome: String,
        at: DateTime<Utc>,
    },
}

impl DomainEvent for DeliveryEvent {
    fn event_type(&self) -> String {
        match self {
            Self::DeliveryReceived { .. } => "DeliveryReceived",
            Self::DeliveryProcessed { .. } => "DeliveryProcessed",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Why a delivery command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    #[error("this delivery was already processed")]
    AlreadyProcessed,
    #[error("this delivery was never received")]
    NotReceived,
}

/// A delivery's progress.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WebhookDelivery {
    received: bool,
    processed: bool,
}

impl crate::personal::DataSubject for WebhookDelivery {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
    }
}

impl Aggregate for WebhookDelivery {
    const TYPE: &'static str = "WebhookDelivery";
    type Command = DeliveryCommand;
    type Event = DeliveryEvent;
    type Error = DeliveryError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        if self.processed {
            return Err(DeliveryError::AlreadyProcessed);
        }
        let event = match command {
            DeliveryCommand::Receive { .. } if self.received => return Ok(()),
            DeliveryCommand::Receive { event_type, at } => {
                DeliveryEvent::DeliveryReceived { event_type, at }
            }
            DeliveryCommand::MarkProcessed { .. } if !self.received => {
                return Err(DeliveryError::NotReceived);
            }
            DeliveryCommand::MarkProcessed { outcome, at } => {
                DeliveryEvent::DeliveryProcessed { outcome, at }
            }
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            DeliveryEvent::DeliveryReceived { .. } => self.received = true,
            DeliveryEvent::DeliveryProcessed { .. } => self.processed = true,
        }
    }
}

/// Until when a subscription in `status` grants the pro tier: the end of the current period
/// while it is active, trialing or past due (the provider is still retrying the payment), and
/// while it is canceled but not yet ended (canceled at period end); never once it has ended,
/// was revoked, or never got paid.
pub fn pro_until(
    status: &str,
    current_period_end: Option<DateTime<Utc>>,
    ended: bool,
) -> Option<DateTime<Utc>> {
    match status {
        "active" | "trialing" | "past_due" => current_period_end,
        "canceled" if !ended => current_period_end,
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    type DeliveryTest = TestFramework<WebhookDelivery>;

    fn at() -> DateTime<Utc> {
        DateTime::UNIX_EPOCH
    }

    fn received() -> DeliveryEvent {
        DeliveryEvent::DeliveryReceived {
            event_type: "order.paid".into(),
            at: at(),
        }
    }

    fn receive() -> DeliveryCommand {
        DeliveryCommand::Receive {
            event_type: "order.paid".into(),
            at: at(),
        }
    }

    #[test]
    fn a_delivery_is_received_then_processed_once() {
        DeliveryTest::with(())
            .given_no_previous_events()
            .when(receive())
            .then_expect_events(vec![received()]);
        let processed = DeliveryEvent::DeliveryProcessed {
            outcome: "credits".into(),
            at: at(),
        };
        DeliveryTest::with(())
            .given(vec![received()])
            .when(DeliveryCommand::MarkProcessed {
                outcome: "credits".into(),
                at: at(),
            })
            .then_expect_events(vec![processed.clone()]);
        DeliveryTest::with(())
            .given(vec![received(), processed])
            .when(receive())
            .then_expect_error(DeliveryError::AlreadyProcessed);
    }

    #[test]
    fn a_delivery_received_but_not_processed_runs_again() {
        DeliveryTest::with(())
            .given(vec![received()])
            .when(receive())
            .then_expect_events(vec![]);
    }

    #[test]
    fn the_pro_tier_lasts_while_the_period_is_current() {
        let end = DateTime::from_timestamp(2_000_000_000, 0);
        assert_eq!(pro_until("active", end, false), end);
        assert_eq!(pro_until("trialing", end, false), end);
        assert_eq!(
            pro_until("canceled", end, false),
            end,
            "canceled at period end"
        );
        assert_eq!(pro_until("canceled", end, true), None, "ended");
        assert_eq!(pro_until("revoked", end, false), None);
        assert_eq!(pro_until("incomplete", end, false), None);
        assert_eq!(pro_until("unpaid", end, false), None);
    }
}
