//! Plans: what each tier may use, per meter and window.
//!
//! A meter (credits, web searches, research runs, a cost budget in micro-dollars) has a limit
//! and a window. A window is either a calendar day in the plans' time zone or a refilling bucket
//! of N hours (`4h`: the bucket empties every four hours, counted from the Unix epoch, as T3 Chat
//! refills its base credits). Windows are keys on the ledger's streams, never cron resets: the
//! window of a moment is computed from the moment alone ([`Plans::window`]).
//!
//! Plans load from YAML (see `plans.example.yaml` in the repository root):
//!
//! ```yaml
//! time_zone: Europe/Berlin
//! tiers:
//!   free:
//!     credits: { limit: 20, window: day }
//!     cost_micros: { limit: 1000000, window: 4h }
//! ```
//!
//! A tier or meter the file leaves out keeps its default; a meter with `limit: null` (or `~`) is
//! unmetered.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Days, LocalResult, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::catalog::Tier;

/// What a plan counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Meter {
    /// The model's credits per message.
    Credits,
    /// Web-search tool runs.
    WebSearches,
    /// Deep-research runs.
    ResearchRuns,
    /// Provider cost in micro-dollars, from token usage at the catalog's prices.
    CostMicros,
}

impl Meter {
    /// Every meter, in the order they are shown.
    pub const ALL: [Meter; 4] = [
        Meter::Credits,
        Meter::WebSearches,
        Meter::ResearchRuns,
        Meter::CostMicros,
    ];

    /// The meter named `name` (purchased-credit books count as credits).
    pub fn parse(name: &str) -> Option<Meter> {
        match name {
            PURCHASED => Some(Meter::Credits),
            other => Meter::ALL.into_iter().find(|m| m.as_str() == other),
        }
    }

    /// The name used in stream ids, problem details and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Meter::Credits => "credits",
            Meter::WebSearches => "web_searches",
            Meter::ResearchRuns => "research_runs",
            Meter::CostMicros => "cost_micros",
        }
    }
}

/// The meter name of purchased-credit books (`{account}:purchased:{book}`).
pub const PURCHASED: &str = "purchased";

/// How a meter's window is cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowRule {
    /// The calendar day in the plans' time zone.
    Day,
    /// A bucket of this many hours that refills when it ends.
    Hours(u32),
}

impl FromStr for WindowRule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "day" {
            return Ok(WindowRule::Day);
        }
        match s.strip_suffix('h').map(str::parse::<u32>) {
            Some(Ok(hours)) if (1..=24 * 366).contains(&hours) => Ok(WindowRule::Hours(hours)),
            _ => Err(format!(
                "window {s:?}: expected `day` or a number of hours such as `4h`"
            )),
        }
    }
}

impl fmt::Display for WindowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowRule::Day => f.write_str("day"),
            WindowRule::Hours(hours) => write!(f, "{hours}h"),
        }
    }
}

impl Serialize for WindowRule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for WindowRule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// A meter's limit per window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterRule {
    /// `None`: not metered.
    pub limit: Option<u64>,
    pub window: WindowRule,
}

impl MeterRule {
    pub const fn daily(limit: u64) -> Self {
        MeterRule {
            limit: Some(limit),
            window: WindowRule::Day,
        }
    }
}

/// One tier's meters. A meter that is absent is not metered.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Plan {
    pub meters: BTreeMap<Meter, MeterRule>,
}

impl Plan {
    /// The rule of `meter`, when the meter has a limit.
    pub fn rule(&self, meter: Meter) -> Option<MeterRule> {
        self.meters
            .get(&meter)
            .copied()
            .filter(|r| r.limit.is_some())
    }
}

/// A window of a meter: the key on its ledger stream and its bounds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// `2026-11-25` for a day, `2026-11-25T04Z+4h` for a 4-hour bucket.
    pub key: String,
    pub starts_at: DateTime<Utc>,
    pub resets_at: DateTime<Utc>,
}

/// Why a plans file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// Something a checkout sells: the pro subscription (`credits: 0`) or a pack of credits that
/// never expire, with its ids at the billing providers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Product {
    /// The name clients ask a checkout for (`pro`, `credits-100`).
    pub id: String,
    pub polar_product_id: Option<String>,
    pub stripe_price_id: Option<String>,
    /// Credits a paid order adds; 0 for the subscription.
    #[serde(default)]
    pub credits: u64,
}

/// Every tier's plan, the time zone their days are counted in, and what can be bought.
#[derive(Debug, Clone, PartialEq)]
pub struct Plans {
    pub time_zone: Tz,
    pub tiers: BTreeMap<Tier, Plan>,
    pub products: Vec<Product>,
}

/// The shape of a plans file (every part optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct PlansFile {
    time_zone: Option<String>,
    #[serde(default)]
    tiers: BTreeMap<Tier, BTreeMap<Meter, MeterRule>>,
    #[serde(default)]
    products: Vec<Product>,
}

impl Default for Plans {
    /// The defaults: anonymous 10 credits / 5 searches / no research a day, free 20 / 5 / 0, pro
    /// 200 / 50 / 5; no cost budget (Zeron's $0.25 / $1 / $10 a day are one line each in a
    /// plans file).
    fn default() -> Self {
        let plan = |credits, searches, research| Plan {
            meters: BTreeMap::from([
                (Meter::Credits, MeterRule::daily(credits)),
                (Meter::WebSearches, MeterRule::daily(searches)),
                (Meter::ResearchRuns, MeterRule::daily(research)),
            ]),
        };
        Plans {
            time_zone: Tz::UTC,
            tiers: BTreeMap::from([
                (Tier::Anonymous, plan(10, 5, 0)),
                (Tier::Free, plan(20, 5, 0)),
                (Tier::Pro, plan(200, 50, 5)),
            ]),
            products: Vec::new(),
        }
    }
}

impl Plans {
    /// Lays a parsed plans file (any serde format) over the defaults.
    pub fn with_overrides<'de, D: serde::Deserializer<'de>>(file: D) -> Result<Plans, PlanError> {
        let file = PlansFile::deserialize(file).map_err(|e| PlanError(e.to_string()))?;
        let mut plans = Plans::default();
        if let Some(zone) = file.time_zone {
            plans.time_zone = zone
                .parse()
                .map_err(|_| PlanError(format!("unknown time zone {zone:?} (use an IANA name)")))?;
        }
        plans.products = file.products;
        for (tier, meters) in file.tiers {
            let plan = plans.tiers.entry(tier).or_default();
            plan.meters.extend(meters);
        }
        Ok(plans)
    }

    /// The product a client names.
    pub fn product(&self, id: &str) -> Option<&Product> {
        self.products.iter().find(|p| p.id == id)
    }

    /// The product sold under a Polar product id.
    pub fn polar_product(&self, polar_id: &str) -> Option<&Product> {
        self.products
            .iter()
            .find(|p| p.polar_product_id.as_deref() == Some(polar_id))
    }

    /// The product sold under a Stripe price id.
    pub fn stripe_price(&self, price_id: &str) -> Option<&Product> {
        self.products
            .iter()
            .find(|p| p.stripe_price_id.as_deref() == Some(price_id))
    }

    /// The plan of `tier`.
    pub fn plan(&self, tier: Tier) -> Plan {
        self.tiers.get(&tier).cloned().unwrap_or_default()
    }

    /// The window of `rule` that `at` falls in.
    pub fn window(&self, rule: WindowRule, at: DateTime<Utc>) -> Window {
        match rule {
            WindowRule::Day => {
                let day = at.with_timezone(&self.time_zone).date_naive();
                let next = day.checked_add_days(Days::new(1)).unwrap_or(day);
                Window {
                    key: day.format("%Y-%m-%d").to_string(),
                    starts_at: self.midnight(day),
                    resets_at: self.midnight(next),
                }
            }
            WindowRule::Hours(hours) => {
                let length = i64::from(hours) * 3600;
                let start = at.timestamp().div_euclid(length) * length;
                let starts_at = DateTime::from_timestamp(start, 0).unwrap_or(at);
                let resets_at = DateTime::from_timestamp(start + length, 0).unwrap_or(at);
                Window {
                    key: format!("{}+{hours}h", starts_at.format("%Y-%m-%dT%HZ")),
                    starts_at,
                    resets_at,
                }
            }
        }
    }

    /// The first instant of `day` in the plans' time zone (a midnight skipped by a daylight
    /// saving change starts the day at the first valid local time after it).
    fn midnight(&self, day: NaiveDate) -> DateTime<Utc> {
        let mut local = day.and_time(NaiveTime::MIN);
        for _ in 0..4 {
            match self.time_zone.from_local_datetime(&local) {
                LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => {
                    return t.with_timezone(&Utc);
                }
                LocalResult::None => local += chrono::Duration::minutes(30),
            }
        }
        local.and_utc()
    }
}

/// The stream id of an account's window of a meter (`{account}:{meter}:{key}`).
pub fn window_id(account: &str, meter: &str, key: &str) -> String {
    format!("{account}:{meter}:{key}")
}

/// The key of purchased-credit book `n` (zero-padded so keys sort in book order).
pub fn book_key(n: u64) -> String {
    format!("{n:08}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn yaml(doc: &str) -> Result<Plans, PlanError> {
        let value: serde_json::Value = match doc.trim() {
            "" => serde_json::json!({}),
            doc => serde_json::from_str(doc).unwrap(),
        };
        Plans::with_overrides(value)
    }

    #[test]
    fn the_defaults_are_the_specs_numbers() {
        let plans = Plans::default();
        let limit = |tier, meter| plans.plan(tier).rule(meter).and_then(|r| r.limit);
        assert_eq!(limit(Tier::Anonymous, Meter::Credits), Some(10));
        assert_eq!(limit(Tier::Free, Meter::Credits), Some(20));
        assert_eq!(limit(Tier::Pro, Meter::Credits), Some(200));
        assert_eq!(limit(Tier::Free, Meter::WebSearches), Some(5));
        assert_eq!(limit(Tier::Pro, Meter::WebSearches), Some(50));
        assert_eq!(limit(Tier::Free, Meter::ResearchRuns), Some(0));
        assert_eq!(limit(Tier::Pro, Meter::ResearchRuns), Some(5));
        assert_eq!(limit(Tier::Pro, Meter::CostMicros), None);
    }

    #[test]
    fn a_file_overrides_only_what_it_names() {
        let plans = yaml(
            r#"{"time_zone": "Asia/Kolkata", "tiers": {"free": {
                "credits": {"limit": 50, "window": "4h"},
                "cost_micros": {"limit": 1000000, "window": "day"},
                "web_searches": {"limit": null, "window": "day"}}}}"#,
        )
        .unwrap();
        let free = plans.plan(Tier::Free);
        assert_eq!(
            free.rule(Meter::Credits),
            Some(MeterRule {
                limit: Some(50),
                window: WindowRule::Hours(4)
            })
        );
        assert_eq!(
            free.rule(Meter::CostMicros).and_then(|r| r.limit),
            Some(1_000_000)
        );
        assert_eq!(free.rule(Meter::WebSearches), None, "null means unmetered");
        assert_eq!(
            free.rule(Meter::ResearchRuns).and_then(|r| r.limit),
            Some(0)
        );
        assert_eq!(
            plans
                .plan(Tier::Pro)
                .rule(Meter::Credits)
                .and_then(|r| r.limit),
            Some(200)
        );
        assert_eq!(plans.time_zone, chrono_tz::Asia::Kolkata);
    }

    #[test]
    fn a_bad_file_is_refused_with_the_reason() {
        let err = yaml(r#"{"time_zone": "Mars/Olympus"}"#).unwrap_err();
        assert!(err.0.contains("Mars/Olympus"), "{err}");
        let err = yaml(r#"{"tiers": {"free": {"credits": {"limit": 1, "window": "weekly"}}}}"#)
            .unwrap_err();
        assert!(err.0.contains("weekly"), "{err}");
        let err = yaml(r#"{"tiers": {"gold": {}}}"#).unwrap_err();
        assert!(err.0.contains("gold"), "{err}");
        let err =
            yaml(r#"{"tiers": {"free": {"tokens": {"limit": 1, "window": "day"}}}}"#).unwrap_err();
        assert!(err.0.contains("tokens"), "{err}");
        assert!(yaml("").is_ok());
    }

    #[test]
    fn the_day_window_is_the_utc_date_and_resets_at_midnight() {
        let w = Plans::default().window(WindowRule::Day, at("2026-11-25T23:59:59Z"));
        assert_eq!(w.key, "2026-11-25");
        assert_eq!(w.starts_at, at("2026-11-25T00:00:00Z"));
        assert_eq!(w.resets_at, at("2026-11-26T00:00:00Z"));
    }

    #[test]
    fn the_day_follows_the_configured_time_zone() {
        let plans = Plans {
            time_zone: chrono_tz::America::New_York,
            ..Plans::default()
        };
        // 03:00 UTC on the 26th is still the 25th in New York (UTC-5 in November).
        let w = plans.window(WindowRule::Day, at("2026-11-26T03:00:00Z"));
        assert_eq!(w.key, "2026-11-25");
        assert_eq!(w.resets_at, at("2026-11-26T05:00:00Z"));
        // One second after local midnight is the next window.
        let next = plans.window(WindowRule::Day, at("2026-11-26T05:00:01Z"));
        assert_eq!(next.key, "2026-11-26");
        assert_eq!(next.starts_at, w.resets_at);
    }

    #[test]
    fn a_daylight_saving_day_is_23_or_25_hours_long() {
        let plans = Plans {
            time_zone: chrono_tz::Europe::Berlin,
            ..Plans::default()
        };
        let spring = plans.window(WindowRule::Day, at("2026-03-29T12:00:00Z"));
        assert_eq!(
            spring.resets_at - spring.starts_at,
            chrono::Duration::hours(23)
        );
        let autumn = plans.window(WindowRule::Day, at("2026-10-25T12:00:00Z"));
        assert_eq!(
            autumn.resets_at - autumn.starts_at,
            chrono::Duration::hours(25)
        );
    }

    #[test]
    fn a_midnight_skipped_by_daylight_saving_starts_the_day_after_the_gap() {
        // Santiago moves its clocks from 00:00 to 01:00 on the first Sunday of September.
        let plans = Plans {
            time_zone: chrono_tz::America::Santiago,
            ..Plans::default()
        };
        let w = plans.window(WindowRule::Day, at("2026-09-06T12:00:00Z"));
        assert_eq!(w.key, "2026-09-06");
        assert_eq!(
            w.starts_at,
            at("2026-09-06T04:00:00Z"),
            "01:00 local, UTC-3"
        );
    }

    #[test]
    fn an_hours_window_refills_on_its_boundary() {
        let plans = Plans::default();
        let w = plans.window(WindowRule::Hours(4), at("2026-11-25T07:59:59Z"));
        assert_eq!(w.key, "2026-11-25T04Z+4h");
        assert_eq!(w.starts_at, at("2026-11-25T04:00:00Z"));
        assert_eq!(w.resets_at, at("2026-11-25T08:00:00Z"));
        let next = plans.window(WindowRule::Hours(4), at("2026-11-25T08:00:00Z"));
        assert_eq!(next.key, "2026-11-25T08Z+4h");
    }

    #[test]
    fn window_rules_parse_and_print() {
        assert_eq!("day".parse(), Ok(WindowRule::Day));
        assert_eq!("4h".parse(), Ok(WindowRule::Hours(4)));
        assert!("0h".parse::<WindowRule>().is_err());
        assert!("h".parse::<WindowRule>().is_err());
        assert_eq!(WindowRule::Hours(12).to_string(), "12h");
    }
}
