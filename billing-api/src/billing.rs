//! The invoice computation: a tenant's ledger over a period → lines per VM,
//! region and charge, with kWh, carbon and cost. Reads only; the lifecycle
//! (drafts, numbers, voids, credit notes) is in [`crate::invoices`].
//!
//! Per hour of the ledger's rollups (top-level domains only):
//! - energy: CPU (package), DRAM and GPU dynamic shares, the idle share, and
//!   facility overhead = IT energy × (PUE − 1);
//! - location-based carbon = energy × intensity of that hour and region
//!   (the facility line carries the PUE part, so a VM's lines sum to
//!   energy × PUE × intensity);
//! - market-based carbon: the tenant's instruments cover its facility energy
//!   in time order until their volume is used; uncovered energy takes the
//!   location intensity (no residual mix is known; stamped);
//! - cost = energy × the region's price in that hour (time of use).
//!
//! Embodied carbon per SCI: M = TE × (TiR / EL) × (RR / ToR), with TiR the
//! VM's placement time on the host within the period and RR/ToR its share of
//! the host's vCPUs. Sums are exact integers (i128) until each line is
//! rounded once: µJ, mg, minor units.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::carbon::{Held, Series, instruments_of};
use crate::db::Db;
use crate::error::{ApiError, Result};
use crate::money::{RegionTariffs, UJ_PER_KWH, minor_exponent, to_minor};

/// Charges in the order lines are listed.
pub const CHARGES: [&str; 6] = ["cpu", "dram", "gpu", "idle", "facility", "embodied"];

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Line {
    pub line_no: i64,
    pub vm: String,
    pub region: String,
    pub charge: String,
    pub usage_start_us: i64,
    pub usage_end_us: i64,
    pub adjustment: bool,
    pub energy_uj: i64,
    pub co2_location_mg: i64,
    pub co2_market_mg: i64,
    pub co2_embodied_mg: i64,
    pub unit_price: String,
    pub cost_minor: i64,
    pub description: String,
}

/// How the numbers were made, stamped on each invoice.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Methodology {
    pub attribution: Vec<String>,
    pub idle_policy: String,
    pub intensity_sources: Vec<String>,
    pub tariffs: Vec<String>,
    pub pue: Vec<String>,
    pub market_based: String,
    pub embodied: String,
    pub notes: Vec<String>,
}

#[derive(Clone, Debug)]
pub struct HostInfo {
    pub region: String,
    pub pue_milli: i64,
    pub embodied_mg: i128,
    pub lifetime_us: i128,
    pub vcpus: i64,
}

/// What the computation reads besides the ledger, shared across tenants in
/// an invoice run so each host, region and period is loaded once.
#[derive(Default)]
pub struct Context {
    pub idle_policy: String,
    hosts: HashMap<String, HostInfo>,
    hosts_loaded: bool,
    series: HashMap<(String, i64, i64), Series>,
    tariffs: HashMap<(String, i64, i64), RegionTariffs>,
    /// Per period and host: the attribution model versions of its intervals.
    models: HashMap<(i64, i64), HashMap<String, Vec<String>>>,
}

impl Context {
    pub fn new(idle_policy: &str) -> Context {
        Context { idle_policy: idle_policy.to_string(), ..Context::default() }
    }

    async fn prepare(&mut self, db: &Db, from: i64, to: i64) -> Result<()> {
        if !self.hosts_loaded {
            let rows: Vec<(String, String, i64, i64, i64, i64)> =
                sqlx::query_as("SELECT id, region, pue_milli, embodied_gco2e, lifetime_s, vcpus FROM hosts").fetch_all(&db.pool).await?;
            let hosts = rows
                .into_iter()
                .map(|(id, region, pue_milli, emb, life, vcpus)| (id, HostInfo { region, pue_milli, embodied_mg: emb as i128 * 1000, lifetime_us: life as i128 * 1_000_000, vcpus }))
                .collect();
            self.hosts = hosts;
            self.hosts_loaded = true;
        }
        if let std::collections::hash_map::Entry::Vacant(slot) = self.models.entry((from, to)) {
            let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
                "SELECT m.host, m.method, m.version, COUNT(*) FROM intervals i JOIN models m ON m.id = i.model_id WHERE i.start_us >= $1 AND i.start_us < $2 GROUP BY m.host, m.method, m.version ORDER BY m.host, m.version",
            )
            .bind(from)
            .bind(to)
            .fetch_all(&db.pool)
            .await?;
            let mut per: HashMap<String, Vec<String>> = HashMap::new();
            for (host, method, version, n) in rows {
                per.entry(host.clone()).or_default().push(format!("{host}: {method} v{version} ({n} intervals)"));
            }
            slot.insert(per);
        }
        Ok(())
    }

    fn hosts(&self) -> &HashMap<String, HostInfo> {
        &self.hosts
    }

    async fn region(&mut self, db: &Db, region: &str, from: i64, to: i64) -> Result<()> {
        let key = (region.to_string(), from, to);
        if !self.series.contains_key(&key) {
            let s = Series::load(db, region, from, to).await?;
            self.series.insert(key.clone(), s);
            self.tariffs.insert(key, RegionTariffs::load(db, region, from, to).await?);
        }
        Ok(())
    }
}

#[derive(Default)]
struct Acc {
    energy: i128,
    location: i128,
    market: f64,
    embodied: i128,
    cost: Decimal,
    prices: BTreeSet<String>,
}

/// The tenant's lines for `[from, to)` (not adjustments), numbered from 1.
pub async fn compute(db: &Db, ctx: &mut Context, tenant: &str, currency: &str, from: i64, to: i64) -> Result<(Vec<Line>, Methodology)> {
    ctx.prepare(db, from, to).await?;
    let exp = minor_exponent(currency)?;
    let rows: Vec<(i64, String, String, String, i64, i64)> = sqlx::query_as(
        "SELECT hour_us, host, vm, domain, dynamic_uj, idle_uj FROM usage_hourly WHERE tenant = $1 AND hour_us >= $2 AND hour_us < $3 AND top_level = 1 ORDER BY hour_us",
    )
    .bind(tenant)
    .bind(from)
    .bind(to)
    .fetch_all(&db.pool)
    .await?;
    let mut m = Methodology { idle_policy: ctx.idle_policy.clone(), ..Methodology::default() };
    let mut hosts_used = BTreeSet::new();
    for (_, host, ..) in &rows {
        hosts_used.insert(host.clone());
    }
    for h in &hosts_used {
        let info = ctx.hosts().get(h).ok_or_else(|| ApiError::Database(format!("host {h} is in the ledger but not in the registry")))?.clone();
        ctx.region(db, &info.region, from, to).await?;
        m.pue.push(format!("{h} ({}): PUE {:.3}", info.region, info.pue_milli as f64 / 1000.0));
        m.attribution.extend(ctx.models[&(from, to)].get(h).cloned().unwrap_or_default());
    }
    // Facility energy per (hour, region), ×1000 (PUE in thousandths), for the instruments.
    let mut facility: BTreeMap<(i64, String), i128> = BTreeMap::new();
    for (hour, host, _, _, dy, idle) in &rows {
        let info = &ctx.hosts()[host];
        *facility.entry((*hour, info.region.clone())).or_default() += (*dy + *idle) as i128 * info.pue_milli as i128;
    }
    let market = market_intensity(db, ctx, tenant, from, to, &facility, &mut m).await?;

    let mut acc: BTreeMap<(String, String, usize), Acc> = BTreeMap::new();
    let (mut sources, mut tariffs_used) = (BTreeSet::new(), BTreeSet::new());
    for (hour, host, vm, domain, dy, idle) in &rows {
        let info = &ctx.hosts()[host];
        let region = &info.region;
        let rkey = (region.clone(), from, to);
        let (mg, src) = ctx.series[&rkey].at(*hour).ok_or_else(|| {
            ApiError::Conflict(format!("no grid intensity for region {region} at {}: import one with `fairwatt carbon import`", crate::params::format_time(*hour)))
        })?;
        sources.insert(format!("{region}: {src}"));
        let tariff = ctx.tariffs[&rkey].at(*hour).ok_or_else(|| ApiError::Conflict(format!("no tariff for region {region} at {}", crate::params::format_time(*hour))))?;
        if tariff.currency != currency {
            return Err(ApiError::Conflict(format!("region {region} is priced in {}, tenant {tenant} is billed in {currency}", tariff.currency)));
        }
        tariffs_used.insert(tariff.id.clone());
        let price = tariff.at(*hour);
        let mkt = market.get(&(*hour, region.clone())).copied().unwrap_or(mg as f64);
        let kind = domain.split('-').next().unwrap_or("");
        let charge = match kind {
            "package" => 0,
            "dram" => 1,
            "gpu" => 2,
            _ => continue,
        };
        let it = (*dy + *idle) as i128;
        // Facility energy in µJ ×1000, to keep the PUE exact until rounding.
        let overhead_milli = it * (info.pue_milli as i128 - 1000);
        for (c, e_milli) in [(charge, *dy as i128 * 1000), (3, *idle as i128 * 1000), (4, overhead_milli)] {
            if e_milli == 0 {
                continue;
            }
            let a = acc.entry((vm.clone(), region.clone(), c)).or_default();
            a.energy += e_milli;
            a.location += e_milli * mg as i128;
            a.market += e_milli as f64 * mkt;
            a.cost += Decimal::from_i128_with_scale(e_milli, 3) * price;
            a.prices.insert(price.normalize().to_string());
        }
    }
    for (vm, region, mg) in embodied(db, ctx, tenant, from, to).await? {
        acc.entry((vm, region, 5)).or_default().embodied += mg;
    }
    m.intensity_sources = sources.into_iter().collect();
    m.tariffs = tariffs_used.into_iter().collect();
    m.embodied = "SCI: M = TE × (TiR / EL) × (RR / ToR); TiR = placement time in the period, RR / ToR = VM vCPUs / host vCPUs".into();
    let denom = 1000 * UJ_PER_KWH as i128;
    let round = |num: i128, den: i128| -> i64 { ((num + den / 2).div_euclid(den)) as i64 };
    let mut lines = Vec::new();
    for ((vm, region, c), a) in acc {
        let cost = a.cost / Decimal::from(UJ_PER_KWH);
        let unit_price = match a.prices.len() {
            0 => "0".to_string(),
            1 => a.prices.into_iter().next().unwrap_or_default(),
            _ => "time of use".to_string(),
        };
        lines.push(Line {
            line_no: lines.len() as i64 + 1,
            vm: vm.clone(),
            region,
            charge: CHARGES[c].to_string(),
            usage_start_us: from,
            usage_end_us: to,
            adjustment: false,
            energy_uj: round(a.energy, 1000),
            co2_location_mg: round(a.location, denom),
            co2_market_mg: if c == 5 { 0 } else { (a.market / denom as f64).round() as i64 },
            co2_embodied_mg: a.embodied as i64,
            unit_price,
            cost_minor: to_minor(cost, exp)?,
            description: describe(&vm, CHARGES[c]),
        });
    }
    Ok((lines, m))
}

fn describe(vm: &str, charge: &str) -> String {
    let what = match charge {
        "cpu" => "CPU energy (attributed)",
        "dram" => "DRAM energy (attributed)",
        "gpu" => "GPU energy (attributed)",
        "idle" => "idle share of the host",
        "facility" => "facility overhead (PUE)",
        _ => "embodied carbon (SCI)",
    };
    format!("{vm}: {what}")
}

/// Market-based intensity per (hour, region) in mg/kWh: instruments cover
/// facility energy in time order (what they covered before `from` is
/// used up first), the rest takes the location intensity.
async fn market_intensity(
    db: &Db,
    ctx: &Context,
    tenant: &str,
    from: i64,
    to: i64,
    facility: &BTreeMap<(i64, String), i128>,
    m: &mut Methodology,
) -> Result<HashMap<(i64, String), f64>> {
    let mut held: Vec<Held> = instruments_of(db, tenant, from, to).await?;
    if held.is_empty() {
        m.market_based = "no contractual instruments: market-based equals location-based".into();
        return Ok(HashMap::new());
    }
    // Volume already used by facility energy in [instrument start, from).
    for h in held.iter_mut().filter(|h| h.volume_uj.is_some() && h.from_us < from) {
        let rows: Vec<(String, i64)> = sqlx::query_as(
            "SELECT host, CAST(SUM(dynamic_uj + idle_uj) AS BIGINT) FROM usage_hourly WHERE tenant = $1 AND hour_us >= $2 AND hour_us < $3 AND top_level = 1 GROUP BY host",
        )
        .bind(tenant)
        .bind(h.from_us)
        .bind(from)
        .fetch_all(&db.pool)
        .await?;
        let mut before: i128 = 0;
        for (host, e) in rows {
            if let Some(info) = ctx.hosts().get(&host)
                && h.region.as_ref().is_none_or(|r| *r == info.region)
            {
                before += e as i128 * info.pue_milli as i128 / 1000;
            }
        }
        h.volume_uj = h.volume_uj.map(|v| (v - before).max(0));
    }
    let mut out = HashMap::new();
    for ((hour, region), e_milli) in facility {
        let Some((loc, _)) = ctx.series.get(&(region.clone(), from, to)).and_then(|s| s.at(*hour)) else { continue };
        let mut left = *e_milli as f64 / 1000.0;
        let total = left;
        let mut mg = 0.0;
        for h in held.iter_mut().filter(|h| h.from_us <= *hour && *hour < h.to_us && h.region.as_ref().is_none_or(|r| r == region)) {
            let take = match h.volume_uj {
                Some(v) => left.min(v as f64),
                None => left,
            };
            if let Some(v) = h.volume_uj.as_mut() {
                *v -= take as i128;
            }
            mg += take * h.mg_per_kwh as f64;
            left -= take;
            if left <= 0.0 {
                break;
            }
        }
        mg += left * loc as f64;
        if total > 0.0 {
            out.insert((*hour, region.clone()), mg / total);
        }
    }
    m.market_based = format!("instruments {} cover facility energy in time order; uncovered energy at the location intensity (no residual mix)", held.iter().map(|h| h.id.as_str()).collect::<Vec<_>>().join(", "));
    Ok(out)
}

/// Embodied mg per (VM, region) from the tenant's placements in `[from, to)`.
async fn embodied(db: &Db, ctx: &Context, tenant: &str, from: i64, to: i64) -> Result<Vec<(String, String, i128)>> {
    let rows: Vec<(String, String, i64, i64, Option<i64>)> = sqlx::query_as(
        "SELECT p.vm, p.host, v.vcpus, p.from_us, p.to_us FROM vm_placements p JOIN vms v ON v.id = p.vm WHERE v.tenant = $1 AND p.from_us < $2 AND (p.to_us IS NULL OR p.to_us > $3)",
    )
    .bind(tenant)
    .bind(to)
    .bind(from)
    .fetch_all(&db.pool)
    .await?;
    let mut out = Vec::new();
    for (vm, host, vcpus, f, t) in rows {
        let Some(h) = ctx.hosts().get(&host) else { continue };
        let reserved = (t.unwrap_or(to).min(to) - f.max(from)).max(0) as i128;
        let num = h.embodied_mg * reserved * vcpus.min(h.vcpus) as i128;
        let den = h.lifetime_us * h.vcpus as i128;
        if den > 0 && reserved > 0 {
            out.push((vm, h.region.clone(), (num + den / 2) / den));
        }
    }
    Ok(out)
}
