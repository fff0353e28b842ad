//! Exa's search API: `POST {EXA_BASE_URL}/search` with the key in `x-api-key`, body `{query,
//! numResults, type: "auto", contents: {summary: {}, text?: {maxCharacters}}}`; each result's
//! `summary` (else the start of its `text`) is the snippet.

use futures::future::BoxFuture;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::json;

use super::search::{SearchApi, SearchError, SearchQuery, SearchResult};
use crate::telemetry::error_chain;

/// Characters of a page's text that stand in for a missing summary.
const SNIPPET_CHARS: usize = 300;

/// An Exa client.
#[derive(Debug)]
pub struct Exa {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
}

impl Exa {
    pub fn new(http: reqwest::Client, base_url: String, api_key: SecretString) -> Exa {
        Exa {
            http,
            base_url,
            api_key,
        }
    }

    async fn run(&self, query: &SearchQuery) -> Result<Vec<SearchResult>, SearchError> {
        let mut contents = json!({"summary": {}});
        if query.text_chars > 0 {
            contents["text"] = json!({"maxCharacters": query.text_chars});
        }
        let body = json!({
            "query": query.query,
            "numResults": query.results.clamp(1, 100),
            "type": "auto",
            "contents": contents,
        });
        let response = self
            .http
            .post(format!("{}/search", self.base_url.trim_end_matches('/')))
            .header("x-api-key", self.api_key.expose_secret())
            .json(&body)
            .timeout(std::time::Duration::from_secs(20))
            .send()
            .await
            .map_err(|e| {
                SearchError(format!("cannot reach the search API: {}", error_chain(&e)))
            })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let message = serde_json::from_str::<ExaError>(&text)
                .ok()
                .and_then(|e| e.error)
                .unwrap_or_else(|| text.chars().take(200).collect());
            return Err(SearchError(format!("HTTP {}: {message}", status.as_u16())));
        }
        let answer: ExaResponse = response
            .json()
            .await
            .map_err(|e| SearchError(format!("unreadable answer: {}", error_chain(&e))))?;
        Ok(answer.results.into_iter().map(result).collect())
    }
}

impl SearchApi for Exa {
    fn name(&self) -> &'static str {
        "exa"
    }

    fn search<'a>(
        &'a self,
        query: &'a SearchQuery,
    ) -> BoxFuture<'a, Result<Vec<SearchResult>, SearchError>> {
        Box::pin(self.run(query))
    }
}

fn result(r: ExaResult) -> SearchResult {
    let snippet = r
        .summary
        .filter(|s| !s.trim().is_empty())
        .or_else(|| {
            r.text
                .as_ref()
                .map(|t| t.chars().take(SNIPPET_CHARS).collect())
        })
        .unwrap_or_default();
    SearchResult {
        title: r.title.unwrap_or_default(),
        url: r.url,
        published_date: r.published_date,
        snippet,
        text: r.text,
    }
}

#[derive(Deserialize)]
struct ExaResponse {
    #[serde(default)]
    results: Vec<ExaResult>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ExaResult {
    url: String,
    title: Option<String>,
    published_date: Option<String>,
    summary: Option<String>,
    text: Option<String>,
}

#[derive(Deserialize)]
struct ExaError {
    error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mock_upstream::MockUpstream;

    #[tokio::test]
    async fn searches_the_mock_exa_and_reads_title_url_date_and_summary() {
        let mock = MockUpstream::start("127.0.0.1:0").await.unwrap();
        let root = format!("http://127.0.0.1:{}", mock.port());
        let exa = Exa::new(
            reqwest::Client::new(),
            root.clone(),
            "key".to_owned().into(),
        );
        let query = SearchQuery {
            query: "rust async".into(),
            results: 3,
            text_chars: 100,
        };
        let results = exa.search(&query).await.unwrap();
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].url, "https://example.com/rust-async/1");
        assert_eq!(results[0].title, "Result 1 for rust async");
        assert_eq!(
            results[0].published_date.as_deref(),
            Some("2025-01-01T00:00:00.000Z")
        );
        assert!(!results[0].snippet.is_empty());
        assert!(results[0].text.as_deref().unwrap().contains("rust async"));
        let sent = mock.last_recorded("/search").unwrap();
        assert_eq!(sent.body["numResults"], 3);
        assert_eq!(sent.body["contents"]["text"]["maxCharacters"], 100);

        let wrong = Exa::new(reqwest::Client::new(), root, "".to_owned().into());
        let error = wrong.search(&query).await.unwrap_err();
        assert!(error.0.starts_with("HTTP 401"), "{error}");
    }
}
