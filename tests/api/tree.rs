//! Threads people live in: the message tree navigable from any device, long histories paged,
//! branches that diverge, hidden subtrees, share links, typing on the feed.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{LiveStream, TestApp, User, assert_problem, spawn_app};

fn path_ids(thread: &Value) -> Vec<String> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

fn texts(thread: &Value) -> Vec<String> {
    thread["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            m["parts"].as_array().unwrap().last().unwrap()["text"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

async fn second_session(app: &TestApp, email: &str) -> User {
    let (_, body) = app.login(email, "correct horse battery", None).await;
    User::from(&body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_switched_on_one_device_is_the_path_on_another_and_for_the_next_message() {
    let app = spawn_app().await;
    let phone = app.registered("ada@example.com").await;
    app.chat_all(&phone.token, "t", "u1", "first", None).await;
    app.chat_all(&phone.token, "t", "u2", "second", None).await;
    // An edit of the second message: a sibling with its own reply.
    app.chat_all(&phone.token, "t", "u2", "second, edited", None)
        .await;
    let (_, edited) = app.get_thread(&phone.token, "t").await;
    let ids = path_ids(&edited);
    assert_eq!(
        edited["messages"][2]["metadata"]["sibling_count"], 2,
        "{edited}"
    );
    assert_eq!(edited["messages"][2]["metadata"]["sibling_index"], 1);

    let (status, switched) = app
        .call(
            Method::PUT,
            "/v1/threads/t/current",
            Some(&phone.token),
            Some(json!({"message_id": "u2"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{switched}");
    assert_eq!(texts(&switched)[2], "second");
    assert_eq!(switched["messages"][2]["metadata"]["sibling_index"], 0);

    let laptop = second_session(&app, "ada@example.com").await;
    let (_, seen) = app.get_thread(&laptop.token, "t").await;
    assert_eq!(
        path_ids(&seen),
        path_ids(&switched),
        "the other device follows"
    );
    assert_ne!(path_ids(&seen), ids);

    // The next message continues the chosen branch.
    app.chat_all(&laptop.token, "t", "u3", "third", None).await;
    let (_, after) = app.get_thread(&phone.token, "t").await;
    let t = texts(&after);
    assert_eq!(t[2], "second", "{after}");
    assert_eq!(t[4], "third");

    for bad in ["nope", "../x"] {
        let (status, body) = app
            .call(
                Method::PUT,
                "/v1/threads/t/current",
                Some(&phone.token),
                Some(json!({"message_id": bad})),
            )
            .await;
        assert!(
            status == StatusCode::NOT_FOUND || status == StatusCode::UNPROCESSABLE_ENTITY,
            "{body}"
        );
    }
}

/// A thread of `n` messages (alternating user and assistant, one chain), written in one
/// command the way an import writes it.
async fn long_thread(app: &TestApp, user: &User, id: &str, n: usize) {
    use threadline::store::bus::{CommandBus, CommandMeta};
    use threadline_domain::thread::{
        CopiedMessage, CopiedRole, HistoryOrigin, Thread, ThreadCommand,
    };
    use threadline_domain::values::AccountId;
    let messages: Vec<CopiedMessage> = (0..n)
        .map(|i| CopiedMessage {
            id: format!("m{i}"),
            parent_id: i.checked_sub(1).map(|p| format!("m{p}")),
            role: if i % 2 == 0 {
                CopiedRole::User
            } else {
                CopiedRole::Assistant
            },
            text: format!("message {i}"),
            reasoning: String::new(),
            model: None,
            created_at: None,
        })
        .collect();
    let db = app.db.connect().await;
    let bus = CommandBus::new(db.clone(), app.db.keys(&db));
    bus.execute::<Thread>(
        id,
        ThreadCommand::CreateWithHistory {
            owner: AccountId::parse(&user.account_id).unwrap(),
            title: None,
            origin: HistoryOrigin::Import {
                source: "threadline".into(),
                external_id: id.into(),
            },
            messages,
            current_message_id: None,
            at: chrono::Utc::now(),
        },
        &CommandMeta::system(),
    )
    .await
    .unwrap();
    for _ in 0..200 {
        if app.get_thread(&user.token, id).await.0 == StatusCode::OK {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("the long thread never showed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_message_thread_pages_back_from_the_newest_message() {
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    long_thread(&app, &user, "long", 1000).await;
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            Some(c) => format!("?limit=64&before={c}"),
            None => "?limit=64".to_owned(),
        };
        let (status, page) = app
            .call(
                Method::GET,
                &format!("/v1/threads/long/messages{query}"),
                Some(&user.token),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let ids: Vec<String> = page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["id"].as_str().unwrap().to_owned())
            .collect();
        assert!(ids.len() <= 64);
        // Oldest first within a page, pages newest first.
        seen.splice(0..0, ids);
        pages += 1;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 16);
    let expected: Vec<String> = (0..1000).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "every message once, in order");
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/threads/long/messages?before=bm9wZQ",
            Some(&user.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/threads/long/messages?limit=0",
            Some(&user.token),
            None,
        )
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_takes_the_path_and_then_the_two_threads_diverge() {
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    app.chat_all(&user.token, "src", "u1", "first", None).await;
    app.chat_all(&user.token, "src", "u2", "second", None).await;
    let (_, source) = app.get_thread(&user.token, "src").await;
    let first_reply = path_ids(&source)[1].clone();
    let (status, branch) = app
        .call(
            Method::POST,
            "/v1/threads/src/branch",
            Some(&user.token),
            Some(json!({"message_id": first_reply, "title": "what if"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{branch}");
    let branch_id = branch["id"].as_str().unwrap().to_owned();
    assert_eq!(branch["title"], "what if");
    assert_eq!(
        branch["origin"],
        json!({"kind": "branch", "thread_id": "src", "message_id": first_reply})
    );
    assert_eq!(texts(&branch), ["first", "Echo: first"]);

    app.chat_all(&user.token, &branch_id, "b1", "in the branch", None)
        .await;
    app.chat_all(&user.token, "src", "u3", "in the source", None)
        .await;
    let (_, branch) = app.get_thread(&user.token, &branch_id).await;
    let (_, source) = app.get_thread(&user.token, "src").await;
    assert_eq!(
        texts(&branch),
        [
            "first",
            "Echo: first",
            "in the branch",
            "Echo: in the branch"
        ]
    );
    assert_eq!(texts(&source).len(), 6);
    assert!(!texts(&source).contains(&"in the branch".to_owned()));

    let stranger = app.registered("eve@example.com").await;
    let (status, _) = app
        .call(
            Method::POST,
            "/v1/threads/src/branch",
            Some(&stranger.token),
            Some(json!({"message_id": "u1"})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another account's thread");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hidden_message_leaves_every_read_with_its_subtree() {
    let app = spawn_app().await;
    let user = app.registered("ada@example.com").await;
    app.chat_all(&user.token, "t", "u1", "keep", None).await;
    app.chat_all(&user.token, "t", "u2", "drop me", None).await;
    app.chat_all(&user.token, "t", "u3", "and me", None).await;
    let (status, share) = app
        .call(
            Method::POST,
            "/v1/threads/t/shares",
            Some(&user.token),
            Some(json!({"message_id": "u3"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let res = app
        .request(
            Method::DELETE,
            "/v1/threads/t/messages/u2",
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let (_, thread) = app.get_thread(&user.token, "t").await;
    assert_eq!(texts(&thread), ["keep", "Echo: keep"], "{thread}");
    let (_, page) = app
        .call(
            Method::GET,
            "/v1/threads/t/messages",
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    // A share of a hidden message is gone for its readers and from the owner's list.
    let url = share["url"].as_str().unwrap();
    assert_eq!(
        app.request(Method::GET, url, None, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (_, shares) = app
        .call(Method::GET, "/v1/threads/t/shares", Some(&user.token), None)
        .await;
    assert_eq!(shares["data"], json!([]), "{shares}");
    // Hidden is gone: again, or below it, is a 404; the next message goes under what is left.
    for gone in ["u2", "u3"] {
        let res = app
            .request(
                Method::DELETE,
                &format!("/v1/threads/t/messages/{gone}"),
                Some(&user.token),
                None,
            )
            .await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
    }
    app.chat_all(&user.token, "t", "u4", "after", None).await;
    let (_, thread) = app.get_thread(&user.token, "t").await;
    assert_eq!(
        texts(&thread),
        ["keep", "Echo: keep", "after", "Echo: after"]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_share_is_a_frozen_public_snapshot_until_revoked_and_can_be_continued() {
    let app = spawn_app().await;
    let owner = app.registered("ada@example.com").await;
    app.chat_all(&owner.token, "t", "u1", "shared question", None)
        .await;
    let (status, share) = app
        .call(
            Method::POST,
            "/v1/threads/t/shares",
            Some(&owner.token),
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{share}");
    let url = share["url"].as_str().unwrap().to_owned();
    app.chat_all(&owner.token, "t", "u2", "private follow-up", None)
        .await;

    let res = app.request(Method::GET, &url, None, None).await;
    assert_eq!(res.status(), StatusCode::OK);
    let text = res.text().await.unwrap();
    let public: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        public["messages"].as_array().unwrap().len(),
        2,
        "later messages are not shown"
    );
    assert!(!text.contains("private follow-up"));
    assert!(!text.contains(&owner.account_id), "no account ids: {text}");
    assert!(!text.contains("ada@example.com"));
    assert!(!text.contains("generation_id"));

    let (_, listed) = app
        .call(
            Method::GET,
            "/v1/threads/t/shares",
            Some(&owner.token),
            None,
        )
        .await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);

    // Someone else continues it as their own thread.
    let reader = app.registered("bob@example.com").await;
    let (status, copy) = app
        .call(
            Method::POST,
            &format!("{url}/copy"),
            Some(&reader.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{copy}");
    let copy_id = copy["id"].as_str().unwrap().to_owned();
    app.chat_all(&reader.token, &copy_id, "c1", "my turn", None)
        .await;
    let (_, copy) = app.get_thread(&reader.token, &copy_id).await;
    assert_eq!(texts(&copy).len(), 4);
    let (_, original) = app.get_thread(&owner.token, "t").await;
    assert!(!texts(&original).contains(&"my turn".to_owned()));

    // Only the owner revokes; then the link is gone for everyone.
    let res = app
        .request(Method::DELETE, &url, Some(&reader.token), None)
        .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let res = app
        .request(Method::DELETE, &url, Some(&owner.token), None)
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.request(Method::GET, &url, None, None).await.status(),
        StatusCode::NOT_FOUND
    );
    let (status, _) = app
        .call(
            Method::POST,
            &format!("{url}/copy"),
            Some(&reader.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typing_reaches_the_callers_other_devices_and_not_the_typing_one() {
    let app = spawn_app().await;
    let phone = app.registered("ada@example.com").await;
    let laptop = second_session(&app, "ada@example.com").await;
    let open = |token: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(format!("{}/v1/events", app.address))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            let mut stream = LiveStream::new(res);
            let ready = stream.expect_ready().await;
            assert!(ready.json()["cursor"].is_string());
            stream
        }
    };
    let mut on_laptop = open(laptop.token.clone()).await;
    let mut on_phone = open(phone.token.clone()).await;
    let id = app.new_thread(&phone.token, "typing here").await;
    let res = app
        .request(
            Method::POST,
            &format!("/v1/threads/{id}/typing"),
            Some(&phone.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    app.patch_thread(&phone.token, &id, json!({"pinned": true}))
        .await;
    let mut laptop_kinds: Vec<String> = on_laptop
        .read_events(3)
        .await
        .iter()
        .map(|e| e.kind())
        .collect();
    // Typing is not in the log: it may overtake the items the log tail reads.
    laptop_kinds.sort();
    assert_eq!(laptop_kinds, ["thread.created", "thread.updated", "typing"]);
    let phone_kinds: Vec<String> = on_phone
        .read_events(2)
        .await
        .iter()
        .map(|e| e.kind())
        .collect();
    assert_eq!(
        phone_kinds,
        ["thread.created", "thread.updated"],
        "not echoed to the typist"
    );
}
