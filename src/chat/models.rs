//! Which models this server offers and which provider serves each.
//!
//! The built-in `echo` model is always offered. Each OpenAI-compatible provider with an API key
//! in the environment adds its models from the default catalog (SPEC §7), and any model of a
//! configured provider can be named directly as `provider/upstream-model` (for example
//! `openrouter/meta-llama/llama-3.3-70b-instruct`). The full catalog with access levels and
//! prices comes with the providers issue.

use std::time::Duration;

use crate::providers::Provider;
use crate::providers::echo::EchoConfig;
use crate::providers::openai::OpenAiConfig;

/// A model a request may name.
#[derive(Debug, Clone)]
pub struct Model {
    /// The id clients use.
    pub id: String,
    /// The provider's own model name.
    pub upstream: String,
    pub provider: Provider,
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

/// Default catalog entries per provider: (model id, upstream model).
const CATALOG: &[(&str, &str, &str)] = &[
    ("openai", "gpt-4o-mini", "gpt-4o-mini"),
    ("openai", "gpt-4o", "gpt-4o"),
    ("openai", "gpt-5", "gpt-5"),
    ("openai", "gpt-5-mini", "gpt-5-mini"),
    ("openai", "gpt-5-nano", "gpt-5-nano"),
    ("deepseek", "deepseek-r1", "deepseek-reasoner"),
    ("deepseek", "deepseek-v3", "deepseek-chat"),
    ("xai", "grok-4", "grok-4"),
    ("xai", "grok-3-mini", "grok-3-mini"),
    ("openrouter", "kimi-k2", "moonshotai/kimi-k2"),
    ("openrouter", "glm-4.5", "z-ai/glm-4.5"),
    ("openrouter", "gpt-oss-120b", "openai/gpt-oss-120b"),
];

/// The models of this server.
#[derive(Debug, Clone)]
pub struct Models {
    providers: Vec<Provider>,
    models: Vec<Model>,
    default: String,
}

impl Models {
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
                    api_key,
                }));
            }
        }
        let mut models = vec![Model {
            id: "echo".into(),
            upstream: "echo".into(),
            provider: providers[0].clone(),
        }];
        for (provider, id, upstream) in CATALOG {
            if let Some(p) = providers.iter().find(|p| p.name() == *provider) {
                models.push(Model {
                    id: (*id).to_owned(),
                    upstream: (*upstream).to_owned(),
                    provider: p.clone(),
                });
            }
        }
        let default = default
            .filter(|d| models.iter().any(|m| &m.id == d))
            .unwrap_or_else(|| {
                models
                    .iter()
                    .find(|m| m.id == "gpt-4o-mini")
                    .unwrap_or(&models[0])
                    .id
                    .clone()
            });
        Self {
            providers,
            models,
            default,
        }
    }

    /// The model used when a request names none.
    pub fn default_id(&self) -> &str {
        &self.default
    }

    /// The models offered by name.
    pub fn list(&self) -> &[Model] {
        &self.models
    }

    /// Resolves a model id: a catalog id, or `provider/upstream` for a configured provider.
    pub fn resolve(&self, id: &str) -> Option<Model> {
        if let Some(m) = self.models.iter().find(|m| m.id == id) {
            return Some(m.clone());
        }
        let (provider, upstream) = id.split_once('/')?;
        let provider = self.providers.iter().find(|p| p.name() == provider)?;
        if matches!(provider, Provider::Echo(_)) || upstream.is_empty() {
            return None;
        }
        Some(Model {
            id: id.to_owned(),
            upstream: upstream.to_owned(),
            provider: provider.clone(),
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
    fn without_keys_only_echo_is_offered_and_is_the_default() {
        let models = Models::from_lookup(Duration::ZERO, lookup(&[]), None);
        assert_eq!(models.list().len(), 1);
        assert_eq!(models.default_id(), "echo");
        assert!(models.resolve("gpt-4o").is_none());
        assert!(models.resolve("openai/gpt-4o").is_none());
    }

    #[test]
    fn a_configured_provider_adds_its_catalog_models_and_direct_names() {
        let models = Models::from_lookup(
            Duration::ZERO,
            lookup(&[
                ("OPENAI_API_KEY", "k"),
                ("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
            ]),
            None,
        );
        assert_eq!(models.default_id(), "gpt-4o-mini");
        let m = models.resolve("gpt-5").unwrap();
        assert_eq!(m.upstream, "gpt-5");
        let Provider::OpenAi(config) = &m.provider else {
            panic!()
        };
        assert_eq!(config.base_url, "http://127.0.0.1:9/v1");
        assert_eq!(
            models.resolve("openai/mock:len=3").unwrap().upstream,
            "mock:len=3"
        );
        assert!(
            models.resolve("deepseek-r1").is_none(),
            "deepseek has no key"
        );
    }
}
