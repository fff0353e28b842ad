//! Webhook deliveries from Polar and Stripe turned into commands: a subscription's state onto
//! the account (the tier follows from it), a paid order into purchased credits.
//!
//! Each delivery is recorded once by its delivery id (Polar's `webhook-id`, Stripe's event id)
//! on a `WebhookDelivery` stream; a replayed delivery answers 200 and changes nothing.

use chrono::{DateTime, Utc};
use serde_json::Value;
use threadline_domain::account::{Account, AccountCommand, Subscription};
use threadline_domain::billing::{self, DeliveryCommand, DeliveryError, WebhookDelivery};
use threadline_domain::values::AccountId;

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

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn rfc3339(v: Option<&str>) -> Option<DateTime<Utc>> {
    v.and_then(|s| DateTime::parse_from_rfc3339(s).ok())
        .map(|t| t.with_timezone(&Utc))
}

/// A signed event whose fields cannot be read: it is refused (400) and changes nothing,
/// rather than applied in a guessed order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event's {0} cannot be read")]
pub struct Unreadable(pub &'static str);

impl From<Unreadable> for ApiError {
    fn from(e: Unreadable) -> Self {
        tracing::warn!(
            field = e.0,
            "refused a signed webhook event that cannot be read"
        );
        ApiError::BadRequest {
            code: crate::error::ErrorCode::UnreadableEvent,
            detail: e.to_string(),
        }
    }
}

/// The first of `fields` of `v` that is present (not null): an RFC 3339 time that must parse.
fn ordering_time(
    v: &Value,
    fields: &[(&'static str, &[&str])],
) -> Result<DateTime<Utc>, Unreadable> {
    for (name, path) in fields {
        let value = path.iter().try_fold(v, |v, key| v.get(key));
        match value {
            None | Some(Value::Null) => continue,
            Some(value) => return rfc3339(value.as_str()).ok_or(Unreadable(name)),
        }
    }
    Err(Unreadable("modification time"))
}

/// Reads a Polar event (`{"type": …, "data": {…}}`). A subscription event orders by its
/// `modified_at` (or, while it is null, its `created_at`, then the event's `timestamp`).
pub fn polar_effect(
    plans: &threadline_domain::plans::Plans,
    body: &Value,
) -> Result<Effect, Unreadable> {
    let data = &body["data"];
    let account = str_at(data, &["customer", "external_id"])
        .or_else(|| str_at(data, &["metadata", "account_id"]))
        .map(str::to_owned);
    let event_type = body["type"].as_str().unwrap_or_default();
    Ok(match (event_type, account) {
        (t, Some(account)) if t.starts_with("subscription.") => {
            let status = if t == "subscription.revoked" {
                "revoked"
            } else {
                data["status"].as_str().unwrap_or("unknown")
            };
            let ended = rfc3339(data["ended_at"].as_str()).is_some_and(|t| t <= Utc::now());
            let as_of = ordering_time(
                body,
                &[
                    ("modified_at", &["data", "modified_at"]),
                    ("created_at", &["data", "created_at"]),
                    ("timestamp", &["timestamp"]),
                ],
            )?;
            let subscription_id = str_at(data, &["id"]).ok_or(Unreadable("subscription id"))?;
            Effect::Subscription {
                account,
                subscription: Subscription {
                    provider: "polar".into(),
                    subscription_id: subscription_id.to_owned(),
                    customer_id: str_at(data, &["customer", "id"])
                        .or_else(|| str_at(data, &["customer_id"]))
                        .map(str::to_owned),
                    status: status.to_owned(),
                    pro_until: billing::pro_until(
                        status,
                        rfc3339(data["current_period_end"].as_str()),
                        ended,
                    ),
                    as_of: Some(as_of),
                },
            }
        }
        ("order.paid", Some(account)) => {
            let credits = data["product_id"]
                .as_str()
                .and_then(|id| plans.polar_product(id))
                .map_or(0, |p| p.credits);
            match (credits, data["id"].as_str()) {
                (1.., Some(order_id)) => Effect::Credits {
                    account,
                    order_id: order_id.to_owned(),
                    credits,
                },
                _ => Effect::Ignored,
            }
        }
        _ => Effect::Ignored,
    })
}

/// Reads a Stripe event (`{"id": "evt_…", "type": …, "data": {"object": {…}}}`). A
/// subscription event orders by the event's `created` (Unix seconds).
pub fn stripe_effect(
    plans: &threadline_domain::plans::Plans,
    body: &Value,
) -> Result<Effect, Unreadable> {
    let object = &body["data"]["object"];
    let account = str_at(object, &["metadata", "account_id"])
        .or_else(|| str_at(object, &["client_reference_id"]))
        .map(str::to_owned);
    let event_type = body["type"].as_str().unwrap_or_default();
    Ok(match (event_type, account) {
        (t, Some(account)) if t.starts_with("customer.subscription.") => {
            // Newer API versions moved the period onto the subscription's items.
            let period_end = object["current_period_end"]
                .as_i64()
                .or_else(|| object["items"]["data"][0]["current_period_end"].as_i64())
                .and_then(|t| DateTime::from_timestamp(t, 0));
            let status = object["status"].as_str().unwrap_or("unknown");
            let ended = t == "customer.subscription.deleted"
                || object["ended_at"]
                    .as_i64()
                    .is_some_and(|t| t <= Utc::now().timestamp());
            let as_of = body["created"]
                .as_i64()
                .and_then(|t| DateTime::from_timestamp(t, 0))
                .ok_or(Unreadable("created"))?;
            let subscription_id = str_at(object, &["id"]).ok_or(Unreadable("subscription id"))?;
            Effect::Subscription {
                account,
                subscription: Subscription {
                    provider: "stripe".into(),
                    subscription_id: subscription_id.to_owned(),
                    customer_id: object["customer"].as_str().map(str::to_owned),
                    status: status.to_owned(),
                    pro_until: billing::pro_until(status, period_end, ended),
                    as_of: Some(as_of),
                },
            }
        }
        ("checkout.session.completed", Some(account))
            if object["mode"] == "payment" && object["payment_status"] == "paid" =>
        {
            let credits = str_at(object, &["metadata", "price"])
                .and_then(|price| plans.stripe_price(price))
                .map_or(0, |p| p.credits);
            match (credits, object["id"].as_str()) {
                (1.., Some(session)) => Effect::Credits {
                    account,
                    order_id: session.to_owned(),
                    credits,
                },
                _ => Effect::Ignored,
            }
        }
        _ => Effect::Ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use threadline_domain::plans::{Plans, Product};

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
        let effect = polar_effect(
            &plans(),
            &json!({"type": "subscription.updated", "data": {
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
        let revoked = polar_effect(
            &plans(),
            &json!({"type": "subscription.revoked", "data": {
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
            polar_effect(
                &plans(),
                &json!({"type": "order.paid", "data": {"id": "ord_1", "product_id": product,
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
        let sub = stripe_effect(
            &plans(),
            &json!({"id": "evt_1", "type": "customer.subscription.deleted", "created": 1_890_000_000,
                "data": {"object": {
                "id": "sub_1", "customer": "cus_1", "status": "canceled",
                "items": {"data": [{"current_period_end": 1_893_456_000}]},
                "metadata": {"account_id": "acc"}}}}),
        )
        .unwrap();
        assert!(
            matches!(sub, Effect::Subscription { subscription, .. } if subscription.pro_until.is_none() && subscription.customer_id.as_deref() == Some("cus_1"))
        );
        let paid = stripe_effect(
            &plans(),
            &json!({"id": "evt_2", "type": "checkout.session.completed", "data": {"object": {
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
        let unknown = stripe_effect(&plans(), &json!({"type": "invoice.paid"}));
        assert_eq!(unknown, Ok(Effect::Ignored));
    }

    #[test]
    fn a_subscription_event_whose_order_cannot_be_read_is_refused() {
        let polar = |data: Value| {
            polar_effect(
                &plans(),
                &json!({"type": "subscription.updated", "data": data}),
            )
        };
        let base = json!({"id": "sub_1", "status": "active",
            "current_period_end": "2030-01-01T00:00:00Z",
            "customer": {"external_id": "acc"}});
        let with = |key: &str, value: Value| {
            let mut data = base.clone();
            data[key] = value;
            data
        };
        assert_eq!(
            polar(with("modified_at", json!("not a time"))),
            Err(Unreadable("modified_at"))
        );
        assert_eq!(polar(base.clone()), Err(Unreadable("modification time")));
        assert_eq!(
            polar(
                with("modified_at", json!("2029-01-01T00:00:00Z")).pipe(|mut d| {
                    d["id"] = Value::Null;
                    d
                })
            ),
            Err(Unreadable("subscription id"))
        );
        let stripe = stripe_effect(
            &plans(),
            &json!({"id": "evt_1", "type": "customer.subscription.updated", "created": "soon",
                "data": {"object": {"id": "sub_1", "status": "active",
                "metadata": {"account_id": "acc"}}}}),
        );
        assert_eq!(stripe, Err(Unreadable("created")));
    }

    trait Pipe: Sized {
        fn pipe(self, f: impl FnOnce(Self) -> Self) -> Self {
            f(self)
        }
    }
    impl Pipe for Value {}
}
