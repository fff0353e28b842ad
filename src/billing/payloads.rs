//! The billing providers' webhook payloads, typed: only the fields Threadline reads. A field
//! marked required here that is missing or of the wrong type makes the event unreadable (the
//! route answers `400 unreadable_event` and logs it); nothing is ever defaulted. Fields the
//! provider may leave out or send as `null` are `Option`s. Times are RFC 3339 (Polar) or Unix
//! seconds (Stripe).

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Why a payload could not be read: the path of the field and what was wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Unreadable(pub String);

impl Unreadable {
    /// A required field that is absent.
    pub fn missing(field: &str) -> Self {
        Self(format!("{field}: missing"))
    }
}

/// Reads `value` as `T`, naming the field that failed (`data.modified_at: …`).
pub fn read<T: DeserializeOwned>(value: &Value, at: &str) -> Result<T, Unreadable> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." {
            at.to_owned()
        } else {
            format!("{at}.{path}")
        };
        Unreadable(format!("{path}: {}", e.inner()))
    })
}

/// Account metadata Threadline puts on checkouts and subscriptions.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Metadata {
    pub account_id: Option<String>,
    /// Stripe checkouts: the price bought.
    pub price: Option<String>,
}

/// A Polar event: `{"type": …, "timestamp": …, "data": {…}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct PolarEvent {
    #[serde(rename = "type")]
    pub kind: String,
    pub timestamp: Option<DateTime<Utc>>,
    /// Read as [`PolarSubscription`] or [`PolarOrder`] by the event's type.
    #[serde(default)]
    pub data: Value,
}

/// A Polar customer as embedded in subscriptions and orders.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PolarCustomer {
    pub id: Option<String>,
    /// Threadline's account id, set when the checkout was created.
    pub external_id: Option<String>,
}

/// `data` of a `subscription.*` event.
#[derive(Debug, Clone, Deserialize)]
pub struct PolarSubscription {
    pub id: String,
    pub status: String,
    pub current_period_end: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    /// Null until the subscription first changes.
    pub modified_at: Option<DateTime<Utc>>,
    pub created_at: Option<DateTime<Utc>>,
    pub customer: Option<PolarCustomer>,
    pub customer_id: Option<String>,
    pub metadata: Option<Metadata>,
}

/// `data` of an `order.paid` event.
#[derive(Debug, Clone, Deserialize)]
pub struct PolarOrder {
    pub id: String,
    pub product_id: Option<String>,
    pub customer: Option<PolarCustomer>,
    pub metadata: Option<Metadata>,
}

/// The account a Polar subscription or order belongs to: the customer's external id, else
/// the metadata's `account_id`.
pub fn polar_account(
    customer: &Option<PolarCustomer>,
    metadata: &Option<Metadata>,
) -> Option<String> {
    let customer = customer.as_ref().and_then(|c| c.external_id.clone());
    let metadata = metadata.as_ref().and_then(|m| m.account_id.clone());
    customer.or(metadata).filter(|id| !id.is_empty())
}

/// A Stripe event: `{"id": "evt_…", "type": …, "created": …, "data": {"object": {…}}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeEvent {
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    /// Unix seconds.
    pub created: Option<i64>,
    pub data: StripeData,
}

/// `data` of a Stripe event.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeData {
    /// Read as [`StripeSubscription`] or [`StripeCheckoutSession`] by the event's type.
    pub object: Value,
}

/// `data.object` of a `customer.subscription.*` event.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeSubscription {
    pub id: String,
    pub status: String,
    pub customer: Option<String>,
    /// Older API versions: the period on the subscription.
    pub current_period_end: Option<i64>,
    /// Newer API versions: the period on the subscription's items.
    pub items: Option<StripeList<StripeItem>>,
    pub ended_at: Option<i64>,
    pub metadata: Option<Metadata>,
}

/// A Stripe list (`{"data": [...]}`).
#[derive(Debug, Clone, Deserialize)]
pub struct StripeList<T> {
    pub data: Vec<T>,
}

/// A subscription item.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeItem {
    pub current_period_end: Option<i64>,
}

/// `data.object` of a `checkout.session.completed` event.
#[derive(Debug, Clone, Deserialize)]
pub struct StripeCheckoutSession {
    pub id: String,
    pub mode: Option<String>,
    pub payment_status: Option<String>,
    pub client_reference_id: Option<String>,
    pub metadata: Option<Metadata>,
}
