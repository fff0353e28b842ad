//! `/v1/files`: attachments. `POST /v1/files` (multipart) uploads one, `GET /v1/files` lists the
//! caller's, `GET /v1/files/{id}` is its metadata, `GET /v1/files/{id}/content` its bytes (owner
//! only), `DELETE /v1/files/{id}` removes it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use futures::TryStreamExt;
use serde::Serialize;
use threadline_projections::files::{self, FileRow};
use threadline_projections::rfc3339;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::files::sniff::MAX_UPLOAD;
use crate::services::files as service;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// A file as the API shows it.
#[derive(Debug, Serialize)]
pub struct FileJson {
    pub id: String,
    pub filename: String,
    /// Sniffed from the bytes.
    pub media_type: String,
    pub size: i64,
    pub sha256: String,
    /// Where the owner reads the bytes.
    pub url: String,
    pub created_at: String,
}

impl From<FileRow> for FileJson {
    fn from(f: FileRow) -> Self {
        Self {
            url: format!("/v1/files/{}/content", f.id),
            id: f.id,
            filename: f.filename,
            media_type: f.media_type,
            size: f.size,
            sha256: f.sha256,
            created_at: rfc3339(f.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FileList {
    pub data: Vec<FileJson>,
    pub next_cursor: Option<String>,
}

pub async fn upload(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if !content_type.starts_with("multipart/form-data") {
        return Err(ApiError::Http {
            status: actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            code: crate::error::ErrorCode::UnsupportedMediaType,
            detail: "upload the file as multipart/form-data, in a field named `file`".into(),
        });
    }
    let (filename, bytes) = crate::extract::multipart_file(&req, payload, MAX_UPLOAD).await?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    let file = service::upload(&state, &caller, &filename, bytes, &meta).await?;
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, format!("/v1/files/{}", file.id)))
        .json(FileJson::from(file)))
}

pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    let data = files::of_owner(&state.db, caller.id())
        .await?
        .into_iter()
        .map(FileJson::from)
        .collect();
    Ok(HttpResponse::Ok().json(FileList {
        data,
        next_cursor: None,
    }))
}

pub async fn get(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = service::owned(&state, &caller, &path).await?;
    Ok(HttpResponse::Ok().json(FileJson::from(file)))
}

/// The bytes, streamed from the store. Images are shown inline, anything else downloads; the
/// browser is told not to guess a type and not to run anything (`nosniff`, a sandboxing CSP).
pub async fn content(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = service::owned(&state, &caller, &path).await?;
    let etag = format!("\"{}\"", file.sha256);
    let cached = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut res = if cached {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    res.insert_header((header::ETAG, etag))
        .insert_header((
            header::CACHE_CONTROL,
            "private, max-age=31536000, immutable",
        ))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; sandbox",
        ));
    if cached {
        return Ok(res.finish());
    }
    let disposition = if file.media_type.starts_with("image/") {
        "inline"
    } else {
        "attachment"
    };
    let media_type = if file.media_type.starts_with("text/") {
        format!("{}; charset=utf-8", file.media_type)
    } else {
        file.media_type.clone()
    };
    let body = state.files.get(&file.sha256).await.map_err(|e| match e {
        crate::files::store::StoreError::Missing => {
            ApiError::Internal(format!("the bytes of file {} are missing", file.id))
        }
        other => other.into(),
    })?;
    Ok(res
        .insert_header((header::CONTENT_TYPE, media_type))
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!(
                "{disposition}; filename=\"{}\"; filename*=UTF-8''{}",
                ascii_fallback(&file.filename),
                percent_encode(&file.filename)
            ),
        ))
        .no_chunking(u64::try_from(file.size).unwrap_or(0))
        .streaming(body.map_err(|e| actix_web::error::ErrorInternalServerError(e.to_string()))))
}

pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let file = service::owned(&state, &caller, &path).await?;
    let meta = CommandMeta::for_request(&request_id(&req), Some(caller.id().to_owned()));
    service::delete(&state, &file, &meta).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// The name with everything but printable ASCII (and quotes and backslashes) as `_`, for
/// clients that ignore `filename*`.
fn ascii_fallback(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// RFC 8187 percent-encoding of UTF-8 (attr-char kept as is).
fn percent_encode(name: &str) -> String {
    let mut out = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_disposition_names_survive_any_characters() {
        assert_eq!(ascii_fallback("résumé \"final\".pdf"), "r_sum_ _final_.pdf");
        assert_eq!(percent_encode("résumé 1.pdf"), "r%C3%A9sum%C3%A9%201.pdf");
    }
}
