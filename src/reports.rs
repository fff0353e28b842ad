//! Admin reports from projections, shared by the HTTP API and the CLI: usage totals grouped by
//! day, model, provider, tier and account ([`usage`]), and an account's ledger statement with a
//! running balance per window and book ([`statement`]).

use std::collections::HashMap;
use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;
use threadline_projections::facts::{self, DIMENSIONS, ReportRow};
use threadline_projections::{Db, rfc3339, usage};

use crate::error::ApiError;

/// A checked usage query.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageQuery {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub group_by: Vec<String>,
}

impl UsageQuery {
    /// Checks the raw parameters: dates as `YYYY-MM-DD` (default: the last 30 days up to
    /// today, UTC), `from` not after `to`, and `group_by` a comma list of known dimensions.
    pub fn parse(
        from: Option<&str>,
        to: Option<&str>,
        group_by: Option<&str>,
    ) -> Result<Self, ApiError> {
        let date = |field: &str, value: &str| {
            NaiveDate::parse_from_str(value, "%Y-%m-%d")
                .map_err(|_| ApiError::invalid_field(field, "expected a date as YYYY-MM-DD"))
        };
        let today = chrono::Utc::now().date_naive();
        let to = to.map_or(Ok(today), |v| date("to", v))?;
        let from = match from {
            Some(v) => date("from", v)?,
            None => to - chrono::Duration::days(29),
        };
        if from > to {
            return Err(ApiError::invalid_field("from", "must not be after `to`"));
        }
        let mut dims = Vec::new();
        for d in group_by
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
        {
            if !DIMENSIONS.contains(&d) {
                return Err(ApiError::invalid_field(
                    "group_by",
                    format!("unknown dimension {d:?} (use {})", DIMENSIONS.join(", ")),
                ));
            }
            if !dims.iter().any(|x| x == d) {
                dims.push(d.to_owned());
            }
        }
        Ok(Self {
            from,
            to,
            group_by: dims,
        })
    }
}

/// A usage report: its query and one row per group (one row of totals when not grouped).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    pub group_by: Vec<String>,
    pub rows: Vec<UsageRow>,
}

/// One group's totals; `group` maps each grouped dimension to its value.
pub type UsageRow = ReportRow;

/// Runs a usage report over the facts projection.
pub async fn usage(db: &Db, query: &UsageQuery) -> Result<UsageReport, ApiError> {
    let from = query.from.format("%Y-%m-%d").to_string();
    let to = query.to.format("%Y-%m-%d").to_string();
    let rows = facts::report(db, &from, &to, &query.group_by).await?;
    Ok(UsageReport {
        from,
        to,
        group_by: query.group_by.clone(),
        rows,
    })
}

const TOTALS: [&str; 7] = [
    "messages",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "credits",
    "cost_micros",
];

/// The header and cells of a grouped report: the grouped dimensions, the usage totals, then
/// `extra` columns with each row's `extra` values.
pub(crate) fn report_cells<'a>(
    group_by: &[String],
    extra: &[&str],
    rows: impl Iterator<Item = (&'a ReportRow, Vec<i64>)>,
) -> (Vec<String>, Vec<Vec<String>>) {
    let header = group_by
        .iter()
        .cloned()
        .chain(TOTALS.iter().chain(extra).map(|t| (*t).to_owned()))
        .collect();
    let rows = rows
        .map(|(r, more)| {
            let mut cells: Vec<String> = group_by
                .iter()
                .map(|d| r.group.get(d).cloned().unwrap_or_default())
                .collect();
            let totals = [
                r.messages,
                r.input_tokens,
                r.output_tokens,
                r.reasoning_tokens,
                r.cached_tokens,
                r.credits,
                r.cost_micros,
            ];
            cells.extend(totals.into_iter().chain(more).map(|n| n.to_string()));
            cells
        })
        .collect();
    (header, rows)
}

impl UsageReport {
    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        report_cells(&self.group_by, &[], self.rows.iter().map(|r| (r, vec![])))
    }

    /// RFC 4180 CSV with a header row.
    pub fn to_csv(&self) -> String {
        let (header, rows) = self.cells();
        csv(&header, &rows)
    }

    /// An aligned text table for terminals.
    pub fn to_table(&self) -> String {
        let (header, rows) = self.cells();
        table(&header, &rows)
    }
}

pub(crate) fn csv(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let line: Vec<String> = row.iter().map(|c| csv_cell(c)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

fn csv_cell(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

pub(crate) fn table(header: &[String], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// An account's ledger statement: every movement, oldest first, with running totals.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statement {
    pub account_id: String,
    pub lines: Vec<StatementLine>,
}

/// One movement and where its window or book stands after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatementLine {
    pub position: i64,
    pub at: String,
    pub meter: String,
    pub window_key: String,
    pub kind: String,
    pub amount: i64,
    /// The reply, order, grant, or other account the movement concerns.
    pub reference: String,
    /// Settled plus reserved use of the window (or book) after this line.
    pub used: i64,
    /// What is left after this line: the window's limit minus `used`, or for a purchased
    /// book what was added minus `used`.
    pub balance: i64,
}

/// The statement of `account` from the ledger projection.
pub async fn statement(db: &Db, account: &str) -> Result<Statement, ApiError> {
    let lines = usage::all_lines_of(db, account).await?;
    let quotas = usage::windows_of(db, account).await?;
    let mut running: HashMap<String, Running> = HashMap::new();
    let lines = lines
        .into_iter()
        .map(|l| {
            let key = format!("{}:{}", l.meter, l.window_key);
            let quota = quotas.get(&key).copied().unwrap_or(0);
            let r = running.entry(key).or_default();
            r.apply(&l.kind, &l.generation_id, l.amount);
            let balance = if l.meter == threadline_domain::plans::PURCHASED {
                r.granted - r.used()
            } else {
                (quota - r.used()).max(0)
            };
            StatementLine {
                position: l.position,
                at: rfc3339(l.at),
                used: r.used(),
                balance,
                meter: l.meter,
                window_key: l.window_key,
                kind: l.kind,
                amount: l.amount,
                reference: l.generation_id,
            }
        })
        .collect();
    Ok(Statement {
        account_id: account.to_owned(),
        lines,
    })
}

/// A window's totals while a statement is read.
#[derive(Default)]
struct Running {
    settled: i64,
    granted: i64,
    open: HashMap<String, i64>,
}

impl Running {
    fn used(&self) -> i64 {
        self.settled + self.open.values().sum::<i64>()
    }

    /// The same arithmetic as the usage projection's fold.
    fn apply(&mut self, kind: &str, reference: &str, amount: i64) {
        match kind {
            "reserved" => {
                self.open.insert(reference.to_owned(), amount);
            }
            "settled" => {
                self.open.remove(reference);
                self.settled += amount;
            }
            "released" => {
                self.open.remove(reference);
            }
            "carried" => self.settled += amount,
            "added" | "book_opened" => self.granted += amount,
            "moved_out" => self.granted -= amount,
            _ => {}
        }
    }
}

impl Statement {
    /// An aligned text table for terminals.
    pub fn to_table(&self) -> String {
        let (header, rows) = self.cells();
        table(&header, &rows)
    }

    /// RFC 4180 CSV with a header row.
    pub fn to_csv(&self) -> String {
        let (header, rows) = self.cells();
        csv(&header, &rows)
    }

    fn cells(&self) -> (Vec<String>, Vec<Vec<String>>) {
        let header: Vec<String> = [
            "at",
            "meter",
            "window",
            "kind",
            "amount",
            "used",
            "balance",
            "reference",
        ]
        .map(str::to_owned)
        .to_vec();
        let rows: Vec<Vec<String>> = self
            .lines
            .iter()
            .map(|l| {
                vec![
                    l.at.clone(),
                    l.meter.clone(),
                    l.window_key.clone(),
                    l.kind.clone(),
                    l.amount.to_string(),
                    l.used.to_string(),
                    l.balance.to_string(),
                    l.reference.clone(),
                ]
            })
            .collect();
        (header, rows)
    }
}

/// An error as one line for the command line (a validation error names its fields).
pub fn describe(error: &ApiError) -> String {
    match error {
        ApiError::Validation(fields) => fields
            .iter()
            .map(|(field, problems)| format!("{field}: {}", problems.join("; ")))
            .collect::<Vec<_>>()
            .join(", "),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_checks_its_dates_and_dimensions() {
        let q = UsageQuery::parse(
            Some("2026-11-01"),
            Some("2026-11-30"),
            Some("day, model,day"),
        )
        .unwrap();
        assert_eq!(q.group_by, ["day", "model"]);
        assert!(UsageQuery::parse(Some("2026-12-01"), Some("2026-11-30"), None).is_err());
        assert!(UsageQuery::parse(Some("yesterday"), None, None).is_err());
        assert!(UsageQuery::parse(None, None, Some("colour")).is_err());
        let default = UsageQuery::parse(None, None, None).unwrap();
        assert_eq!((default.to - default.from).num_days(), 29);
    }

    #[test]
    fn csv_quotes_what_needs_quoting() {
        let report = UsageReport {
            from: "a".into(),
            to: "b".into(),
            group_by: vec!["model".into()],
            rows: vec![UsageRow {
                group: std::collections::BTreeMap::from([("model".into(), "a,\"b\"".into())]),
                messages: 1,
                input_tokens: 2,
                output_tokens: 3,
                reasoning_tokens: 4,
                cached_tokens: 5,
                credits: 6,
                cost_micros: 7,
            }],
        };
        assert_eq!(
            report.to_csv(),
            "model,messages,input_tokens,output_tokens,reasoning_tokens,cached_tokens,credits,cost_micros\r\n\
             \"a,\"\"b\"\"\",1,2,3,4,5,6,7\r\n"
        );
        assert!(report.to_table().starts_with("model"));
    }

    #[test]
    fn running_totals_follow_the_projections_arithmetic() {
        let mut r = Running::default();
        r.apply("added", "order", 10);
        r.apply("reserved", "g1", 3);
        assert_eq!((r.used(), r.granted - r.used()), (3, 7));
        r.apply("settled", "g1", 2);
        r.apply("reserved", "g2", 4);
        r.apply("released", "g2", 4);
        assert_eq!((r.used(), r.granted - r.used()), (2, 8));
        r.apply("moved_out", "acc", 8);
        assert_eq!(r.granted - r.used(), 0);
    }
}
