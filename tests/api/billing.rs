//! Billing: signed webhooks (valid, forged, stale, replayed) that change the tier and add
//! purchased credits, and checkout/portal links created through the provider's API (the mock).

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::billing::signature::{sign_standard_webhook, sign_stripe};
use threadline::mock_upstream::MockUpstream;
use threadline_domain::plans::{Plans, Product};

use crate::helpers::{TestApp, TestDb, User, assert_problem, model_spec, spawn_on};

const POLAR_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
const STRIPE_SECRET: &str = "whsec_stripe_test_secret";

async fn billing_app() -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let root = mock.base_url().trim_end_matches("/v1").to_owned();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.billing.polar_webhook_secret = Some(POLAR_SECRET.into());
        s.billing.stripe_webhook_secret = Some(STRIPE_SECRET.into());
        s.billing.polar_access_token = Some("polar_oat_test".into());
        s.billing.polar_base_url = root.clone();
        s.billing.stripe_secret_key = Some("sk_test_1".into());
        s.billing.stripe_base_url = root;
        s.plans = Arc::new(Plans {
            products: vec![
                Product {
                    id: "pro".into(),
                    polar_product_id: Some("prod_pro".into()),
                    stripe_price_id: Some("price_pro".into()),
                    credits: 0,
                },
                Product {
                    id: "credits-100".into(),
                    polar_product_id: Some("prod_credits".into()),
                    stripe_price_id: Some("price_credits".into()),
                    credits: 100,
                },
            ],
            ..Plans::default()
        });
    })
    .await;
    (app, mock)
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn polar(
    app: &TestApp,
    id: &str,
    at: i64,
    body: &Value,
    secret: &str,
) -> (StatusCode, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let signature = sign_standard_webhook(secret, id, at, &raw).unwrap();
    let res = app
        .client
        .post(format!("{}/v1/webhooks/polar", app.address))
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature)
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn stripe(app: &TestApp, at: i64, body: &Value, secret: &str) -> (StatusCode, Value) {
    let raw = serde_json::to_vec(body).unwrap();
    let res = app
        .client
        .post(format!("{}/v1/webhooks/stripe", app.address))
        .header("stripe-signature", sign_stripe(secret, at, &raw))
        .header("content-type", "application/json")
        .body(raw)
        .send()
        .await
        .unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

fn polar_subscription(kind: &str, account: &str, status: &str, period_end: &str) -> Value {
    json!({"type": kind, "timestamp": "2026-12-01T00:00:00Z", "data": {
        "id": "sub_1", "status": status, "cancel_at_period_end": kind == "subscription.canceled",
        "current_period_end": period_end, "ended_at": null, "product_id": "prod_pro",
        "customer": {"id": "cus_1", "external_id": account, "email": "ada@example.com"}}})
}

async fn tier(app: &TestApp, user: &User) -> Value {
    let (status, me) = app.me(&user.token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    me["tier"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polar_subscription_makes_the_account_pro_until_its_period_ends() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    assert_eq!(tier(&app, &ada).await, "free");
    let next_month = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let active = polar_subscription(
        "subscription.active",
        &ada.account_id,
        "active",
        &next_month,
    );
    let (status, body) = polar(&app, "msg_1", now(), &active, POLAR_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"], "subscription");
    assert_eq!(tier(&app, &ada).await, "pro");
    let admin = app.registered("admin@example.com").await;
    let mut premium = model_spec("echo", "echo", 1);
    premium["access"] = json!("premium_required");
    app.define_model(&admin, "premium-echo", premium).await;
    let res = app
        .chat(&ada.token, "premium", "u1", "hi", Some("premium-echo"))
        .await;
    assert_eq!(
        res.status(),
        StatusCode::OK,
        "the pro tier opens premium models"
    );
    crate::helpers::LiveStream::new(res).read_all().await;
    let (_, usage) = app
        .call(Method::GET, "/v1/me/usage", Some(&ada.token), None)
        .await;
    assert_eq!(usage["meters"][0]["limit"], 200, "the pro plan's credits");

    // Replayed: answered, not applied twice.
    let (status, body) = polar(&app, "msg_1", now(), &active, POLAR_SECRET).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("duplicate"))
    );

    // Each later delivery and the tier it leaves.
    let past = (chrono::Utc::now() - chrono::Duration::days(1)).to_rfc3339();
    let id = &ada.account_id;
    let mut late = polar_subscription("subscription.active", id, "active", &next_month);
    late["timestamp"] = json!("2020-01-01T00:00:00Z");
    let steps = [
        // Canceled at period end: still pro until then.
        (
            polar_subscription("subscription.canceled", id, "active", &next_month),
            "pro",
        ),
        // Revoked: free at once.
        (
            polar_subscription("subscription.revoked", id, "canceled", &next_month),
            "free",
        ),
        // A period that already ended grants nothing.
        (
            polar_subscription("subscription.updated", id, "active", &past),
            "free",
        ),
        // An older state arriving late changes nothing.
        (late, "free"),
    ];
    for (i, (event, expected)) in steps.into_iter().enumerate() {
        let (status, body) =
            polar(&app, &format!("msg_{}", i + 2), now(), &event, POLAR_SECRET).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(tier(&app, &ada).await, expected, "step {i}: {event}");
    }
    let res = app
        .chat(&ada.token, "premium-2", "u1", "hi", Some("premium-echo"))
        .await;
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_problem(
        status,
        &body,
        StatusCode::PAYMENT_REQUIRED,
        "premium_required",
    );
    assert_eq!(body["tier"], "free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_stale_and_unsigned_polar_deliveries_are_refused_and_change_nothing() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    let year = (chrono::Utc::now() + chrono::Duration::days(365)).to_rfc3339();
    let body = polar_subscription("subscription.active", &ada.account_id, "active", &year);
    let (status, problem) = polar(
        &app,
        "f1",
        now(),
        &body,
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    )
    .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    );
    let (status, problem) = polar(&app, "f2", now() - 3600, &body, POLAR_SECRET).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNAUTHORIZED,
        "signature_stale",
    );
    let res = app
        .client
        .post(format!("{}/v1/webhooks/polar", app.address))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    assert!(
        res.headers().get("www-authenticate").is_none(),
        "webhooks are signed, not bearer-authenticated"
    );
    let problem: Value = res.json().await.unwrap();
    assert_eq!(problem["code"], "signature_missing");
    assert_eq!(tier(&app, &ada).await, "free");
    // A valid signature over a body naming no known account: 422, nothing applied.
    let stranger = polar_subscription(
        "subscription.active",
        "00000000-0000-0000-0000-000000000001",
        "active",
        &year,
    );
    let (status, _) = polar(&app, "f3", now(), &stranger, POLAR_SECRET).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paid_orders_add_purchased_credits_once_per_delivery() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    let order = json!({"type": "order.paid", "data": {"id": "ord_1", "product_id": "prod_credits",
        "billing_reason": "purchase", "customer": {"external_id": ada.account_id}}});
    let (status, body) = polar(&app, "o1", now(), &order, POLAR_SECRET).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("credits"))
    );
    let (status, _) = polar(&app, "o1", now(), &order, POLAR_SECRET).await;
    assert_eq!(status, StatusCode::OK);
    // Stripe: a paid one-time checkout of the same pack, delivered twice.
    let event = json!({"id": "evt_1", "type": "checkout.session.completed", "data": {"object": {
        "id": "cs_1", "mode": "payment", "payment_status": "paid",
        "client_reference_id": ada.account_id, "metadata": {"account_id": ada.account_id, "price": "price_credits"}}}});
    for _ in 0..2 {
        let (status, body) = stripe(&app, now(), &event, STRIPE_SECRET).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (_, usage) = app
        .call(Method::GET, "/v1/me/usage", Some(&ada.token), None)
        .await;
    assert_eq!(usage["purchased_credits"], 200);

    let (status, problem) = stripe(&app, now(), &event, "whsec_wrong").await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNAUTHORIZED,
        "signature_mismatch",
    );
    let (status, problem) = stripe(&app, now() - 3600, &event, STRIPE_SECRET).await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNAUTHORIZED,
        "signature_stale",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stripe_subscription_changes_the_tier_and_opens_its_portal() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    let end = (chrono::Utc::now() + chrono::Duration::days(30)).timestamp();
    let sub = |id: &str, kind: &str, status: &str| {
        json!({"id": id, "type": kind, "created": now(), "data": {"object": {"id": "sub_9", "customer": "cus_9",
            "status": status, "cancel_at_period_end": false,
            "items": {"data": [{"current_period_end": end}]},
            "metadata": {"account_id": ada.account_id}}}})
    };
    let (status, body) = stripe(
        &app,
        now(),
        &sub("evt_a", "customer.subscription.created", "active"),
        STRIPE_SECRET,
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(tier(&app, &ada).await, "pro");
    let (status, link) = app
        .call(Method::GET, "/v1/billing/portal", Some(&ada.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["provider"], "stripe");
    assert!(link["url"].as_str().unwrap().contains("cus_9"), "{link}");
    // The customer id names a person at the provider: the log holds it sealed.
    let db = app.db.connect().await;
    let (sealed, clear): (i64, i64) = threadline_projections::on_read!(&db, pool =>
        sqlx::query_as(
            "SELECT COUNT(*), COALESCE(SUM(CASE WHEN CAST(payload AS TEXT) LIKE '%cus_9%' \
             THEN 1 ELSE 0 END), 0) FROM events WHERE event_type = 'SubscriptionChanged'",
        )
        .fetch_one(pool)
        .await)
    .unwrap();
    assert_eq!((sealed, clear), (1, 0));
    let (status, _) = stripe(
        &app,
        now(),
        &sub("evt_b", "customer.subscription.deleted", "canceled"),
        STRIPE_SECRET,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(tier(&app, &ada).await, "free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkout_links_come_from_the_providers_api() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    let (status, link) = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&ada.token),
            Some(json!({"product": "pro"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert_eq!(link["provider"], "polar");
    let url = link["url"].as_str().unwrap();
    assert!(
        url.contains("prod_pro") && url.contains(&ada.account_id),
        "{url}"
    );
    let (status, link) = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&ada.token),
            Some(json!({"product": "credits-100", "provider": "stripe", "success_url": "https://app.example/thanks"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert!(
        link["url"].as_str().unwrap().contains("price_credits"),
        "{link}"
    );
    let (status, link) = app
        .call(Method::GET, "/v1/billing/portal", Some(&ada.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{link}");
    assert!(
        link["url"].as_str().unwrap().contains(&ada.account_id),
        "{link}"
    );

    let (status, body) = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&ada.token),
            Some(json!({"product": "gold"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let anon = app.anonymous().await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/billing/checkout",
            Some(&anon.token),
            Some(json!({"product": "pro"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "account_required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unusable_webhook_secret_stops_the_server_at_start_up() {
    let db = TestDb::fresh().await;
    let mut settings = db.settings();
    settings.billing.polar_webhook_secret = Some("whsec_not*base64".into());
    let err = threadline::startup::Application::build(settings)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("POLAR_WEBHOOK_SECRET"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signed_event_whose_order_cannot_be_read_is_refused_and_changes_nothing() {
    let (app, _mock) = billing_app().await;
    let ada = app.registered("ada@example.com").await;
    let next_month = (chrono::Utc::now() + chrono::Duration::days(30)).to_rfc3339();
    let mut active = polar_subscription(
        "subscription.active",
        &ada.account_id,
        "active",
        &next_month,
    );
    active["data"]["modified_at"] = json!("2026-12-01T10:00:00Z");
    let (status, body) = polar(&app, "msg_1", now(), &active, POLAR_SECRET).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(tier(&app, &ada).await, "pro");

    let mut revoked = polar_subscription(
        "subscription.revoked",
        &ada.account_id,
        "canceled",
        &next_month,
    );
    revoked["data"]["modified_at"] = json!("yesterday-ish");
    let (status, problem) = polar(&app, "msg_2", now(), &revoked, POLAR_SECRET).await;
    assert_problem(
        status,
        &problem,
        StatusCode::BAD_REQUEST,
        "unreadable_event",
    );
    assert_eq!(
        tier(&app, &ada).await,
        "pro",
        "the unreadable event changed nothing"
    );

    // Nothing was recorded either: the same delivery, readable now, is applied.
    revoked["data"]["modified_at"] = json!("2026-12-01T11:00:00Z");
    let (status, body) = polar(&app, "msg_2", now(), &revoked, POLAR_SECRET).await;
    assert_eq!(
        (status, body["outcome"].as_str()),
        (StatusCode::OK, Some("subscription"))
    );
    assert_eq!(tier(&app, &ada).await, "free");
}
