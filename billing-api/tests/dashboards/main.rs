//! The Grafana dashboards in `dashboards/`, checked two ways.
//!
//! Always: every dashboard JSON parses and is well formed: unique uids and
//! panel ids, grid positions inside the 24-column grid and never
//! overlapping, every panel's and target's datasource one that
//! `dashboards/provisioning/datasources/fairwatt.yaml` provisions (uid and
//! type), every target with a refId, SQL targets in code mode with
//! `rawSql` and an explicit format, PromQL targets with an `expr` naming
//! only metrics the agent registers (`src/agent/metrics.rs`) or the billing
//! API serves on `/metrics`, template variables defined before use, and only
//! Grafana macros the PostgreSQL datasource knows. Deliberately broken
//! copies show that each of these checks fails when it should. The macro
//! expander below is checked against Grafana's own expansions.
//!
//! With PostgreSQL (`FAIRWATT_TEST_POSTGRES_URL`): a fresh store is filled
//! through the real paths (registry, HTTP ingest of simulated hosts, the
//! attribution worker, a carbon CSV import, tariffs, an invoice run,
//! placement decisions, a migration), then every SQL panel's query is
//! expanded as Grafana would (template variables, then `$__interval`,
//! `$__unixEpochFrom()`…, then the datasource's macros) and run: each must
//! return rows with exactly the columns declared in [`EXPECTED`], no column
//! all NULL, and time series a `time` column in the range, in order. A few
//! figures are checked against what was ingested.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use fairwatt_attribution::{IdlePolicy, Method};
use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::params::{HOUR_US, format_time};
use fairwatt_billing_api::worker::Worker;
use fairwatt_billing_api::{Role, Settings};
use fairwatt_collector::sim::scenario;
use fairwatt_core::{IntervalRecord, Micros, Timestamp};
use serde_json::{Value, json};

#[path = "../common/mod.rs"]
mod common;
mod grafana;
mod structure;

use grafana::*;
use structure::*;

/// Per dashboard uid, panel id and refId: the columns its SQL returns, in
/// order. Every SQL target must be listed and every entry must name one.
const EXPECTED: &[(&str, u64, &str, &[&str])] = &[
    ("fairwatt-fleet-power", 1, "A", &["measured_kwh", "attributed_kwh", "idle_kwh", "unattributed_pct"]),
    ("fairwatt-fleet-power", 2, "A", &["waiting_intervals", "ledger_lag_s"]),
    ("fairwatt-fleet-power", 3, "A", &["time", "measured_w", "attributed_w", "idle_w", "unattributed_w"]),
    ("fairwatt-fleet-power", 4, "A", &["time", "metric", "measured_w"]),
    ("fairwatt-fleet-power", 5, "A", &["time", "metric", "measured_w"]),
    ("fairwatt-fleet-power", 6, "A", &["host", "domain", "intervals", "measured_kwh", "attributed_kwh", "idle_kwh", "unattributed_kwh", "mean_w"]),
    ("fairwatt-tenant", 1, "A", &["energy_kwh", "dynamic_kwh", "idle_kwh", "vms"]),
    ("fairwatt-tenant", 2, "A", &["currency", "billed", "co2_location_kg", "co2_market_kg", "co2_embodied_kg"]),
    ("fairwatt-tenant", 3, "A", &["time", "metric", "energy_kwh"]),
    ("fairwatt-tenant", 4, "A", &["time", "dynamic_kwh", "idle_kwh"]),
    ("fairwatt-tenant", 5, "A", &["time", "co2_location_g"]),
    ("fairwatt-tenant", 6, "A", &["number", "kind", "status", "period_start", "period_end", "energy_kwh", "co2_location_kg", "co2_market_kg", "co2_embodied_kg", "total", "currency"]),
    ("fairwatt-tenant", 7, "A", &["charge", "region", "energy_kwh", "co2_location_kg", "co2_market_kg", "co2_embodied_kg", "cost", "currency"]),
    ("fairwatt-attribution", 1, "A", &["fits", "recalibrations", "intervals_without_model", "intervals_unscored"]),
    ("fairwatt-attribution", 2, "A", &["time", "metric", "median_error_w"]),
    ("fairwatt-attribution", 3, "A", &["time", "metric", "train_error_w", "drift_threshold_w"]),
    ("fairwatt-attribution", 4, "A", &["fitted_at", "host", "method", "version", "reason", "window_intervals", "train_error_w"]),
    ("fairwatt-attribution", 5, "A", &["host", "vm", "tenant", "model_wh", "cpu_ratio_wh", "difference_wh", "difference_pct"]),
    ("fairwatt-attribution", 6, "A", &["time", "metric", "placed_differently_pct"]),
    ("fairwatt-attribution", 7, "A", &["time", "metric", "unattributed_pct"]),
    ("fairwatt-placement", 1, "A", &["host_hours_with_vms", "overcommitted_host_hours", "overcommitted_pct", "peak_allocated_pct"]),
    ("fairwatt-placement", 2, "A", &["hosts", "active_hosts", "vms", "vcpus_allocated_pct", "memory_allocated_pct"]),
    ("fairwatt-placement", 3, "A", &["time", "hosts_with_vms", "hosts_reporting"]),
    ("fairwatt-placement", 4, "A", &["time", "metric", "allocated_vcpus_pct"]),
    ("fairwatt-placement", 5, "A", &["time", "metric", "measured_kwh"]),
    ("fairwatt-placement", 6, "A", &["time", "placed", "migrated"]),
    ("fairwatt-placement", 7, "A", &["host", "region", "vcpus", "allocated_vcpu_hours", "measured_kwh", "wh_per_vcpu_hour"]),
];

const PG_TYPE: &str = "grafana-postgresql-datasource";
const PROM_TYPE: &str = "prometheus";

/// Macros of Grafana's PostgreSQL datasource (`$__name(args)`), global and its own.
const MACROS: &[&str] = &[
    "__time",
    "__timeEpoch",
    "__timeFilter",
    "__timeFrom",
    "__timeTo",
    "__timeGroup",
    "__timeGroupAlias",
    "__unixEpochFilter",
    "__unixEpochNanoFilter",
    "__unixEpochNanoFrom",
    "__unixEpochNanoTo",
    "__unixEpochGroup",
    "__unixEpochGroupAlias",
    "__unixEpochFrom",
    "__unixEpochTo",
];
/// Grafana's built-in variables (`$__name`, no arguments).
const BUILTINS: &[&str] = &["__interval", "__interval_ms", "__rate_interval", "__range", "__range_s", "__range_ms", "__from", "__to", "__timezone"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

// ------------------------------------------------------ the structure test

#[test]
fn provisioning_defines_the_datasources_the_dashboards_use() {
    let ds = datasources();
    let uids: Vec<(&str, &str)> = ds.iter().map(|d| (d.uid.as_str(), d.kind.as_str())).collect();
    assert_eq!(uids, [("fairwatt-pg", PG_TYPE), ("fairwatt-prom", PROM_TYPE)], "{ds:?}");
    // The SQL datasource's minimum interval bounds $__interval; it must parse.
    assert!(parse_interval(ds[0].time_interval.as_deref().expect("fairwatt-pg sets timeInterval")).unwrap() > 0.0);
    let text = std::fs::read_to_string(repo().join("dashboards/provisioning/datasources/fairwatt.yaml")).unwrap();
    for var in ["$FAIRWATT_PG_HOST", "$FAIRWATT_PG_USER", "$FAIRWATT_PG_PASSWORD", "$FAIRWATT_PG_DATABASE", "$FAIRWATT_PROMETHEUS_URL"] {
        let braced = format!("${{{}}}", &var[1..]);
        assert!(text.contains(&braced), "the datasources read {braced}");
    }
    let providers = std::fs::read_to_string(repo().join("dashboards/provisioning/dashboards/fairwatt.yaml")).unwrap();
    assert!(providers.contains("type: file") && providers.contains("path:"), "a file provider with a path:\n{providers}");
    // The parser itself: items, comments, quotes, keys of other sections.
    let parsed = parse_datasources("apiVersion: 1\ndatasources:\n  # c\n  - name: a\n    type: \"postgres\"\n    uid: 'x' # note\n    jsonData:\n      timeInterval: 30s\n  - name: b\n    uid: y\ndeleteDatasources:\n  - name: z\n    uid: w\n");
    assert_eq!(parsed.iter().map(|d| (d.uid.as_str(), d.kind.as_str(), d.time_interval.as_deref())).collect::<Vec<_>>(), [("x", "postgres", Some("30s")), ("y", "", None)]);
}

#[test]
fn every_dashboard_is_well_formed() {
    let ds = datasources();
    let all = dashboards();
    let names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["attribution-quality.json", "fleet-power.json", "placement.json", "tenant-energy.json"]);
    let mut uids = BTreeSet::new();
    for (name, d) in &all {
        assert!(uids.insert(d["uid"].as_str().unwrap().to_string()), "{name}: uid used twice");
        let bad = check_dashboard(d, &ds);
        assert!(bad.is_empty(), "{name}:\n  {}", bad.join("\n  "));
        let n = panels(d).len();
        assert!((5..=10).contains(&n), "{name}: {n} panels");
    }
    // Every declared expectation belongs to a dashboard that exists.
    for (u, _, _, _) in EXPECTED {
        assert!(uids.contains(*u), "EXPECTED names dashboard {u}");
    }
}

#[test]
fn the_checker_catches_broken_dashboards() {
    let ds = datasources();
    let (_, fleet) = dashboards().into_iter().find(|(n, _)| n == "fleet-power.json").unwrap();
    assert!(check_dashboard(&fleet, &ds).is_empty());
    let broken = |f: &dyn Fn(&mut Value)| {
        let mut d = fleet.clone();
        f(&mut d);
        check_dashboard(&d, &ds).join("\n")
    };
    type Break = Box<dyn Fn(&mut Value)>;
    let cases: Vec<(&str, Break)> = vec![
        ("duplicate panel id", Box::new(|d| d["panels"][1]["id"] = d["panels"][0]["id"].clone())),
        ("overlaps panel", Box::new(|d| d["panels"][1]["gridPos"] = json!({"x": 10, "y": 0, "w": 10, "h": 4}))),
        ("24-column grid", Box::new(|d| d["panels"][0]["gridPos"]["x"] = json!(20))),
        ("no gridPos", Box::new(|d| d["panels"][0].as_object_mut().unwrap().remove("gridPos").map(drop).unwrap())),
        ("is not provisioned", Box::new(|d| d["panels"][2]["targets"][0]["datasource"]["uid"] = json!("elsewhere"))),
        ("is not provisioned", Box::new(|d| d["panels"][2]["datasource"]["uid"] = json!("elsewhere"))),
        ("provisioned as", Box::new(|d| d["panels"][2]["datasource"]["type"] = json!("mysql"))),
        ("without refId", Box::new(|d| d["panels"][2]["targets"][0].as_object_mut().unwrap().remove("refId").map(drop).unwrap())),
        ("needs rawSql", Box::new(|d| d["panels"][2]["targets"][0]["rawSql"] = json!(""))),
        ("format", Box::new(|d| d["panels"][2]["targets"][0].as_object_mut().unwrap().remove("format").map(drop).unwrap())),
        ("undefined variable $nosuch", Box::new(|d| append_sql(d, 2, " AND d.host = '$nosuch'"))),
        ("unknown macro or built-in variable $__timeFilterr", Box::new(|d| append_sql(d, 2, " AND $__timeFilterr(x)"))),
        ("undefined variable $host", Box::new(|d| d["templating"]["list"] = json!([]))),
        ("needs expr", Box::new(|d| d["panels"][6]["targets"][0]["expr"] = json!(""))),
        ("no expected columns", Box::new(|d| d["panels"][2]["id"] = json!(99))),
        ("a time series must return a time column first", Box::new(|d| d["panels"][0]["targets"][0]["format"] = json!("time_series"))),
    ];
    for (want, f) in cases {
        let found = broken(&*f);
        assert!(found.contains(want), "expected {want:?} among:\n{found}");
    }
}

fn append_sql(d: &mut Value, panel: usize, extra: &str) {
    let s = d["panels"][panel]["targets"][0]["rawSql"].as_str().unwrap().to_string();
    d["panels"][panel]["targets"][0]["rawSql"] = json!(format!("{s}{extra}"));
}

/// Metric names a PromQL expression reads (`fairwatt_…`).
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = expr;
    while let Some(i) = rest.find("fairwatt_") {
        let n = rest[i..].bytes().take_while(|c| c.is_ascii_alphanumeric() || *c == b'_').count();
        out.push(rest[i..i + n].to_string());
        rest = &rest[i + n..];
    }
    out
}

/// The agent's exposed metric names, from its registry code: each
/// `field: reg!("name", …)`, with `_total` where the field is a counter.
fn agent_metric_names() -> BTreeSet<String> {
    let path = repo().join("src/agent/metrics.rs");
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let body = &src[src.find("pub struct Metrics {").expect("struct Metrics")..];
    let body = &body[..body.find("\n}").unwrap()];
    let types: HashMap<&str, &str> = body.lines().filter_map(|l| l.trim().split_once(": ")).collect();
    let mut out = BTreeSet::new();
    for line in src.lines() {
        if let Some((field, rest)) = line.trim().split_once(": reg!(\"") {
            let name = rest.split('"').next().unwrap();
            let counter = types.get(field).is_some_and(|t| t.contains("Counter"));
            out.insert(if counter { format!("{name}_total") } else { name.to_string() });
        }
    }
    assert!(out.len() > 10 && out.contains("fairwatt_host_power_watts"), "{out:?}");
    out
}

#[tokio::test]
async fn prometheus_panels_read_metrics_that_exist() {
    let agent = agent_metric_names();
    // The billing API's own metrics, after one placement decision (a 409 on the empty fleet is counted too).
    let app = common::spawn(Settings::default()).await;
    let key = create_key(&app.db, Role::Placement, None).await.unwrap().secret;
    let (s, _) = common::call(app.addr, "POST", "/v1/placement/decide", &key, json!({"vcpus": 1, "memory_mib": 1})).await;
    assert_eq!(s, 409);
    let (s, text) = common::get(app.addr, "/metrics", None).await;
    assert_eq!(s, 200);
    let api: BTreeSet<String> = text.lines().filter(|l| !l.starts_with('#')).filter_map(|l| l.split(['{', ' ']).next()).map(String::from).collect();
    assert!(text.contains("route=\"/v1/placement/decide\""), "{text}");
    let mut read = 0;
    for (name, d) in dashboards() {
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten().filter(|t| t["datasource"]["type"] == PROM_TYPE) {
                let names = metric_names(t["expr"].as_str().unwrap());
                assert!(!names.is_empty(), "{name} panel {}: no fairwatt metric in {}", p["id"], t["expr"]);
                for m in names {
                    assert!(agent.contains(&m) || api.contains(&m), "{name} panel {}: {m} is neither an agent metric ({agent:?}) nor served by the API ({api:?})", p["id"]);
                    read += 1;
                }
            }
        }
    }
    assert!(read >= 5, "{read}");
    assert!(!agent.contains("fairwatt_no_such_metric") && !metric_names("rate(fairwatt_x_total[5m])").is_empty());
}

// ---------------------------------------------------- the PostgreSQL test

/// Intervals of 60 s per simulated host: 4 hours. Two hosts are quiet for
/// the first 40 minutes (so the worker observes idle power), then up to 8
/// VMs arrive; the third boots busy and empties after 2 hours, so its first
/// model extrapolates idle power and is recalibrated once idle is seen.
const STEPS: usize = 240;
const QUIET_S: u64 = 2400;
const EMPTIED_S: u64 = 7200;

fn fleet_records(start: Timestamp) -> Vec<IntervalRecord> {
    let mut sc = scenario("mixed", 4, 7, start).unwrap();
    // A GPU host (Xeon + 2 T4) and two CPU hosts.
    sc.hosts = sc.hosts[1..4].to_vec();
    for (i, h) in sc.hosts.iter_mut().enumerate() {
        h.interval = Micros::from_secs(60);
        h.vms.truncate(8);
        let busy_first = i == 2;
        for (k, v) in h.vms.iter_mut().enumerate() {
            v.arrive_at_s = if busy_first { k as u64 * 60 } else { QUIET_S + k as u64 * 60 };
            v.depart_at_s = busy_first.then_some(EMPTIED_S);
        }
    }
    let mut out = Vec::new();
    for mut h in sc.build() {
        for _ in 0..STEPS {
            let mut r = h.step();
            r.truth = None;
            r.vms.iter_mut().for_each(|v| v.truth = None);
            out.push(r);
        }
    }
    out
}

/// The model error the attribution dashboard plots is what the attributor
/// reports for each interval, stored by the worker in milliwatts (on
/// either store): checked against an attributor fed the same intervals.
#[tokio::test]
async fn the_worker_records_each_intervals_model_error() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path()).await;
    let start = fairwatt_billing_api::db::now_us() / HOUR_US * HOUR_US - STEPS as i64 * 60_000_000;
    let recs: Vec<IntervalRecord> = fleet_records(Timestamp::from_micros(start).unwrap()).into_iter().filter(|r| r.host.as_str() == "sim-mixed-03").collect();
    assert_eq!(recs.len(), STEPS);
    common::register(&db, &recs).await;
    let key = create_key(&db, Role::Collector, None).await.unwrap();
    let state = fairwatt_billing_api::AppState::new(db.clone(), Settings::default());
    fairwatt_billing_api::ingest::store(&state, &key.id, &fairwatt_billing_api::ingest::Batch { batch_id: "errors".into(), records: recs.clone() }).await.unwrap();
    let mut w = Worker::new(db.clone(), Method::Linear, IdlePolicy::Reservation).unwrap();
    while w.run_once().await.unwrap() > 0 {}
    let mut att = fairwatt_attribution::Attributor::new(fairwatt_attribution::AttributorConfig::new(Method::Linear, IdlePolicy::Reservation)).unwrap();
    let mut want = BTreeMap::new();
    for r in &recs {
        for s in att.push(r.clone()).unwrap() {
            want.insert(s.attribution.seq as i64, s.error_w.map(|e| (e * 1000.0).round() as i64));
        }
    }
    let stored: Vec<(i64, Option<i64>)> = sqlx::query_as("SELECT seq, model_error_mw FROM intervals ORDER BY seq").fetch_all(&db.pool).await.unwrap();
    assert_eq!(stored.len(), STEPS);
    assert!(stored.iter().all(|(_, e)| e.is_some()), "every interval here was split by a model");
    assert_eq!(stored.into_iter().collect::<BTreeMap<_, _>>(), want);
}

/// A query's rows as JSON objects, and its column names in order (from the
/// first row; `json_each` keeps a `json` object's key order).
async fn run_sql(pool: &sqlx::AnyPool, sql: &str) -> Result<(Vec<String>, Vec<serde_json::Map<String, Value>>), String> {
    let wrapped = format!("SELECT row_to_json(q)::text, (SELECT json_agg(k.key) FROM json_each(row_to_json(q)) k)::text FROM (\n{sql}\n) q");
    let rows: Vec<(String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(wrapped)).fetch_all(pool).await.map_err(|e| format!("{e}\n{sql}"))?;
    let cols = rows.first().map(|(_, c)| serde_json::from_str(c).unwrap()).unwrap_or_default();
    Ok((cols, rows.iter().map(|(r, _)| serde_json::from_str(r).unwrap()).collect()))
}

/// Grafana's interval for a panel: the range over the data points,
/// rounded to a nice step as its rangeutil does, and never below the
/// panel's (or else the datasource's) minimum.
fn interval_for(panel: &Value, ds: &Datasource, from_ms: i64, to_ms: i64, max_points: i64) -> i64 {
    let raw = (to_ms - from_ms) / max_points;
    let steps: [(i64, i64); 29] = [
        (15, 10),
        (35, 20),
        (75, 50),
        (150, 100),
        (350, 200),
        (750, 500),
        (1_500, 1_000),
        (3_500, 2_000),
        (7_500, 5_000),
        (12_500, 10_000),
        (17_500, 15_000),
        (25_000, 20_000),
        (45_000, 30_000),
        (90_000, 60_000),
        (210_000, 120_000),
        (450_000, 300_000),
        (750_000, 600_000),
        (1_050_000, 900_000),
        (1_500_000, 1_200_000),
        (2_700_000, 1_800_000),
        (5_400_000, 3_600_000),
        (9_000_000, 7_200_000),
        (16_200_000, 10_800_000),
        (32_400_000, 21_600_000),
        (86_400_000, 43_200_000),
        (604_800_000, 86_400_000),
        (1_814_400_000, 604_800_000),
        (3_628_800_000, 2_592_000_000),
        (i64::MAX, 31_536_000_000),
    ];
    let rounded = steps.iter().find(|(below, _)| raw < *below).unwrap().1;
    let low = panel["interval"].as_str().or(ds.time_interval.as_deref()).map_or(0, |i| (parse_interval(i).unwrap() * 1000.0) as i64);
    rounded.max(low)
}

fn num(row: &serde_json::Map<String, Value>, col: &str) -> f64 {
    row[col].as_f64().unwrap_or_else(|| panic!("{col} is not a number in {row:?}"))
}

#[tokio::test]
async fn every_sql_panel_returns_its_columns_on_a_populated_store() {
    if std::env::var("FAIRWATT_TEST_POSTGRES_URL").is_err() {
        eprintln!("skipped: FAIRWATT_TEST_POSTGRES_URL not set");
        return;
    }
    let app = common::spawn(Settings::default()).await;
    let (addr, db) = (app.addr, app.db.clone());
    let ok = |method: &'static str, path: String, key: String, body: Value| async move {
        let (s, v) = common::call(addr, method, &path, &key, body).await;
        assert!(s == 200 || s == 201, "{method} {path}: {s} {v}");
        v
    };
    let ops = create_key(&db, Role::Ops, None).await.unwrap().secret;
    let finance = create_key(&db, Role::Finance, None).await.unwrap().secret;
    let collector = create_key(&db, Role::Collector, None).await.unwrap().secret;
    let placement = create_key(&db, Role::Placement, None).await.unwrap().secret;

    // Four hours of three hosts, ending at the last whole hour.
    let now = fairwatt_billing_api::db::now_us();
    let end = now / HOUR_US * HOUR_US;
    let start = end - STEPS as i64 * 60_000_000;
    let recs = fleet_records(Timestamp::from_micros(start).unwrap());
    let hosts: BTreeSet<String> = recs.iter().map(|r| r.host.to_string()).collect();
    assert_eq!(hosts.len(), 3);
    common::register(&db, &recs).await;
    let mut ingested_uj = 0i64;
    for (i, chunk) in recs.chunks(120).enumerate() {
        let v = ok("POST", "/v1/ingest".into(), collector.clone(), json!({"batch_id": format!("dash-{i}"), "records": chunk})).await;
        ingested_uj += v["energy_uj"].as_i64().unwrap();
    }
    assert_eq!(ingested_uj, recs.iter().map(|r| r.measured_total().as_uj() as i64).sum::<i64>());
    let mut w = Worker::new(db.clone(), Method::Linear, IdlePolicy::Reservation).unwrap();
    while w.run_once().await.unwrap() > 0 {}

    // The registry moves on after the data: one host to FR, two with room
    // for new VMs, one shrunk to 4 vCPUs (overcommitted), one VM migrated
    // at the end.
    let hosts: Vec<String> = hosts.into_iter().collect();
    let host_body = |region: &str, vcpus: i64| json!({"region": region, "pue": 1.3, "embodied_kgco2e": 1500, "lifetime_years": 4, "vcpus": vcpus, "memory_mib": 1 << 20});
    ok("PUT", format!("/v1/hosts/{}", hosts[0]), ops.clone(), host_body("FR", 256)).await;
    ok("PUT", format!("/v1/hosts/{}", hosts[1]), ops.clone(), host_body("DE", 256)).await;
    ok("PUT", format!("/v1/hosts/{}", hosts[2]), ops.clone(), host_body("DE", 4)).await;
    let moved = recs.iter().filter(|r| r.host.as_str() == hosts[2]).find_map(|r| r.vms.first()).expect("a VM on the last host").vm.to_string();
    let vm = ok("GET", format!("/v1/vms/{moved}"), ops.clone(), Value::Null).await;
    let at = format_time(end);
    ok("PUT", format!("/v1/vms/{moved}"), ops.clone(), json!({"tenant": vm["tenant"], "flavor": vm["flavor"], "vcpus": vm["vcpus"], "memory_mib": vm["memory_mib"], "host": hosts[1], "at": at})).await;

    // Grid intensity: hourly for DE over the data, yearly factors for both regions.
    let dir = tempfile::tempdir().unwrap();
    let mut hourly = String::from("region,start,gco2e_per_kwh,source\n");
    for (k, h) in (start / HOUR_US..=end / HOUR_US).enumerate() {
        hourly.push_str(&format!("DE,{},{},dashboard test grid\n", format_time(h * HOUR_US), 300 + 20 * k));
    }
    let year = chrono::DateTime::from_timestamp_micros(start).unwrap().format("%Y").to_string().parse::<i32>().unwrap() - 1;
    let yearly = format!("zone,zone_name,year,gco2e_per_kwh,renewable_pct,carbon_free_pct,source\nDE,Germany,{year},350,50,60,dashboard test maps\nFR,France,{year},50,30,90,dashboard test maps\n");
    for (name, text) in [("hourly.csv", hourly), ("yearly.csv", yearly)] {
        std::fs::write(dir.path().join(name), text).unwrap();
        fairwatt_billing_api::carbon::import_file(&db, &dir.path().join(name)).await.unwrap();
    }
    let since = format_time((start / HOUR_US - 24 * 30) * HOUR_US);
    for (region, price) in [("DE", "0.30"), ("FR", "0.20")] {
        ok("POST", "/v1/tariffs".into(), finance.clone(), json!({"id": format!("{region}-dash"), "region": region, "currency": "EUR", "price_per_kwh": price, "valid_from": since})).await;
    }
    // The tenant the panels are checked for: the one with the most energy, with a certificate.
    let (tenant,): (String,) = sqlx::query_as("SELECT tenant FROM ledger GROUP BY tenant ORDER BY SUM(dynamic_uj + idle_uj) DESC, tenant LIMIT 1").fetch_one(&db.pool).await.unwrap();
    let (p0, p1) = (format_time(start / HOUR_US * HOUR_US), format_time(end));
    ok("POST", format!("/v1/tenants/{tenant}/instruments"), finance.clone(), json!({"id": "dash-rec", "kind": "certificate", "region": "DE", "from": p0, "to": p1, "volume_kwh": 1, "gco2e_per_kwh": 0})).await;
    let run = ok("POST", "/v1/invoice-runs".into(), finance.clone(), json!({"period": format!("{p0}/{p1}"), "issue": true})).await;
    assert!(run["issued"].as_u64().unwrap() >= 1 && run["failed"].as_array().unwrap().is_empty(), "{run}");
    // Placement decisions: two placed (then registered where they were sent), one refused.
    for (i, region) in ["DE", "FR"].iter().enumerate() {
        let d = ok("POST", "/v1/placement/decide".into(), placement.clone(), json!({"vcpus": 2, "memory_mib": 2048, "region": region, "vm": format!("decided-{i}")})).await;
        ok("PUT", format!("/v1/vms/decided-{i}"), ops.clone(), json!({"tenant": tenant, "flavor": "m2", "vcpus": 2, "memory_mib": 2048, "host": d["host"], "at": at})).await;
    }
    let (s, _) = common::call(addr, "POST", "/v1/placement/decide", &placement, json!({"vcpus": 100000, "memory_mib": 1})).await;
    assert_eq!(s, 409);

    // Grafana's view: the range covers the data and the moves after it.
    let (from_ms, to_ms) = (start / HOUR_US * HOUR_US / 1000, (end + 2 * HOUR_US) / 1000);
    let ds = datasources();
    let mut ran = 0;
    let mut results: BTreeMap<(String, u64), Vec<serde_json::Map<String, Value>>> = BTreeMap::new();
    for (name, d) in dashboards() {
        let uid = d["uid"].as_str().unwrap().to_string();
        // Variables first: their queries run too, and the checked value must be one they offer.
        let mut vars = BTreeMap::new();
        for v in d["templating"]["list"].as_array().unwrap() {
            let ctx = Ctx { from_ms, to_ms, interval_ms: 60_000, vars: vars.clone() };
            let (cols, rows) = run_sql(&db.pool, &expand(v["query"].as_str().unwrap(), &ctx).unwrap()).await.unwrap();
            let key = if cols.iter().any(|c| c == "__value") { "__value".to_string() } else { cols[0].clone() };
            let values: Vec<String> = rows.iter().map(|r| r[&key].as_str().unwrap().to_string()).collect();
            assert!(!values.is_empty(), "{name}: variable {} offers nothing", v["name"]);
            let value = if v["name"] == "tenant" {
                assert!(values.contains(&tenant), "{values:?}");
                VarValue::Single(tenant.clone())
            } else if v["includeAll"] == true {
                VarValue::Multi(values)
            } else {
                VarValue::Single(values[0].clone())
            };
            vars.insert(v["name"].as_str().unwrap().to_string(), value);
        }
        for p in panels(&d) {
            for t in p["targets"].as_array().into_iter().flatten().filter(|t| t["datasource"]["type"] == PG_TYPE) {
                let id = p["id"].as_u64().unwrap();
                let refid = t["refId"].as_str().unwrap();
                let what = format!("{name} panel {id} ({}) {refid}", p["title"].as_str().unwrap());
                let (_, _, _, want) = EXPECTED.iter().find(|(u, pid, r, _)| *u == uid && *pid == id && *r == refid).unwrap();
                let interval_ms = interval_for(p, &ds[0], from_ms, to_ms, 200);
                let ctx = Ctx { from_ms, to_ms, interval_ms, vars: vars.clone() };
                let sql = expand(t["rawSql"].as_str().unwrap(), &ctx).unwrap_or_else(|e| panic!("{what}: {e}"));
                let (cols, rows) = run_sql(&db.pool, &sql).await.unwrap_or_else(|e| panic!("{what}: {e}"));
                assert!(!rows.is_empty(), "{what}: no rows\n{sql}");
                assert_eq!(cols, *want, "{what}: columns\n{sql}");
                for c in &cols {
                    assert!(rows.iter().any(|r| !r[c].is_null()), "{what}: {c} is NULL in every row\n{sql}");
                }
                if t["format"] == "time_series" {
                    check_time_column(&what, &rows, from_ms, to_ms, interval_ms);
                }
                ran += 1;
                results.insert((uid.clone(), id), rows);
            }
        }
    }
    assert_eq!(ran, EXPECTED.len());

    // Figures the panels must get right, against what went in.
    let kwh = ingested_uj as f64 / 3.6e12;
    let fleet = &results[&("fairwatt-fleet-power".to_string(), 1)][0];
    assert!((num(fleet, "measured_kwh") - kwh).abs() < 1e-9 * kwh, "{fleet:?} against {kwh} kWh ingested");
    assert!(num(fleet, "attributed_kwh") <= num(fleet, "measured_kwh") && num(fleet, "idle_kwh") > 0.0, "{fleet:?}");
    assert_eq!(num(&results[&("fairwatt-fleet-power".to_string(), 2)][0], "waiting_intervals"), 0.0);
    // Mean power per bucket × bucket length gives the energy back, at any interval.
    let (_, fleet_json) = dashboards().into_iter().find(|(n, _)| n == "fleet-power.json").unwrap();
    let power_sql = panels(&fleet_json).iter().find(|p| p["id"] == 3).unwrap()["targets"][0]["rawSql"].as_str().unwrap().to_string();
    for interval_ms in [120_000, 3_600_000] {
        let all_hosts = VarValue::Multi(recs.iter().map(|r| r.host.to_string()).collect::<BTreeSet<_>>().into_iter().collect());
        let ctx = Ctx { from_ms, to_ms, interval_ms, vars: BTreeMap::from([("host".to_string(), all_hosts)]) };
        let (_, rows) = run_sql(&db.pool, &expand(&power_sql, &ctx).unwrap()).await.unwrap();
        let joules: f64 = rows.iter().map(|r| num(r, "measured_w") * interval_ms as f64 / 1000.0).sum();
        assert!((joules - ingested_uj as f64 / 1e6).abs() < 1e-6 * joules, "{interval_ms} ms buckets: {joules} J");
    }
    // The invoice table shows what the API says the invoice totals.
    let list = ok("GET", format!("/v1/tenants/{tenant}/invoices"), finance.clone(), Value::Null).await;
    let api_total: f64 = list.as_array().unwrap().iter().filter(|i| i["status"] == "issued").map(|i| i["total"].as_str().unwrap().parse::<f64>().unwrap()).sum();
    let shown: f64 = results[&("fairwatt-tenant".to_string(), 6)].iter().filter(|r| r["status"] == "issued").map(|r| num(r, "total")).sum();
    assert!(api_total > 0.0 && (shown - api_total).abs() < 1e-9, "{shown} against {api_total}");
    let billed = &results[&("fairwatt-tenant".to_string(), 2)][0];
    assert!((num(billed, "billed") - api_total).abs() < 1e-9 && num(billed, "co2_market_kg") < num(billed, "co2_location_kg"), "{billed:?}");
    // The worker recorded its model's error; fits are listed.
    assert!(results[&("fairwatt-attribution".to_string(), 2)].iter().any(|r| num(r, "median_error_w") > 0.0));
    // Four fits: one per host, and the busy-first host's recalibration once it was seen idle.
    let fits = &results[&("fairwatt-attribution".to_string(), 1)][0];
    assert!(num(fits, "fits") == 4.0 && num(fits, "recalibrations") == 1.0, "{fits:?}");
    assert!(results[&("fairwatt-attribution".to_string(), 4)].iter().any(|r| r["reason"].as_str().unwrap().starts_with("recalibration: idle power observed")));
    for r in &results[&("fairwatt-attribution".to_string(), 5)] {
        assert!((num(r, "difference_wh") - (num(r, "model_wh") - num(r, "cpu_ratio_wh"))).abs() < 1e-6, "{r:?}");
    }
    // The shrunk host is overcommitted for as long as it had more than 4 vCPUs placed.
    let sla = &results[&("fairwatt-placement".to_string(), 1)][0];
    assert!(num(sla, "overcommitted_host_hours") > 0.0 && num(sla, "overcommitted_host_hours") <= num(sla, "host_hours_with_vms"), "{sla:?}");
    assert!(num(sla, "peak_allocated_pct") > 100.0, "{sla:?}");
    let moves = &results[&("fairwatt-placement".to_string(), 6)];
    assert_eq!(moves.iter().map(|r| num(r, "migrated")).sum::<f64>(), 1.0, "{moves:?}");
    let vms = recs.iter().flat_map(|r| r.vms.iter().map(|v| v.vm.to_string())).collect::<BTreeSet<_>>().len();
    assert_eq!(moves.iter().map(|r| num(r, "placed")).sum::<f64>(), vms as f64 + 2.0, "every VM once, and the two decided: {moves:?}");
}

/// Grafana takes a `time` column as a timestamp or as epoch seconds; the
/// rows must be in time order (long series are pivoted in order) and in
/// the range (a bucket may start up to an interval before it).
fn check_time_column(what: &str, rows: &[serde_json::Map<String, Value>], from_ms: i64, to_ms: i64, interval_ms: i64) {
    let mut last = i64::MIN;
    for r in rows {
        let ms = match &r["time"] {
            Value::Number(n) => {
                let s = n.as_f64().unwrap();
                assert!((1e9..1e10).contains(&s), "{what}: time {s} is not epoch seconds");
                (s * 1000.0) as i64
            }
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{what}: time {s:?}: {e}")).timestamp_millis(),
            other => panic!("{what}: time {other}"),
        };
        assert!(ms >= from_ms - interval_ms && ms <= to_ms, "{what}: time {ms} outside {from_ms}..{to_ms}");
        assert!(ms >= last, "{what}: rows not in time order");
        last = ms;
    }
}
