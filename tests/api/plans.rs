//! Plans from a file (N-hour windows, a cost budget), purchased credits spent after the window's
//! quota, linking that carries them, ledger statements that agree with `/v1/me/usage`, admin
//! reports that add up to the replies' usage, and the same reports after a rebuild.

use std::sync::Arc;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::config::Settings;
use threadline::mock_upstream::MockUpstream;
use threadline_domain::plans::Plans;

use crate::helpers::{TestApp, TestDb, User, assert_problem, model_spec, spawn_on};

/// A server whose OpenAI provider is the mock, with plans from `yaml` (JSON is YAML).
pub async fn app_with_plans(
    plans: Value,
    adjust: impl FnOnce(&mut Settings),
) -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let plans = Plans::with_overrides(plans).unwrap();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
        s.plans = Arc::new(plans);
        adjust(s);
    })
    .await;
    (app, mock)
}

/// Defines a public model costing `credits` a message, $1 per million input tokens and
/// `output_price` micro-dollars per million output tokens.
pub async fn define(
    app: &TestApp,
    admin: &User,
    id: &str,
    upstream: &str,
    credits: u32,
    output_price: u64,
) {
    let mut spec = model_spec("openai", upstream, credits);
    spec["prices"]["input"] = json!(1_000_000);
    spec["prices"]["output"] = json!(output_price);
    app.define_model(admin, id, spec).await;
}

pub async fn usage(app: &TestApp, user: &User) -> Value {
    let (status, body) = app
        .call(Method::GET, "/v1/me/usage", Some(&user.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

pub fn meter<'a>(usage: &'a Value, name: &str) -> &'a Value {
    usage["meters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["meter"] == name)
        .unwrap_or(&Value::Null)
}

/// Waits until no meter of the caller has an open reservation; returns the usage.
pub async fn settled(app: &TestApp, user: &User) -> Value {
    for _ in 0..200 {
        let u = usage(app, user).await;
        let open = u["meters"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["reserved"] != 0);
        let book_open = u["ledger"]
            .as_array()
            .unwrap()
            .first()
            .is_some_and(|l| l["kind"] == "reserved");
        if !open && !book_open {
            return u;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("a reservation stayed open");
}

async fn grant(app: &TestApp, admin: &User, account: &str, amount: u64) -> Value {
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/admin/accounts/{account}/credits"),
            Some(&admin.token),
            Some(json!({"amount": amount, "reason": "goodwill"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

async fn statement(app: &TestApp, admin: &User, account: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/admin/accounts/{account}/ledger"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// The balance after the last statement line of `meter`.
fn last_balance(statement: &Value, meter: &str) -> i64 {
    statement["lines"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .find(|l| l["meter"] == meter)
        .map_or(0, |l| l["balance"].as_i64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cost_budget_admits_replies_until_their_actual_cost_uses_it_up() {
    // $1 an output token; the mock's reply has 2 words: each reply costs 2,000,000 micros.
    let (app, _mock) = app_with_plans(
        json!({"tiers": {"free": {"cost_micros": {"limit": 3_000_000, "window": "day"}}}}),
        |_| {},
    )
    .await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "dear", "mock:len=2", 1, 1_000_000_000_000).await;
    app.chat_all(&admin.token, "c1", "u1", "hi", Some("dear"))
        .await;
    let u = settled(&app, &admin).await;
    assert_eq!(
        meter(&u, "cost_micros")["used"],
        2_000_000 + 1,
        "output plus the one input token"
    );
    app.chat_all(&admin.token, "c2", "u1", "hi", Some("dear"))
        .await;
    let u = settled(&app, &admin).await;
    assert!(meter(&u, "cost_micros")["used"].as_u64().unwrap() > 3_000_000);
    assert_eq!(meter(&u, "cost_micros")["remaining"], 0);
    let lines = u["ledger"].as_array().unwrap().len();
    let res = app.chat(&admin.token, "c3", "u1", "hi", Some("dear")).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["meter"], "cost_micros");
    assert_eq!(body["limit"], 3_000_000);
    let after = usage(&app, &admin).await;
    assert_eq!(
        after["ledger"].as_array().unwrap().len(),
        lines,
        "a refusal the projections can see writes no ledger line"
    );
    assert_eq!(
        meter(&u, "credits")["used"],
        2,
        "credits are metered beside the budget"
    );
    let (status, _) = app.get_thread(&admin.token, "c3").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a denied send writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hours_window_is_keyed_by_its_bucket_and_resets_at_its_end() {
    let (app, _mock) = app_with_plans(
        json!({"tiers": {"anonymous": {"credits": {"limit": 1, "window": "4h"}}}}),
        |_| {},
    )
    .await;
    let anon = app.anonymous().await;
    app.chat_all(&anon.token, "h1", "u1", "hi", None).await;
    let u = usage(&app, &anon).await;
    let credits = meter(&u, "credits");
    assert_eq!(credits["window"], "4h");
    assert!(credits["window_key"].as_str().unwrap().ends_with("+4h"));
    let resets =
        chrono::DateTime::parse_from_rfc3339(credits["resets_at"].as_str().unwrap()).unwrap();
    let left = resets.signed_duration_since(chrono::Utc::now());
    assert!(left > chrono::Duration::zero() && left <= chrono::Duration::hours(4));
    assert_eq!(credits["limit"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purchased_credits_are_spent_after_the_window_and_the_statement_agrees_with_usage() {
    let (app, _mock) = app_with_plans(
        json!({"tiers": {"free": {"credits": {"limit": 2, "window": "day"}}}}),
        |_| {},
    )
    .await;
    let admin = app.registered("admin@example.com").await;
    let ada = app.registered("ada@example.com").await;
    define(&app, &admin, "two", "mock:len=1", 2, 0).await;
    let granted = grant(&app, &admin, &ada.account_id, 5).await;
    assert_eq!(granted["purchased_credits"], 5);

    for (i, (window_used, purchased)) in [(2, 5), (2, 3), (2, 1)].into_iter().enumerate() {
        app.chat_all(&ada.token, &format!("p{i}"), "u1", "hi", Some("two"))
            .await;
        let u = settled(&app, &ada).await;
        assert_eq!(meter(&u, "credits")["used"], window_used, "message {i}");
        assert_eq!(u["purchased_credits"], purchased, "message {i}");
        let s = statement(&app, &admin, &ada.account_id).await;
        assert_eq!(
            last_balance(&s, "credits"),
            meter(&u, "credits")["remaining"].as_i64().unwrap()
        );
        assert_eq!(
            last_balance(&s, "purchased"),
            u["purchased_credits"].as_i64().unwrap()
        );
    }
    let res = app.chat(&ada.token, "p3", "u1", "hi", Some("two")).await;
    assert_eq!(
        res.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "1 purchased credit < 2"
    );

    let s = statement(&app, &admin, &ada.account_id).await;
    let kinds: Vec<(&str, &str)> = s["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["meter"].as_str().unwrap(), l["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds[0], ("purchased", "added"));
    assert_eq!(
        kinds
            .iter()
            .filter(|k| k.0 == "purchased" && k.1 == "settled")
            .count(),
        2
    );

    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/admin/accounts/{}/ledger", ada.account_id),
            Some(&ada.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/admin/accounts/00000000-0000-0000-0000-000000000000/credits",
            Some(&admin.token),
            Some(json!({"amount": 1, "reason": "x"})),
        )
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .call(
            Method::POST,
            &format!("/v1/admin/accounts/{}/credits", ada.account_id),
            Some(&admin.token),
            Some(json!({"amount": 0, "reason": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linking_carries_purchased_credits_and_preferences() {
    let (app, _mock) = app_with_plans(json!({}), |_| {}).await;
    let admin = app.registered("admin@example.com").await;
    let anon = app.anonymous().await;
    grant(&app, &admin, &anon.account_id, 4).await;
    let (status, body) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&anon.token),
            Some(json!({"nickname": "Ada", "pinned_models": ["echo"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, body) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ada = User::from(&body);
    let u = usage(&app, &ada).await;
    assert_eq!(u["purchased_credits"], 4);
    assert_eq!(u["ledger"][0]["kind"], "added");
    assert_eq!(
        u["ledger"][0]["generation_id"],
        format!("link:{}", anon.account_id)
    );
    let (_, prefs) = app
        .call(Method::GET, "/v1/me/preferences", Some(&ada.token), None)
        .await;
    assert_eq!(prefs["nickname"], "Ada");
    let old = statement(&app, &admin, &anon.account_id).await;
    assert_eq!(last_balance(&old, "purchased"), 0);
    assert!(
        old["lines"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["kind"] == "moved_out")
    );
}

async fn report(app: &TestApp, admin: &User, query: &str) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v1/admin/usage?{query}"),
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_reports_add_up_to_the_replies_usage_and_survive_a_rebuild() {
    let (app, _mock) = app_with_plans(json!({}), |_| {}).await;
    let admin = app.registered("admin@example.com").await;
    let bob = app.registered("bob@example.com").await;
    define(&app, &admin, "paid", "mock:len=3", 1, 2_000_000).await;
    for (who, user, n) in [("a", &admin, 2), ("b", &bob, 3)] {
        for i in 0..n {
            app.chat_all(
                &user.token,
                &format!("r{who}{i}"),
                "u1",
                "three word question",
                Some("paid"),
            )
            .await;
            app.wait_reply_done(&user.token, &format!("r{who}{i}"))
                .await;
        }
    }
    settled(&app, &bob).await;
    let db = app.db.connect().await;
    let (messages, input, output, cost): (i64, i64, i64, i64) = threadline_projections::on_read!(&db, pool =>
        sqlx::query_as(
            "SELECT COUNT(*), CAST(SUM(input_tokens) AS BIGINT), CAST(SUM(output_tokens) AS BIGINT), \
             CAST(SUM(cost_micros) AS BIGINT) FROM generations")
            .fetch_one(pool)
            .await)
    .unwrap();
    assert_eq!(messages, 5);

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let by_account = report(
        &app,
        &admin,
        &format!("from={today}&to={today}&group_by=account,model"),
    )
    .await;
    let rows = by_account["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let sum = |field: &str| rows.iter().map(|r| r[field].as_i64().unwrap()).sum::<i64>();
    assert_eq!(
        (
            sum("messages"),
            sum("input_tokens"),
            sum("output_tokens"),
            sum("cost_micros")
        ),
        (messages, input, output, cost)
    );
    assert_eq!(sum("credits"), 5);
    let bob_row = rows
        .iter()
        .find(|r| r["group"]["account"] == bob.account_id.as_str())
        .unwrap();
    assert_eq!(bob_row["messages"], 3);
    assert_eq!(bob_row["group"]["model"], "paid");

    let res = app
        .request(
            Method::GET,
            "/v1/admin/usage?group_by=tier&format=csv",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("tier,messages,"), "{csv}");
    assert!(csv.contains("\r\nfree,5,"), "{csv}");

    let (status, body) = app
        .call(Method::GET, "/v1/admin/usage", Some(&bob.token), None)
        .await;
    assert_problem(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/admin/usage?group_by=colour",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

    // The command line answers the same from the same projections.
    let from_cli: Value = serde_json::from_str(
        &app.db
            .cli(&[
                "report",
                "usage",
                "--from",
                &today,
                "--to",
                &today,
                "--group-by",
                "account,model",
                "--format",
                "json",
            ])
            .await,
    )
    .unwrap();
    assert_eq!(from_cli, by_account);
    let audit: Value = serde_json::from_str(
        &app.db
            .cli(&["audit", "account", &bob.account_id, "--format", "json"])
            .await,
    )
    .unwrap();
    assert_eq!(audit, statement(&app, &admin, &bob.account_id).await);
    let table = app.db.cli(&["report", "usage", "--group-by", "tier"]).await;
    assert!(
        table.starts_with("tier") && table.contains("free"),
        "{table}"
    );

    // Replay: rebuilding the ledger and facts projections from the log gives the same answers.
    let before = (
        report(&app, &admin, "group_by=day,model,provider,tier,account").await,
        statement(&app, &admin, &bob.account_id).await,
    );
    let projector = threadline::projector::Projector::new(db.clone(), app.db.keys(&db));
    for name in ["usage", "facts"] {
        threadline::projector::rebuild::rebuild(&projector, name, &|_| {})
            .await
            .unwrap();
    }
    let after = (
        report(&app, &admin, "group_by=day,model,provider,tier,account").await,
        statement(&app, &admin, &bob.account_id).await,
    );
    assert_eq!(before, after);
}
