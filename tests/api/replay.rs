//! Replay at the original pace (`GET /v1/generations/{id}/events?speed=`, `threadline replay
//! generation`): the same stream as a plain replay, each event after the gap recorded before
//! it (scaled). The server waits on a virtual clock the test reads: the waits asked of it are
//! compared with the commit times in the log, nothing is timed.

use std::sync::Arc;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use threadline::chat::replay::{self, Clock, Speed, VirtualClock};

use crate::helpers::{TestApp, TestDb, User, assert_problem, spawn_on};

async fn app_with_clock() -> (TestApp, Arc<VirtualClock>) {
    let clock = Arc::new(VirtualClock::default());
    let virtual_clock = Clock::Virtual(clock.clone());
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.echo_delay = Duration::from_millis(15);
        s.replay_clock = virtual_clock;
    })
    .await;
    (app, clock)
}

/// The generation of the reply in thread `t`.
async fn generation_of(app: &TestApp, user: &User) -> String {
    let thread = app.wait_reply_done(&user.token, "t").await;
    thread["messages"][1]["metadata"]["generation_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn body(app: &TestApp, user: &User, path: &str) -> String {
    let res = app
        .request(Method::GET, path, Some(&user.token), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    res.text().await.unwrap()
}

/// The waits a replay at `speed` should ask for: the gaps between the commits of the
/// reply's events, as recorded in the log (zero gaps — one batch — are not waits).
async fn recorded_waits(app: &TestApp, generation: &str, speed: Speed) -> Vec<Duration> {
    let db = app.db.connect().await;
    let events = replay::load(&db, &app.db.keys(&db), generation)
        .await
        .unwrap();
    events
        .windows(2)
        .map(|w| speed.wait(w[1].1 - w[0].1))
        .filter(|d| !d.is_zero())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waits_the_recorded_gaps_scaled_and_sends_the_same_stream() {
    let (app, clock) = app_with_clock().await;
    let ada = app.anonymous().await;
    app.chat_all(
        &ada.token,
        "t",
        "u1",
        "one two three four five six seven eight",
        None,
    )
    .await;
    let generation = generation_of(&app, &ada).await;
    let path = format!("/v1/generations/{generation}/events");
    let plain = body(&app, &ada, &path).await;
    assert!(plain.ends_with("data: [DONE]\n\n"), "{plain}");
    clock.take();

    let expected = recorded_waits(&app, &generation, Speed::Times(1.0)).await;
    assert!(
        expected.len() >= 4,
        "a reply of 9 words 15 ms apart spans several commits: {expected:?}"
    );
    let at_1x = body(&app, &ada, &format!("{path}?speed=1x")).await;
    assert_eq!(at_1x, plain, "the pace changes, not the stream");
    assert_eq!(clock.take(), expected);

    let at_2x = body(&app, &ada, &format!("{path}?speed=2x")).await;
    assert_eq!(at_2x, plain);
    let halved = clock.take();
    assert_eq!(
        halved,
        recorded_waits(&app, &generation, Speed::Times(2.0)).await
    );
    let total = |w: &[Duration]| w.iter().sum::<Duration>();
    assert!(total(&halved) * 2 <= total(&expected) + Duration::from_micros(halved.len() as u64));

    let at_max = body(&app, &ada, &format!("{path}?speed=max")).await;
    assert_eq!(at_max, plain);
    assert!(clock.take().is_empty(), "max waits for nothing");

    // Resumed after a part: the rest, waiting only between the parts it sends.
    let third = plain
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .nth(2)
        .unwrap()
        .to_owned();
    let rest = body(&app, &ada, &format!("{path}?speed=1x&after={third}")).await;
    assert!(plain.ends_with(&rest) && rest.len() < plain.len(), "{rest}");
    assert!(clock.take().len() <= expected.len());

    // The command line writes the same stream.
    let cli = app
        .db
        .cli(&["replay", "generation", &generation, "--speed", "max"])
        .await;
    assert_eq!(cli, plain);

    // A speed that is not one, another account's reply.
    let (status, problem) = app
        .call(
            Method::GET,
            &format!("{path}?speed=fast"),
            Some(&ada.token),
            None,
        )
        .await;
    assert_problem(
        status,
        &problem,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let eve = app.anonymous().await;
    let (status, problem) = app
        .call(
            Method::GET,
            &format!("{path}?speed=1x"),
            Some(&eve.token),
            None,
        )
        .await;
    assert_problem(status, &problem, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_replay_of_a_running_reply_follows_it_to_its_end() {
    let (app, _clock) = app_with_clock().await;
    let ada = app.anonymous().await;
    let words: Vec<String> = (0..40).map(|i| format!("w{i}")).collect();
    let res = app
        .chat(&ada.token, "t", "u1", &words.join(" "), None)
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut live = crate::helpers::LiveStream::new(res);
    live.read_events(3).await;
    let (_, thread) = app.get_thread(&ada.token, "t").await;
    let generation = thread["active_generation_id"].as_str().unwrap().to_owned();
    let replayed = body(
        &app,
        &ada,
        &format!("/v1/generations/{generation}/events?speed=max"),
    )
    .await;
    let events = crate::helpers::parse_sse(&replayed);
    let text = crate::helpers::streamed_text(&events);
    assert!(text.contains("w39"), "{text}");
    assert!(replayed.ends_with("data: [DONE]\n\n"));
    let plain = body(&app, &ada, &format!("/v1/generations/{generation}/events")).await;
    assert_eq!(replayed, plain);
}
