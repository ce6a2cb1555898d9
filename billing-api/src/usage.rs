//! `GET /v1/usage`: attributed energy from the ledger's hourly rollups, over
//! a window, grouped and bucketed the way OpenCost's `/allocation` is:
//!
//! `?from=RFC3339&to=RFC3339&aggregate=tenant|host|vm|domain&step=1h|1d|window`
//!
//! Finance, ops and placement keys see every tenant; a tenant key sees only
//! its own VMs (the filter is applied in the query, whatever is asked).
//! The window is whole hours (the rollups' resolution), at most 400 days.
//! Energy is integer µJ, dynamic and idle shares apart, with kWh beside.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use fairwatt_core::Timestamp;

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::error::{ApiError, Result};

const HOUR_US: i64 = 3_600_000_000;
const MAX_WINDOW_US: i64 = 400 * 24 * HOUR_US;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub from: String,
    pub to: String,
    #[serde(default = "default_aggregate")]
    pub aggregate: String,
    #[serde(default = "default_step")]
    pub step: String,
}

fn default_aggregate() -> String {
    "tenant".into()
}
fn default_step() -> String {
    "window".into()
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
pub struct UsageRow {
    pub start: String,
    pub key: String,
    pub dynamic_uj: i64,
    pub idle_uj: i64,
    pub energy_uj: i64,
    pub kwh: f64,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Usage {
    pub from: String,
    pub to: String,
    pub aggregate: String,
    pub step: String,
    pub rows: Vec<UsageRow>,
}

fn parse_time(name: &str, s: &str) -> Result<i64> {
    let t: Timestamp = s.parse().map_err(|e| ApiError::BadRequest(format!("{name}: {e}")))?;
    Ok(t.as_micros())
}

pub async fn handler(req: HttpRequest, state: web::Data<AppState>, q: web::Query<UsageQuery>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance, Role::Ops, Role::Placement])?;
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if from % HOUR_US != 0 || to % HOUR_US != 0 {
        return Err(ApiError::BadRequest("from and to must be whole hours (the ledger's rollups are hourly)".into()));
    }
    if to <= from || to - from > MAX_WINDOW_US {
        return Err(ApiError::BadRequest("the window must be positive and at most 400 days".into()));
    }
    // Column names come from this fixed list, never from the request.
    let column = match q.aggregate.as_str() {
        "tenant" => "tenant",
        "host" => "host",
        "vm" => "vm",
        "domain" => "domain",
        other => return Err(ApiError::BadRequest(format!("aggregate {other:?}: expected tenant, host, vm or domain"))),
    };
    let step_us = match q.step.as_str() {
        "1h" => HOUR_US,
        "1d" => 24 * HOUR_US,
        "window" => to - from,
        other => return Err(ApiError::BadRequest(format!("step {other:?}: expected 1h, 1d or window"))),
    };
    let tenant = match who.role {
        Role::Tenant => Some(who.tenant.clone().ok_or_else(|| ApiError::Forbidden("a tenant key without a tenant".into()))?),
        _ => None,
    };
    let sql = format!(
        "SELECT CAST($1 + ((hour_us - $1) / $2) * $2 AS BIGINT) AS bucket, {column}, CAST(SUM(dynamic_uj) AS BIGINT), CAST(SUM(idle_uj) AS BIGINT) \
         FROM usage_hourly WHERE hour_us >= $1 AND hour_us < $3 AND ($4 = '' OR tenant = $4) GROUP BY bucket, {column} ORDER BY bucket, {column}"
    );
    let rows: Vec<(i64, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(step_us)
        .bind(to)
        .bind(tenant.unwrap_or_default())
        .fetch_all(&state.db.pool)
        .await?;
    let rows = rows
        .into_iter()
        .map(|(bucket, key, dynamic_uj, idle_uj)| UsageRow {
            start: Timestamp::from_micros(bucket).map_or_else(|| bucket.to_string(), |t| t.to_string()),
            key,
            dynamic_uj,
            idle_uj,
            energy_uj: dynamic_uj + idle_uj,
            kwh: (dynamic_uj + idle_uj) as f64 / 3.6e12,
        })
        .collect();
    Ok(HttpResponse::Ok().json(Usage { from: q.from.clone(), to: q.to.clone(), aggregate: q.aggregate.clone(), step: q.step.clone(), rows }))
}
