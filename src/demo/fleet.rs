//! The demo's fleet as the billing API sees it: the simulated `demo`
//! scenario's hosts spread over three grid regions, its six tenants with
//! names, an hourly grid-intensity file for the month, and a tariff per
//! region. Everything is drawn from the seed, so two runs bill alike.

use std::fmt::Write as _;

use fairwatt_billing_api::registry::RegistryFile;
use fairwatt_attribution::shapley::SplitMix64;
use fairwatt_collector::sim;

use crate::admin::ScenarioArgs;
use fairwatt_core::Timestamp;

/// The simulator scenario the demo's agents run.
pub const SCENARIO: &str = "demo";

/// Grid zones and their 2023 annual mean intensity, gCO2e/kWh (Ember,
/// "Yearly electricity data", 2023: Germany 381, France 56, Poland 662).
/// The demo's hourly series varies around these; it is not measured data.
pub const REGIONS: [(&str, f64); 3] = [("DE", 381.0), ("FR", 56.0), ("PL", 662.0)];

/// Host `i`'s region: the first three hosts one each, then round again.
pub fn region_of(i: usize) -> &'static str {
    REGIONS[i % REGIONS.len()].0
}

const TENANT_NAMES: [&str; 6] = ["Acme Analytics", "Borealis Games", "Cobalt Bank", "Delta Health", "Evergreen Retail", "Fjord Media"];

/// The registry of `hosts` demo hosts, their VMs placed on them from `at`:
/// `fairwatt registry scenario demo`'s, with the hosts spread over the
/// regions, the tenants named and the flavors named after their class.
pub fn registry(hosts: usize, seed: u64, at: Timestamp) -> anyhow::Result<RegistryFile> {
    let args = ScenarioArgs { scenario: SCENARIO.into(), hosts, seed, host_id: None, region: region_of(0).into(), pue: 1.3, currency: "EUR".into() };
    let mut f = crate::admin::scenario_registry(&args)?;
    for (i, h) in f.hosts.values_mut().enumerate() {
        h.region = region_of(i).into();
        h.pue = [1.35, 1.2, 1.5, 1.3][i % 4];
    }
    for (id, t) in f.tenants.iter_mut() {
        let n: usize = id.rsplit('-').next().and_then(|n| n.parse().ok()).unwrap_or(0);
        if let Some(name) = TENANT_NAMES.get(n.wrapping_sub(1)) {
            t.name = name.to_string();
        }
    }
    let sc = sim::scenario(SCENARIO, hosts, seed, at)?;
    for spec in sc.hosts.iter().flat_map(|h| &h.vms) {
        if let Some(v) = f.vms.get_mut(spec.info.id.as_str()) {
            v.flavor = format!("{}.{}", spec.class.as_str(), v.flavor);
            v.at = Some(at.to_string());
        }
    }
    Ok(f)
}

/// fairwatt's hourly intensity format for `[from, to)`: each region's
/// annual mean shaped by an evening peak and a midday solar dip, with a
/// day-to-day drift of a few percent.
pub fn intensity_csv(from: Timestamp, to: Timestamp, seed: u64) -> String {
    const HOUR: i64 = 3_600_000_000;
    let mut out = String::from("region,start,gco2e_per_kwh,source\n");
    let mut rng = SplitMix64::new(seed ^ 0x6772_6964);
    for (region, mean) in REGIONS {
        let mut day_factor = 1.0;
        let mut t = from.as_micros() - from.as_micros().rem_euclid(HOUR);
        while t < to.as_micros() {
            let hour = (t / HOUR).rem_euclid(24) as f64;
            if hour == 0.0 {
                day_factor = (day_factor + 0.06 * (rng.unit() - 0.5)).clamp(0.85, 1.15);
            }
            let evening = 0.12 * (std::f64::consts::TAU * (hour - 19.0) / 24.0).cos();
            let solar = -0.10 * (-((hour - 13.0) / 3.0).powi(2)).exp();
            let g = mean * day_factor * (1.0 + evening + solar);
            let start = Timestamp::from_micros(t).map(|s| s.to_string()).unwrap_or_default();
            let _ = writeln!(out, "{region},{start},{g:.1},demo shape around Ember 2023 annual mean");
            t += HOUR;
        }
    }
    out
}

/// Tariff bodies for `POST /v1/tariffs`, one per region, valid from `from`;
/// Germany's has an evening peak window.
pub fn tariffs(from: Timestamp) -> Vec<serde_json::Value> {
    let prices = [("DE", "0.28"), ("FR", "0.21"), ("PL", "0.24")];
    prices
        .iter()
        .map(|(region, price)| {
            let mut t = serde_json::json!({"id": format!("{}-demo", region.to_lowercase()), "region": region, "currency": "EUR", "price_per_kwh": price, "valid_from": from.to_string()});
            if *region == "DE" {
                t["windows"] = serde_json::json!([{"from_hour": 17, "to_hour": 21, "price_per_kwh": "0.39"}]);
            }
            t
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_registry_spans_three_regions_and_six_named_tenants() {
        let at = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        let f = registry(4, 42, at).unwrap();
        let regions: std::collections::BTreeSet<_> = f.hosts.values().map(|h| h.region.as_str()).collect();
        assert_eq!(regions.len(), 3);
        assert_eq!(f.tenants.len(), 6);
        assert!(f.tenants.values().all(|t| !t.name.starts_with("tenant-")));
        assert!(f.vms.values().all(|v| f.hosts.contains_key(v.host.as_deref().unwrap()) && f.tenants.contains_key(&v.tenant)));
    }

    #[test]
    fn the_intensity_file_has_every_hour_of_each_region_around_its_mean() {
        let from = Timestamp::from_micros(1_700_000_000_000_000 / 3_600_000_000 * 3_600_000_000).unwrap();
        let to = from.plus(fairwatt_core::Micros::from_secs(48 * 3600));
        let csv = intensity_csv(from, to, 1);
        let rows: Vec<_> = csv.lines().skip(1).collect();
        assert_eq!(rows.len(), 3 * 48);
        for (region, mean) in REGIONS {
            let vals: Vec<f64> = rows.iter().filter(|r| r.starts_with(region)).map(|r| r.split(',').nth(2).unwrap().parse().unwrap()).collect();
            let avg = vals.iter().sum::<f64>() / vals.len() as f64;
            assert!((avg / mean - 1.0).abs() < 0.2, "{region}: {avg} vs {mean}");
        }
        let parsed = fairwatt_billing_api::carbon_csv::parse(&csv).unwrap();
        assert_eq!(parsed.rows.len(), 3 * 48);
    }
}
