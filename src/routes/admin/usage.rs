//! `GET /v1/admin/usage?from&to&group_by&format`: usage totals from the facts projection, as
//! JSON or CSV.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use serde::Deserialize;

use super::require_admin;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::reports::{self, UsageQuery};
use crate::state::AppState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    pub from: Option<String>,
    pub to: Option<String>,
    /// Comma-separated: `day`, `model`, `provider`, `tier`, `account`.
    pub group_by: Option<String>,
    /// `json` (default) or `csv`.
    pub format: Option<String>,
}

pub async fn handle(
    state: web::Data<AppState>,
    caller: Caller,
    params: web::Query<Params>,
) -> Result<HttpResponse, ApiError> {
    require_admin(&state, &caller)?;
    let query = UsageQuery::parse(
        params.from.as_deref(),
        params.to.as_deref(),
        params.group_by.as_deref(),
    )?;
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(_) => return Err(ApiError::invalid_field("format", "`json` or `csv`")),
    };
    let report = reports::usage(&state.db, &query).await?;
    Ok(if csv {
        HttpResponse::Ok()
            .insert_header((header::CONTENT_TYPE, "text/csv; charset=utf-8"))
            .insert_header((
                header::CONTENT_DISPOSITION,
                format!(
                    "attachment; filename=\"usage-{}-{}.csv\"",
                    report.from, report.to
                ),
            ))
            .body(report.to_csv())
    } else {
        HttpResponse::Ok().json(report)
    })
}
