//! Re-pricing from history: what the replies of a period would have cost under other prices
//! (and other plans), from the usage recorded for each reply, grouped like the usage report.
//! Nothing is written: the ledger keeps what was charged.
//!
//! Each reply is priced again on its own, as the server prices one when it ends: its tokens at
//! the model's prices (`Prices::cost_micros`, rounding up per reply, counting each token once
//! the way its provider reports them) for a completed reply, nothing for the others; the
//! model's credits for a charged reply (completed, or charged credits when it was recorded)
//! when the plan of the payer's tier meters credits, nothing otherwise. A model's prices and
//! credits come from the prices file, then today's catalog; a model in neither keeps what was
//! recorded. With today's prices and plans the numbers are the usage report's.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use threadline_domain::catalog::{ModelSpec, Prices, Tier};
use threadline_domain::plans::{Meter, Plans};
use threadline_projections::Db;
use threadline_projections::facts::{self, FactRow, ReportRow};

use crate::providers::registry::usage_counting_of;
use crate::reports::UsageQuery;

/// Replies read per page.
const PAGE: i64 = 10_000;

/// One model's entry in a prices file. A field left out keeps today's catalog value. The
/// catalog's other fields are accepted (and ignored), so `GET /v1/admin/models/{id}` answers
/// can be pasted in.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceEntry {
    /// Credits one message costs.
    pub credits: Option<u32>,
    /// Micro-dollars per million tokens.
    pub prices: Option<Prices>,
    #[serde(default, rename = "id")]
    _id: Option<serde_json::Value>,
    #[serde(default, rename = "provider")]
    _provider: Option<serde_json::Value>,
    #[serde(default, rename = "upstream")]
    _upstream: Option<serde_json::Value>,
    #[serde(default, rename = "capabilities")]
    _capabilities: Option<serde_json::Value>,
    #[serde(default, rename = "access")]
    _access: Option<serde_json::Value>,
    #[serde(default, rename = "enabled")]
    _enabled: Option<serde_json::Value>,
    #[serde(default, rename = "fallbacks")]
    _fallbacks: Option<serde_json::Value>,
}

/// A prices file: model id → its prices and credits.
pub type PriceFile = BTreeMap<String, PriceEntry>;

/// Parses a prices file (YAML, or JSON, which is YAML too).
pub fn parse_prices(text: &str) -> Result<PriceFile, String> {
    let file: Option<PriceFile> =
        serde_yaml_ng::from_str(text).map_err(|e| format!("the prices file is invalid: {e}"))?;
    Ok(file.unwrap_or_default())
}

/// A model's prices and credits for the re-pricing.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Price {
    credits: u32,
    prices: Prices,
}

/// One group of a re-priced report: the usage report's row with credits and cost re-priced,
/// and what was recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepricedRow {
    #[serde(flatten)]
    pub row: ReportRow,
    pub recorded_credits: i64,
    pub recorded_cost_micros: i64,
}

impl RepricedRow {
    fn empty(group: BTreeMap<String, String>) -> Self {
        RepricedRow {
            row: ReportRow {
                group,
                messages: 0,
                input_tokens: 0,
                output_tokens: 0,
                reasoning_tokens: 0,
                cached_tokens: 0,
                credits: 0,
                cost_micros: 0,
            },
            recorded_credits: 0,
            recorded_cost_micros: 0,
        }
    }
}

/// A re-priced usage report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RepriceReport {
    pub from: String,
    pub to: String,
    pub group_by: Vec<String>,
    pub rows: Vec<RepricedRow>,
}

/// Re-prices the replies of `query`'s period at `file` over `catalog` (today's entries) with
/// `plans`, grouped by `query.group_by`.
pub async fn reprice(
    db: &Db,
    query: &UsageQuery,
    file: &PriceFile,
    catalog: &[(String, ModelSpec)],
    plans: &Plans,
) -> Result<RepriceReport, sqlx::Error> {
    let today: HashMap<&str, &ModelSpec> = catalog
        .iter()
        .map(|(id, spec)| (id.as_str(), spec))
        .collect();
    let price_of = |model: &str| -> Option<Price> {
        let entry = file.get(model);
        let spec = today.get(model);
        let credits = entry.and_then(|e| e.credits).or(spec.map(|s| s.credits))?;
        let prices = entry.and_then(|e| e.prices).or(spec.map(|s| s.prices))?;
        Some(Price { credits, prices })
    };
    let from = query.from.format("%Y-%m-%d").to_string();
    let to = query.to.format("%Y-%m-%d").to_string();
    let mut groups: BTreeMap<Vec<String>, RepricedRow> = BTreeMap::new();
    let mut prices: HashMap<String, Option<Price>> = HashMap::new();
    let mut after = String::new();
    loop {
        let page = facts::replies(db, &from, &to, &after, PAGE).await?;
        let Some(last) = page.last() else { break };
        after = last.generation_id.clone();
        for reply in &page {
            let price = *prices
                .entry(reply.model.clone())
                .or_insert_with(|| price_of(&reply.model));
            let (credits, cost) = repriced(reply, price, plans);
            let key: Vec<String> = query
                .group_by
                .iter()
                .map(|d| dimension(reply, d).to_owned())
                .collect();
            let group = groups.entry(key.clone()).or_insert_with(|| {
                RepricedRow::empty(query.group_by.iter().cloned().zip(key).collect())
            });
            let row = &mut group.row;
            row.messages += 1;
            row.input_tokens += reply.input_tokens;
            row.output_tokens += reply.output_tokens;
            row.reasoning_tokens += reply.reasoning_tokens;
            row.cached_tokens += reply.cached_tokens;
            row.credits += credits;
            row.cost_micros += cost;
            group.recorded_credits += reply.credits;
            group.recorded_cost_micros += reply.cost_micros;
        }
        if (page.len() as i64) < PAGE {
            break;
        }
    }
    let mut rows: Vec<RepricedRow> = groups.into_values().collect();
    if rows.is_empty() && query.group_by.is_empty() {
        rows.push(RepricedRow::empty(BTreeMap::new()));
    }
    Ok(RepriceReport {
        from,
        to,
        group_by: query.group_by.clone(),
        rows,
    })
}

/// A reply's credits and cost at `price` under `plans` (what was recorded, without a price).
fn repriced(reply: &FactRow, price: Option<Price>, plans: &Plans) -> (i64, i64) {
    let Some(price) = price else {
        return (reply.credits, reply.cost_micros);
    };
    let completed = reply.status == "completed";
    let cost = if completed {
        price.prices.cost_micros(
            reply.input_tokens.max(0) as u64,
            reply.output_tokens.max(0) as u64,
            reply.reasoning_tokens.max(0) as u64,
            reply.cached_tokens.max(0) as u64,
            usage_counting_of(&reply.provider),
        )
    } else {
        0
    };
    let metered = serde_json::from_value::<Tier>(serde_json::Value::from(reply.tier.as_str()))
        .map(|tier| plans.plan(tier).rule(Meter::Credits).is_some())
        .unwrap_or(reply.credits > 0);
    let charged = completed || reply.credits > 0;
    let credits = if charged && metered {
        i64::from(price.credits)
    } else {
        0
    };
    (credits, i64::try_from(cost).unwrap_or(i64::MAX))
}

fn dimension<'a>(reply: &'a FactRow, name: &str) -> &'a str {
    match name {
        "day" => &reply.day,
        "model" => &reply.model,
        "provider" => &reply.provider,
        "tier" => &reply.tier,
        _ => &reply.account,
    }
}

impl RepriceReport {
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        crate::reports::report_cells(
            &self.group_by,
            &["recorded_credits", "recorded_cost_micros"],
            self.rows
                .iter()
                .map(|r| (&r.row, vec![r.recorded_credits, r.recorded_cost_micros])),
        )
    }

    /// RFC 4180 CSV with a header row.
    pub fn to_csv(&self) -> String {
        let (header, rows) = self.cells();
        crate::reports::csv(&header, &rows)
    }

    /// An aligned text table for terminals.
    pub fn to_table(&self) -> String {
        let (header, rows) = self.cells();
        crate::reports::table(&header, &rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: &str, tier: &str, credits: i64) -> FactRow {
        FactRow {
            generation_id: "g".into(),
            day: "2026-12-01".into(),
            account: "a".into(),
            tier: tier.into(),
            model: "m".into(),
            provider: "anthropic".into(),
            status: status.into(),
            input_tokens: 1_000,
            output_tokens: 500,
            reasoning_tokens: 100,
            cached_tokens: 200,
            credits,
            cost_micros: 7,
        }
    }

    fn price(credits: u32) -> Option<Price> {
        Some(Price {
            credits,
            prices: Prices {
                input: 3_000_000,
                output: 15_000_000,
                cached_input: 300_000,
                reasoning: 15_000_000,
            },
        })
    }

    #[test]
    fn a_completed_reply_costs_its_tokens_at_the_new_prices_counted_like_its_provider() {
        let plans = Plans::default();
        let (credits, cost) = repriced(&reply("completed", "free", 1), price(3), &plans);
        // Anthropic: cached input beside input; reasoning inside output.
        let expected =
            (1_000 * 3_000_000 + 200 * 300_000 + 400 * 15_000_000 + 100 * 15_000_000) / 1_000_000;
        assert_eq!(cost, expected);
        assert_eq!(credits, 3);
    }

    #[test]
    fn a_failed_reply_costs_nothing_and_is_charged_only_if_it_was() {
        let plans = Plans::default();
        assert_eq!(
            repriced(&reply("failed", "free", 0), price(3), &plans),
            (0, 0)
        );
        assert_eq!(
            repriced(&reply("stopped", "free", 1), price(3), &plans),
            (3, 0)
        );
    }

    #[test]
    fn a_tier_whose_plan_does_not_meter_credits_pays_none() {
        let plans = Plans::with_overrides(serde_yaml_ng::Deserializer::from_str(
            "tiers: {free: {credits: {limit: null, window: day}}}",
        ))
        .unwrap();
        assert_eq!(
            repriced(&reply("completed", "free", 1), price(3), &plans).0,
            0
        );
    }

    #[test]
    fn a_model_without_a_price_keeps_what_was_recorded() {
        assert_eq!(
            repriced(&reply("completed", "free", 1), None, &Plans::default()),
            (1, 7)
        );
    }

    #[test]
    fn a_prices_file_takes_catalog_entries_and_refuses_typos() {
        let file = parse_prices(
            "gpt-4o: {provider: openai, upstream: gpt-4o, credits: 2, prices: {input: 1, output: 2, cached_input: 0, reasoning: 2}}\n",
        )
        .unwrap();
        assert_eq!(file["gpt-4o"].credits, Some(2));
        assert!(parse_prices("gpt-4o: {price: {input: 1}}").is_err());
        assert!(parse_prices("").unwrap().is_empty());
    }
}
