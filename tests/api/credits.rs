//! Credits as a ledger: reserve before the provider call, settle at the end, release when the
//! reply fails or is stopped before its first token; denials say which limit and when it resets.

use futures::future::join_all;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{LiveStream, TestApp, TestDb, User, assert_problem, model_spec, spawn_on};

async fn app_with_openai() -> (TestApp, MockUpstream) {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), (base).into()),
        ]);
    })
    .await;
    (app, mock)
}

/// Defines a public catalog model costing `credits` per message.
async fn define(app: &TestApp, admin: &User, id: &str, upstream: &str, credits: u32) {
    app.define_model(admin, id, model_spec("openai", upstream, credits))
        .await;
}

async fn usage(app: &TestApp, user: &User) -> Value {
    let (status, body) = app
        .call(Method::GET, "/v1/me/usage", Some(&user.token), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// Waits until the caller's credit window has no open reservation; returns the usage.
async fn settled_usage(app: &TestApp, user: &User) -> Value {
    for _ in 0..200 {
        let u = usage(app, user).await;
        if u["meters"][0]["reserved"] == 0 {
            return u;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("a reservation stayed open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_spend_the_days_credits_until_a_429_says_when_they_come_back() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "costly", "mock:len=2", 7).await;
    let fresh = usage(&app, &admin).await;
    assert_eq!(fresh["tier"], "free");
    assert_eq!(fresh["meters"][0]["limit"], 20);
    assert_eq!(fresh["meters"][0]["remaining"], 20);

    for i in 0..2 {
        app.chat_all(&admin.token, &format!("c{i}"), "u1", "hi", Some("costly"))
            .await;
    }
    let spent = settled_usage(&app, &admin).await;
    assert_eq!(spent["meters"][0]["used"], 14);
    assert_eq!(spent["meters"][0]["remaining"], 6);
    let kinds: Vec<&str> = spent["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["settled", "reserved", "settled", "reserved"],
        "newest first"
    );

    let res = app
        .chat(&admin.token, "c2", "u1", "hi", Some("costly"))
        .await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    let retry_after: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=86_400).contains(&retry_after));
    let body: Value = res.json().await.unwrap();
    assert_problem(
        StatusCode::TOO_MANY_REQUESTS,
        &body,
        StatusCode::TOO_MANY_REQUESTS,
        "quota_exceeded",
    );
    assert_eq!(body["meter"], "credits");
    assert_eq!(body["limit"], 20);
    assert_eq!(body["used"], 14);
    assert_eq!(body["remaining"], 6);
    assert!(body["resets_at"].as_str().unwrap().ends_with("T00:00:00Z"));
    let (status, _) = app.get_thread(&admin.token, "c2").await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a denied send writes nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_reply_gives_its_credits_back() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "broken", "mock:status=400", 5).await;
    let events = app
        .chat_all(&admin.token, "f1", "u1", "hi", Some("broken"))
        .await;
    assert!(events.iter().any(|e| e.kind() == "error"));
    let u = settled_usage(&app, &admin).await;
    assert_eq!(u["meters"][0]["used"], 0);
    let kinds: Vec<&str> = u["ledger"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["released", "reserved"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_stopped_before_its_first_token_costs_nothing() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "slow", "mock:len=3,ttft_ms=3000", 5).await;
    let mut live = LiveStream::new(app.chat(&admin.token, "s1", "u1", "hi", Some("slow")).await);
    live.read_events(2).await;
    let (status, body) = app.stop_reply(&admin.token, "s1").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let u = settled_usage(&app, &admin).await;
    assert_eq!(u["meters"][0]["used"], 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_sends_racing_for_the_last_credit_admit_exactly_one() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "big", "mock:len=1", 19).await;
    define(&app, &admin, "one", "mock:len=1", 1).await;
    app.chat_all(&admin.token, "big", "u1", "hi", Some("big"))
        .await;
    settled_usage(&app, &admin).await;

    let results = join_all((0..20).map(|i| {
        let (app, token) = (&app, admin.token.clone());
        async move {
            let res = app
                .chat(&token, &format!("race-{i}"), "u1", "hi", Some("one"))
                .await;
            let status = res.status();
            if status == StatusCode::OK {
                LiveStream::new(res).read_all().await;
            }
            status
        }
    }))
    .await;
    let ok = results.iter().filter(|s| **s == StatusCode::OK).count();
    let denied = results
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((ok, denied), (1, 19), "{results:?}");
    let u = settled_usage(&app, &admin).await;
    assert_eq!(u["meters"][0]["used"], 20);
    assert_eq!(u["meters"][0]["remaining"], 0, "never below zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_up_carries_the_days_spent_credits_instead_of_resetting_them() {
    let (app, _mock) = app_with_openai().await;
    let admin = app.registered("admin@example.com").await;
    define(&app, &admin, "costly", "mock:len=2", 7).await;
    let anon = app.anonymous().await;
    app.chat_all(&anon.token, "a1", "u1", "hi", Some("costly"))
        .await;
    assert_eq!(settled_usage(&app, &anon).await["meters"][0]["used"], 7);

    let (status, body) = app
        .register(
            "ada@example.com",
            "correct horse battery",
            Some(&anon.token),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let ada = User::from(&body);
    let u = settled_usage(&app, &ada).await;
    assert_eq!(u["tier"], "free");
    assert_eq!(u["meters"][0]["used"], 7);
    assert_eq!(u["meters"][0]["remaining"], 13);
    assert_eq!(u["ledger"][0]["kind"], "carried");
    assert_eq!(u["ledger"][0]["amount"], 7);
}
