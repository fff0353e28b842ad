//! Re-pricing from history (`threadline report reprice`): at today's prices the numbers are
//! `report usage`'s; at other prices and plans they differ exactly as the recorded tokens say;
//! the ledger is not touched.

use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{TestApp, TestDb, User, model_spec, spawn_on};

const PRICES: [(&str, u64); 4] = [
    ("input", 2_000_000),
    ("output", 8_000_000),
    ("cached_input", 500_000),
    ("reasoning", 8_000_000),
];

fn priced(upstream: &str, credits: u32, scale: u64) -> Value {
    let mut spec = model_spec("openai", upstream, credits);
    for (kind, price) in PRICES {
        spec["prices"][kind] = json!(price * scale);
    }
    spec
}

async fn ledger_lines(app: &TestApp, admin: &User, account: &str) -> Value {
    let (_, statement) = app
        .call(
            reqwest::Method::GET,
            &format!("/v1/admin/accounts/{account}/ledger"),
            Some(&admin.token),
            None,
        )
        .await;
    statement
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reprice_at_todays_prices_is_the_usage_report_and_other_prices_scale_it() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let base = mock.base_url();
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), base.into()),
        ]);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    app.define_model(&admin, "small", priced("mock:len=7,cached=2", 1, 1))
        .await;
    app.define_model(&admin, "thinker", priced("mock:len=5,reasoning=3", 3, 1))
        .await;
    let ada = app.registered("ada@example.com").await;
    let anon = app.anonymous().await;
    for (i, (who, model)) in [
        (&ada, "small"),
        (&ada, "thinker"),
        (&anon, "small"),
        (&anon, "thinker"),
    ]
    .into_iter()
    .enumerate()
    {
        app.chat_all(
            &who.token,
            &format!("t{i}"),
            "u1",
            "price me please",
            Some(model),
        )
        .await;
        app.wait_reply_done(&who.token, &format!("t{i}")).await;
    }
    let before = ledger_lines(&app, &admin, &ada.account_id).await;
    let db = app.stop().await;
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let json_of = |out: String| -> Value { serde_json::from_str(&out).unwrap() };
    let group = "model,tier";

    // Today's prices: an empty file leaves every model at today's catalog entry.
    let usage = json_of(
        db.cli(&["report", "usage", "--group-by", group, "--format", "json"])
            .await,
    );
    let today = write("today.yaml", "");
    let same = json_of(
        db.cli(&[
            "report",
            "reprice",
            "--prices",
            &today,
            "--group-by",
            group,
            "--format",
            "json",
        ])
        .await,
    );
    let rows = same["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{same}");
    for (repriced, recorded) in rows.iter().zip(usage["rows"].as_array().unwrap()) {
        for key in [
            "group",
            "messages",
            "input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "credits",
            "cost_micros",
        ] {
            assert_eq!(repriced[key], recorded[key], "{key}: {same} vs {usage}");
        }
        assert_eq!(repriced["recorded_credits"], recorded["credits"]);
        assert_eq!(repriced["recorded_cost_micros"], recorded["cost_micros"]);
        assert!(recorded["cost_micros"].as_i64().unwrap() > 0, "{usage}");
    }

    // Every price ten times higher: each reply costs ten times its tokens (rounded up per
    // reply, as the server rounds), credits from the file.
    let tenfold = write(
        "tenfold.json",
        &json!({
            "small": {"prices": priced("x", 1, 10)["prices"], "credits": 2},
            "thinker": priced("mock:len=5,reasoning=3", 5, 10),
        })
        .to_string(),
    );
    let other = json_of(
        db.cli(&[
            "report",
            "reprice",
            "--prices",
            &tenfold,
            "--group-by",
            group,
            "--format",
            "json",
        ])
        .await,
    );
    for (repriced, recorded) in other["rows"]
        .as_array()
        .unwrap()
        .iter()
        .zip(usage["rows"].as_array().unwrap())
    {
        let cost = recorded["cost_micros"].as_i64().unwrap();
        let messages = recorded["messages"].as_i64().unwrap();
        let got = repriced["cost_micros"].as_i64().unwrap();
        assert!(
            got <= cost * 10 && got > (cost - messages) * 10,
            "ten times the price: {got} vs {cost}"
        );
        let per_message = if repriced["group"]["model"] == "small" {
            2
        } else {
            5
        };
        assert_eq!(repriced["credits"], json!(per_message * messages));
        assert_eq!(repriced["recorded_cost_micros"], recorded["cost_micros"]);
    }

    // Plans where the free tier pays no credits: the free tier's replies cost none.
    let plans = write(
        "plans.yaml",
        "tiers: {free: {credits: {limit: null, window: day}}}",
    );
    let unmetered = json_of(
        db.cli(&[
            "report",
            "reprice",
            "--prices",
            &today,
            "--plans",
            &plans,
            "--group-by",
            group,
            "--format",
            "json",
        ])
        .await,
    );
    for row in unmetered["rows"].as_array().unwrap() {
        let credits = row["credits"].as_i64().unwrap();
        match row["group"]["tier"].as_str().unwrap() {
            "free" => assert_eq!(credits, 0, "{row}"),
            _ => assert_eq!(credits, row["recorded_credits"].as_i64().unwrap(), "{row}"),
        }
    }

    // Table and CSV; a typo in the prices file is refused; nothing was written.
    let table = db.cli(&["report", "reprice", "--prices", &tenfold]).await;
    assert!(table.contains("recorded_cost_micros"), "{table}");
    let csv = db
        .cli(&["report", "reprice", "--prices", &tenfold, "--format", "csv"])
        .await;
    assert!(csv.starts_with("messages,"), "{csv}");
    let typo = write("typo.yaml", "small: {price: {input: 1}}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_threadline"))
        .args(["report", "reprice", "--prices", &typo])
        .env("THREADLINE_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("prices file"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let app = spawn_on(db, |_| {}).await;
    assert_eq!(ledger_lines(&app, &admin, &ada.account_id).await, before);
}
