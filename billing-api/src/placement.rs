//! `GET /v1/placement/power?from&to` (placement, ops): mean power per host
//! (measured) and per VM (attributed, dynamic and idle share) over a window
//! of whole hours, from the ledger: what the placement engine reads as the
//! energy cost of where VMs run now.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::error::{ApiError, Result};
use crate::params::{HOUR_US, parse_time};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PowerQuery {
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct VmPower {
    pub vm: String,
    pub tenant: String,
    pub dynamic_w: f64,
    pub idle_w: f64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct HostPower {
    pub host: String,
    pub region: String,
    /// Measured energy of the top-level domains over the window, as mean watts.
    pub measured_w: f64,
    /// The host's idle power (the part of measured not caused by VMs).
    pub idle_w: f64,
    pub vms: Vec<VmPower>,
}

pub async fn power(req: HttpRequest, state: web::Data<AppState>, q: web::Query<PowerQuery>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Placement, Role::Ops])?;
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if from % HOUR_US != 0 || to % HOUR_US != 0 || to <= from || to - from > 31 * 24 * HOUR_US {
        return Err(ApiError::BadRequest("from and to must be whole hours, the window positive and at most 31 days".into()));
    }
    let secs = (to - from) as f64 / 1e6;
    let watts = |uj: i64| uj as f64 / 1e6 / secs;
    let top = "(d.domain LIKE 'package-%' OR d.domain LIKE 'dram-%' OR d.domain LIKE 'gpu-%')";
    let hosts: Vec<(String, String, i64, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT h.id, h.region, CAST(COALESCE(SUM(d.measured_uj), 0) AS BIGINT), CAST(COALESCE(SUM(d.idle_uj), 0) AS BIGINT) FROM hosts h \
         LEFT JOIN intervals i ON i.host = h.id AND i.start_us >= $1 AND i.start_us < $2 LEFT JOIN ledger_domains d ON d.host = i.host AND d.seq = i.seq AND {top} \
         GROUP BY h.id, h.region ORDER BY h.id"
    )))
    .bind(from)
    .bind(to)
    .fetch_all(&state.db.pool)
    .await?;
    let vms: Vec<(String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT host, vm, tenant, CAST(SUM(dynamic_uj) AS BIGINT), CAST(SUM(idle_uj) AS BIGINT) FROM usage_hourly WHERE hour_us >= $1 AND hour_us < $2 AND top_level = 1 \
         GROUP BY host, vm, tenant ORDER BY host, vm",
    )
    .bind(from)
    .bind(to)
    .fetch_all(&state.db.pool)
    .await?;
    let mut per: BTreeMap<String, Vec<VmPower>> = BTreeMap::new();
    for (host, vm, tenant, dy, idle) in vms {
        per.entry(host).or_default().push(VmPower { vm, tenant, dynamic_w: watts(dy), idle_w: watts(idle) });
    }
    let out: Vec<HostPower> = hosts
        .into_iter()
        .map(|(host, region, measured, idle)| HostPower { vms: per.remove(&host).unwrap_or_default(), host, region, measured_w: watts(measured), idle_w: watts(idle) })
        .collect();
    Ok(HttpResponse::Ok().json(out))
}
