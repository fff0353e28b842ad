//! Erasure by crypto-shredding: `DELETE /v1/me` and `threadline accounts erase`.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline_projections::Db;

use crate::helpers::{TestApp, User, spawn_app, streamed_text};

/// Every row of every table, as text (what a database dump would hold).
async fn all_rows(db: &Db) -> String {
    let mut out = String::new();
    match db {
        Db::Sqlite { reader, .. } => {
            let tables: Vec<String> =
                sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                    .fetch_all(reader)
                    .await
                    .unwrap();
            for table in tables {
                let columns: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                        .fetch_all(reader)
                        .await
                        .unwrap();
                let concat = columns
                    .iter()
                    .map(|c| format!("COALESCE(CAST(\"{c}\" AS TEXT), '')"))
                    .collect::<Vec<_>>()
                    .join(" || '|' || ");
                let rows: Vec<Vec<u8>> =
                    sqlx::query_scalar(&format!("SELECT CAST({concat} AS BLOB) FROM \"{table}\""))
                        .fetch_all(reader)
                        .await
                        .unwrap();
                for row in rows {
                    out.push_str(&String::from_utf8_lossy(&row));
                    out.push('\n');
                }
            }
        }
        Db::Postgres(pool) => {
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public'",
            )
            .fetch_all(pool)
            .await
            .unwrap();
            for table in tables {
                let rows: Vec<String> =
                    sqlx::query_scalar(&format!("SELECT t::text FROM \"{table}\" t"))
                        .fetch_all(pool)
                        .await
                        .unwrap();
                out.push_str(&rows.join("\n"));
            }
        }
    }
    out
}

/// The SQLite files' bytes (database and WAL), as lossy text.
fn sqlite_files(app: &TestApp) -> String {
    let mut out = String::new();
    for name in ["threadline.db", "threadline.db-wal"] {
        if let Ok(bytes) = std::fs::read(app.db.data_dir.path().join(name)) {
            out.push_str(&String::from_utf8_lossy(&bytes));
        }
    }
    out
}

fn stored_files(app: &TestApp) -> usize {
    crate::helpers::count_files(&app.db.data_dir.path().join("files"))
}

async fn usage(app: &TestApp, admin: &User) -> Value {
    let (status, body) = app
        .call(
            Method::GET,
            "/v1/admin/usage?group_by=day,model,provider,tier",
            Some(&admin.token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

/// A person with personal data everywhere: chats before and after signing up, a title, a
/// nickname, a file, an API key. Returns the user and the API key.
async fn person(app: &TestApp, email: &str, phrase: &str) -> (User, String) {
    let anonymous = app.anonymous().await;
    let text = format!("{phrase} before signing up");
    let events = app
        .chat_all(&anonymous.token, "t-anon", "u1", &text, Some("echo"))
        .await;
    assert!(streamed_text(&events).contains(phrase));
    let (status, body) = app
        .register(email, "correct horse battery", Some(&anonymous.token))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = User::from(&body);
    let events = app
        .chat_all(&user.token, "t-own", "u1", phrase, Some("echo"))
        .await;
    assert!(streamed_text(&events).contains(phrase));
    let (status, _) = app
        .patch_thread(
            &user.token,
            "t-own",
            json!({"title": format!("{phrase} title")}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = app
        .call(
            Method::PATCH,
            "/v1/me/preferences",
            Some(&user.token),
            Some(json!({"nickname": phrase, "custom_instructions": format!("{phrase} always")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let png = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0\x90wS\xde";
    let (status, body) = app
        .upload_file(&user.token, &format!("{phrase}.png"), "image/png", png)
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, key) = app
        .call(
            Method::POST,
            "/v1/me/api-keys",
            Some(&user.token),
            Some(json!({"name": format!("{phrase} key")})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{key}");
    (user, key["secret"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn an_erased_account_leaves_no_personal_data_and_the_books_still_add_up() {
    let app = spawn_app().await;
    let admin = app.registered("admin@example.com").await;
    let phrase = "zanzibar-quokka-7431";
    let email = "erase.me@example.com";
    let (ada, key) = person(&app, email, phrase).await;
    let bob = app.registered("bob@example.com").await;
    let bob_text = "bob keeps his marmalade";
    app.chat_all(&bob.token, "t-bob", "u1", bob_text, Some("echo"))
        .await;
    let db = app.db.connect().await;
    // Sealed in the log from the start: the phrase is in no event as written.
    let raw: Vec<String> = threadline_projections::on_read!(&db, pool =>
        sqlx::query_scalar("SELECT CAST(payload AS TEXT) FROM events").fetch_all(pool).await)
    .unwrap();
    assert!(!raw.iter().any(|p| p.contains(phrase) || p.contains(email)));
    assert!(raw.iter().any(|p| p.contains("$enc:")));
    let files_before = stored_files(&app);
    assert_eq!(files_before, 1);
    let before = usage(&app, &admin).await;

    // The person confirms with the password; an API key cannot erase.
    let path = "/v1/me";
    let (status, body) = app
        .call(Method::DELETE, path, Some(&ada.token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["code"], "reauthentication_required");
    let wrong = json!({"password": "wrong horse"});
    let (status, _) = app
        .call(Method::DELETE, path, Some(&ada.token), Some(wrong))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let right = json!({"password": "correct horse battery"});
    let (status, _) = app
        .call(Method::DELETE, path, Some(&key), Some(right.clone()))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = app
        .call(Method::DELETE, path, Some(&ada.token), Some(right))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");

    // Nothing opens any more: sessions, keys, the password.
    assert_eq!(app.me(&ada.token).await.0, StatusCode::UNAUTHORIZED);
    assert_eq!(app.me(&key).await.0, StatusCode::UNAUTHORIZED);
    let (status, _) = app.login(email, "correct horse battery", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // No table and no export holds the phrase or the address; the file's bytes are gone.
    let rows = all_rows(&db).await;
    assert!(!rows.contains(phrase), "a table keeps the phrase");
    assert!(!rows.contains(email), "a table keeps the email");
    assert!(rows.contains(bob_text), "another account's data stays");
    if !app.db.is_postgres() {
        let files = sqlite_files(&app);
        assert!(
            !files.contains(phrase),
            "the database file keeps the phrase"
        );
        assert!(!files.contains(email), "the database file keeps the email");
    }
    assert_eq!(stored_files(&app), 0);
    let export = app.db.cli(&["events", "export"]).await;
    assert!(!export.contains(phrase) && !export.contains(email));
    assert!(export.contains("[erased]") && export.contains("AccountErased"));
    assert!(export.contains(bob_text));

    // The books: the same usage, the chain intact, every projection as the log says.
    assert_eq!(usage(&app, &admin).await, before);
    let verified = app.db.cli(&["verify-log"]).await;
    assert!(verified.contains("head"), "{verified}");
    let projections = app.db.cli(&["projections", "verify"]).await;
    assert!(!projections.contains("differ"), "{projections}");
    let (status, thread) = app.get_thread(&bob.token, "t-bob").await;
    assert_eq!(status, StatusCode::OK);
    assert!(thread.to_string().contains(bob_text));

    // The address is free again.
    let again = app.registered(email).await;
    assert_eq!(app.me(&again.token).await.0, StatusCode::OK);
}

#[tokio::test]
async fn an_operator_erases_an_account_from_the_command_line() {
    let app = spawn_app().await;
    let phrase = "quasar-pelican-2209";
    let (ada, _) = person(&app, "ops.erase@example.com", phrase).await;
    let out = app.db.cli(&["accounts", "erase", &ada.account_id]).await;
    assert!(
        out.contains("erased") && out.contains("2 account(s)"),
        "{out}"
    );
    assert_eq!(app.me(&ada.token).await.0, StatusCode::UNAUTHORIZED);
    // This node learns of the erasure from the log: the thread is gone for good.
    let db = app.db.connect().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while all_rows(&db).await.contains(phrase) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(!all_rows(&db).await.contains(phrase));
    let export = app
        .db
        .cli(&["events", "export", "--type", "AccountErased"])
        .await;
    assert!(export.contains("\"actor\":\"cli\""), "{export}");
    let (status, body) = app
        .call(Method::DELETE, "/v1/me", Some(&ada.token), Some(json!({})))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn bytes_another_account_also_uploaded_stay_when_one_is_erased() {
    let app = spawn_app().await;
    let bytes = b"the same notes, uploaded twice";
    let ada = app.registered("ada.shared@example.com").await;
    let bob = app.registered("bob.shared@example.com").await;
    for user in [&ada, &bob] {
        let (status, body) = app
            .upload_file(&user.token, "notes.txt", "text/plain", bytes)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
    }
    let (_, files) = app
        .call(Method::GET, "/v1/files", Some(&bob.token), None)
        .await;
    let bobs = files["data"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(stored_files(&app), 1, "one copy of the bytes");

    let right = json!({"password": "correct horse battery"});
    let (status, body) = app
        .call(Method::DELETE, "/v1/me", Some(&ada.token), Some(right))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(stored_files(&app), 1, "bob's file holds the bytes");
    let res = app
        .request(
            Method::GET,
            &format!("/v1/files/{bobs}/content"),
            Some(&bob.token),
            None,
        )
        .await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.bytes().await.unwrap().as_ref(), bytes);

    let right = json!({"password": "correct horse battery"});
    let (status, _) = app
        .call(Method::DELETE, "/v1/me", Some(&bob.token), Some(right))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert_eq!(stored_files(&app), 0, "the last holder is gone");
}
