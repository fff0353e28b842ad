//! Search over the caller's titles and messages: new replies findable within a second, owners
//! respected, deleted and hidden content never shown, titles ranked above passing mentions.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{TestApp, User, assert_problem, spawn_app};

async fn search(app: &TestApp, user: &User, q: &str) -> Value {
    let (status, page) = app
        .call(
            Method::GET,
            &format!("/v1/search?q={}", urlencode(q)),
            Some(&user.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn hits(page: &Value) -> Vec<(String, Option<String>)> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["thread_id"].as_str().unwrap().to_owned(),
                h["message_id"].as_str().map(str::to_owned),
            )
        })
        .collect()
}

/// Searches until `q` finds something (or two seconds pass); returns the page.
async fn eventually(app: &TestApp, user: &User, q: &str) -> Value {
    for _ in 0..40 {
        let page = search(app, user, q).await;
        if !page["data"].as_array().unwrap().is_empty() {
            return page;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("{q:?} was never found");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_and_replies_are_found_by_their_owner_only_within_a_second() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    let eve = app.registered("eve@example.com").await;
    app.chat_all(
        &ada.token,
        "t1",
        "u1",
        "tell me about ownership in Rust",
        None,
    )
    .await;
    // The echo reply repeats the words: "Echo: tell me about …".
    let page = eventually(&app, &ada, "echo ownership").await;
    let found = hits(&page);
    assert_eq!(found.len(), 1, "{page}");
    assert_eq!(found[0].0, "t1");
    assert_ne!(
        found[0].1.as_deref(),
        Some("u1"),
        "the reply, not the question"
    );
    let hit = &page["data"][0];
    let snippet = hit["snippet"].as_str().unwrap();
    let [start, end] = [
        hit["highlights"][0][0].as_u64().unwrap(),
        hit["highlights"][0][1].as_u64().unwrap(),
    ];
    let highlighted: String = snippet
        .chars()
        .skip(start as usize)
        .take((end - start) as usize)
        .collect();
    assert!(
        ["Echo", "ownership"].contains(&highlighted.as_str()),
        "{hit}"
    );

    // Prefixes match (the question, the reply and the title made from the question); another
    // account finds nothing of Ada's.
    app.wait_title(&ada.token, "t1").await;
    eventually(&app, &ada, "tell").await;
    for _ in 0..40 {
        if hits(&search(&app, &ada, "owner").await).len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(hits(&search(&app, &ada, "owner").await).len(), 3);
    assert!(hits(&search(&app, &eve, "ownership").await).is_empty());
    let (status, body) = app
        .call(Method::GET, "/v1/search?q=", Some(&ada.token), None)
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_title_hit_ranks_above_a_passing_mention_and_pages_follow() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    for i in 0..3 {
        app.chat_all(
            &ada.token,
            &format!("m{i}"),
            "u1",
            &format!("a note {i} that mentions gardening once among many other words"),
            None,
        )
        .await;
    }
    let titled = app.new_thread(&ada.token, "Gardening").await;
    let page = eventually(&app, &ada, "gardening").await;
    let found = hits(&page);
    assert_eq!(found[0], (titled.clone(), None), "the title first: {page}");
    // Three questions, three echoes and the three titles made from the questions.
    assert_eq!(found.len(), 10);
    let (_, first) = app
        .call(
            Method::GET,
            "/v1/search?q=gardening&limit=3",
            Some(&ada.token),
            None,
        )
        .await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let (_, second) = app
        .call(
            Method::GET,
            &format!("/v1/search?q=gardening&limit=3&cursor={cursor}"),
            Some(&ada.token),
            None,
        )
        .await;
    let mut both = hits(&first);
    both.extend(hits(&second));
    assert_eq!(both, found[..6].to_vec());
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/search?q=gardening&cursor=bm9wZQ",
            Some(&ada.token),
            None,
        )
        .await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_threads_hidden_messages_never_appear_and_other_branches_do() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "keep", "u1", "zebra first version", None)
        .await;
    // An edit: the first version is on another branch now, still findable.
    app.chat_all(&ada.token, "keep", "u1", "zebra second version", None)
        .await;
    app.chat_all(&ada.token, "gone", "g1", "zebra in a doomed thread", None)
        .await;
    app.chat_all(&ada.token, "hide", "h1", "zebra hidden away", None)
        .await;
    eventually(&app, &ada, "doomed").await;
    eventually(&app, &ada, "hidden").await;
    app.delete_thread(&ada.token, "gone").await;
    let res = app
        .request(
            Method::DELETE,
            "/v1/threads/hide/messages/h1",
            Some(&ada.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::NO_CONTENT);
    let page = search(&app, &ada, "zebra").await;
    // The hidden thread keeps its title (made from the hidden message): only that is found.
    for (thread, message) in hits(&page) {
        assert!(
            thread == "keep" || (thread == "hide" && message.is_none()),
            "{page}"
        );
    }
    assert!(
        !hits(&search(&app, &ada, "first version").await).is_empty(),
        "other branches too"
    );
    assert!(hits(&search(&app, &ada, "doomed").await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn non_latin_scripts_are_found() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "ru", "u1", "привет из Москвы", None)
        .await;
    app.chat_all(&ada.token, "zh", "u1", "我想去东京旅行", None)
        .await;
    app.chat_all(&ada.token, "el", "u1", "καλημέρα κόσμε", None)
        .await;
    let page = eventually(&app, &ada, "москв").await;
    assert!(hits(&page).iter().all(|(t, _)| t == "ru"), "{page}");
    let page = eventually(&app, &ada, "东京").await;
    assert!(hits(&page).iter().all(|(t, _)| t == "zh"), "{page}");
    let snippet = page["data"][0]["snippet"].as_str().unwrap();
    assert!(
        snippet.contains("东京"),
        "the snippet reads as written: {snippet}"
    );
    assert!(
        hits(&search(&app, &ada, "京东").await).is_empty(),
        "a run is a phrase"
    );
    eventually(&app, &ada, "καλημέρα").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_thread_list_filters_by_query_archived_and_pinned() {
    let app = spawn_app().await;
    let ada = app.registered("ada@example.com").await;
    app.chat_all(&ada.token, "a", "u1", "apples are red", None)
        .await;
    app.chat_all(&ada.token, "b", "u1", "bananas are yellow", None)
        .await;
    let pinned = app.new_thread(&ada.token, "Apple pie").await;
    app.patch_thread(&ada.token, &pinned, json!({"pinned": true}))
        .await;
    app.patch_thread(&ada.token, "b", json!({"archived": true}))
        .await;
    eventually(&app, &ada, "apple").await;
    let mut found = app.all_thread_ids(&ada.token, "&q=apple").await;
    found.sort();
    assert_eq!(
        found,
        ["a".to_owned(), pinned.clone()]
            .iter()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
    assert_eq!(
        app.all_thread_ids(&ada.token, "&q=apple&pinned=true").await,
        std::slice::from_ref(&pinned)
    );
    assert!(
        app.all_thread_ids(&ada.token, "&q=banana").await.is_empty(),
        "archived"
    );
    assert_eq!(
        app.all_thread_ids(&ada.token, "&q=banana&archived=true")
            .await,
        ["b"]
    );
}
