//! The tools of one reply, run for one caller: [`Toolbox`] implements
//! [`crate::tools::ToolRunner`] with the server's search API, fetcher and MCP client, and
//! spends the caller's `web_searches` credit for each search the model asks for;
//! [`mcp_tools`] picks the registered MCP servers' tools a send offers.

use futures::future::BoxFuture;
use serde_json::{Value, json};
use threadline_domain::plans::Meter;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::providers::ToolSpec;
use crate::state::AppState;
use crate::store::bus::CommandMeta;
use crate::tools::mcp::McpEndpoint;
use crate::tools::search::{SearchQuery, SearchResult};
use crate::tools::{
    SEARCH_RESULTS, TOOL_TIMEOUT, Tool, ToolChoiceError, ToolRunner, mcp_name, string_argument,
};
use threadline_projections::mcp_servers::{self, McpServerRow};

/// The tools of one reply and what running them needs.
pub struct Toolbox {
    tools: Vec<Tool>,
    state: actix_web::web::Data<AppState>,
    caller: Caller,
    /// The reply the tools run for (it names their credits' reservations).
    generation_id: String,
    meta: CommandMeta,
}

impl Toolbox {
    pub fn new(
        tools: Vec<Tool>,
        state: actix_web::web::Data<AppState>,
        caller: Caller,
        generation_id: String,
        meta: CommandMeta,
    ) -> Toolbox {
        Toolbox {
            tools,
            state,
            caller,
            generation_id,
            meta,
        }
    }

    async fn run(&self, call_id: &str, name: &str, input: &Value) -> Result<Value, String> {
        let Some(tool) = self.tools.iter().find(|t| t.name() == name) else {
            return Err(format!("there is no tool named {name:?}"));
        };
        let run = async {
            match tool {
                Tool::WebSearch => self.web_search(call_id, input).await,
                Tool::ReadSite => crate::tools::read_site(&self.state.fetcher, input).await,
                Tool::Mcp(tool) => self.state.mcp.call(tool, input).await,
            }
        };
        tokio::time::timeout(TOOL_TIMEOUT, run)
            .await
            .unwrap_or_else(|_| {
                Err(format!(
                    "{name} took longer than {}s",
                    TOOL_TIMEOUT.as_secs()
                ))
            })
    }

    /// `web_search {query}`, paid with one `web_searches` credit of the caller (given back when
    /// the search fails); the call id names the credit's reservation.
    async fn web_search(&self, call_id: &str, input: &Value) -> Result<Value, String> {
        let query = string_argument(input, "query")?;
        if self.state.search.is_none() {
            return Err("web search is not configured on this server".into());
        }
        let run_id = format!("{}:{call_id}", self.generation_id);
        let reservation = crate::services::credits::reserve_tool_run(
            &self.state,
            &self.caller,
            Meter::WebSearches,
            &run_id,
            &self.meta,
        )
        .await
        .map_err(|e| format!("no web search left: {e}"))?;
        let found = self.unmetered(&query, SEARCH_RESULTS, 0).await;
        let charge = found.is_ok().then_some(None);
        self.state
            .chat
            .close_reservation(&reservation, &run_id, charge, &self.meta)
            .await;
        found.map(|results| json!(results))
    }

    async fn unmetered(
        &self,
        query: &str,
        results: u32,
        text_chars: u32,
    ) -> Result<Vec<SearchResult>, String> {
        let Some(api) = self.state.search.clone() else {
            return Err("web search is not configured on this server".into());
        };
        let query = SearchQuery {
            query: query.to_owned(),
            results,
            text_chars,
        };
        api.search(&query).await.map_err(|e| e.to_string())
    }
}

/// The enabled MCP servers' tools a send offers: those named `server.tool` in `names` (`None`:
/// every tool of every enabled server). Naming a server that is not registered and enabled, or
/// a tool its server does not list, is a 422 (`tools`). With `list` false (a model that cannot
/// call tools) only the servers' names are checked and no server is asked. A server that
/// cannot be listed offers nothing: the reply goes on without its tools.
pub async fn mcp_tools(
    state: &AppState,
    names: Option<&[String]>,
    list: bool,
) -> Result<Vec<Tool>, ApiError> {
    let wanted: Option<Vec<(&str, &str, &String)>> = names.map(|names| {
        names
            .iter()
            .filter_map(|name| mcp_name(name).map(|(server, tool)| (server, tool, name)))
            .collect()
    });
    if wanted.as_ref().is_some_and(Vec::is_empty) {
        return Ok(Vec::new());
    }
    let servers = mcp_servers::enabled(&state.db).await?;
    for (server, _, name) in wanted.iter().flatten() {
        if !servers.iter().any(|s| s.name == *server) {
            let refused = ToolChoiceError::UnknownServer((*name).clone(), (*server).to_owned());
            return Err(ApiError::invalid_field("tools", refused.to_string()));
        }
    }
    if !list {
        return Ok(Vec::new());
    }
    let asked: Vec<McpEndpoint> = servers
        .into_iter()
        .filter(|s| {
            wanted
                .as_ref()
                .is_none_or(|w| w.iter().any(|(server, _, _)| *server == s.name))
        })
        .map(endpoint)
        .collect();
    let listed = futures::future::join_all(asked.iter().map(|e| state.mcp.tools(e))).await;
    let mut tools = Vec::new();
    for (endpoint, listed) in asked.iter().zip(listed) {
        let listed = match listed {
            Ok(listed) => listed,
            Err(e) => {
                tracing::warn!(server = %endpoint.name, error = %e, "an MCP server's tools are not offered");
                continue;
            }
        };
        match &wanted {
            None => tools.extend(listed.iter().cloned().map(Tool::Mcp)),
            Some(wanted) => {
                for (_, tool, name) in wanted.iter().filter(|(s, _, _)| *s == endpoint.name) {
                    let Some(found) = listed.iter().find(|t| t.tool == *tool) else {
                        let refused = ToolChoiceError::Unknown((*name).clone());
                        return Err(ApiError::invalid_field("tools", refused.to_string()));
                    };
                    let found = Tool::Mcp(found.clone());
                    if !tools.contains(&found) {
                        tools.push(found);
                    }
                }
            }
        }
    }
    Ok(tools)
}

/// The client's view of a registered server.
pub fn endpoint(row: McpServerRow) -> McpEndpoint {
    McpEndpoint {
        name: row.name,
        url: row.url,
        secret: row.secret.map(secrecy::SecretString::from),
        updated_at: row.updated_at,
    }
}

impl ToolRunner for Toolbox {
    fn specs(&self) -> Vec<ToolSpec> {
        self.tools.iter().map(Tool::spec).collect()
    }

    fn call<'a>(
        &'a self,
        call_id: &'a str,
        name: &'a str,
        input: &'a Value,
    ) -> BoxFuture<'a, Result<Value, String>> {
        Box::pin(self.run(call_id, name, input))
    }

    fn search<'a>(
        &'a self,
        query: &'a str,
        results: u32,
        text_chars: u32,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, String>> {
        Box::pin(self.unmetered(query, results, text_chars))
    }
}
