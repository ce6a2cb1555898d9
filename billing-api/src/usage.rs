//! `GET /v1/usage`: attributed energy (and, when asked, its cost) from the
//! ledger's rollups, over a window, grouped and bucketed the way OpenCost's
//! `/allocation` is:
//!
//! `?from=RFC3339&to=RFC3339&aggregate=tenant|region|host|vm|domain&step=1h|1d|window[&cost=true]`
//!
//! Finance, ops and placement keys see every tenant; a tenant key sees only
//! its own VMs (the filter is applied in the query, whatever is asked).
//! The window is whole hours (the rollups' resolution), at most 400 days;
//! a window of whole days with a step of a day or more reads the daily
//! rollups (24× fewer rows). Energy is integer µJ, dynamic and idle shares
//! apart, with kWh beside; sums other than per domain count only top-level
//! domains (package, DRAM, GPU), which contain the others. Cost is priced
//! per hour with each region's tariff (time of use included), per currency.
//!
//! Answers are cached per caller scope and query until the store's ledger
//! generation moves (every ledger, host or tariff write bumps it in its
//! transaction), so a dashboard's repeated query costs two indexed reads.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};


use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::error::{ApiError, Result};
use crate::money::{RegionTariffs, UJ_PER_KWH, format_minor, minor_exponent, to_minor};
use crate::params::{DAY_US, HOUR_US};

const MAX_WINDOW_US: i64 = 400 * 24 * HOUR_US;
/// Rows in one answer at most; a larger step or window split is asked for beyond it.
pub const MAX_ROWS: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    pub from: String,
    pub to: String,
    #[serde(default = "default_aggregate")]
    pub aggregate: String,
    #[serde(default = "default_step")]
    pub step: String,
    #[serde(default)]
    pub cost: bool,
}

fn default_aggregate() -> String {
    "tenant".into()
}
fn default_step() -> String {
    "window".into()
}

#[derive(Debug, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct UsageRow {
    pub start: String,
    pub key: String,
    pub dynamic_uj: i64,
    pub idle_uj: i64,
    pub energy_uj: i64,
    pub kwh: f64,
    /// Per currency, when `cost=true`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub cost: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Usage {
    pub from: String,
    pub to: String,
    pub aggregate: String,
    pub step: String,
    pub rows: Vec<UsageRow>,
}

fn parse_time(name: &str, s: &str) -> Result<i64> {
    crate::params::parse_time(name, s)
}

/// Serialized answers by scope and query, with the generation they were made at.
#[derive(Default)]
pub struct Cache(std::sync::Mutex<std::collections::HashMap<String, (i64, web::Bytes)>>);

const CACHE_ENTRIES: usize = 4096;

pub async fn handler(req: HttpRequest, state: web::Data<AppState>, q: web::Query<UsageQuery>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance, Role::Ops, Role::Placement])?;
    let Some(cache) = &state.usage_cache else {
        return Ok(HttpResponse::Ok().content_type("application/json").body(answer(&state, &who, &q).await?));
    };
    let key = format!("{}|{}|{}|{}|{}|{}", who.scope().unwrap_or("*"), q.from, q.to, q.aggregate, q.step, q.cost);
    let generation = crate::db::generation(&state.db.pool).await?;
    let hit = cache.0.lock().ok().and_then(|c| c.get(&key).filter(|(g, _)| *g == generation).map(|(_, b)| b.clone()));
    if let Some(body) = hit {
        return Ok(HttpResponse::Ok().content_type("application/json").insert_header(("X-Cache", "hit")).body(body));
    }
    let body = answer(&state, &who, &q).await?;
    if let Ok(mut c) = cache.0.lock() {
        if c.len() >= CACHE_ENTRIES {
            c.clear();
        }
        c.insert(key, (generation, body.clone()));
    }
    Ok(HttpResponse::Ok().content_type("application/json").body(body))
}

async fn answer(state: &AppState, who: &crate::auth::Principal, q: &UsageQuery) -> Result<web::Bytes> {
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if from % HOUR_US != 0 || to % HOUR_US != 0 {
        return Err(ApiError::BadRequest("from and to must be whole hours (the ledger's rollups are hourly)".into()));
    }
    if to <= from || to - from > MAX_WINDOW_US {
        return Err(ApiError::BadRequest("the window must be positive and at most 400 days".into()));
    }
    // Column names come from this fixed list, never from the request.
    let (column, top) = match q.aggregate.as_str() {
        "tenant" => ("u.tenant", true),
        "region" => ("h.region", true),
        "host" => ("u.host", true),
        "vm" => ("u.vm", true),
        "domain" => ("u.domain", false),
        other => return Err(ApiError::BadRequest(format!("aggregate {other:?}: expected tenant, region, host, vm or domain"))),
    };
    let step_us = match q.step.as_str() {
        "1h" => HOUR_US,
        "1d" => DAY_US,
        "window" => to - from,
        other => return Err(ApiError::BadRequest(format!("step {other:?}: expected 1h, 1d or window"))),
    };
    let tenant = match who.role {
        Role::Tenant => Some(who.tenant.clone().ok_or_else(|| ApiError::Forbidden("a tenant key without a tenant".into()))?),
        _ => None,
    };
    let daily = state.daily_rollups && !q.cost && step_us % DAY_US == 0 && from % DAY_US == 0 && to % DAY_US == 0;
    let (table, time) = if daily { ("usage_daily", "day_us") } else { ("usage_hourly", "hour_us") };
    let join = if column == "h.region" || q.cost { "JOIN hosts h ON h.id = u.host" } else { "" };
    let top = if top { "AND u.top_level = 1" } else { "" };
    // Written out only when scoped: `($4 = '' OR tenant = $4)` would keep the
    // planner off the (tenant, time) index and scan every tenant's rows.
    let scope = if tenant.is_some() { "AND u.tenant = $4" } else { "" };
    // With cost, rows stay per hour and region so each hour is priced by its tariff.
    let (extra, extra_group) = if q.cost { (", h.region, u.hour_us", ", h.region, u.hour_us") } else { (", '', CAST(0 AS BIGINT)", "") };
    let sql = format!(
        "SELECT CAST($1 + ((u.{time} - $1) / $2) * $2 AS BIGINT) AS bucket, {column}, CAST(SUM(u.dynamic_uj) AS BIGINT), CAST(SUM(u.idle_uj) AS BIGINT){extra} \
         FROM {table} u {join} WHERE u.{time} >= $1 AND u.{time} < $3 {scope} {top} GROUP BY bucket, {column}{extra_group} ORDER BY bucket, {column}"
    );
    let raw = sqlx::query_as(sqlx::AssertSqlSafe(sql))
        .bind(from)
        .bind(step_us)
        .bind(to);
    let raw = match &tenant {
        Some(t) => raw.bind(t.clone()),
        None => raw,
    };
    let raw: Vec<(i64, String, i64, i64, String, i64)> = raw.fetch_all(&state.db.pool)
        .await?;
    let mut rows: Vec<UsageRow> = Vec::new();
    let mut costs: Vec<std::collections::BTreeMap<String, rust_decimal::Decimal>> = Vec::new();
    let mut tariffs: std::collections::HashMap<String, RegionTariffs> = std::collections::HashMap::new();
    let mut last: Option<(i64, String)> = None;
    for (bucket, key, dynamic_uj, idle_uj, region, hour) in raw {
        // Rows come ordered by bucket and key; with cost, several per pair.
        if last.as_ref().is_none_or(|(b, k)| *b != bucket || *k != key) {
            rows.push(UsageRow { start: crate::params::format_time(bucket), key: key.clone(), dynamic_uj: 0, idle_uj: 0, energy_uj: 0, kwh: 0.0, cost: Default::default() });
            costs.push(Default::default());
            last = Some((bucket, key));
        }
        let r = rows.last_mut().expect("pushed above");
        r.dynamic_uj += dynamic_uj;
        r.idle_uj += idle_uj;
        if q.cost {
            if !tariffs.contains_key(&region) {
                tariffs.insert(region.clone(), RegionTariffs::load(&state.db, &region, from, to).await?);
            }
            if let Some(t) = tariffs[&region].at(hour) {
                *costs.last_mut().expect("pushed above").entry(t.currency.clone()).or_default() += rust_decimal::Decimal::from(dynamic_uj + idle_uj) * t.at(hour);
            }
        }
    }
    if rows.len() > MAX_ROWS {
        return Err(ApiError::BadRequest(format!("{} rows; at most {MAX_ROWS} in one answer: ask for a larger step or a shorter window", rows.len())));
    }
    for (r, c) in rows.iter_mut().zip(costs) {
        r.energy_uj = r.dynamic_uj + r.idle_uj;
        r.kwh = r.energy_uj as f64 / 3.6e12;
        for (cur, amount) in c {
            let exp = minor_exponent(&cur)?;
            r.cost.insert(cur, format_minor(to_minor(amount / rust_decimal::Decimal::from(UJ_PER_KWH), exp)?, exp));
        }
    }
    let out = Usage { from: q.from.clone(), to: q.to.clone(), aggregate: q.aggregate.clone(), step: q.step.clone(), rows };
    serde_json::to_vec(&out).map(web::Bytes::from).map_err(|e| ApiError::Database(format!("encoding usage: {e}")))
}
