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
use crate::params::{DAY_US, HOUR_US, parse_time};

const MAX_WINDOW_US: i64 = 400 * 24 * HOUR_US;
/// Rows in one answer at most; a larger step or window split is asked for beyond it.
pub const MAX_ROWS: usize = 100_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageQuery {
    #[serde(default)]
    pub from: Option<String>,
    #[serde(default)]
    pub to: Option<String>,
    /// OpenCost's form instead of from/to: `24h`, `7d`, `today`,
    /// `yesterday`, `month`, `lastmonth`, or `START,END` (RFC 3339).
    #[serde(default)]
    pub window: Option<String>,
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
    let (from, to) = window(&q, crate::db::now_us())?;
    let key = format!("{}|{from}|{to}|{}|{}|{}", who.scope().unwrap_or("*"), q.aggregate, q.step, q.cost);
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

/// The query's window as `[from, to)` in µs: from/to, or OpenCost's
/// `window` relative to `now` (ending at the end of the current hour).
pub fn window(q: &UsageQuery, now: i64) -> Result<(i64, i64)> {
    let end_of_hour = (now.div_euclid(HOUR_US) + 1) * HOUR_US;
    let today = now.div_euclid(DAY_US) * DAY_US;
    let month = |us: i64| crate::params::parse_period(&crate::params::format_time(us)[..7]);
    match (&q.window, &q.from, &q.to) {
        (Some(_), Some(_), _) | (Some(_), _, Some(_)) => Err(ApiError::BadRequest("give either window or from and to".into())),
        (None, Some(f), Some(t)) => Ok((parse_time("from", f)?, parse_time("to", t)?)),
        (None, _, _) => Err(ApiError::BadRequest("from and to (RFC 3339), or window, are required".into())),
        (Some(w), None, None) => {
            let bad = || ApiError::BadRequest(format!("window {w:?}: expected 24h, 7d, today, yesterday, month, lastmonth or START,END"));
            match w.as_str() {
                "today" => Ok((today, end_of_hour)),
                "yesterday" => Ok((today - DAY_US, today)),
                "month" => Ok((month(now)?.0, end_of_hour)),
                "lastmonth" => {
                    let (this, _) = month(now)?;
                    Ok((month(this - DAY_US)?.0, this))
                }
                _ if w.contains(',') => {
                    let (a, b) = w.split_once(',').ok_or_else(bad)?;
                    Ok((parse_time("window start", a)?, parse_time("window end", b)?))
                }
                _ => {
                    let (n, unit) = w.split_at(w.len().saturating_sub(1));
                    let n: i64 = n.parse().map_err(|_| bad())?;
                    let span = match unit {
                        "h" => HOUR_US,
                        "d" => DAY_US,
                        _ => return Err(bad()),
                    };
                    if n <= 0 {
                        return Err(bad());
                    }
                    Ok((end_of_hour - n.saturating_mul(span), end_of_hour))
                }
            }
        }
    }
}

async fn answer(state: &AppState, who: &crate::auth::Principal, q: &UsageQuery) -> Result<web::Bytes> {
    let (from, to) = window(q, crate::db::now_us())?;
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
    let out = Usage { from: crate::params::format_time(from), to: crate::params::format_time(to), aggregate: q.aggregate.clone(), step: q.step.clone(), rows };
    serde_json::to_vec(&out).map(web::Bytes::from).map_err(|e| ApiError::Database(format!("encoding usage: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(spec: &str) -> Result<(i64, i64)> {
        let q = UsageQuery { from: None, to: None, window: Some(spec.into()), aggregate: default_aggregate(), step: default_step(), cost: false };
        // 2026-12-15T10:20:00Z
        window(&q, crate::params::parse_time("t", "2026-12-15T10:20:00Z").unwrap())
    }

    #[test]
    fn opencost_windows_resolve_to_whole_hours() {
        let t = |s: &str| crate::params::parse_time("t", s).unwrap();
        assert_eq!(w("24h").unwrap(), (t("2026-12-14T11:00:00Z"), t("2026-12-15T11:00:00Z")));
        assert_eq!(w("7d").unwrap(), (t("2026-12-08T11:00:00Z"), t("2026-12-15T11:00:00Z")));
        assert_eq!(w("today").unwrap(), (t("2026-12-15T00:00:00Z"), t("2026-12-15T11:00:00Z")));
        assert_eq!(w("yesterday").unwrap(), (t("2026-12-14T00:00:00Z"), t("2026-12-15T00:00:00Z")));
        assert_eq!(w("month").unwrap(), (t("2026-12-01T00:00:00Z"), t("2026-12-15T11:00:00Z")));
        assert_eq!(w("lastmonth").unwrap(), (t("2026-11-01T00:00:00Z"), t("2026-12-01T00:00:00Z")));
        assert_eq!(w("2026-11-03T00:00:00Z,2026-11-04T00:00:00Z").unwrap(), (t("2026-11-03T00:00:00Z"), t("2026-11-04T00:00:00Z")));
        for bad in ["0d", "-3h", "7w", "d", "soon"] {
            assert!(w(bad).is_err(), "{bad}");
        }
        let both = UsageQuery { from: Some("2026-11-03T00:00:00Z".into()), to: None, window: Some("7d".into()), aggregate: default_aggregate(), step: default_step(), cost: false };
        assert!(window(&both, 0).is_err());
    }
}
