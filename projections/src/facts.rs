//! Admin usage facts: one row per reply with the dimensions reports group by (UTC day, model,
//! provider, the payer's tier and account) and what it used (tokens by kind, credits, cost).
//!
//! Folds `GenerationStarted` (the row and its dimensions), the terminal generation events
//! (status, tokens, cost) and `CreditsSettled` on the `credits` meter or a purchased-credit book
//! (credits charged). Reports ([`report`]) are `GROUP BY` queries over this table.

use serde::Serialize;
use threadline_domain::generation::{GenerationEvent, GenerationStatus};
use threadline_domain::ledger::LedgerEvent;

use crate::db::{Backend, Db, Stmt};
use crate::event::StoredEvent;
use crate::projection::{Projection, ProjectionError, Tables, decode};

/// A change to the facts table.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Started {
        generation_id: String,
        day: String,
        account: String,
        tier: String,
        model: String,
        provider: String,
    },
    Ended {
        generation_id: String,
        status: &'static str,
        input: i64,
        output: i64,
        reasoning: i64,
        cached: i64,
        cost_micros: i64,
    },
    Charged {
        generation_id: String,
        credits: i64,
    },
}

/// Folds a reply's event into facts (events before usage reports carry no payer: no row).
pub fn apply_generation(generation_id: &str, event: GenerationEvent) -> Option<Change> {
    let generation_id = generation_id.to_owned();
    let ended = |status, input, output, reasoning, cached, cost_micros| {
        Some(Change::Ended {
            generation_id: generation_id.clone(),
            status,
            input,
            output,
            reasoning,
            cached,
            cost_micros,
        })
    };
    match event {
        GenerationEvent::GenerationStarted {
            model,
            provider,
            charged_to: Some(payer),
            at,
            ..
        } => Some(Change::Started {
            generation_id: generation_id.clone(),
            day: at.format("%Y-%m-%d").to_string(),
            account: payer.account_id,
            tier: payer.tier.as_str().to_owned(),
            model,
            provider,
        }),
        GenerationEvent::GenerationCompleted {
            usage, cost_micros, ..
        } => ended(
            GenerationStatus::Completed.as_str(),
            usage.input_tokens as i64,
            usage.output_tokens as i64,
            usage.reasoning_tokens as i64,
            usage.cached_input_tokens as i64,
            cost_micros as i64,
        ),
        GenerationEvent::GenerationFailed { .. } => {
            ended(GenerationStatus::Failed.as_str(), 0, 0, 0, 0, 0)
        }
        GenerationEvent::GenerationStopped { .. } => {
            ended(GenerationStatus::Stopped.as_str(), 0, 0, 0, 0, 0)
        }
        GenerationEvent::GenerationInterrupted { .. } => {
            ended(GenerationStatus::Interrupted.as_str(), 0, 0, 0, 0, 0)
        }
        GenerationEvent::GenerationStarted { .. } | GenerationEvent::ChunksAppended { .. } => None,
    }
}

/// Folds a ledger event of stream `id`: credits settled for a reply.
pub fn apply_ledger(id: &str, event: LedgerEvent) -> Option<Change> {
    let meter = id.split(':').nth(1)?;
    match event {
        LedgerEvent::CreditsSettled {
            generation_id,
            amount,
            ..
        } if meter == "credits" || meter == "purchased" => Some(Change::Charged {
            generation_id,
            credits: amount as i64,
        }),
        _ => None,
    }
}

fn sql(change: Change, t: &Tables) -> Stmt {
    let facts = t.name("usage_facts");
    match change {
        Change::Started {
            generation_id,
            day,
            account,
            tier,
            model,
            provider,
        } => Stmt::new(
            format!(
                "INSERT INTO {facts} (generation_id, day, account, tier, model, provider, status, \
                 input_tokens, output_tokens, reasoning_tokens, cached_tokens, credits, cost_micros) \
                 VALUES ($1, $2, $3, $4, $5, $6, 'streaming', 0, 0, 0, 0, 0, 0) \
                 ON CONFLICT (generation_id) DO NOTHING"
            ),
            vec![
                generation_id.into(),
                day.into(),
                account.into(),
                tier.into(),
                model.into(),
                provider.into(),
            ],
        ),
        Change::Ended {
            generation_id,
            status,
            input,
            output,
            reasoning,
            cached,
            cost_micros,
        } => Stmt::new(
            format!(
                "UPDATE {facts} SET status = $1, input_tokens = $2, output_tokens = $3, \
                 reasoning_tokens = $4, cached_tokens = $5, cost_micros = $6 \
                 WHERE generation_id = $7"
            ),
            vec![
                status.into(),
                input.into(),
                output.into(),
                reasoning.into(),
                cached.into(),
                cost_micros.into(),
                generation_id.into(),
            ],
        ),
        Change::Charged {
            generation_id,
            credits,
        } => Stmt::new(
            format!("UPDATE {facts} SET credits = credits + $1 WHERE generation_id = $2"),
            vec![credits.into(), generation_id.into()],
        ),
    }
}

/// The usage facts projection.
pub struct UsageFacts;

impl Projection for UsageFacts {
    fn name(&self) -> &'static str {
        "facts"
    }

    fn version(&self) -> i64 {
        1
    }

    fn tables(&self) -> &'static [&'static str] {
        &["usage_facts"]
    }

    fn ddl(&self, _backend: Backend, t: &Tables) -> Vec<String> {
        let facts = t.name("usage_facts");
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {facts} (
                    generation_id TEXT PRIMARY KEY,
                    day TEXT NOT NULL,
                    account TEXT NOT NULL,
                    tier TEXT NOT NULL,
                    model TEXT NOT NULL,
                    provider TEXT NOT NULL,
                    status TEXT NOT NULL,
                    input_tokens BIGINT NOT NULL,
                    output_tokens BIGINT NOT NULL,
                    reasoning_tokens BIGINT NOT NULL,
                    cached_tokens BIGINT NOT NULL,
                    credits BIGINT NOT NULL,
                    cost_micros BIGINT NOT NULL
                )"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {} ON {facts} (day)",
                t.index("usage_facts", "day")
            ),
        ]
    }

    fn statements(
        &self,
        event: &StoredEvent,
        tables: &Tables,
    ) -> Result<Vec<Stmt>, ProjectionError> {
        let change = match (event.aggregate_type.as_str(), event.event_type.as_str()) {
            // Chunks are most of the log and never matter here: not even decoded.
            ("Generation", "ChunksAppended") => None,
            ("Generation", _) => apply_generation(&event.aggregate_id, decode(event)?),
            ("CreditWindow", "CreditsSettled") => apply_ledger(&event.aggregate_id, decode(event)?),
            _ => None,
        };
        Ok(change.into_iter().map(|c| sql(c, tables)).collect())
    }
}

/// What reports can group by.
pub const DIMENSIONS: [&str; 5] = ["day", "model", "provider", "tier", "account"];

/// One group of a usage report: its dimension values and totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReportRow {
    /// Dimension name → value, for the dimensions grouped by.
    pub group: std::collections::BTreeMap<String, String>,
    pub messages: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cached_tokens: i64,
    pub credits: i64,
    pub cost_micros: i64,
}

/// Totals per group over the replies started on UTC days `from..=to` (`YYYY-MM-DD`).
/// `group_by` must hold names of [`DIMENSIONS`] only (the caller checks; others are skipped).
pub async fn report(
    db: &Db,
    from: &str,
    to: &str,
    group_by: &[String],
) -> Result<Vec<ReportRow>, sqlx::Error> {
    let dims: Vec<&str> = group_by
        .iter()
        .filter_map(|g| DIMENSIONS.iter().find(|d| **d == g.as_str()).copied())
        .collect();
    // PostgreSQL sums BIGINT into NUMERIC: cast back so both backends decode an i64.
    let totals = [
        "input_tokens",
        "output_tokens",
        "reasoning_tokens",
        "cached_tokens",
        "credits",
        "cost_micros",
    ]
    .map(|c| format!("CAST(COALESCE(SUM({c}), 0) AS BIGINT)"))
    .join(", ");
    let totals = format!("COUNT(*), {totals}");
    let (select, group) = if dims.is_empty() {
        ("''".to_owned(), String::new())
    } else {
        let parts = dims.join(" || char(31) || ");
        let joined = match db.backend() {
            Backend::Sqlite => parts,
            Backend::Postgres => parts.replace("char(31)", "chr(31)"),
        };
        (
            joined,
            format!(" GROUP BY {0} ORDER BY {0}", dims.join(", ")),
        )
    };
    let sql =
        format!("SELECT {select}, {totals} FROM usage_facts WHERE day >= $1 AND day <= $2{group}");
    type Raw = (String, i64, i64, i64, i64, i64, i64, i64);
    let rows: Vec<Raw> = crate::on_read!(db, pool => sqlx::query_as(&sql)
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await)?;
    Ok(rows
        .into_iter()
        .map(
            |(key, messages, input, output, reasoning, cached, credits, cost)| {
                let values: Vec<&str> = if dims.is_empty() {
                    vec![]
                } else {
                    key.split('\u{1f}').collect()
                };
                ReportRow {
                    group: dims
                        .iter()
                        .zip(values)
                        .map(|(d, v)| ((*d).to_owned(), v.to_owned()))
                        .collect(),
                    messages,
                    input_tokens: input,
                    output_tokens: output,
                    reasoning_tokens: reasoning,
                    cached_tokens: cached,
                    credits,
                    cost_micros: cost,
                }
            },
        )
        .collect())
}

/// One reply's facts, as [`replies`] reads them.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct FactRow {
    pub generation_id: String,
    pub day: String,
    pub account: String,
    pub tier: String,
    pub model: String,
    pub provider: String,
    pub status: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub reasoning_tokens: i64,
    pub cached_tokens: i64,
    pub credits: i64,
    pub cost_micros: i64,
}

/// Up to `limit` replies started from day `from` to day `to` (inclusive), after
/// `after` in generation id order: the pages a re-pricing reads.
pub async fn replies(
    db: &Db,
    from: &str,
    to: &str,
    after: &str,
    limit: i64,
) -> Result<Vec<FactRow>, sqlx::Error> {
    let sql = "SELECT generation_id, day, account, tier, model, provider, status, input_tokens, \
               output_tokens, reasoning_tokens, cached_tokens, credits, cost_micros \
               FROM usage_facts WHERE day >= $1 AND day <= $2 AND generation_id > $3 \
               ORDER BY generation_id LIMIT $4";
    crate::on_read!(db, pool => sqlx::query_as(sql)
        .bind(from)
        .bind(to)
        .bind(after)
        .bind(limit)
        .fetch_all(pool)
        .await)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use threadline_domain::catalog::Tier;
    use threadline_domain::generation::{Origin, Payer, TokenUsage};

    #[test]
    fn a_started_reply_is_a_fact_with_its_payer_and_day() {
        let change = apply_generation(
            "g",
            GenerationEvent::GenerationStarted {
                message_id: "m".into(),
                origin: Origin::Thread {
                    thread_id: "t".into(),
                    parent_id: "p".into(),
                },
                model: "gpt-4o".into(),
                provider: "openai".into(),
                context: vec![],
                node_id: "n".into(),
                charged_to: Some(Payer {
                    account_id: "acc".into(),
                    tier: Tier::Pro,
                }),
                at: DateTime::from_timestamp(1_764_000_000, 0).unwrap(),
            },
        );
        assert_eq!(
            change,
            Some(Change::Started {
                generation_id: "g".into(),
                day: "2025-11-24".into(),
                account: "acc".into(),
                tier: "pro".into(),
                model: "gpt-4o".into(),
                provider: "openai".into(),
            })
        );
    }

    #[test]
    fn completion_records_tokens_and_cost() {
        let change = apply_generation(
            "g",
            GenerationEvent::GenerationCompleted {
                finish_reason: "stop".into(),
                usage: TokenUsage {
                    input_tokens: 10,
                    output_tokens: 20,
                    reasoning_tokens: 5,
                    cached_input_tokens: 2,
                },
                provider_ms: 1,
                cost_micros: 77,
                at: DateTime::UNIX_EPOCH,
            },
        );
        assert!(matches!(
            change,
            Some(Change::Ended {
                status: "completed",
                input: 10,
                output: 20,
                reasoning: 5,
                cached: 2,
                cost_micros: 77,
                ..
            })
        ));
    }

    #[test]
    fn only_settled_credits_count() {
        let settled = |amount| LedgerEvent::CreditsSettled {
            generation_id: "g".into(),
            reserved: 3,
            amount,
            at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(
            apply_ledger("acc:credits:2026-11-25", settled(2)),
            Some(Change::Charged {
                generation_id: "g".into(),
                credits: 2
            })
        );
        assert!(apply_ledger("acc:purchased:00000000", settled(2)).is_some());
        assert_eq!(apply_ledger("acc:cost_micros:2026-11-25", settled(2)), None);
        let released = LedgerEvent::CreditsReleased {
            generation_id: "g".into(),
            amount: 3,
            at: DateTime::UNIX_EPOCH,
        };
        assert_eq!(apply_ledger("acc:credits:2026-11-25", released), None);
    }
}
