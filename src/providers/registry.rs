//! Which providers this server can call, and how a catalog entry becomes a callable model.
//!
//! The catalog (ids, access levels, credits, prices) lives in the log (`CatalogModel` streams,
//! seeded from `threadline_domain::catalog::default_catalog` on first start, changed by admins);
//! this module knows which providers have credentials: OpenAI-compatible ones, Anthropic
//! (`ANTHROPIC_API_KEY`, `ANTHROPIC_BASE_URL`) and Gemini (`GEMINI_API_KEY`, `GEMINI_BASE_URL`). A catalog model is offered when its
//! provider is configured (`echo` always is). With `THREADLINE_ALLOW_DIRECT_MODELS`, any model
//! of a configured provider can also be named directly as `provider/upstream-model` — meant for
//! development and tests (no access rules or prices apply to such names).

use std::time::Duration;

use threadline_domain::catalog::{Capability, ModelSpec, Prices};

use crate::providers::Provider;
use crate::providers::anthropic::{self, AnthropicConfig};
use crate::providers::echo::EchoConfig;
use crate::providers::gemini::{self, GeminiConfig};
use crate::providers::openai::OpenAiConfig;

/// A model a request may name.
#[derive(Debug, Clone)]
pub struct Model {
    /// The id clients use.
    pub id: String,
    /// The provider's own model name.
    pub upstream: String,
    pub provider: Provider,
    /// Token prices from the catalog (zero for directly named models).
    pub prices: Prices,
    /// Configured fallbacks, in order: `(provider, upstream model)`.
    pub fallbacks: Vec<(Provider, String)>,
    /// Credits one message costs (zero for directly named models).
    pub credits: u32,
    /// What the model can take or do (none for directly named models: text only).
    pub capabilities: Vec<Capability>,
}

/// OpenAI-compatible providers: (name, key variable, base URL variable, default base URL).
const OPENAI_COMPATIBLE: &[(&str, &str, &str, &str)] = &[
    (
        "openai",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "https://api.openai.com/v1",
    ),
    (
        "openrouter",
        "OPENROUTER_API_KEY",
        "OPENROUTER_BASE_URL",
        "https://openrouter.ai/api/v1",
    ),
    (
        "deepseek",
        "DEEPSEEK_API_KEY",
        "DEEPSEEK_BASE_URL",
        "https://api.deepseek.com/v1",
    ),
    ("xai", "XAI_API_KEY", "XAI_BASE_URL", "https://api.x.ai/v1"),
    (
        "groq",
        "GROQ_API_KEY",
        "GROQ_BASE_URL",
        "https://api.groq.com/openai/v1",
    ),
];

/// How the provider named `name` (as recorded in events) reports overlapping token counts:
/// `anthropic` and `gemini` their own way, every other provider the OpenAI way.
pub fn usage_counting_of(name: &str) -> threadline_domain::catalog::UsageCounting {
    use threadline_domain::catalog::UsageCounting;
    match name {
        "anthropic" => UsageCounting::ANTHROPIC,
        "gemini" => UsageCounting::GEMINI,
        _ => UsageCounting::OPENAI,
    }
}

/// The providers of this server.
#[derive(Debug, Clone)]
pub struct ProviderRegistry {
    providers: Vec<Provider>,
    default: String,
}

impl ProviderRegistry {
    /// Reads provider keys and base URLs from the environment. `echo_delay` paces `echo`.
    pub fn from_env(echo_delay: Duration) -> Self {
        let vars: Vec<(String, String)> = std::env::vars().collect();
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        Self::from_lookup(
            echo_delay,
            get,
            std::env::var("THREADLINE_DEFAULT_MODEL").ok(),
        )
    }

    /// Builds the models from a variable lookup (tests pass their own).
    pub fn from_lookup(
        echo_delay: Duration,
        get: impl Fn(&str) -> Option<String>,
        default: Option<String>,
    ) -> Self {
        let mut providers = vec![Provider::Echo(EchoConfig { delay: echo_delay })];
        for (name, key, url, default_url) in OPENAI_COMPATIBLE {
            if let Some(api_key) = get(key) {
                providers.push(Provider::OpenAi(OpenAiConfig {
                    name: (*name).to_owned(),
                    base_url: get(url).unwrap_or_else(|| (*default_url).to_owned()),
                    api_key: api_key.into(),
                    reasoning_effort: None,
                }));
            }
        }
        if let Some(api_key) = get("ANTHROPIC_API_KEY") {
            providers.push(Provider::Anthropic(AnthropicConfig {
                name: "anthropic".into(),
                base_url: get("ANTHROPIC_BASE_URL")
                    .unwrap_or_else(|| anthropic::DEFAULT_BASE_URL.to_owned()),
                api_key: api_key.into(),
                thinking_budget: None,
            }));
        }
        if let Some(api_key) = get("GEMINI_API_KEY") {
            providers.push(Provider::Gemini(GeminiConfig {
                name: "gemini".into(),
                base_url: get("GEMINI_BASE_URL")
                    .unwrap_or_else(|| gemini::DEFAULT_BASE_URL.to_owned()),
                api_key: api_key.into(),
                include_thoughts: false,
            }));
        }
        let has_openai = providers.iter().any(|p| p.name() == "openai");
        let default =
            default.unwrap_or_else(|| if has_openai { "gpt-4o-mini" } else { "echo" }.to_owned());
        Self { providers, default }
    }

    /// The model used when a request names none.
    pub fn default_id(&self) -> &str {
        &self.default
    }

    /// Whether a provider of this name is configured.
    pub fn has_provider(&self, name: &str) -> bool {
        self.providers.iter().any(|p| p.name() == name)
    }

    /// The model of catalog entry `id`, if its provider is configured.
    pub fn from_catalog(&self, id: &str, spec: &ModelSpec) -> Option<Model> {
        let provider = self.providers.iter().find(|p| p.name() == spec.provider)?;
        let reasoning = spec.capabilities.contains(&Capability::Reasoning);
        let fallbacks = spec
            .fallbacks
            .iter()
            .filter_map(|f| {
                let p = self.providers.iter().find(|p| p.name() == f.provider)?;
                Some((p.for_reasoning(reasoning), f.upstream.clone()))
            })
            .collect();
        Some(Model {
            id: id.to_owned(),
            upstream: spec.upstream.clone(),
            provider: provider.for_reasoning(reasoning),
            prices: spec.prices,
            fallbacks,
            credits: spec.credits,
            capabilities: spec.capabilities.clone(),
        })
    }

    /// A directly named model `provider/upstream` of a configured provider (not `echo`).
    pub fn direct(&self, id: &str) -> Option<Model> {
        let (provider, upstream) = id.split_once('/')?;
        let provider = self.providers.iter().find(|p| p.name() == provider)?;
        if matches!(provider, Provider::Echo(_)) || upstream.is_empty() {
            return None;
        }
        Some(Model {
            id: id.to_owned(),
            upstream: upstream.to_owned(),
            provider: provider.clone(),
            prices: Prices::default(),
            fallbacks: Vec::new(),
            credits: 0,
            capabilities: Vec::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn without_keys_only_echo_is_callable_and_is_the_default() {
        let models = ProviderRegistry::from_lookup(Duration::ZERO, lookup(&[]), None);
        assert_eq!(models.default_id(), "echo");
        let catalog = threadline_domain::catalog::default_catalog();
        let callable: Vec<&str> = catalog
            .iter()
            .filter(|(id, spec)| models.from_catalog(id, spec).is_some())
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(callable, ["echo"]);
        assert!(models.direct("openai/gpt-4o").is_none());
    }

    #[test]
    fn a_configured_provider_makes_its_catalog_models_callable() {
        let models = ProviderRegistry::from_lookup(
            Duration::ZERO,
            lookup(&[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ]),
            None,
        );
        assert_eq!(models.default_id(), "gpt-4o-mini");
        let catalog = threadline_domain::catalog::default_catalog();
        let (id, spec) = catalog.iter().find(|(id, _)| *id == "gpt-5").unwrap();
        let m = models.from_catalog(id, spec).unwrap();
        assert_eq!(m.upstream, "gpt-5");
        let Provider::OpenAi(config) = &m.provider else {
            panic!()
        };
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(
            models.direct("openai/mock:len=3").unwrap().upstream,
            "mock:len=3"
        );
        let (id, spec) = catalog.iter().find(|(id, _)| *id == "deepseek-r1").unwrap();
        assert!(
            models.from_catalog(id, spec).is_none(),
            "deepseek has no key"
        );
    }
}
