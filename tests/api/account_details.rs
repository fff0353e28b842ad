//! The account's details: profile, sessions that show when they were used and expire when idle,
//! the default model, and the pre-flight check that tells what a send would do.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{LiveStream, TestDb, assert_problem, model_spec, spawn_app, spawn_on};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_profile_takes_a_name_and_a_picture_and_refuses_bad_ones() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let (status, me) = app
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&ada.token),
            Some(json!({"name": " Ada L. ", "image_url": "https://img.example.com/ada.png"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["name"], "Ada L.");
    assert_eq!(me["image_url"], "https://img.example.com/ada.png");
    assert_eq!(app.me(&ada.token).await.1["name"], "Ada L.");
    for (patch, field) in [
        (json!({"image_url": "javascript:alert(1)"}), "image_url"),
        (json!({"image_url": "https://x.example/a b"}), "image_url"),
        (json!({"name": "A\u{0}da"}), "name"),
        (json!({}), "body"),
    ] {
        let (status, body) = app
            .call(Method::PATCH, "/v1/me", Some(&ada.token), Some(patch))
            .await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
        assert!(body["errors"][field].is_array(), "{body}");
    }
    let (_, cleared) = app
        .call(
            Method::PATCH,
            "/v1/me",
            Some(&ada.token),
            Some(json!({"image_url": null})),
        )
        .await;
    assert!(cleared["image_url"].is_null(), "{cleared}");
    assert_eq!(cleared["name"], "Ada L.", "absent fields stay");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_show_their_device_and_expire_when_idle() {
    let app = spawn_on(TestDb::fresh().await, |s| {
        // Margins for a loaded machine: the old session is idle 4.5 s or more, the fresh one
        // about 2 s plus the time the requests take.
        s.session_idle = std::time::Duration::from_secs(4);
    })
    .await;
    let res = app
        .client
        .post(format!("{}/v1/auth/register", app.address))
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0",
        )
        .json(&json!({"email": "ada@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let (_, sessions) = app.sessions(&token).await;
    assert_eq!(
        sessions["data"][0]["device"], "Firefox on Linux",
        "{sessions}"
    );
    assert!(sessions["data"][0]["last_seen_at"].is_string());
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let (status, login) = app
        .call(
            Method::POST,
            "/v1/auth/login",
            None,
            Some(json!({"email": "ada@example.com", "password": "correct horse battery"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{login}");
    let fresh = login["token"].as_str().unwrap().to_owned();
    tokio::time::sleep(std::time::Duration::from_millis(2000)).await;
    let (status, body) = app.me(&token).await;
    assert_problem(status, &body, StatusCode::UNAUTHORIZED, "unauthenticated");
    let (_, sessions) = app.sessions(&fresh).await;
    let listed = sessions["data"].as_array().unwrap();
    assert_eq!(
        listed.len(),
        1,
        "the idle session is not listed: {sessions}"
    );
    assert_eq!(listed[0]["current"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_naming_no_model_uses_the_default_model_preference() {
    let app = spawn_app().await;
    let ada = app.registered("admin@example.com").await;
    app.define_model(&ada, "my-echo", model_spec("echo", "echo", 0))
        .await;
    let (status, body) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&ada.token),
            Some(json!({"default_model": "my-echo"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let res = app
        .request(
            Method::POST,
            "/v1/chat",
            Some(&ada.token),
            Some(json!({"id": "t", "message": "hi"})),
        )
        .await;
    let events = LiveStream::new(res).read_all().await;
    assert_eq!(
        events[0].json()["messageMetadata"]["model"],
        "my-echo",
        "{events:?}"
    );
    let (_, check) = app
        .call(
            Method::POST,
            "/v1/chat/check",
            Some(&ada.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(check["model"], "my-echo", "{check}");

    // A preferred model the caller may not use falls back to the server's default, in a send
    // and in the check alike.
    let mut premium = model_spec("echo", "echo", 1);
    premium["access"] = json!("premium_required");
    app.define_model(&ada, "premium", premium).await;
    let bob = app.registered("bob@example.com").await;
    let (status, body) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&bob.token),
            Some(json!({"default_model": "premium"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, check) = app
        .call(
            Method::POST,
            "/v1/chat/check",
            Some(&bob.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(check["allowed"], true, "{check}");
    let res = app
        .request(
            Method::POST,
            "/v1/chat",
            Some(&bob.token),
            Some(json!({"id": "b", "message": "hi"})),
        )
        .await;
    let events = LiveStream::new(res).read_all().await;
    assert_eq!(
        events[0].json()["messageMetadata"]["model"],
        check["model"],
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_check_agrees_with_what_the_next_send_does() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    app.define_model(&admin, "seven", model_spec("echo", "echo", 7))
        .await;
    let mut premium = model_spec("echo", "echo", 1);
    premium["access"] = json!("premium_required");
    app.define_model(&admin, "premium", premium).await;
    let ada = app.registered("ada@example.com").await;
    let check = |model: &'static str, tool: Option<&'static str>| {
        let body = match tool {
            Some(t) => json!({"model": model, "tool": t}),
            None => json!({"model": model}),
        };
        let app = &app;
        let token = ada.token.clone();
        async move {
            let (status, answer) = app
                .call(Method::POST, "/v1/chat/check", Some(&token), Some(body))
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
            answer
        }
    };
    for i in 0..3 {
        let answer = check("seven", None).await;
        assert_eq!(answer["allowed"], i < 2, "{answer}");
        assert_eq!(answer["credits"], 7);
        let res = app
            .chat(&ada.token, &format!("t{i}"), "u1", "hi", Some("seven"))
            .await;
        if i < 2 {
            assert_eq!(res.status(), StatusCode::OK);
            LiveStream::new(res).read_all().await;
            app.wait_reply_done(&ada.token, &format!("t{i}")).await;
        } else {
            assert_eq!(answer["problem"]["code"], "quota_exceeded", "{answer}");
            assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
            let problem: serde_json::Value = res.json().await.unwrap();
            assert_eq!(problem["code"], answer["problem"]["code"]);
            assert_eq!(problem["remaining"], answer["problem"]["remaining"]);
        }
    }
    let answer = check("premium", None).await;
    assert_eq!(
        (answer["allowed"].clone(), answer["problem"]["code"].clone()),
        (json!(false), json!("premium_required"))
    );
    let answer = check("echo", Some("research")).await;
    assert_eq!(answer["problem"]["code"], "plan_required", "{answer}");
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/chat/check",
            Some(&ada.token),
            Some(json!({"model": "nope"})),
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}
