//! Webhook deliveries from Polar and Stripe turned into commands: a subscription's state onto
//! the account (the tier follows from it), a paid order into purchased credits.
//!
//! Each delivery is recorded once by its delivery id (Polar's `webhook-id`, Stripe's event id)
//! on a `WebhookDelivery` stream; a replayed delivery answers 200 and changes nothing.

use chrono::{DateTime, Utc};
use threadline_domain::account::{Account, AccountCommand, Subscription};
use threadline_domain::billing::{self, DeliveryCommand, DeliveryError, WebhookDelivery};
use threadline_domain::plans::Plans;
use threadline_domain::values::AccountId;

use crate::billing::payloads::{
    self, PolarEvent, PolarOrder, PolarSubscription, StripeCheckoutSession, StripeEvent,
    StripeSubscription,
};
use crate::error::ApiError;
use crate::services::credits;
use crate::state::AppState;
use crate::store::bus::{CommandError, CommandMeta};

/// What a delivery did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Subscription,
    Credits,
    /// An event type this server does not act on, or an order of something that is not a
    /// credit pack.
    Ignored,
    /// The delivery id was already processed.
    Duplicate,
}

impl Outcome {
    fn as_str(&self) -> &'static str {
        match self {
            Outcome::Subscription => "subscription",
            Outcome::Credits => "credits",
            Outcome::Ignored => "ignored",
            Outcome::Duplicate => "duplicate",
        }
    }
}

/// A provider's event, in the shape both providers reduce to.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    Subscription {
        account: String,
        subscription: Subscription,
    },
    Credits {
        account: String,
        order_id: String,
        credits: u64,
    },
    Ignored,
}

/// Records the delivery, applies its effect and marks it processed.
pub async fn deliver(
    state: &AppState,
    provider: &str,
    delivery_id: &str,
    event_type: &str,
    effect: Effect,
    request_id: &str,
) -> Result<Outcome, ApiError> {
    let meta = CommandMeta::for_request(request_id, None);
    let stream = format!("{provider}:{delivery_id}");
    let received = state
        .bus
        .execute::<WebhookDelivery>(
            &stream,
            DeliveryCommand::Receive {
                event_type: event_type.to_owned(),
                at: Utc::now(),
            },
            &meta,
        )
        .await;
    match received {
        Err(CommandError::Rejected(DeliveryError::AlreadyProcessed)) => {
            return Ok(Outcome::Duplicate);
        }
        other => {
            other?;
        }
    }
    let outcome = match effect {
        Effect::Subscription {
            account,
            subscription,
        } => {
            let id = known_account(state, &account).await?;
            state
                .run::<Account>(
                    &id,
                    AccountCommand::ChangeSubscription {
                        subscription,
                        at: Utc::now(),
                    },
                    &meta,
                )
                .await?;
            Outcome::Subscription
        }
        Effect::Credits {
            account,
            order_id,
            credits: amount,
        } => {
            let id = known_account(state, &account).await?;
            let source = format!("order:{provider}:{order_id}");
            credits::add_purchased(state, &id, &source, amount, &meta).await?;
            Outcome::Credits
        }
        Effect::Ignored => Outcome::Ignored,
    };
    state
        .send::<WebhookDelivery>(
            &stream,
            DeliveryCommand::MarkProcessed {
                outcome: outcome.as_str().to_owned(),
                at: Utc::now(),
            },
            &meta,
        )
        .await?;
    Ok(outcome)
}

/// The account a delivery names; an unknown one is a 422 (the provider shows it failed, and
/// retries after the account exists, or an operator looks).
async fn known_account(state: &AppState, id: &str) -> Result<String, ApiError> {
    let unknown = || ApiError::invalid_field("account_id", format!("no account {id:?}"));
    AccountId::parse(id).map_err(|_| unknown())?;
    match threadline_projections::accounts::account(&state.db, id).await? {
        Some(_) => Ok(id.to_owned()),
        None => Err(unknown()),
    }
}

pub use crate::billing::payloads::Unreadable;

impl From<Unreadable> for ApiError {
    fn from(e: Unreadable) -> Self {
        tracing::warn!(problem = %e, "refused a signed webhook event that cannot be read");
        ApiError::BadRequest {
            code: crate::error::ErrorCode::UnreadableEvent,
            detail: format!("the event cannot be read: {e}"),
        }
    }
}

/// Reads a Polar event. A subscription event orders by its `modified_at` (or, while that is
/// null, its `created_at`, then the event's `timestamp`).
pub fn polar_effect(plans: &Plans, event: &PolarEvent) -> Result<Effect, Unreadable> {
    let kind = event.kind.as_str();
    if kind.starts_with("subscription.") {
        let sub: PolarSubscription = payloads::read(&event.data, "data")?;
        let Some(account) = payloads::polar_account(&sub.customer, &sub.metadata) else {
            return Ok(Effect::Ignored);
        };
        let status = match kind {
            "subscription.revoked" => "revoked",
            _ => sub.status.as_str(),
        };
        let as_of = sub
            .modified_at
            .or(sub.created_at)
            .or(event.timestamp)
            .ok_or_else(|| Unreadable::missing("data.modified_at"))?;
        let ended = sub.ended_at.is_some_and(|t| t <= Utc::now());
        return Ok(Effect::Subscription {
            account,
            subscription: Subscription {
                provider: "polar".into(),
                subscription_id: sub.id.clone(),
                customer_id: sub
                    .customer
                    .as_ref()
                    .and_then(|c| c.id.clone())
                    .or(sub.customer_id.clone()),
                status: status.to_owned(),
                pro_until: billing::pro_until(status, sub.current_period_end, ended),
                as_of: Some(as_of),
            },
        });
    }
    if kind == "order.paid" {
        let order: PolarOrder = payloads::read(&event.data, "data")?;
        let Some(account) = payloads::polar_account(&order.customer, &order.metadata) else {
            return Ok(Effect::Ignored);
        };
        let credits = order
            .product_id
            .as_deref()
            .and_then(|id| plans.polar_product(id))
            .map_or(0, |p| p.credits);
        return Ok(match credits {
            0 => Effect::Ignored,
            credits => Effect::Credits {
                account,
                order_id: order.id,
                credits,
            },
        });
    }
    Ok(Effect::Ignored)
}

/// Reads a Stripe event. A subscription event orders by the event's `created`.
pub fn stripe_effect(plans: &Plans, event: &StripeEvent) -> Result<Effect, Unreadable> {
    let kind = event.kind.as_str();
    if kind.starts_with("customer.subscription.") {
        let sub: StripeSubscription = payloads::read(&event.data.object, "data.object")?;
        let Some(account) = sub
            .metadata
            .as_ref()
            .and_then(|m| m.account_id.clone())
            .filter(|id| !id.is_empty())
        else {
            return Ok(Effect::Ignored);
        };
        let as_of = event
            .created
            .and_then(|t| DateTime::from_timestamp(t, 0))
            .ok_or_else(|| Unreadable::missing("created"))?;
        // Newer API versions moved the period onto the subscription's items.
        let period_end = sub
            .current_period_end
            .or_else(|| {
                sub.items
                    .as_ref()
                    .and_then(|items| items.data.first())
                    .and_then(|item| item.current_period_end)
            })
            .and_then(|t| DateTime::from_timestamp(t, 0));
        let ended = kind == "customer.subscription.deleted"
            || sub.ended_at.is_some_and(|t| t <= Utc::now().timestamp());
        return Ok(Effect::Subscription {
            account,
            subscription: Subscription {
                provider: "stripe".into(),
                subscription_id: sub.id,
                customer_id: sub.customer,
                pro_until: billing::pro_until(&sub.status, period_end, ended),
                status: sub.status,
                as_of: Some(as_of),
            },
        });
    }
    if kind == "checkout.session.completed" {
        let session: StripeCheckoutSession = payloads::read(&event.data.object, "data.object")?;
        let metadata = session.metadata.unwrap_or_default();
        let account = metadata
            .account_id
            .or(session.client_reference_id)
            .filter(|id| !id.is_empty());
        let paid = session.mode.as_deref() == Some("payment")
            && session.payment_status.as_deref() == Some("paid");
        let credits = metadata
            .price
            .as_deref()
            .and_then(|price| plans.stripe_price(price))
            .map_or(0, |p| p.credits);
        return Ok(match (account, paid, credits) {
            (Some(account), true, 1..) => Effect::Credits {
                account,
                order_id: session.id,
                credits,
            },
            _ => Effect::Ignored,
        });
    }
    Ok(Effect::Ignored)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use threadline_domain::plans::{Plans, Product};

    fn polar(plans: &Plans, event: Value) -> Result<Effect, Unreadable> {
        polar_effect(plans, &serde_json::from_value(event).unwrap())
    }

    fn stripe(plans: &Plans, event: Value) -> Result<Effect, Unreadable> {
        stripe_effect(plans, &serde_json::from_value(event).unwrap())
    }

    fn plans() -> Plans {
        Plans {
            products: vec![Product {
                id: "credits-100".into(),
                polar_product_id: Some("prod_credits".into()),
                stripe_price_id: Some("price_credits".into()),
                credits: 100,
            }],
            ..Plans::default()
        }
    }

    #[test]
    fn a_polar_subscription_maps_to_pro_until_its_period_ends() {
        let effect = polar(
            &plans(),
            json!({"type": "subscription.updated", "data": {
                "id": "sub_1", "status": "active", "cancel_at_period_end": true,
                "current_period_end": "2030-01-01T00:00:00Z", "ended_at": null,
                "modified_at": "2029-06-01T00:00:00Z",
                "customer": {"id": "cus_1", "external_id": "acc"}}}),
        )
        .unwrap();
        let Effect::Subscription {
            account,
            subscription,
        } = effect
        else {
            panic!("{effect:?}")
        };
        assert_eq!(account, "acc");
        assert_eq!(subscription.customer_id.as_deref(), Some("cus_1"));
        assert_eq!(
            subscription.pro_until,
            DateTime::from_timestamp(1_893_456_000, 0)
        );
        let revoked = polar(
            &plans(),
            json!({"type": "subscription.revoked", "data": {
                "id": "sub_1", "status": "canceled",
                "current_period_end": "2030-01-01T00:00:00Z", "modified_at": null,
                "created_at": "2029-01-01T00:00:00Z",
                "customer": {"external_id": "acc"}}}),
        )
        .unwrap();
        assert!(
            matches!(revoked, Effect::Subscription { subscription, .. } if subscription.pro_until.is_none())
        );
    }

    #[test]
    fn a_paid_polar_order_of_a_pack_adds_its_credits() {
        let order = |product| {
            polar(
                &plans(),
                json!({"type": "order.paid", "data": {"id": "ord_1", "product_id": product,
                    "customer": {"external_id": "acc"}}}),
            )
            .unwrap()
        };
        assert_eq!(
            order("prod_credits"),
            Effect::Credits {
                account: "acc".into(),
                order_id: "ord_1".into(),
                credits: 100
            }
        );
        assert_eq!(order("prod_pro"), Effect::Ignored);
    }

    #[test]
    fn stripe_subscriptions_and_payments_map_the_same_way() {
        let sub = stripe(
            &plans(),
            json!({"id": "evt_1", "type": "customer.subscription.deleted", "created": 1_890_000_000,
                "data": {"object": {
                "id": "sub_1", "customer": "cus_1", "status": "canceled",
                "items": {"data": [{"current_period_end": 1_893_456_000}]},
                "metadata": {"account_id": "acc"}}}}),
        )
        .unwrap();
        assert!(
            matches!(sub, Effect::Subscription { subscription, .. } if subscription.pro_until.is_none() && subscription.customer_id.as_deref() == Some("cus_1"))
        );
        let paid = stripe(
            &plans(),
            json!({"id": "evt_2", "type": "checkout.session.completed", "data": {"object": {
                "id": "cs_1", "mode": "payment", "payment_status": "paid",
                "client_reference_id": "acc", "metadata": {"price": "price_credits"}}}}),
        )
        .unwrap();
        assert_eq!(
            paid,
            Effect::Credits {
                account: "acc".into(),
                order_id: "cs_1".into(),
                credits: 100
            }
        );
        let unknown = stripe(
            &plans(),
            json!({"id": "evt_3", "type": "invoice.paid", "data": {"object": {}}}),
        );
        assert_eq!(unknown, Ok(Effect::Ignored));
    }

    #[test]
    fn a_subscription_event_whose_order_cannot_be_read_is_refused() {
        let base = json!({"id": "sub_1", "status": "active",
            "current_period_end": "2030-01-01T00:00:00Z",
            "customer": {"external_id": "acc"}});
        let with = |key: &str, value: Value| {
            let mut data = base.clone();
            data[key] = value;
            json!({"type": "subscription.updated", "data": data})
        };
        let refused = |event: Value| match polar(&plans(), event) {
            Err(Unreadable(why)) => why,
            other => panic!("{other:?}"),
        };
        assert!(refused(with("modified_at", json!("not a time"))).starts_with("data.modified_at:"));
        assert!(
            refused(json!({"type": "subscription.updated", "data": base.clone()}))
                .starts_with("data.modified_at: missing")
        );
        assert!(refused(with("id", Value::Null)).starts_with("data.id:"));
        assert!(
            refused(with("status", Value::Null)).starts_with("data.status:"),
            "no status is defaulted"
        );
        let stripe_refused = stripe(
            &plans(),
            json!({"id": "evt_1", "type": "customer.subscription.updated",
                "data": {"object": {"id": "sub_1", "status": "active",
                "metadata": {"account_id": "acc"}}}}),
        );
        assert_eq!(stripe_refused, Err(Unreadable("created: missing".into())));
        let no_id = stripe(
            &plans(),
            json!({"id": "evt_1", "type": "customer.subscription.updated", "created": 1,
                "data": {"object": {"status": "active", "metadata": {"account_id": "acc"}}}}),
        );
        assert!(matches!(no_id, Err(Unreadable(why)) if why == "data.object: missing field `id`"));
    }
}
