//! Threads: create, list and paginate, rename/archive/pin, delete, ownership.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{assert_problem, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn threads_are_created_listed_newest_first_and_paginated() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let mut created = Vec::new();
    for i in 0..16 {
        created.push(app.new_thread(&user.token, &format!("thread {i}")).await);
    }
    created.reverse();
    assert_eq!(app.all_thread_ids(&user.token, "").await, created);

    let (status, page) = app.list_threads(&user.token, "?limit=5").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["data"].as_array().unwrap().len(), 5);
    assert!(page["next_cursor"].is_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_may_choose_the_thread_id_once() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let (status, body) = app
        .create_thread(&user.token, json!({"id": "my-chat_1", "title": "Mine"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["id"], "my-chat_1");
    assert_eq!(body["title"], "Mine");
    assert_eq!(body["archived"], false);

    let (status, body) = app
        .create_thread(&user.token, json!({"id": "my-chat_1"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "thread_exists");
    let other = app.anonymous().await;
    let (status, body) = app
        .create_thread(&other.token, json!({"id": "my-chat_1"}))
        .await;
    assert_problem(status, &body, StatusCode::CONFLICT, "thread_exists");

    for bad in ["has space", "slash/no", "", &"x".repeat(65)] {
        let (status, body) = app.create_thread(&user.token, json!({"id": bad})).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thread_is_renamed_archived_pinned_and_filtered() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let keep = app.new_thread(&user.token, "keep").await;
    let id = app.new_thread(&user.token, "old name").await;

    let (status, body) = app
        .patch_thread(
            &user.token,
            &id,
            json!({"title": "  new name  ", "pinned": true}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["title"], "new name");
    assert_eq!(body["pinned"], true);
    assert_eq!(
        app.get_thread(&user.token, &id).await.1["title"],
        "new name"
    );
    assert_eq!(
        app.all_thread_ids(&user.token, "&pinned=true").await,
        vec![id.clone()]
    );
    assert_eq!(
        app.all_thread_ids(&user.token, "&pinned=false").await,
        vec![keep.clone()]
    );

    let (status, body) = app
        .patch_thread(&user.token, &id, json!({"archived": true}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["archived"], true);
    assert_eq!(
        app.all_thread_ids(&user.token, "").await,
        vec![keep.clone()]
    );
    assert_eq!(
        app.all_thread_ids(&user.token, "&archived=true").await,
        vec![id.clone()]
    );

    let (status, body) = app
        .patch_thread(&user.token, &id, json!({"archived": false}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["archived"], false);
    assert_eq!(app.all_thread_ids(&user.token, "").await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_patch_without_fields_or_with_a_bad_title_is_rejected() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let id = app.new_thread(&user.token, "t").await;
    let (status, body) = app.patch_thread(&user.token, &id, json!({})).await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .patch_thread(&user.token, &id, json!({"title": "x".repeat(201)}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .patch_thread(&user.token, &id, json!({"title": "   "}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
    let (status, body) = app
        .patch_thread(&user.token, &id, json!({"archived": "yes"}))
        .await;
    assert_problem(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "validation_failed",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_thread_is_gone() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    let id = app.new_thread(&user.token, "bye").await;
    assert_eq!(
        app.delete_thread(&user.token, &id).await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = app.get_thread(&user.token, &id).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.delete_thread(&user.token, &id).await,
        StatusCode::NOT_FOUND
    );
    assert!(app.all_thread_ids(&user.token, "").await.is_empty());
    let (status, body) = app.create_thread(&user.token, json!({"id": id})).await;
    assert_problem(status, &body, StatusCode::CONFLICT, "thread_exists");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_accounts_thread_is_a_404_for_every_verb() {
    let app = spawn_app().await;
    let owner = app.anonymous().await;
    let intruder = app.anonymous().await;
    let id = app.new_thread(&owner.token, "private").await;

    let (status, body) = app.get_thread(&intruder.token, &id).await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = app
        .patch_thread(&intruder.token, &id, json!({"title": "mine now"}))
        .await;
    assert_problem(status, &body, StatusCode::NOT_FOUND, "not_found");
    assert_eq!(
        app.delete_thread(&intruder.token, &id).await,
        StatusCode::NOT_FOUND
    );
    assert!(app.all_thread_ids(&intruder.token, "").await.is_empty());

    let (status, thread) = app.get_thread(&owner.token, &id).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(thread["title"], "private", "nothing changed");
    assert_eq!(thread["messages"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_parameters_are_validated() {
    let app = spawn_app().await;
    let user = app.anonymous().await;
    for query in ["?limit=0", "?limit=201"] {
        let (status, body) = app.list_threads(&user.token, query).await;
        assert_problem(
            status,
            &body,
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation_failed",
        );
    }
    let (status, body) = app.list_threads(&user.token, "?limit=abc").await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_query");
    let (status, body) = app.list_threads(&user.token, "?cursor=%21%21").await;
    assert_problem(status, &body, StatusCode::BAD_REQUEST, "invalid_cursor");
}
