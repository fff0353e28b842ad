//! The model catalog: one `CatalogModel` stream per model id, holding what the server offers
//! under that id — which provider and upstream model serve it, what it can do, who may use it,
//! what a message costs in credits and what its tokens cost in micro-dollars.

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::{Aggregate, DomainEvent};
use serde::{Deserialize, Serialize};

use crate::EVENT_VERSION;

/// Who may use a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// Everyone, anonymous visitors included.
    Public,
    /// Signed-in accounts.
    AccountRequired,
    /// Accounts with an active subscription.
    PremiumRequired,
}

/// The caller's plan, as far as model access is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tier {
    Anonymous,
    Free,
    Pro,
}

impl Tier {
    /// The name used in plans, reports and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Free => "free",
            Tier::Pro => "pro",
        }
    }
}

impl Access {
    /// Whether a caller of `tier` may use a model with this access level.
    pub fn allows(self, tier: Tier) -> bool {
        match self {
            Access::Public => true,
            Access::AccountRequired => tier != Tier::Anonymous,
            Access::PremiumRequired => tier == Tier::Pro,
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Access::Public => "public",
            Access::AccountRequired => "account_required",
            Access::PremiumRequired => "premium_required",
        }
    }
}

/// What a model can take or do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Vision,
    Documents,
    Reasoning,
    Tools,
}

/// Prices in micro-dollars per million tokens (integers: money is never a float).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prices {
    pub input: u64,
    pub output: u64,
    pub cached_input: u64,
    pub reasoning: u64,
}

/// How a provider's reported counts overlap. Providers disagree: OpenAI counts cached prompt
/// tokens inside `prompt_tokens` and reasoning inside `completion_tokens`; Anthropic reports
/// cache reads beside `input_tokens` and thinking inside `output_tokens`; Gemini counts cached
/// content inside `promptTokenCount` but thoughts beside `candidatesTokenCount`. Counting each
/// token once needs to know which.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsageCounting {
    /// Cached input tokens are part of the reported input count.
    pub cached_in_input: bool,
    /// Reasoning tokens are part of the reported output count.
    pub reasoning_in_output: bool,
}

impl UsageCounting {
    pub const OPENAI: Self = Self {
        cached_in_input: true,
        reasoning_in_output: true,
    };
    pub const ANTHROPIC: Self = Self {
        cached_in_input: false,
        reasoning_in_output: true,
    };
    pub const GEMINI: Self = Self {
        cached_in_input: true,
        reasoning_in_output: false,
    };
}

impl Prices {
    /// The cost of a reply in micro-dollars, each token counted once: cached input at the
    /// cached price, reasoning at the reasoning price, the rest at the input and output prices.
    /// Counts are as the provider reported them; `counting` says how they overlap.
    pub fn cost_micros(
        &self,
        input: u64,
        output: u64,
        reasoning: u64,
        cached: u64,
        counting: UsageCounting,
    ) -> u64 {
        let fresh_input = if counting.cached_in_input {
            input.saturating_sub(cached)
        } else {
            input
        };
        let visible_output = if counting.reasoning_in_output {
            output.saturating_sub(reasoning)
        } else {
            output
        };
        let total = u128::from(fresh_input) * u128::from(self.input)
            + u128::from(cached) * u128::from(self.cached_input)
            + u128::from(visible_output) * u128::from(self.output)
            + u128::from(reasoning) * u128::from(self.reasoning);
        // Round up: a reply never costs less than its tokens.
        u64::try_from(total.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }
}

/// Another provider serving the same model, tried when the primary fails before its first
/// token (e.g. the same model on OpenRouter).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fallback {
    pub provider: String,
    pub upstream: String,
}

/// Everything the catalog says about one model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSpec {
    /// Provider name (`openai`, `anthropic`, `gemini`, `openrouter`, `echo`, …).
    pub provider: String,
    /// The provider's own model name.
    pub upstream: String,
    pub capabilities: Vec<Capability>,
    pub access: Access,
    /// Credits one message costs.
    pub credits: u32,
    pub prices: Prices,
    pub enabled: bool,
    /// Providers tried in order when the primary fails before the first token.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<Fallback>,
}

/// Commands of a catalog entry.
#[derive(Debug, Clone, PartialEq)]
pub enum CatalogCommand {
    /// Adds the model, or replaces its entry (writes nothing when unchanged).
    Define { spec: ModelSpec, at: DateTime<Utc> },
}

/// Events of a catalog entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CatalogEvent {
    ModelAdded { spec: ModelSpec, at: DateTime<Utc> },
    ModelUpdated { spec: ModelSpec, at: DateTime<Utc> },
}

impl DomainEvent for CatalogEvent {
    fn event_type(&self) -> String {
        match self {
            CatalogEvent::ModelAdded { .. } => "ModelAdded",
            CatalogEvent::ModelUpdated { .. } => "ModelUpdated",
        }
        .to_owned()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_owned()
    }
}

/// Catalog commands are never refused; the type exists for the framework.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog error")]
pub struct CatalogError;

/// The current entry of one model id.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogModel {
    spec: Option<ModelSpec>,
}

impl crate::personal::DataSubject for CatalogModel {
    fn data_subject(&self, _aggregate_id: &str) -> Option<String> {
        None
    }
}

impl Aggregate for CatalogModel {
    const TYPE: &'static str = "CatalogModel";
    type Command = CatalogCommand;
    type Event = CatalogEvent;
    type Error = CatalogError;
    type Services = ();

    async fn handle(
        &mut self,
        command: Self::Command,
        _services: &Self::Services,
        sink: &EventSink<Self>,
    ) -> Result<(), Self::Error> {
        let CatalogCommand::Define { spec, at } = command;
        let event = match &self.spec {
            None => CatalogEvent::ModelAdded { spec, at },
            Some(current) if *current == spec => return Ok(()),
            Some(_) => CatalogEvent::ModelUpdated { spec, at },
        };
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: Self::Event) {
        match event {
            CatalogEvent::ModelAdded { spec, .. } | CatalogEvent::ModelUpdated { spec, .. } => {
                self.spec = Some(spec)
            }
        }
    }
}

/// The default catalog: `(id, spec)`. Prices are the providers' list prices in
/// micro-dollars per million tokens at the time of writing; admins change them at run time.
pub fn default_catalog() -> Vec<(&'static str, ModelSpec)> {
    use Access::{AccountRequired as A, PremiumRequired as P, Public as Pu};
    use Capability::{Documents as D, Reasoning as R, Tools as T, Vision as V};
    let m = |provider: &str, upstream: &str, caps: &[Capability], access, credits, p: [u64; 4]| {
        ModelSpec {
            provider: provider.to_owned(),
            upstream: upstream.to_owned(),
            capabilities: caps.to_vec(),
            access,
            credits,
            prices: Prices {
                input: p[0],
                output: p[1],
                cached_input: p[2],
                reasoning: p[3],
            },
            enabled: true,
            fallbacks: Vec::new(),
        }
    };
    vec![
        ("echo", m("echo", "echo", &[], Pu, 0, [0, 0, 0, 0])),
        (
            "gpt-4o-mini",
            m(
                "openai",
                "gpt-4o-mini",
                &[T, V, D],
                Pu,
                1,
                [150_000, 600_000, 75_000, 600_000],
            ),
        ),
        (
            "gpt-4o",
            m(
                "openai",
                "gpt-4o",
                &[T, V, D],
                A,
                2,
                [2_500_000, 10_000_000, 1_250_000, 10_000_000],
            ),
        ),
        (
            "gpt-5",
            m(
                "openai",
                "gpt-5",
                &[T, R, V],
                P,
                2,
                [1_250_000, 10_000_000, 125_000, 10_000_000],
            ),
        ),
        (
            "gpt-5-mini",
            m(
                "openai",
                "gpt-5-mini",
                &[],
                A,
                1,
                [250_000, 2_000_000, 25_000, 2_000_000],
            ),
        ),
        (
            "gpt-5-nano",
            m(
                "openai",
                "gpt-5-nano",
                &[],
                A,
                1,
                [50_000, 400_000, 5_000, 400_000],
            ),
        ),
        (
            "gemini-2.0-flash",
            m(
                "gemini",
                "gemini-2.0-flash",
                &[V, T, D],
                Pu,
                1,
                [100_000, 400_000, 25_000, 400_000],
            ),
        ),
        (
            "gemini-2.5-flash",
            m(
                "gemini",
                "gemini-2.5-flash",
                &[V, T, D, R],
                Pu,
                1,
                [300_000, 2_500_000, 75_000, 2_500_000],
            ),
        ),
        (
            "gemini-2.5-pro",
            m(
                "gemini",
                "gemini-2.5-pro",
                &[V, T, D, R],
                P,
                5,
                [1_250_000, 10_000_000, 310_000, 10_000_000],
            ),
        ),
        (
            "claude-4-sonnet",
            m(
                "anthropic",
                "claude-sonnet-4-20250514",
                &[T, R, D, V],
                P,
                5,
                [3_000_000, 15_000_000, 300_000, 15_000_000],
            ),
        ),
        (
            "grok-4",
            m(
                "xai",
                "grok-4",
                &[R, T],
                P,
                5,
                [3_000_000, 15_000_000, 750_000, 15_000_000],
            ),
        ),
        (
            "grok-3-mini",
            m(
                "xai",
                "grok-3-mini",
                &[],
                A,
                1,
                [300_000, 500_000, 75_000, 500_000],
            ),
        ),
        (
            "kimi-k2",
            m(
                "openrouter",
                "moonshotai/kimi-k2",
                &[T],
                Pu,
                1,
                [600_000, 2_500_000, 150_000, 2_500_000],
            ),
        ),
        (
            "glm-4.5",
            m(
                "openrouter",
                "z-ai/glm-4.5",
                &[T, R],
                A,
                1,
                [600_000, 2_200_000, 110_000, 2_200_000],
            ),
        ),
        (
            "deepseek-r1",
            m(
                "deepseek",
                "deepseek-reasoner",
                &[R],
                A,
                3,
                [550_000, 2_190_000, 140_000, 2_190_000],
            ),
        ),
        (
            "deepseek-v3",
            m(
                "deepseek",
                "deepseek-chat",
                &[],
                A,
                1,
                [270_000, 1_100_000, 70_000, 1_100_000],
            ),
        ),
        (
            "gpt-oss-120b",
            m(
                "openrouter",
                "openai/gpt-oss-120b",
                &[T, R],
                Pu,
                1,
                [100_000, 500_000, 50_000, 500_000],
            ),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use cqrs_es::test::TestFramework;

    fn spec(credits: u32) -> ModelSpec {
        ModelSpec {
            provider: "openai".into(),
            upstream: "gpt-4o".into(),
            capabilities: vec![Capability::Tools],
            access: Access::AccountRequired,
            credits,
            prices: Prices::default(),
            enabled: true,
            fallbacks: Vec::new(),
        }
    }

    #[test]
    fn a_model_is_added_then_updated_and_an_unchanged_entry_writes_nothing() {
        let at = DateTime::UNIX_EPOCH;
        TestFramework::<CatalogModel>::with(())
            .given_no_previous_events()
            .when(CatalogCommand::Define { spec: spec(2), at })
            .then_expect_events(vec![CatalogEvent::ModelAdded { spec: spec(2), at }]);
        TestFramework::<CatalogModel>::with(())
            .given(vec![CatalogEvent::ModelAdded { spec: spec(2), at }])
            .when(CatalogCommand::Define { spec: spec(3), at })
            .then_expect_events(vec![CatalogEvent::ModelUpdated { spec: spec(3), at }]);
        TestFramework::<CatalogModel>::with(())
            .given(vec![CatalogEvent::ModelAdded { spec: spec(2), at }])
            .when(CatalogCommand::Define { spec: spec(2), at })
            .then_expect_events(vec![]);
    }

    #[test]
    fn access_levels_admit_tiers() {
        use Access::*;
        use Tier::*;
        let table = [
            (Public, Anonymous, true),
            (Public, Free, true),
            (Public, Pro, true),
            (AccountRequired, Anonymous, false),
            (AccountRequired, Free, true),
            (AccountRequired, Pro, true),
            (PremiumRequired, Anonymous, false),
            (PremiumRequired, Free, false),
            (PremiumRequired, Pro, true),
        ];
        for (access, tier, allowed) in table {
            assert_eq!(access.allows(tier), allowed, "{access:?} for {tier:?}");
        }
    }

    #[test]
    fn cost_bills_cached_and_reasoning_tokens_at_their_own_prices_without_double_counting() {
        let prices = Prices {
            input: 2_000_000,
            output: 8_000_000,
            cached_input: 500_000,
            reasoning: 8_000_000,
        };
        // 1,000 input of which 400 cached; 300 output of which 100 reasoning.
        let cost = prices.cost_micros(1_000, 300, 100, 400, UsageCounting::OPENAI);
        let expected =
            (600 * 2_000_000 + 400 * 500_000 + 200 * 8_000_000 + 100 * 8_000_000) / 1_000_000;
        assert_eq!(cost, expected);
        assert_eq!(prices.cost_micros(0, 0, 0, 0, UsageCounting::OPENAI), 0);
        // The same tokens as Anthropic reports them (cache reads beside the input) and as
        // Gemini does (thoughts beside the output) cost the same.
        assert_eq!(
            prices.cost_micros(600, 300, 100, 400, UsageCounting::ANTHROPIC),
            expected
        );
        assert_eq!(
            prices.cost_micros(1_000, 200, 100, 400, UsageCounting::GEMINI),
            expected
        );
        assert_eq!(
            Prices {
                input: 1,
                ..Prices::default()
            }
            .cost_micros(1, 0, 0, 0, UsageCounting::OPENAI),
            1,
            "rounds up"
        );
    }

    #[test]
    fn the_default_catalog_has_the_spec_models() {
        let catalog = default_catalog();
        assert_eq!(catalog.len(), 17);
        let find = |id: &str| {
            catalog
                .iter()
                .find(|(i, _)| *i == id)
                .map(|(_, s)| s.clone())
        };
        assert_eq!(
            find("claude-4-sonnet").map(|s| s.access),
            Some(Access::PremiumRequired)
        );
        assert_eq!(find("deepseek-r1").map(|s| s.credits), Some(3));
        assert_eq!(find("gpt-4o-mini").map(|s| s.access), Some(Access::Public));
    }
}
