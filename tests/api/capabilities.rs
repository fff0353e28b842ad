//! The capability matrix, end to end: an image, a PDF and a text file, each sent to a vision
//! model, a document model and a plain model, in each of the three wire formats. The request
//! the mock upstream receives shows what the model got: the image or the document natively,
//! the PDF's extracted text, the text file inline, or nothing at all (a 422 before anything is
//! spent).

use base64::Engine;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use threadline::mock_upstream::MockUpstream;

use crate::helpers::{LiveStream, TestDb, assert_problem, model_spec, spawn_on};

const PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x06\0\0\0\x1f\x15\xc4\x89";
const PDF: &[u8] = include_bytes!("../fixtures/files/report.pdf");
const TEXT: &[u8] = b"name,score\nada,3\n";
/// The text inside the PDF.
const PDF_TEXT: &str = "Revenue grew by seven percent";

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Got {
    /// The file itself, in the format's native part.
    Native,
    /// Text: the PDF's extracted text or the text file's content.
    Text,
    /// Refused with `422 unsupported_capability`.
    Refused,
}

/// The user turn the mock received last on `route`, as JSON.
fn last_user_turn(mock: &MockUpstream, route: &str) -> Value {
    let body = mock.last_recorded(route).unwrap().body;
    let turns = match route {
        ":streamGenerateContent" => body["contents"].clone(),
        _ => body["messages"].clone(),
    };
    turns.as_array().unwrap().last().unwrap().clone()
}

/// What the user turn carries for the file: native, text, or neither.
fn what_arrived(provider: &str, turn: &Value, media_type: &str, data: &[u8]) -> Option<Got> {
    let encoded = b64(data);
    let text = turn.to_string();
    let native = match (provider, media_type) {
        ("openai", "image/png") => turn["content"]
            .as_array()?
            .iter()
            .any(|p| p["image_url"]["url"] == format!("data:image/png;base64,{encoded}")),
        ("openai", "application/pdf") => turn["content"].as_array()?.iter().any(|p| {
            p["type"] == "file"
                && p["file"]["file_data"] == format!("data:application/pdf;base64,{encoded}")
        }),
        ("anthropic", _) => turn["content"].as_array().is_some_and(|blocks| {
            blocks.iter().any(|b| {
                b["source"]["media_type"] == media_type && b["source"]["data"] == encoded.as_str()
            })
        }),
        ("gemini", _) => turn["parts"].as_array()?.iter().any(|p| {
            p["inlineData"]["mimeType"] == media_type && p["inlineData"]["data"] == encoded.as_str()
        }),
        _ => false,
    };
    if native {
        return Some(Got::Native);
    }
    let expected_text = match media_type {
        "application/pdf" => PDF_TEXT.to_owned(),
        _ => String::from_utf8_lossy(data).replace('\n', "\\n"),
    };
    text.contains(&expected_text).then_some(Got::Text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_file_reaches_each_kind_of_model_in_each_wire_format_as_its_capabilities_allow() {
    let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
    let root = format!("http://127.0.0.1:{}", mock.port());
    let app = spawn_on(TestDb::fresh().await, move |s| {
        s.provider_env = Some(vec![
            ("OPENAI_API_KEY".into(), "k".into()),
            ("OPENAI_BASE_URL".into(), format!("{root}/v1").into()),
            ("ANTHROPIC_API_KEY".into(), "k".into()),
            ("ANTHROPIC_BASE_URL".into(), root.clone().into()),
            ("GEMINI_API_KEY".into(), "k".into()),
            ("GEMINI_BASE_URL".into(), root.into()),
        ]);
    })
    .await;
    let admin = app.registered("admin@example.com").await;
    let formats = [
        ("openai", "/chat/completions"),
        ("anthropic", "/messages"),
        ("gemini", ":streamGenerateContent"),
    ];
    let kinds = [
        ("vision", json!(["vision"])),
        ("documents", json!(["documents"])),
        ("plain", json!([])),
    ];
    for (provider, _) in formats {
        for (kind, capabilities) in &kinds {
            let mut spec = model_spec(provider, "mock:len=1", 0);
            spec["capabilities"] = capabilities.clone();
            app.define_model(&admin, &format!("{provider}-{kind}"), spec)
                .await;
        }
    }
    let files = [
        ("image/png", "dot.png", PNG),
        ("application/pdf", "report.pdf", PDF),
        ("text/csv", "scores.csv", TEXT),
    ];
    // What each kind of model gets of each file.
    let expected = |kind: &str, media_type: &str| match (kind, media_type) {
        ("vision", "image/png") => Got::Native,
        (_, "image/png") => Got::Refused,
        ("documents", "application/pdf") => Got::Native,
        _ => Got::Text,
    };
    let user = app.anonymous().await;
    let mut n = 0;
    for (provider, route) in formats {
        for (kind, _) in &kinds {
            for (media_type, filename, data) in files {
                n += 1;
                let thread = format!("m{n}");
                let model = format!("{provider}-{kind}");
                let url = format!("data:{media_type};base64,{}", b64(data));
                let res = app
                    .request(
                        Method::POST,
                        "/v1/chat",
                        Some(&user.token),
                        Some(json!({
                            "id": thread, "model": model,
                            "messages": [{"id": "u1", "role": "user", "parts": [
                                {"type": "text", "text": "look at this"},
                                {"type": "file", "mediaType": media_type, "filename": filename, "url": url},
                            ]}],
                        })),
                    )
                    .await;
                let case = format!("{media_type} to {model}");
                let want = expected(kind, media_type);
                if want == Got::Refused {
                    let status = res.status();
                    let body: Value = res.json().await.unwrap();
                    assert_problem(
                        status,
                        &body,
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "unsupported_capability",
                    );
                    continue;
                }
                assert_eq!(res.status(), StatusCode::OK, "{case}");
                LiveStream::new(res).read_all().await;
                let turn = last_user_turn(&mock, route);
                assert_eq!(
                    what_arrived(provider, &turn, media_type, data),
                    Some(want),
                    "{case}: {turn}"
                );
                assert!(turn.to_string().contains("look at this"), "{case}: {turn}");
            }
        }
    }
}
