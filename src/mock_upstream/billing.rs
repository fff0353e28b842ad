//! The mock upstream's Polar and Stripe APIs, for checkout and portal links without accounts at
//! either (`crate::billing::client` is pointed at `http://127.0.0.1:{port}`).
//!
//! # Routes
//! - `POST /v1/checkouts/` (Polar, JSON): 201, a checkout with `id` (`co_…`), `url`,
//!   `status: "open"` and the request's `products`, `external_customer_id`, `customer_email`,
//!   `metadata`;
//! - `POST /v1/customer-sessions/` (Polar, JSON): 201, `id`, `token` (`polar_cst_…`),
//!   `customer_portal_url`, `customer_id` (the same for the same external id), `expires_at`;
//! - `POST /v1/checkout/sessions` (Stripe, form): 200, a `checkout.session` with `id`
//!   (`cs_test_…`), `mode`, `url`, `client_reference_id`, `metadata`, `status: "open"`;
//! - `POST /v1/billing_portal/sessions` (Stripe, form): 200, a `billing_portal.session` with `id`
//!   (`bps_…`), `customer`, `url`, `return_url`.
//!
//! The links are fake but carry what was asked for, so tests can check it:
//! `https://polar.mock/checkout/{id}?product={first product}&customer={external_customer_id}`,
//! `https://polar.mock/portal?customer={external_customer_id}`,
//! `https://stripe.mock/checkout/{id}?price={line_items[0][price]}&client_reference_id={…}` and
//! `https://stripe.mock/portal?customer={customer}` (values percent-encoded).
//!
//! Bad requests get the real APIs' error bodies. Polar: 401
//! `{"error":"invalid_token","detail":…}` without a non-empty bearer token, 422 with FastAPI's
//! `{"detail":[{"loc","msg","type"}]}` for a missing or empty `products` or a missing
//! `external_customer_id`. Stripe: 401 `{"error":{"message","type":"invalid_request_error"}}`
//! without a non-empty bearer key, 400 `Missing required param: {param}.` (with `param`) for
//! `mode`, `line_items[0][price]`, `success_url` (required outside embedded mode, and the mock has
//! none) and `customer`. Neither checks that a product, price or customer exists.

use actix_web::http::StatusCode;
use actix_web::http::header::AUTHORIZATION;
use actix_web::web::{self, Bytes};
use actix_web::{HttpRequest, HttpResponse};
use chrono::{Duration, SecondsFormat, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// A Stripe form body, pairs in the order sent.
type StripeForm = Result<web::Form<Vec<(String, String)>>, actix_web::Error>;

/// Registers the mock billing routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/checkouts/", web::post().to(polar_checkout))
        .route(
            "/v1/customer-sessions/",
            web::post().to(polar_customer_session),
        )
        .route("/v1/checkout/sessions", web::post().to(stripe_checkout))
        .route("/v1/billing_portal/sessions", web::post().to(stripe_portal));
}

// ---- Polar ----

/// `POST /v1/checkouts/`.
async fn polar_checkout(request: HttpRequest, body: Bytes) -> HttpResponse {
    create_polar_checkout(&request, &body).unwrap_or_else(PolarError::into_response)
}

/// `POST /v1/customer-sessions/`.
async fn polar_customer_session(request: HttpRequest, body: Bytes) -> HttpResponse {
    create_polar_customer_session(&request, &body).unwrap_or_else(PolarError::into_response)
}

fn create_polar_checkout(request: &HttpRequest, body: &[u8]) -> Result<HttpResponse, PolarError> {
    let body = polar_body(request, body)?;
    let products = match body.get("products") {
        None | Some(Value::Null) => {
            return Err(PolarError::invalid("products", "Field required", "missing"));
        }
        Some(Value::Array(items)) if items.is_empty() => {
            return Err(PolarError::invalid(
                "products",
                "List should have at least 1 item after validation, not 0",
                "too_short",
            ));
        }
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items.clone(),
        Some(_) => {
            return Err(PolarError::invalid(
                "products",
                "Input should be a valid list",
                "list_type",
            ));
        }
    };
    let product = products.first().and_then(Value::as_str).unwrap_or_default();
    let customer = text_field(&body, "external_customer_id");
    let id = format!("co_{}", Uuid::new_v4().simple());
    let url = format!(
        "https://polar.mock/checkout/{id}?product={}&customer={}",
        encode(product),
        encode(customer.unwrap_or_default())
    );
    Ok(HttpResponse::Created().json(json!({
        "id": id,
        "url": url,
        "status": "open",
        "products": products,
        "external_customer_id": customer,
        "customer_email": text_field(&body, "customer_email"),
        "success_url": text_field(&body, "success_url"),
        "metadata": body.get("metadata").cloned().unwrap_or_else(|| json!({})),
        "expires_at": in_one_hour(),
    })))
}

fn create_polar_customer_session(
    request: &HttpRequest,
    body: &[u8],
) -> Result<HttpResponse, PolarError> {
    let body = polar_body(request, body)?;
    let Some(customer) = text_field(&body, "external_customer_id") else {
        return Err(PolarError::invalid(
            "external_customer_id",
            "Field required",
            "missing",
        ));
    };
    Ok(HttpResponse::Created().json(json!({
        "id": Uuid::new_v4(),
        "token": format!("polar_cst_{}", Uuid::new_v4().simple()),
        "customer_portal_url": format!("https://polar.mock/portal?customer={}", encode(customer)),
        // The same customer for the same external id, as in Polar.
        "customer_id": Uuid::new_v5(&Uuid::NAMESPACE_OID, customer.as_bytes()),
        "expires_at": in_one_hour(),
    })))
}

/// The JSON object of an authenticated Polar request; the token is checked first.
fn polar_body(request: &HttpRequest, body: &[u8]) -> Result<Value, PolarError> {
    if bearer(request).is_none() {
        return Err(PolarError::Unauthorized);
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(value) if value.is_object() => Ok(value),
        Ok(_) => Err(PolarError::Invalid(json!({
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "type": "model_attributes_type",
        }))),
        Err(e) => Err(PolarError::Invalid(json!({
            "loc": ["body", e.column()],
            "msg": "JSON decode error",
            "type": "json_invalid",
        }))),
    }
}

/// A refused Polar request.
enum PolarError {
    /// 401 `{"error":"invalid_token","detail":…}`.
    Unauthorized,
    /// 422 with this one FastAPI validation error item in `detail`.
    Invalid(Value),
}

impl PolarError {
    /// The validation error of one body field.
    fn invalid(field: &str, msg: &str, kind: &str) -> Self {
        PolarError::Invalid(json!({"loc": ["body", field], "msg": msg, "type": kind}))
    }

    fn into_response(self) -> HttpResponse {
        match self {
            PolarError::Unauthorized => HttpResponse::Unauthorized().json(json!({
                "error": "invalid_token",
                "detail": "Missing or invalid access token.",
            })),
            PolarError::Invalid(item) => {
                HttpResponse::UnprocessableEntity().json(json!({ "detail": [item] }))
            }
        }
    }
}

// ---- Stripe ----

/// `POST /v1/checkout/sessions`.
async fn stripe_checkout(request: HttpRequest, form: StripeForm) -> HttpResponse {
    create_stripe_checkout(&request, form).unwrap_or_else(StripeError::into_response)
}

/// `POST /v1/billing_portal/sessions`.
async fn stripe_portal(request: HttpRequest, form: StripeForm) -> HttpResponse {
    create_stripe_portal(&request, form).unwrap_or_else(StripeError::into_response)
}

fn create_stripe_checkout(
    request: &HttpRequest,
    form: StripeForm,
) -> Result<HttpResponse, StripeError> {
    let pairs = stripe_form(request, form)?;
    let param = |key| param(&pairs, key);
    let mode = param("mode").ok_or_else(|| StripeError::missing("mode"))?;
    if !matches!(mode, "payment" | "setup" | "subscription") {
        return Err(StripeError::invalid(
            "mode",
            format!("Invalid mode: must be one of payment, setup, or subscription (got {mode})."),
        ));
    }
    let price = param("line_items[0][price]")
        .ok_or_else(|| StripeError::missing("line_items[0][price]"))?;
    let success_url = param("success_url").ok_or_else(|| StripeError::missing("success_url"))?;
    let client_reference_id = param("client_reference_id");
    let metadata: Map<String, Value> = pairs
        .iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix("metadata[")?.strip_suffix(']')?;
            Some((name.to_owned(), Value::from(value.as_str())))
        })
        .collect();
    let id = format!("cs_test_{}", Uuid::new_v4().simple());
    let url = format!(
        "https://stripe.mock/checkout/{id}?price={}&client_reference_id={}",
        encode(price),
        encode(client_reference_id.unwrap_or_default())
    );
    Ok(HttpResponse::Ok().json(json!({
        "id": id,
        "object": "checkout.session",
        "livemode": false,
        "mode": mode,
        "url": url,
        "client_reference_id": client_reference_id,
        "customer_email": param("customer_email"),
        "success_url": success_url,
        "cancel_url": param("cancel_url"),
        "metadata": metadata,
        "status": "open",
        "payment_status": "unpaid",
    })))
}

fn create_stripe_portal(
    request: &HttpRequest,
    form: StripeForm,
) -> Result<HttpResponse, StripeError> {
    let pairs = stripe_form(request, form)?;
    let customer = param(&pairs, "customer").ok_or_else(|| StripeError::missing("customer"))?;
    Ok(HttpResponse::Ok().json(json!({
        "id": format!("bps_{}", Uuid::new_v4().simple()),
        "object": "billing_portal.session",
        "livemode": false,
        "customer": customer,
        "url": format!("https://stripe.mock/portal?customer={}", encode(customer)),
        "return_url": param(&pairs, "return_url"),
    })))
}

/// The form pairs of an authenticated Stripe request; the key is checked first, as Stripe does.
fn stripe_form(
    request: &HttpRequest,
    form: StripeForm,
) -> Result<Vec<(String, String)>, StripeError> {
    if bearer(request).is_none() {
        return Err(StripeError {
            status: StatusCode::UNAUTHORIZED,
            message: "You did not provide an API key. You need to provide your API key in the \
                      Authorization header, using Bearer auth (e.g. 'Authorization: Bearer \
                      YOUR_SECRET_KEY')."
                .to_owned(),
            param: None,
        });
    }
    form.map(web::Form::into_inner).map_err(|e| StripeError {
        status: StatusCode::BAD_REQUEST,
        message: format!("Invalid request body: expected application/x-www-form-urlencoded ({e})."),
        param: None,
    })
}

/// The first non-empty value of a form key.
fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, v)| k == key && !v.is_empty())
        .map(|(_, v)| v.as_str())
}

/// A refused Stripe request, answered as `{"error":{"message","type","param"}}`.
struct StripeError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
}

impl StripeError {
    /// 400 `Missing required param: {param}.`
    fn missing(param: &'static str) -> Self {
        Self::invalid(param, format!("Missing required param: {param}."))
    }

    /// 400 about one param.
    fn invalid(param: &'static str, message: String) -> Self {
        StripeError {
            status: StatusCode::BAD_REQUEST,
            message,
            param: Some(param),
        }
    }

    fn into_response(self) -> HttpResponse {
        let mut error = json!({"message": self.message, "type": "invalid_request_error"});
        if let Some(param) = self.param {
            error["param"] = Value::from(param);
        }
        HttpResponse::build(self.status).json(json!({ "error": error }))
    }
}

// ---- shared ----

/// The bearer token of the request, when there is a non-empty one.
fn bearer(request: &HttpRequest) -> Option<&str> {
    let value = request.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// A string field of a JSON object (`None` when absent, null or not a string).
fn text_field<'a>(body: &'a Value, field: &str) -> Option<&'a str> {
    body.get(field).and_then(Value::as_str)
}

fn in_one_hour() -> String {
    (Utc::now() + Duration::hours(1)).to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Percent-encodes a query value: everything but RFC 3986's unreserved characters.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_upstream::MockUpstream;

    async fn post_json(mock: &MockUpstream, path: &str, token: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", mock.port()))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    async fn post_form(
        mock: &MockUpstream,
        path: &str,
        token: Option<&str>,
        form: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut request = reqwest::Client::new()
            .post(format!("http://127.0.0.1:{}{path}", mock.port()))
            .form(form);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    #[tokio::test]
    async fn a_polar_checkout_echoes_the_request() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post_json(
            &mock,
            "/v1/checkouts/",
            "polar_oat_x",
            json!({
                "products": ["prod 1"],
                "external_customer_id": "acc/1&2",
                "metadata": {"account_id": "acc/1&2"},
            }),
        )
        .await;
        assert_eq!(status, 201);
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("co_") && id.len() == 35, "{id}");
        assert_eq!(
            body["url"],
            format!("https://polar.mock/checkout/{id}?product=prod%201&customer=acc%2F1%262")
        );
        assert_eq!(body["status"], "open");
        assert_eq!(body["products"], json!(["prod 1"]));
        assert_eq!(body["metadata"], json!({"account_id": "acc/1&2"}));
        assert_eq!(body["customer_email"], Value::Null);
        mock.stop().await;
    }

    #[tokio::test]
    async fn polar_refuses_a_missing_token_and_missing_fields_in_its_formats() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) =
            post_json(&mock, "/v1/checkouts/", "", json!({"products": ["p"]})).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"], "invalid_token");
        assert!(body["detail"].is_string());

        let (status, body) = post_json(&mock, "/v1/checkouts/", "t", json!({})).await;
        assert_eq!(status, 422);
        assert_eq!(
            body,
            json!({"detail": [{"loc": ["body", "products"], "msg": "Field required", "type": "missing"}]})
        );
        let (status, body) = post_json(&mock, "/v1/checkouts/", "t", json!({"products": []})).await;
        assert_eq!(status, 422);
        assert_eq!(body["detail"][0]["type"], "too_short");

        let (status, body) = post_json(&mock, "/v1/customer-sessions/", "t", json!({})).await;
        assert_eq!(status, 422);
        assert_eq!(
            body["detail"][0]["loc"],
            json!(["body", "external_customer_id"])
        );
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_polar_customer_session_is_stable_per_customer() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let request = json!({"external_customer_id": "acc_1"});
        let (status, first) =
            post_json(&mock, "/v1/customer-sessions/", "t", request.clone()).await;
        let (_, second) = post_json(&mock, "/v1/customer-sessions/", "t", request).await;
        assert_eq!(status, 201);
        assert_eq!(
            first["customer_portal_url"],
            "https://polar.mock/portal?customer=acc_1"
        );
        assert!(first["token"].as_str().unwrap().starts_with("polar_cst_"));
        assert_eq!(first["customer_id"], second["customer_id"]);
        assert_ne!(first["token"], second["token"]);
        assert!(first["expires_at"].as_str().unwrap().ends_with('Z'));
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stripe_checkout_session_collects_the_metadata() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post_form(
            &mock,
            "/v1/checkout/sessions",
            Some("sk_test_1"),
            &[
                ("mode", "subscription"),
                ("line_items[0][price]", "price_1"),
                ("line_items[0][quantity]", "1"),
                ("client_reference_id", "acc 1"),
                ("success_url", "https://app.example.com/done"),
                ("metadata[account_id]", "acc 1"),
                ("subscription_data[metadata][account_id]", "acc 1"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        let id = body["id"].as_str().unwrap();
        assert!(id.starts_with("cs_test_"), "{id}");
        assert_eq!(body["object"], "checkout.session");
        assert_eq!(body["mode"], "subscription");
        assert_eq!(
            body["url"],
            format!("https://stripe.mock/checkout/{id}?price=price_1&client_reference_id=acc%201")
        );
        assert_eq!(body["client_reference_id"], "acc 1");
        assert_eq!(body["metadata"], json!({"account_id": "acc 1"}));
        assert_eq!(body["status"], "open");
        mock.stop().await;
    }

    #[tokio::test]
    async fn stripe_refuses_a_missing_key_and_missing_params_in_its_format() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post_form(&mock, "/v1/checkout/sessions", None, &[]).await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["type"], "invalid_request_error");
        assert!(body["error"]["message"].is_string());

        let full = [
            ("mode", "payment"),
            ("line_items[0][price]", "price_1"),
            ("success_url", "https://app.example.com/done"),
        ];
        for (i, missing) in ["mode", "line_items[0][price]", "success_url"]
            .into_iter()
            .enumerate()
        {
            let form: Vec<_> = full
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i)
                .map(|(_, pair)| *pair)
                .collect();
            let (status, body) = post_form(&mock, "/v1/checkout/sessions", Some("sk"), &form).await;
            assert_eq!(status, 400, "{missing}");
            assert_eq!(
                body,
                json!({"error": {
                    "message": format!("Missing required param: {missing}."),
                    "type": "invalid_request_error",
                    "param": missing,
                }})
            );
        }
        let (status, body) = post_form(&mock, "/v1/billing_portal/sessions", Some("sk"), &[]).await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["param"], "customer");
        mock.stop().await;
    }

    #[tokio::test]
    async fn a_stripe_portal_session_names_the_customer() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let (status, body) = post_form(
            &mock,
            "/v1/billing_portal/sessions",
            Some("sk"),
            &[
                ("customer", "cus_1"),
                ("return_url", "https://app.example.com"),
            ],
        )
        .await;
        assert_eq!(status, 200);
        assert!(body["id"].as_str().unwrap().starts_with("bps_"));
        assert_eq!(body["object"], "billing_portal.session");
        assert_eq!(body["url"], "https://stripe.mock/portal?customer=cus_1");
        assert_eq!(body["return_url"], "https://app.example.com");
        mock.stop().await;
    }

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode("prod_1-a.b~c"), "prod_1-a.b~c");
        assert_eq!(encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
    }
}
