//! `GET /v1/admin/mcp-servers`, `PUT` and `DELETE /v1/admin/mcp-servers/{name}`, and
//! `GET /v1/admin/mcp-servers/{name}/tools`: register remote MCP servers whose tools models may
//! call, and see what a server offers now. The bearer secret is never shown (`has_secret`).

use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;
use threadline_domain::mcp::{McpServer, McpServerCommand, McpServerName, SecretChange};
use threadline_projections::mcp_servers::{self, McpServerRow};

use super::require_admin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::request_id;
use crate::state::AppState;
use crate::store::bus::CommandMeta;

/// Longest URL accepted.
const URL_CHARS: usize = 2048;
/// Longest bearer secret accepted.
const SECRET_CHARS: usize = 4096;

/// A registered server as admins see it.
#[derive(Debug, Serialize)]
pub struct McpServerView {
    pub name: String,
    pub url: String,
    /// Whether a bearer secret is sent to it (the secret itself is never shown).
    pub has_secret: bool,
    pub enabled: bool,
    pub updated_at: String,
}

impl From<McpServerRow> for McpServerView {
    fn from(row: McpServerRow) -> Self {
        McpServerView {
            name: row.name,
            url: row.url,
            has_secret: row.secret.is_some(),
            enabled: row.enabled,
            updated_at: threadline_projections::rfc3339(row.updated_at),
        }
    }
}

/// `PUT` body. `secret` absent keeps the current secret, `null` removes it, a string sets it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registration {
    url: String,
    #[serde(default, deserialize_with = "present")]
    secret: Option<Option<String>>,
    enabled: bool,
}

/// Tells a field sent as `null` (`Some(None)`) from one left out (`None`, by `default`).
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

fn parse_name(name: &str) -> Result<McpServerName, ApiError> {
    McpServerName::parse(name).map_err(|rule| ApiError::invalid_field("name", rule))
}

/// `GET /v1/admin/mcp-servers`: every registered server, by name.
pub async fn list(state: web::Data<AppState>, caller: Caller) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let servers: Vec<McpServerView> = mcp_servers::all(&state.db)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "data": servers })))
}

/// `PUT /v1/admin/mcp-servers/{name}`: registers the server or changes its registration.
pub async fn put(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
    body: web::Json<Registration>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let name = parse_name(&path)?;
    let Registration {
        url,
        secret,
        enabled,
    } = body.into_inner();
    let url = url.trim().to_owned();
    if url.len() > URL_CHARS || !crate::tools::mcp::valid_url(&url) {
        return Err(ApiError::invalid_field(
            "url",
            format!("an http or https URL of at most {URL_CHARS} characters"),
        ));
    }
    let secret = match secret {
        None => SecretChange::Keep,
        Some(None) => SecretChange::Clear,
        Some(Some(secret)) => {
            let valid = !secret.is_empty()
                && secret.len() <= SECRET_CHARS
                && secret.chars().all(|c| c.is_ascii_graphic());
            if !valid {
                return Err(ApiError::invalid_field(
                    "secret",
                    format!("1-{SECRET_CHARS} visible ASCII characters (or null to remove it)"),
                ));
            }
            SecretChange::Set(secret)
        }
    };
    let meta = CommandMeta::for_admin(&request_id(&req), caller.id());
    let command = McpServerCommand::Register {
        url,
        secret,
        enabled,
        at: Utc::now(),
    };
    state
        .run::<McpServer>(name.as_str(), command, &meta)
        .await?;
    let row = mcp_servers::get(&state.db, name.as_str())
        .await?
        .ok_or_else(|| ApiError::Internal("the registration is not readable yet".into()))?;
    Ok(HttpResponse::Ok().json(McpServerView::from(row)))
}

/// `DELETE /v1/admin/mcp-servers/{name}`: forgets the server (404 for one not registered).
pub async fn delete(
    req: HttpRequest,
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let name = McpServerName::parse(&path).map_err(|_| ApiError::NotFound("MCP server"))?;
    let meta = CommandMeta::for_admin(&request_id(&req), caller.id());
    state
        .run::<McpServer>(
            name.as_str(),
            McpServerCommand::Remove { at: Utc::now() },
            &meta,
        )
        .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// One tool as `GET …/tools` shows it.
#[derive(Debug, Serialize)]
struct ToolView {
    /// The name chat bodies use: `server.tool`.
    name: String,
    /// The tool's name on its server.
    tool: String,
    /// The name models call it by (`server__tool`).
    wire_name: String,
    description: String,
    input_schema: Value,
}

/// `GET /v1/admin/mcp-servers/{name}/tools`: connects now and lists the server's tools; a
/// server that cannot be listed is a 502 with the reason.
pub async fn tools(
    state: web::Data<AppState>,
    caller: Caller,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let row = match McpServerName::parse(&path) {
        Ok(name) => mcp_servers::get(&state.db, name.as_str()).await?,
        Err(_) => None,
    };
    let row = row.ok_or(ApiError::NotFound("MCP server"))?;
    let name = row.name.clone();
    let endpoint = crate::services::tools::endpoint(row);
    let listed = state
        .mcp
        .list_now(&endpoint)
        .await
        .map_err(|e| ApiError::Upstream(e.to_string()))?;
    let tools: Vec<ToolView> = listed
        .iter()
        .map(|t| ToolView {
            name: t.qualified_name(),
            tool: t.tool.clone(),
            wire_name: t.wire_name.clone(),
            description: t.description.clone(),
            input_schema: t.schema.clone(),
        })
        .collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "server": name, "data": tools })))
}
