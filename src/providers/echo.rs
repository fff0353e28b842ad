//! The built-in `echo` model: streams a deterministic reply at a realistic pace through the same
//! pipeline as real providers, so the whole product runs on a fresh machine without API keys.

use std::time::Duration;

use super::{ChatRequest, FinishReason, ProviderEvent, ProviderStream, Usage};

/// Pace of the echo model.
#[derive(Debug, Clone)]
pub struct EchoConfig {
    /// Delay before each word.
    pub delay: Duration,
}

impl Default for EchoConfig {
    fn default() -> Self {
        Self {
            delay: Duration::from_millis(20),
        }
    }
}

/// The reply the echo model gives to a conversation: it repeats the last user message.
pub fn reply_text(request: &ChatRequest) -> String {
    let last = request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == "user")
        .map(|m| m.content.trim())
        .unwrap_or_default();
    if last.is_empty() {
        "Echo: (empty message)".to_owned()
    } else {
        format!("Echo: {last}")
    }
}

/// Streams [`reply_text`] word by word.
pub fn stream(config: &EchoConfig, request: &ChatRequest) -> ProviderStream {
    let text = reply_text(request);
    let delay = config.delay;
    let input_tokens = request
        .messages
        .iter()
        .map(|m| m.content.split_whitespace().count() as u64)
        .sum();
    Box::pin(async_stream::stream! {
        let mut output_tokens = 0;
        for (i, word) in text.split_inclusive(' ').enumerate() {
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            output_tokens = i as u64 + 1;
            yield Ok(ProviderEvent::TextDelta { text: word.to_owned() });
        }
        yield Ok(ProviderEvent::Usage {
            usage: Usage { input_tokens, output_tokens, ..Usage::default() },
        });
        yield Ok(ProviderEvent::Finish { reason: FinishReason::Stop });
    })
}
