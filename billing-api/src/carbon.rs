//! Carbon: grid intensity per region as a time series, tenants' contractual
//! instruments, and the import of intensity files.
//!
//! - [`import_file`] (`fairwatt carbon import FILE`) loads an intensity CSV
//!   ([`crate::carbon_csv`] detects the shape: Ember, Electricity Maps yearly
//!   or hourly, the combined co2.js file, Cloud Carbon Footprint, fairwatt's
//!   own hourly) all or nothing; a re-import of a row replaces it.
//! - [`Series::at`] gives the intensity of an hour: the hourly value where
//!   there is one, else the year's, else the latest earlier year's, else an
//!   undated factor; each answer names its source, stamped on invoices.
//! - `POST /v1/tenants/{id}/instruments` (finance): certificates and PPAs
//!   for market-based carbon; `GET /v1/carbon/intensity` reads the series.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::carbon_csv::{self, Granularity};
use crate::db::{Db, now_us};
use crate::error::{ApiError, Result};
use crate::params::{HOUR_US, check_id, format_time, json_body, parse_time};

/// What an import did.
#[derive(Debug, Serialize)]
pub struct Imported {
    pub format: String,
    pub rows: usize,
    pub skipped: usize,
    pub regions: usize,
}

fn granularity_name(g: Granularity) -> &'static str {
    match g {
        Granularity::Hourly => "hourly",
        Granularity::Yearly => "yearly",
        Granularity::Constant => "constant",
    }
}

/// Imports one intensity file in one transaction.
pub async fn import_file(db: &Db, path: &std::path::Path) -> Result<Imported> {
    let text = std::fs::read_to_string(path).map_err(|e| ApiError::BadRequest(format!("{}: {e}", path.display())))?;
    let parsed = carbon_csv::parse(&text).map_err(|errs| {
        let list: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        ApiError::BadRequest(format!("{}: nothing imported; {} problem(s):\n  {}", path.display(), list.len(), list.join("\n  ")))
    })?;
    let mut tx = db.begin_write().await?;
    let (import_id,): (i64,) = sqlx::query_as("INSERT INTO carbon_imports (file, format, rows_imported, imported_us) VALUES ($1, $2, $3, $4) RETURNING id")
        .bind(path.display().to_string())
        .bind(format!("{:?}", parsed.format))
        .bind(parsed.rows.len() as i64)
        .bind(now_us())
        .fetch_one(&mut *tx)
        .await?;
    let mut regions = std::collections::BTreeSet::new();
    for r in &parsed.rows {
        regions.insert(r.region.as_str());
        sqlx::query(
            "INSERT INTO grid_intensity (region, granularity, start_us, end_us, mg_per_kwh, source, import_id) VALUES ($1, $2, $3, $4, $5, $6, $7) \
             ON CONFLICT (region, granularity, start_us) DO UPDATE SET end_us = excluded.end_us, mg_per_kwh = excluded.mg_per_kwh, source = excluded.source, import_id = excluded.import_id",
        )
        .bind(&r.region)
        .bind(granularity_name(r.granularity))
        .bind(r.start_us)
        .bind(r.end_us)
        .bind(r.mg_per_kwh)
        .bind(&r.source)
        .bind(import_id)
        .execute(&mut *tx)
        .await?;
    }
    tx.commit().await?;
    Ok(Imported { format: format!("{:?}", parsed.format), rows: parsed.rows.len(), skipped: parsed.skipped.len(), regions: regions.len() })
}

/// One region's intensity over a window, loaded once and read per hour.
#[derive(Clone, Debug, Default)]
pub struct Series {
    hourly: BTreeMap<i64, (i64, usize)>,
    /// Yearly and undated factors: (start, end, mg/kWh, source index).
    coarse: Vec<(i64, i64, i64, usize)>,
    sources: Vec<String>,
}

impl Series {
    pub async fn load(db: &Db, region: &str, from: i64, to: i64) -> Result<Series> {
        let hourly: Vec<(i64, i64, String)> =
            sqlx::query_as("SELECT start_us, mg_per_kwh, source FROM grid_intensity WHERE region = $1 AND granularity = 'hourly' AND start_us >= $2 AND start_us < $3")
                .bind(region)
                .bind(from)
                .bind(to)
                .fetch_all(&db.pool)
                .await?;
        let coarse: Vec<(i64, i64, i64, String)> = sqlx::query_as(
            "SELECT start_us, end_us, mg_per_kwh, source FROM grid_intensity WHERE region = $1 AND granularity <> 'hourly' AND start_us < $2 ORDER BY start_us",
        )
        .bind(region)
        .bind(to)
        .fetch_all(&db.pool)
        .await?;
        let mut s = Series::default();
        let mut index = BTreeMap::new();
        let mut source = |name: String, sources: &mut Vec<String>| *index.entry(name.clone()).or_insert_with(|| {
            sources.push(name);
            sources.len() - 1
        });
        for (start, mg, src) in hourly {
            let i = source(format!("{src} (hourly)"), &mut s.sources);
            s.hourly.insert(start, (mg, i));
        }
        for (start, end, mg, src) in coarse {
            let i = source(src, &mut s.sources);
            s.coarse.push((start, end, mg, i));
        }
        Ok(s)
    }

    /// mg CO2e per kWh in the hour at `hour_us`, and where it came from.
    pub fn at(&self, hour_us: i64) -> Option<(i64, &str)> {
        if let Some((mg, i)) = self.hourly.get(&hour_us) {
            return Some((*mg, &self.sources[*i]));
        }
        // The factor covering the hour, else the latest that began before it.
        let covering = self.coarse.iter().rev().find(|(s, e, _, _)| *s <= hour_us && hour_us < *e);
        let latest = || self.coarse.iter().filter(|(s, _, _, _)| *s <= hour_us).max_by_key(|(s, _, _, _)| *s);
        covering.or_else(latest).map(|(_, _, mg, i)| (*mg, self.sources[*i].as_str()))
    }

    pub fn is_empty(&self) -> bool {
        self.hourly.is_empty() && self.coarse.is_empty()
    }
}

/// A tenant's contractual instrument, for market-based carbon.
#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Instrument {
    pub id: String,
    pub kind: String,
    pub region: Option<String>,
    pub from: String,
    pub to: String,
    /// Facility energy covered, kWh; absent: all of it.
    pub volume_kwh: Option<i64>,
    pub gco2e_per_kwh: f64,
    pub description: String,
}

/// An instrument as the invoice computation uses it.
#[derive(Clone, Debug)]
pub struct Held {
    pub id: String,
    pub region: Option<String>,
    pub from_us: i64,
    pub to_us: i64,
    pub volume_uj: Option<i128>,
    pub mg_per_kwh: i64,
}

pub async fn instruments_of(db: &Db, tenant: &str, from: i64, to: i64) -> Result<Vec<Held>> {
    type Row = (String, Option<String>, i64, i64, Option<i64>, i64);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, region, from_us, to_us, volume_kwh, mg_per_kwh FROM carbon_instruments WHERE tenant = $1 AND from_us < $2 AND to_us > $3 ORDER BY from_us, id",
    )
    .bind(tenant)
    .bind(to)
    .bind(from)
    .fetch_all(&db.pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, region, from_us, to_us, v, mg)| Held { id, region, from_us, to_us, volume_uj: v.map(|k| k as i128 * 3_600_000_000_000), mg_per_kwh: mg })
        .collect())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstrumentBody {
    pub id: String,
    pub kind: String,
    #[serde(default)]
    pub region: Option<String>,
    pub from: String,
    pub to: String,
    #[serde(default)]
    pub volume_kwh: Option<i64>,
    pub gco2e_per_kwh: f64,
    #[serde(default)]
    pub description: String,
}

pub async fn post_instrument(req: HttpRequest, state: web::Data<AppState>, tenant: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: InstrumentBody = json_body(&body)?;
    check_id("instrument", &b.id)?;
    if let Some(r) = &b.region {
        check_id("region", r)?;
    }
    if b.kind != "certificate" && b.kind != "ppa" {
        return Err(ApiError::BadRequest(format!("kind {:?}: expected certificate or ppa", b.kind)));
    }
    let (from, to) = (parse_time("from", &b.from)?, parse_time("to", &b.to)?);
    if to <= from {
        return Err(ApiError::BadRequest("to must be after from".into()));
    }
    if b.volume_kwh.is_some_and(|v| v <= 0) || !(0.0..=3000.0).contains(&b.gco2e_per_kwh) {
        return Err(ApiError::BadRequest("volume_kwh must be positive; gco2e_per_kwh from 0 to 3000".into()));
    }
    let known: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE id = $1").bind(tenant.as_str()).fetch_optional(&state.db.pool).await?;
    if known.is_none() {
        return Err(ApiError::NotFound("no such tenant".into()));
    }
    let done = sqlx::query(
        "INSERT INTO carbon_instruments (id, tenant, kind, region, from_us, to_us, volume_kwh, mg_per_kwh, description, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
    )
    .bind(&b.id)
    .bind(tenant.as_str())
    .bind(&b.kind)
    .bind(&b.region)
    .bind(from)
    .bind(to)
    .bind(b.volume_kwh)
    .bind((b.gco2e_per_kwh * 1000.0).round() as i64)
    .bind(&b.description)
    .bind(now_us())
    .execute(&state.db.pool)
    .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!("instrument {} exists", b.id)));
    }
    let out = Instrument { id: b.id, kind: b.kind, region: b.region, from: format_time(from), to: format_time(to), volume_kwh: b.volume_kwh, gco2e_per_kwh: b.gco2e_per_kwh, description: b.description };
    Ok(HttpResponse::Created().json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntensityQuery {
    pub region: String,
    pub from: String,
    pub to: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IntensityPoint {
    pub hour: String,
    pub gco2e_per_kwh: f64,
    pub source: String,
}

/// `GET /v1/carbon/intensity?region&from&to`: the hourly series as billing
/// reads it (fallbacks resolved), at most 31 days.
pub async fn get_intensity(req: HttpRequest, state: web::Data<AppState>, q: web::Query<IntensityQuery>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Tenant, Role::Finance, Role::Ops, Role::Placement])?;
    let (from, to) = (parse_time("from", &q.from)?, parse_time("to", &q.to)?);
    if from % HOUR_US != 0 || to <= from || to - from > 31 * 24 * HOUR_US {
        return Err(ApiError::BadRequest("from must be a whole hour and the window at most 31 days".into()));
    }
    let s = Series::load(&state.db, &q.region, from, to).await?;
    let mut out = Vec::new();
    let mut h = from;
    while h < to {
        if let Some((mg, src)) = s.at(h) {
            out.push(IntensityPoint { hour: format_time(h), gco2e_per_kwh: mg as f64 / 1000.0, source: src.to_string() });
        }
        h += HOUR_US;
    }
    Ok(HttpResponse::Ok().json(out))
}
