//! What a model receives of a message's files, decided by its capabilities.
//!
//! | file | vision / documents model | other models |
//! |---|---|---|
//! | image | the image (`vision`) | refused: `422 unsupported_capability` |
//! | PDF | the document (`documents`) | its extracted text |
//! | text, Markdown, CSV, JSON, code | its text, framed with its name | the same |
//!
//! A new message is checked before any credit is reserved. Files of earlier messages that the
//! model cannot take (the conversation moved to a text-only model) are replaced by a line
//! saying so, so the conversation can go on.

use threadline_domain::catalog::Capability;
use threadline_domain::thread::Attachment;

use crate::error::{ApiError, ErrorCode};
use crate::providers::Part;
use crate::state::AppState;

/// How a file reaches a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Image,
    Document,
    ExtractedText,
    Text,
}

/// How a file of `media_type` reaches a model with `capabilities`, or why it cannot.
pub fn delivery(capabilities: &[Capability], media_type: &str) -> Result<Delivery, String> {
    if media_type.starts_with("image/") {
        return if capabilities.contains(&Capability::Vision) {
            Ok(Delivery::Image)
        } else {
            Err("this model cannot see images; choose a model with vision".into())
        };
    }
    if media_type == "application/pdf" {
        return Ok(if capabilities.contains(&Capability::Documents) {
            Delivery::Document
        } else {
            Delivery::ExtractedText
        });
    }
    Ok(Delivery::Text)
}

/// Refuses a new message whose files `model` cannot take (before anything is spent).
pub fn check(
    model: &crate::providers::registry::Model,
    files: &[crate::services::files::Prepared],
) -> Result<(), ApiError> {
    for f in files {
        if let Err(why) = delivery(&model.capabilities, f.media_type()) {
            return Err(ApiError::Http {
                status: actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                code: ErrorCode::UnsupportedCapability,
                detail: format!("{}: {why} (model {})", f.filename(), model.id),
            });
        }
    }
    Ok(())
}

/// Most characters of a file's text a model receives.
const MAX_TEXT_CHARS: usize = 100_000;

/// The parts of a message carrying `attachments`, for a model with `capabilities`.
pub async fn build(
    state: &AppState,
    capabilities: &[Capability],
    attachments: &[Attachment],
) -> Vec<Part> {
    let mut parts = Vec::with_capacity(attachments.len());
    for a in attachments {
        let name = &a.filename;
        let delivery = match delivery(capabilities, &a.media_type) {
            Ok(d) => d,
            Err(why) => {
                parts.push(Part::Text(format!("[{name} is attached, but {why}]")));
                continue;
            }
        };
        let bytes = match state.files.read(&a.sha256).await {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(error = %e, file_id = %a.file_id, "attachment unreadable");
                parts.push(Part::Text(format!(
                    "[{name} is attached but could not be read]"
                )));
                continue;
            }
        };
        parts.push(match delivery {
            Delivery::Image => Part::Image {
                media_type: a.media_type.clone(),
                data: bytes,
            },
            Delivery::Document => Part::Document {
                media_type: a.media_type.clone(),
                filename: name.clone(),
                data: bytes,
            },
            Delivery::Text => Part::Text(framed(name, &String::from_utf8_lossy(&bytes))),
            Delivery::ExtractedText => {
                let media_type = a.media_type.clone();
                let text = tokio::task::spawn_blocking(move || {
                    crate::tools::readable::readable_text_capped(
                        &media_type,
                        &bytes,
                        MAX_TEXT_CHARS,
                    )
                })
                .await;
                match text {
                    Ok(Ok(readable)) => Part::Text(framed(name, &readable.text)),
                    _ => Part::Text(format!("[{name} is attached, but its text cannot be read]")),
                }
            }
        });
    }
    parts
}

/// A file's text as the model sees it: its name, then the text fenced.
fn framed(name: &str, text: &str) -> String {
    let text: String = text.chars().take(MAX_TEXT_CHARS).collect();
    format!("File {name}:\n````\n{text}\n````")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_decide_the_way_in() {
        let vision = [Capability::Vision];
        let documents = [Capability::Documents];
        assert_eq!(delivery(&vision, "image/png"), Ok(Delivery::Image));
        assert!(delivery(&documents, "image/png").is_err());
        assert!(delivery(&[], "image/webp").is_err());
        assert_eq!(
            delivery(&documents, "application/pdf"),
            Ok(Delivery::Document)
        );
        assert_eq!(
            delivery(&vision, "application/pdf"),
            Ok(Delivery::ExtractedText)
        );
        assert_eq!(delivery(&[], "text/csv"), Ok(Delivery::Text));
        assert_eq!(delivery(&[], "application/json"), Ok(Delivery::Text));
    }

    #[test]
    fn text_is_framed_with_its_name() {
        assert_eq!(
            framed("a.rs", "fn main() {}"),
            "File a.rs:\n````\nfn main() {}\n````"
        );
    }
}
