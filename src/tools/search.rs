//! Web search behind one trait: [`SearchApi`]. Exa ([`super::exa`]) is the one implemented;
//! another search API is one more file that implements the trait and a line in [`from_settings`].

use std::sync::Arc;

use futures::future::BoxFuture;
use serde::Serialize;

/// One search hit as the model (and the UI) receives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SearchResult {
    pub title: String,
    pub url: String,
    /// RFC 3339, when the source gives one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub published_date: Option<String>,
    /// A summary or an excerpt of the page.
    pub snippet: String,
    /// More of the page's text, when asked for (research reads it); not sent to the UI.
    #[serde(skip)]
    pub text: Option<String>,
}

/// What a search asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    pub query: String,
    /// Results wanted (the API may return fewer).
    pub results: u32,
    /// Characters of each page's text to return besides the snippet (0: none).
    pub text_chars: u32,
}

/// Why a search failed (a tool error the model reads; never a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("web search failed: {0}")]
pub struct SearchError(pub String);

/// A web search API.
pub trait SearchApi: Send + Sync + std::fmt::Debug {
    /// The API's name (`exa`), for logs.
    fn name(&self) -> &'static str;

    /// Runs one search.
    fn search<'a>(
        &'a self,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>>;
}

/// The configured search API: Exa when `EXA_API_KEY` is set, else none (the search tools are
/// then not offered).
pub fn from_settings(
    settings: &crate::config::ToolSettings,
    http: &reqwest::Client,
) -> Option<Arc<dyn SearchApi>> {
    let key = settings.exa_api_key.clone()?;
    Some(Arc::new(super::exa::Exa::new(
        http.clone(),
        settings.exa_base_url.clone(),
        key,
    )))
}
