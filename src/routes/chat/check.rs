//! `POST /v1/chat/check`: may the caller send to this model (and run this tool) now, at what
//! cost, and what remains? Nothing is reserved or spent; a refusal carries the problem the
//! send would get.

use actix_web::{HttpResponse, ResponseError, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use validator::Validate;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::ValidJson;
use crate::services::credits::{self, Remaining};
use crate::state::AppState;

#[derive(Debug, Deserialize, Validate)]
pub struct CheckRequest {
    /// The model to send to (default: what a send naming none would use).
    #[validate(length(min = 1, max = 128))]
    pub model: Option<String>,
    /// `search` (or `web_search`) or `research`, as the chat body's `tool`.
    pub tool: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct CheckAnswer {
    pub allowed: bool,
    pub model: String,
    /// What one message costs, in credits.
    pub credits: u32,
    pub remaining: Option<Remaining>,
    /// When not allowed: the problem a send would be answered with.
    pub problem: Option<Value>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    ValidJson(body): ValidJson<CheckRequest>,
) -> Result<HttpResponse, ApiError> {
    let tool = crate::chat::ForcedTool::parse(body.tool.as_deref())?.map(|t| t.meter());
    // The model the send would use: the one named, else the same default a send falls to.
    let (model_id, resolved) = match body.model {
        Some(id) => {
            let resolved = crate::services::chat::access::resolve_model(&state, &caller, &id).await;
            (id, resolved)
        }
        None => {
            let resolved = crate::services::chat::default_model(&state, &caller).await;
            (state.chat.registry.default_id().to_owned(), resolved)
        }
    };
    let model = match resolved {
        Ok(model) => model,
        Err(e @ ApiError::Validation(_)) => return Err(e),
        Err(e) if e.status_code().is_server_error() => return Err(e),
        Err(refused) => return Ok(answer(model_id, 0, None, Some(refused))),
    };
    let checked = credits::check(&state, &caller, u64::from(model.credits), tool).await;
    Ok(match checked {
        Ok(remaining) => answer(model.id, model.credits, Some(remaining), None),
        Err(e) if e.status_code().is_server_error() => return Err(e),
        Err(refused) => answer(model.id, model.credits, None, Some(refused)),
    })
}

fn answer(
    model: String,
    credits: u32,
    remaining: Option<Remaining>,
    refused: Option<ApiError>,
) -> HttpResponse {
    HttpResponse::Ok().json(CheckAnswer {
        allowed: refused.is_none(),
        model,
        credits,
        remaining,
        problem: refused.map(|e| e.problem()),
    })
}
