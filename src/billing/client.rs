//! Checkout and portal links through the billing providers' HTTP APIs.
//!
//! [`PolarApi`] speaks Polar's JSON API (`POST /v1/checkouts/`, `POST /v1/customer-sessions/`),
//! [`StripeApi`] Stripe's form-encoded one (`POST /v1/checkout/sessions`,
//! `POST /v1/billing_portal/sessions`). Each call answers the one URL the user is sent to. The
//! account id travels as Polar's `external_customer_id` or Stripe's `client_reference_id`, and in
//! the metadata of both, so webhooks can be tied back to the account.
//!
//! Errors keep the provider's own message ([`BillingApiError::Upstream`]) but never the access
//! token or secret key; requests time out after [`REQUEST_TIMEOUT`].

use secrecy::{ExposeSecret, SecretString};
use std::time::Duration;

use reqwest::RequestBuilder;
use serde::Serialize;
use serde_json::Value;

/// Polar's production API root.
pub const POLAR_BASE_URL: &str = "https://api.polar.sh";

/// Stripe's API root.
pub const STRIPE_BASE_URL: &str = "https://api.stripe.com";

/// How long one request to a provider may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest body text kept in an error when the provider's message cannot be found in it.
const MAX_ERROR_TEXT: usize = 200;

/// A failed call to a billing provider.
#[derive(Debug, thiserror::Error)]
pub enum BillingApiError {
    /// The provider answered a non-success status (502 to our client; a 4xx usually means our
    /// configuration or request is wrong). `message` is the provider's own, when it gave one.
    #[error("billing provider answered HTTP {status}: {message}")]
    Upstream {
        /// The HTTP status.
        status: u16,
        /// Polar's `detail`, Stripe's `error.message`, or the start of the body text.
        message: String,
    },
    /// The request could not be sent or its answer not read: connection, TLS or timeout (502).
    #[error("billing provider unreachable: {0}")]
    Transport(String),
    /// A success status with a body that is not what the API documents (502).
    #[error("unexpected answer from the billing provider: {0}")]
    BadResponse(String),
}

/// What a checkout should sell, and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckoutRequest<'a> {
    /// The Polar product id, or the Stripe price id.
    pub product_id: &'a str,
    /// Recurring or one-off; Stripe needs it, Polar knows it from the product.
    pub mode: CheckoutMode,
    /// Our account id, attached to the checkout so that its webhooks name the account.
    pub account_id: &'a str,
    /// Prefills the checkout form.
    pub email: Option<&'a str>,
    /// Where the provider sends the user after paying.
    pub success_url: Option<&'a str>,
    /// Where Stripe sends the user who backs out (Stripe only; Polar's call ignores it).
    pub cancel_url: Option<&'a str>,
}

/// Whether a checkout starts a subscription or takes one payment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckoutMode {
    /// A recurring plan.
    Subscription,
    /// A one-off purchase, e.g. a credit pack.
    Payment,
}

impl CheckoutMode {
    /// Stripe's name for the mode.
    fn as_stripe(self) -> &'static str {
        match self {
            CheckoutMode::Subscription => "subscription",
            CheckoutMode::Payment => "payment",
        }
    }
}

/// Polar's API, authenticated with an organization access token.
#[derive(Debug, Clone)]
pub struct PolarApi {
    http: reqwest::Client,
    base_url: String,
    access_token: SecretString,
}

impl PolarApi {
    /// A client for the API at `base_url` ([`POLAR_BASE_URL`] in production; a trailing `/` is
    /// dropped).
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        access_token: SecretString,
    ) -> Self {
        Self {
            http,
            base_url: without_trailing_slash(base_url.into()),
            access_token,
        }
    }

    /// Creates a checkout session for one product and returns its URL. The account id is the
    /// `external_customer_id` (Polar then links the customer to it) and `metadata.account_id`.
    pub async fn create_checkout(
        &self,
        req: &CheckoutRequest<'_>,
    ) -> Result<String, BillingApiError> {
        let body = PolarCheckout {
            products: [req.product_id],
            external_customer_id: req.account_id,
            customer_email: req.email,
            success_url: req.success_url,
            metadata: AccountMetadata {
                account_id: req.account_id,
            },
        };
        let request = self
            .http
            .post(format!("{}/v1/checkouts/", self.base_url))
            .bearer_auth(self.access_token.expose_secret())
            .json(&body);
        string_field(&send(request).await?, "url")
    }

    /// Creates a customer session for the customer with this external id and returns the link
    /// to its customer portal (subscriptions, invoices, payment method).
    pub async fn customer_portal(&self, account_id: &str) -> Result<String, BillingApiError> {
        let request = self
            .http
            .post(format!("{}/v1/customer-sessions/", self.base_url))
            .bearer_auth(self.access_token.expose_secret())
            .json(&serde_json::json!({ "external_customer_id": account_id }));
        string_field(&send(request).await?, "customer_portal_url")
    }
}

/// Stripe's API, authenticated with a secret (or restricted) key.
#[derive(Debug, Clone)]
pub struct StripeApi {
    http: reqwest::Client,
    base_url: String,
    secret_key: SecretString,
}

impl StripeApi {
    /// A client for the API at `base_url` ([`STRIPE_BASE_URL`] in production; a trailing `/` is
    /// dropped).
    pub fn new(
        http: reqwest::Client,
        base_url: impl Into<String>,
        secret_key: SecretString,
    ) -> Self {
        Self {
            http,
            base_url: without_trailing_slash(base_url.into()),
            secret_key,
        }
    }

    /// Creates a hosted Checkout Session for one unit of a price and returns its URL. The account
    /// id is the `client_reference_id` and `metadata[account_id]` (with the price in
    /// `metadata[price]`), and in subscription mode also the subscription's metadata, so that
    /// later subscription events carry it too.
    pub async fn create_checkout(
        &self,
        req: &CheckoutRequest<'_>,
    ) -> Result<String, BillingApiError> {
        let mut form = vec![
            ("mode", req.mode.as_stripe()),
            ("line_items[0][price]", req.product_id),
            ("line_items[0][quantity]", "1"),
            ("client_reference_id", req.account_id),
            ("metadata[account_id]", req.account_id),
            // `checkout.session.completed` does not list its line items: the price rides along.
            ("metadata[price]", req.product_id),
        ];
        if req.mode == CheckoutMode::Subscription {
            form.push(("subscription_data[metadata][account_id]", req.account_id));
        }
        let optional = [
            ("success_url", req.success_url),
            ("cancel_url", req.cancel_url),
            ("customer_email", req.email),
        ];
        form.extend(
            optional
                .into_iter()
                .filter_map(|(key, value)| Some((key, value?))),
        );
        let request = self
            .http
            .post(format!("{}/v1/checkout/sessions", self.base_url))
            .bearer_auth(self.secret_key.expose_secret())
            .form(&form);
        string_field(&send(request).await?, "url")
    }

    /// Creates a billing portal session for a Stripe customer (`cus_…`) and returns its URL;
    /// the portal links back to `return_url` when given.
    pub async fn portal(
        &self,
        customer_id: &str,
        return_url: Option<&str>,
    ) -> Result<String, BillingApiError> {
        let mut form = vec![("customer", customer_id)];
        if let Some(return_url) = return_url {
            form.push(("return_url", return_url));
        }
        let request = self
            .http
            .post(format!("{}/v1/billing_portal/sessions", self.base_url))
            .bearer_auth(self.secret_key.expose_secret())
            .form(&form);
        string_field(&send(request).await?, "url")
    }
}

// ---- sending and error mapping ----

fn without_trailing_slash(mut url: String) -> String {
    url.truncate(url.trim_end_matches('/').len());
    url
}

/// Sends with the time limit and answers the JSON body of a success status.
async fn send(request: RequestBuilder) -> Result<Value, BillingApiError> {
    let response = request
        .timeout(REQUEST_TIMEOUT)
        .send()
        .await
        .map_err(|e| BillingApiError::Transport(e.to_string()))?;
    let status = response.status();
    let text = response
        .text()
        .await
        .map_err(|e| BillingApiError::Transport(e.to_string()))?;
    if !status.is_success() {
        return Err(handle_billing_error(status.as_u16(), &text));
    }
    serde_json::from_str(&text).map_err(|e| BillingApiError::BadResponse(format!("not JSON: {e}")))
}

/// The provider's message from an error body: Stripe's `error.message`, Polar's `detail` (a
/// string, or FastAPI's list of `{loc, msg}` for validation errors), else the start of the text.
fn handle_billing_error(status: u16, text: &str) -> BillingApiError {
    let body: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let stripe = body
        .pointer("/error/message")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let polar = || match body.get("detail")? {
        Value::String(detail) => Some(detail.clone()),
        Value::Array(items) => {
            let messages: Vec<String> = items.iter().filter_map(validation_message).collect();
            (!messages.is_empty()).then(|| messages.join("; "))
        }
        _ => None,
    };
    let message = stripe
        .or_else(polar)
        .unwrap_or_else(|| text.chars().take(MAX_ERROR_TEXT).collect());
    BillingApiError::Upstream { status, message }
}

/// `body.products: Field required` from `{"loc": ["body", "products"], "msg": "Field required"}`.
fn validation_message(item: &Value) -> Option<String> {
    let msg = item.get("msg")?.as_str()?;
    let loc: Vec<String> = item
        .get("loc")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .map(|part| match part {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    Some(if loc.is_empty() {
        msg.to_owned()
    } else {
        format!("{}: {msg}", loc.join("."))
    })
}

/// A string field of a success body, or [`BillingApiError::BadResponse`] naming it.
fn string_field(body: &Value, field: &str) -> Result<String, BillingApiError> {
    body.get(field)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| BillingApiError::BadResponse(format!("no `{field}` string in the answer")))
}

// ---- wire structs ----

#[derive(Serialize)]
struct PolarCheckout<'a> {
    products: [&'a str; 1],
    external_customer_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    customer_email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    success_url: Option<&'a str>,
    metadata: AccountMetadata<'a>,
}

#[derive(Serialize)]
struct AccountMetadata<'a> {
    account_id: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_upstream::MockUpstream;

    const ACCOUNT: &str = "acc_0198c2a4";

    fn root(mock: &MockUpstream) -> String {
        format!("http://127.0.0.1:{}/", mock.port())
    }

    fn polar(mock: &MockUpstream, token: &str) -> PolarApi {
        PolarApi::new(reqwest::Client::new(), root(mock), token.into())
    }

    fn stripe(mock: &MockUpstream, key: &str) -> StripeApi {
        StripeApi::new(reqwest::Client::new(), root(mock), key.into())
    }

    fn checkout<'a>(product_id: &'a str, mode: CheckoutMode) -> CheckoutRequest<'a> {
        CheckoutRequest {
            product_id,
            mode,
            account_id: ACCOUNT,
            email: Some("ada@example.com"),
            success_url: Some("https://app.example.com/billing/done"),
            cancel_url: Some("https://app.example.com/billing"),
        }
    }

    #[tokio::test]
    async fn a_polar_checkout_url_carries_the_product_and_customer() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let url = polar(&mock, "polar_oat_test")
            .create_checkout(&checkout("prod_pro", CheckoutMode::Subscription))
            .await
            .unwrap();
        assert!(url.starts_with("https://polar.mock/checkout/co_"), "{url}");
        assert!(url.contains("product=prod_pro"), "{url}");
        assert!(url.contains(&format!("customer={ACCOUNT}")), "{url}");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_polar_portal_link_names_the_customer() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let url = polar(&mock, "polar_oat_test")
            .customer_portal(ACCOUNT)
            .await
            .unwrap();
        assert_eq!(url, format!("https://polar.mock/portal?customer={ACCOUNT}"));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_empty_polar_token_is_a_401_with_polars_message() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let error = polar(&mock, "")
            .create_checkout(&checkout("prod_pro", CheckoutMode::Subscription))
            .await
            .unwrap_err();
        let BillingApiError::Upstream { status, message } = &error else {
            panic!("expected an upstream error, got {error:?}");
        };
        assert_eq!(*status, 401);
        assert_eq!(message, "Missing or invalid access token.");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stripe_checkout_url_carries_the_price_and_account() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let url = stripe(&mock, "sk_test_123")
            .create_checkout(&checkout("price_pro_monthly", CheckoutMode::Subscription))
            .await
            .unwrap();
        assert!(
            url.starts_with("https://stripe.mock/checkout/cs_test_"),
            "{url}"
        );
        assert!(url.contains("price=price_pro_monthly"), "{url}");
        assert!(
            url.contains(&format!("client_reference_id={ACCOUNT}")),
            "{url}"
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stripe_checkout_without_success_url_is_a_400_with_stripes_message() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let request = CheckoutRequest {
            success_url: None,
            ..checkout("price_credits_1000", CheckoutMode::Payment)
        };
        let error = stripe(&mock, "sk_test_123")
            .create_checkout(&request)
            .await
            .unwrap_err();
        let BillingApiError::Upstream { status, message } = error else {
            panic!("expected an upstream error, got {error:?}");
        };
        assert_eq!(status, 400);
        assert_eq!(message, "Missing required param: success_url.");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stripe_portal_link_names_the_customer() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let api = stripe(&mock, "sk_test_123");
        let url = api
            .portal("cus_Q1w2e3", Some("https://app.example.com/billing"))
            .await
            .unwrap();
        assert_eq!(url, "https://stripe.mock/portal?customer=cus_Q1w2e3");
        let url = api.portal("cus_Q1w2e3", None).await.unwrap();
        assert_eq!(url, "https://stripe.mock/portal?customer=cus_Q1w2e3");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_missing_stripe_key_is_a_401_that_does_not_leak_the_key() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let error = stripe(&mock, "")
            .portal("cus_Q1w2e3", None)
            .await
            .unwrap_err();
        assert!(
            matches!(error, BillingApiError::Upstream { status: 401, .. }),
            "{error:?}"
        );
        let api = stripe(&mock, "sk_test_secret_value");
        assert!(!format!("{api:?}").contains("sk_test_secret_value"));
        mock.stop().await;
    }

    #[tokio::test]
    async fn an_unreachable_provider_is_a_transport_error() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let api = polar(&mock, "polar_oat_test");
        mock.stop().await;
        let error = api.customer_portal(ACCOUNT).await.unwrap_err();
        assert!(matches!(error, BillingApiError::Transport(_)), "{error:?}");
    }

    #[test]
    fn error_messages_come_from_each_providers_body() {
        let message = |status, body| match handle_billing_error(status, body) {
            BillingApiError::Upstream { message, .. } => message,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            message(
                401,
                r#"{"error":"invalid_token","detail":"The access token is invalid."}"#
            ),
            "The access token is invalid."
        );
        assert_eq!(
            message(
                422,
                r#"{"detail":[{"loc":["body","products"],"msg":"Field required","type":"missing"},{"loc":["body","metadata",0],"msg":"bad"}]}"#
            ),
            "body.products: Field required; body.metadata.0: bad"
        );
        assert_eq!(
            message(
                400,
                r#"{"error":{"message":"No such price: 'price_x'","type":"invalid_request_error"}}"#
            ),
            "No such price: 'price_x'"
        );
        let long = "é".repeat(300);
        assert_eq!(message(502, &long), "é".repeat(200));
        assert_eq!(message(500, ""), "");
    }
}
