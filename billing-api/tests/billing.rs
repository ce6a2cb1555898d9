//! Invoices end to end over HTTP on a ledger with known numbers: every
//! line's kWh, carbon (location, market, embodied) and cost checked
//! against hand-computed values; the lifecycle (issue once under
//! concurrency, gap-free numbers, immutability, late data as adjustments,
//! void, credit notes); JSON, CSV and PDF downloads; the FOCUS export.

use std::net::SocketAddr;

use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::{Db, Role, Settings};
use serde_json::{Value, json};

mod common;
use common::request;

const KWH: i64 = 3_600_000_000_000;

struct App {
    addr: SocketAddr,
    db: Db,
    dir: tempfile::TempDir,
    ops: String,
    finance: String,
}

async fn spawn() -> App {
    let common::Spawned { addr, db, dir } = common::spawn(Settings { issuer: "FW".into(), idle_policy: "reservation".into(), ..Settings::default() }).await;
    let ops = create_key(&db, Role::Ops, None).await.unwrap().secret;
    let finance = create_key(&db, Role::Finance, None).await.unwrap().secret;
    App { addr, db, dir, ops, finance }
}

async fn call(app: &App, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    common::call(app.addr, method, path, key, body).await
}

async fn ok(app: &App, method: &str, path: &str, key: &str, body: Value) -> Value {
    let (s, v) = call(app, method, path, key, body).await;
    assert!(s == 200 || s == 201, "{method} {path}: {s} {v}");
    v
}

fn us(t: &str) -> i64 {
    fairwatt_billing_api::params::parse_time("t", t).unwrap()
}

#[allow(clippy::too_many_arguments)]
async fn usage(db: &Db, hour: &str, host: &str, vm: &str, tenant: &str, domain: &str, dynamic: i64, idle: i64) {
    use fairwatt_billing_api::worker::{Rollup, add_to_rollup};
    let top = !domain.starts_with("core");
    let mut conn = db.pool.acquire().await.unwrap();
    for (rollup, at) in [(Rollup::Hourly, us(hour)), (Rollup::Daily, us(hour) / 86_400_000_000 * 86_400_000_000)] {
        add_to_rollup(&mut conn, rollup, at, host, vm, tenant, domain, top, dynamic, idle).await.unwrap();
    }
    // As the attribution worker does with each write: cached usage answers expire.
    sqlx::query("UPDATE ledger_generation SET gen = gen + 1").execute(&db.pool).await.unwrap();
}

/// Two tenants, two hosts in two regions, a VM that migrates mid-month,
/// hourly intensity for DE with a yearly fallback, a yearly-only FR, a
/// time-of-use tariff in DE, a 1 kWh zero-carbon certificate for acme.
async fn fleet(app: &App) {
    for (t, c) in [("acme", "EUR"), ("beta", "EUR")] {
        ok(app, "PUT", &format!("/v1/tenants/{t}"), &app.ops, json!({"name": format!("{t} Ltd"), "currency": c})).await;
    }
    ok(app, "PUT", "/v1/hosts/h-de", &app.ops, json!({"region": "DE", "pue": 1.5, "embodied_kgco2e": 1000, "lifetime_years": 4, "vcpus": 64, "memory_mib": 262144})).await;
    ok(app, "PUT", "/v1/hosts/h-fr", &app.ops, json!({"region": "FR", "pue": 1.2, "embodied_kgco2e": 800, "lifetime_years": 4, "vcpus": 32, "memory_mib": 131072})).await;
    ok(app, "PUT", "/v1/vms/acme-1", &app.ops, json!({"tenant": "acme", "flavor": "m4", "vcpus": 4, "memory_mib": 16384, "host": "h-de", "at": "2026-09-30T00:00:00Z"})).await;
    // The live migration: one VM, one account, two placements.
    let vm = ok(app, "PUT", "/v1/vms/acme-1", &app.ops, json!({"tenant": "acme", "flavor": "m4", "vcpus": 4, "memory_mib": 16384, "host": "h-fr", "at": "2026-10-15T00:00:00Z"})).await;
    assert_eq!(vm["placements"].as_array().unwrap().len(), 2, "{vm}");
    assert_eq!(vm["placements"][0]["to"], "2026-10-15T00:00:00Z");
    ok(app, "PUT", "/v1/vms/beta-1", &app.ops, json!({"tenant": "beta", "flavor": "m2", "vcpus": 2, "memory_mib": 8192, "host": "h-de", "at": "2026-09-01T00:00:00Z"})).await;
    let (s, v) = call(app, "PUT", "/v1/vms/acme-1", &app.ops, json!({"tenant": "beta", "flavor": "m4", "vcpus": 4, "memory_mib": 16384})).await;
    assert_eq!(s, 409, "a VM's tenant never changes: {v}");

    let hourly = app.dir.path().join("de-hourly.csv");
    std::fs::write(&hourly, "region,start,gco2e_per_kwh,source\nDE,2026-10-05T10:00:00Z,400,test grid\nDE,2026-10-05T19:00:00Z,300,test grid\n").unwrap();
    let yearly = app.dir.path().join("yearly.csv");
    std::fs::write(&yearly, "zone,zone_name,year,gco2e_per_kwh,renewable_pct,carbon_free_pct,source\nDE,Germany,2026,350,50,60,test maps\nFR,France,2025,50,30,90,test maps\n").unwrap();
    for f in [&hourly, &yearly] {
        fairwatt_billing_api::carbon::import_file(&app.db, f).await.unwrap();
    }
    let tou = json!([{"from_hour": 18, "to_hour": 22, "price_per_kwh": "0.50"}]);
    ok(app, "POST", "/v1/tariffs", &app.finance, json!({"id": "de-2026", "region": "DE", "currency": "EUR", "price_per_kwh": "0.30", "valid_from": "2026-01-01T00:00:00Z", "windows": tou})).await;
    ok(app, "POST", "/v1/tariffs", &app.finance, json!({"id": "fr-2026", "region": "FR", "currency": "EUR", "price_per_kwh": "0.20", "valid_from": "2026-01-01T00:00:00Z"})).await;
    ok(app, "POST", "/v1/tenants/acme/instruments", &app.finance, json!({"id": "rec-1", "kind": "certificate", "region": "DE", "from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "volume_kwh": 1, "gco2e_per_kwh": 0})).await;

    let db = &app.db;
    usage(db, "2026-10-05T10:00:00Z", "h-de", "acme-1", "acme", "package-0", KWH, KWH / 10).await;
    usage(db, "2026-10-05T10:00:00Z", "h-de", "acme-1", "acme", "dram-0", KWH / 5, 0).await;
    // Inside the package: never billed on top of it.
    usage(db, "2026-10-05T10:00:00Z", "h-de", "acme-1", "acme", "core-0", KWH, 0).await;
    usage(db, "2026-10-05T19:00:00Z", "h-de", "acme-1", "acme", "package-0", KWH, 0).await;
    usage(db, "2026-10-20T10:00:00Z", "h-fr", "acme-1", "acme", "package-0", 2 * KWH, 0).await;
    usage(db, "2026-10-05T10:00:00Z", "h-de", "beta-1", "beta", "package-0", KWH, 0).await;
    usage(db, "2026-10-05T10:00:00Z", "h-de", "beta-1", "beta", "gpu-0", KWH / 2, 0).await;
}

fn line<'a>(inv: &'a Value, region: &str, charge: &str) -> &'a Value {
    inv["lines"].as_array().unwrap().iter().find(|l| l["region"] == region && l["charge"] == charge && l["adjustment"] == false).unwrap_or_else(|| panic!("no {region} {charge} line in {inv}"))
}

fn sum(inv: &Value, field: &str) -> i64 {
    inv["lines"].as_array().unwrap().iter().map(|l| l[field].as_i64().unwrap()).sum()
}

#[tokio::test]
async fn invoices_carry_exact_energy_carbon_and_cost_through_their_lifecycle() {
    let app = spawn().await;
    fleet(&app).await;
    let acme_key = create_key(&app.db, Role::Tenant, Some("acme")).await.unwrap().secret;
    let beta_key = create_key(&app.db, Role::Tenant, Some("beta")).await.unwrap().secret;

    // Lists are paged: at most 1000 a page.
    let page = ok(&app, "GET", "/v1/tenants?limit=1&offset=1", &app.finance, Value::Null).await;
    assert_eq!(page.as_array().unwrap().len(), 1);
    assert_eq!(page[0]["id"], "beta");
    for bad in ["/v1/tenants?limit=0", "/v1/tenants?limit=1001", "/v1/hosts?offset=-1", "/v1/tenants?size=5"] {
        assert_eq!(call(&app, "GET", bad, &app.finance, Value::Null).await.0, 400, "{bad}");
    }
    // Finance's view by region, priced per hour (time of use): DE 0.33 + 0.06 + 0.50 (acme) + 0.30 + 0.15 (beta), FR 0.40.
    let q = "/v1/usage?from=2026-10-01T00:00:00Z&to=2026-11-01T00:00:00Z&aggregate=region&step=window&cost=true";
    let by_region = ok(&app, "GET", q, &app.finance, Value::Null).await;
    let rows = by_region["rows"].as_array().unwrap();
    let de = rows.iter().find(|r| r["key"] == "DE").unwrap();
    assert_eq!(de["energy_uj"].as_i64().unwrap(), 38 * KWH / 10, "core-0 lies inside package-0: {de}");
    assert_eq!(de["cost"]["EUR"], "1.34", "{de}");
    assert_eq!(rows.iter().find(|r| r["key"] == "FR").unwrap()["cost"]["EUR"], "0.40");
    let (_, head, _) = request(app.addr, "GET", q, Some(&app.finance), &[], b"").await;
    assert!(head.contains("x-cache: hit"), "the same query again is answered from the cache: {head}");
    let (_, own) = call(&app, "GET", q, &acme_key, Value::Null).await;
    assert_eq!(own["rows"].as_array().unwrap().iter().find(|r| r["key"] == "DE").unwrap()["cost"]["EUR"], "0.89", "a tenant's own usage only, cached apart: {own}");

    let inv = ok(&app, "POST", "/v1/tenants/acme/invoices", &app.finance, json!({"period": "2026-10"})).await;
    assert_eq!(inv["status"], "draft");
    assert!(inv["number"].is_null());
    // (region, charge, kWh×1000, location mg, cost cents)
    let want = [
        ("DE", "cpu", 2000, 700_000, 80),
        ("DE", "dram", 200, 80_000, 6),
        ("DE", "idle", 100, 40_000, 3),
        // (1.3 kWh × 0.5 at 400 g, 0.30 €) + (1 kWh × 0.5 at 300 g, 0.50 €): 0.445 € rounds up.
        ("DE", "facility", 1150, 410_000, 45),
        // FR has only a 2025 yearly factor: the latest earlier year applies.
        ("FR", "cpu", 2000, 100_000, 40),
        ("FR", "facility", 400, 20_000, 8),
    ];
    for (region, charge, kwh_milli, mg, cents) in want {
        let l = line(&inv, region, charge);
        assert_eq!(l["energy_uj"].as_i64().unwrap(), kwh_milli * KWH / 1000, "{region} {charge}: {l}");
        assert_eq!(l["co2_location_mg"].as_i64().unwrap(), mg, "{region} {charge}: {l}");
        assert_eq!(l["cost_minor"].as_i64().unwrap(), cents, "{region} {charge}: {l}");
    }
    assert_eq!(line(&inv, "DE", "cpu")["unit_price"], "time of use");
    // SCI embodied: 1000 kg × 14 d / 1461 d × 4/64 on h-de; 800 kg × 17 d / 1461 d × 4/32 on h-fr.
    assert_eq!(line(&inv, "DE", "embodied")["co2_embodied_mg"].as_i64().unwrap(), 598_905);
    assert_eq!(line(&inv, "FR", "embodied")["co2_embodied_mg"].as_i64().unwrap(), 1_163_587);
    // Market-based: the certificate covers 1 kWh of DE facility energy at 0 g (400 g saved).
    let (loc, mkt) = (sum(&inv, "co2_location_mg"), sum(&inv, "co2_market_mg"));
    assert_eq!(loc, 1_350_000);
    assert!((mkt - 950_000).abs() <= 6, "market {mkt}");
    assert_eq!(inv["total"], "1.82");
    assert_eq!(inv["total_minor"].as_i64().unwrap(), sum(&inv, "cost_minor"));
    let m = &inv["methodology"];
    assert!(m["idle_policy"] == "reservation" && m["market_based"].as_str().unwrap().contains("rec-1"), "{m}");
    assert!(m["intensity_sources"].to_string().contains("test grid (hourly)") && m["intensity_sources"].to_string().contains("test maps"), "{m}");
    assert!(m["tariffs"].to_string().contains("de-2026"), "{m}");
    let id = inv["id"].as_str().unwrap().to_string();

    // Eight concurrent finalisations: one number.
    let issues: Vec<_> = (0..8).map(|_| spawn_post(&app, format!("/v1/invoices/{id}/issue"))).collect();
    let results = join_all(issues).await;
    for (s, v) in &results {
        assert_eq!(*s, 200, "{v}");
        assert_eq!(v["number"], "FW-000001", "{v}");
    }
    let beta = ok(&app, "POST", "/v1/tenants/beta/invoices", &app.finance, json!({"period": "2026-10", "issue": true})).await;
    assert_eq!(beta["number"], "FW-000002");
    // CPU 0.30 + GPU 0.15 + facility (1.5 kWh × 0.5 at 0.30 = 0.225, rounded up) 0.23.
    assert_eq!(beta["total"], "0.68");
    assert_eq!(line(&beta, "DE", "gpu")["energy_uj"].as_i64().unwrap(), KWH / 2);
    assert_eq!(line(&beta, "DE", "gpu")["co2_location_mg"].as_i64().unwrap(), 200_000);
    // Issued invoices never change.
    let (s, v) = call(&app, "POST", "/v1/tenants/acme/invoices", &app.finance, json!({"period": "2026-10"})).await;
    assert_eq!(s, 409, "{v}");

    // Late data for October arrives after it was invoiced: 0.5 kWh at 10:00 on the 7th (yearly 350 g).
    usage(&app.db, "2026-10-07T10:00:00Z", "h-de", "acme-1", "acme", "package-0", KWH / 2, 0).await;
    let (_, head, body) = request(app.addr, "GET", q, Some(&app.finance), &[], b"").await;
    assert!(!head.contains("x-cache: hit") && String::from_utf8_lossy(&body).contains("\"EUR\":\"1.49\""), "a new generation is recomputed: {}", String::from_utf8_lossy(&body));
    let nov_a = ok(&app, "POST", "/v1/tenants/acme/invoices", &app.finance, json!({"period": "2026-11"})).await;
    let nov_b = ok(&app, "POST", "/v1/tenants/beta/invoices", &app.finance, json!({"period": "2026-11"})).await;
    // Both issued concurrently: consecutive numbers, no gap.
    let (ida, idb) = (nov_a["id"].as_str().unwrap().to_string(), nov_b["id"].as_str().unwrap().to_string());
    let mut calls = Vec::new();
    for i in 0..6 {
        let id = if i % 2 == 0 { &ida } else { &idb };
        calls.push(spawn_post(&app, format!("/v1/invoices/{id}/issue")));
    }
    let mut numbers: Vec<String> = join_all(calls).await.into_iter().map(|(s, v)| {
        assert_eq!(s, 200, "{v}");
        v["number"].as_str().unwrap().to_string()
    }).collect();
    numbers.sort();
    numbers.dedup();
    assert_eq!(numbers, ["FW-000003", "FW-000004"]);
    let nov_a = ok(&app, "GET", &format!("/v1/invoices/{ida}"), &app.finance, Value::Null).await;
    let adj: Vec<&Value> = nov_a["lines"].as_array().unwrap().iter().filter(|l| l["adjustment"] == true).collect();
    let cpu = adj.iter().find(|l| l["charge"] == "cpu").expect("a CPU adjustment");
    assert_eq!(cpu["energy_uj"].as_i64().unwrap(), KWH / 2);
    assert_eq!(cpu["co2_location_mg"].as_i64().unwrap(), 175_000);
    assert_eq!(cpu["cost_minor"].as_i64().unwrap(), 15);
    assert_eq!(cpu["usage_start_us"].as_i64().unwrap(), us("2026-10-01T00:00:00Z"));
    let fac = adj.iter().find(|l| l["charge"] == "facility").expect("a facility adjustment");
    assert_eq!(fac["energy_uj"].as_i64().unwrap(), KWH / 4);
    // Before the late data the October DE facility line rounded 0.445 € to 0.45; now 0.52 € in all.
    assert_eq!(fac["cost_minor"].as_i64().unwrap(), 52 - 45);
    assert!(adj.iter().all(|l| l["description"].as_str().unwrap().contains("adjustment for 2026-10")));
    // Billed once: December finds nothing more to adjust for October.
    let dec = ok(&app, "POST", "/v1/tenants/acme/invoices", &app.finance, json!({"period": "2026-12"})).await;
    assert!(dec["lines"].as_array().unwrap().iter().all(|l| l["adjustment"] == false), "{dec}");

    // Void, then invoice the period again.
    let (s, v) = call(&app, "POST", &format!("/v1/invoices/{idb}/void"), &app.finance, json!({"reason": "wrong tariff"})).await;
    // A void invoice keeps its number: the sequence stays gap-free.
    assert!(s == 200 && v["status"] == "void" && numbers.iter().any(|n| v["number"] == n.as_str()), "{v}");
    assert_eq!(call(&app, "POST", &format!("/v1/invoices/{idb}/void"), &app.finance, Value::Null).await.0, 409);
    ok(&app, "POST", "/v1/tenants/beta/invoices", &app.finance, json!({"period": "2026-11"})).await;

    // A credit note for October's first line, numbered next; each line is credited once.
    let cn = ok(&app, "POST", &format!("/v1/invoices/{id}/credit-notes"), &app.finance, json!({"reason": "meter fault", "lines": [1]})).await;
    assert_eq!(cn["kind"], "credit_note");
    assert_eq!(cn["number"], "FW-000005");
    assert_eq!(cn["corrects"], id.as_str());
    assert_eq!(cn["total_minor"].as_i64().unwrap(), -80);
    assert_eq!(call(&app, "POST", &format!("/v1/invoices/{id}/credit-notes"), &app.finance, json!({"reason": "again", "lines": [1]})).await.0, 409);
    // Four credits of line 2 at once: one is issued, the others refused, no number lost.
    let credits: Vec<_> = (0..4)
        .map(|_| {
            let (addr, key, path) = (app.addr, app.finance.clone(), format!("/v1/invoices/{id}/credit-notes"));
            tokio::spawn(async move { request(addr, "POST", &path, Some(&key), &[], br#"{"reason": "dup", "lines": [2]}"#).await.0 })
        })
        .collect();
    let mut codes = Vec::new();
    for c in credits {
        codes.push(c.await.unwrap());
    }
    codes.sort();
    assert_eq!(codes, [201, 409, 409, 409]);
    let numbers: Vec<(String,)> = sqlx::query_as("SELECT number FROM invoices WHERE number IS NOT NULL ORDER BY number").fetch_all(&app.db.pool).await.unwrap();
    let numbers: Vec<String> = numbers.into_iter().map(|(n,)| n).collect();
    assert_eq!(numbers, (1..=numbers.len()).map(|n| format!("FW-{n:06}")).collect::<Vec<_>>(), "gap-free");
    // The store itself refuses to change an issued invoice, whatever code asks.
    for sql in [
        "UPDATE invoice_lines SET cost_minor = 1 WHERE line_no = 1 AND invoice_id = $1",
        "DELETE FROM invoice_lines WHERE invoice_id = $1",
        "UPDATE invoices SET total_minor = 0 WHERE id = $1",
        "DELETE FROM invoices WHERE id = $1",
    ] {
        assert!(sqlx::query(sql).bind(&id).execute(&app.db.pool).await.is_err(), "{sql} was allowed");
    }
    assert_eq!(call(&app, "POST", &format!("/v1/invoices/{id}/credit-notes"), &app.finance, json!({"reason": "", "lines": [2]})).await.0, 400);

    // Tenants see their own invoices only; a tenant key cannot issue.
    let (s, list) = call(&app, "GET", "/v1/tenants/acme/invoices", &acme_key, Value::Null).await;
    assert_eq!(s, 200);
    assert!(list.as_array().unwrap().len() >= 3, "{list}");
    assert_eq!(call(&app, "GET", "/v1/tenants/beta/invoices", &acme_key, Value::Null).await.0, 404);
    assert_eq!(call(&app, "GET", &format!("/v1/invoices/{id}"), &beta_key, Value::Null).await.0, 404);
    assert_eq!(call(&app, "POST", &format!("/v1/invoices/{id}/issue"), &acme_key, Value::Null).await.0, 403);

    downloads(&app, &id, &acme_key).await;
    focus(&app).await;
}

/// `POST path` from a task of its own, so that several run at once.
fn spawn_post(app: &App, path: String) -> tokio::task::JoinHandle<(u16, Value)> {
    let (addr, key) = (app.addr, app.finance.clone());
    tokio::spawn(async move {
        let (s, _, b) = request(addr, "POST", &path, Some(&key), &[], b"").await;
        (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
    })
}

async fn join_all(hs: Vec<tokio::task::JoinHandle<(u16, Value)>>) -> Vec<(u16, Value)> {
    let mut out = Vec::new();
    for h in hs {
        out.push(h.await.unwrap());
    }
    out
}

/// JSON, CSV and PDF of the same invoice, by `Accept` and by `?format=`.
async fn downloads(app: &App, id: &str, key: &str) {
    let (s, head, body) = request(app.addr, "GET", &format!("/v1/invoices/{id}?format=csv"), Some(key), &[], b"").await;
    assert_eq!(s, 200);
    assert!(head.contains("text/csv"), "{head}");
    let mut r = csv::Reader::from_reader(body.as_slice());
    let amounts: Vec<f64> = r.records().map(|rec| rec.unwrap()[18].parse::<f64>().unwrap()).collect();
    assert_eq!(amounts.len(), 8);
    assert!((amounts.iter().sum::<f64>() - 1.82).abs() < 1e-9, "{amounts:?}");

    let (s, head, pdf) = request(app.addr, "GET", &format!("/v1/invoices/{id}"), Some(key), &[("Accept", "application/pdf")], b"").await;
    assert_eq!(s, 200);
    assert!(head.contains("application/pdf") && pdf.starts_with(b"%PDF-"), "{head}");
    let doc = lopdf::Document::load_mem(&pdf).expect("a PDF that parses");
    let pages: Vec<u32> = doc.get_pages().keys().copied().collect();
    let text = doc.extract_text(&pages).unwrap();
    for want in ["Invoice FW-000001", "acme", "2026-10", "1.82", "Total due: 1.82 EUR", "acme-1", "Methodology", "reservation", "de-2026"] {
        assert!(text.contains(want), "{want:?} not in the PDF's text:\n{text}");
    }
    let (s, _, _) = request(app.addr, "GET", &format!("/v1/invoices/{id}?format=xml"), Some(key), &[], b"").await;
    assert_eq!(s, 400);
}

/// The FOCUS export of October: one row per issued line, the credit note
/// as a correction, and the FinOps validator's verdict when it is installed.
async fn focus(app: &App) {
    let (s, head, body) = request(app.addr, "GET", "/v1/exports/focus?period=2026-10", Some(&app.finance), &[], b"").await;
    assert_eq!(s, 200);
    assert!(head.contains("text/csv"));
    let mut r = csv::Reader::from_reader(body.as_slice());
    let cols: Vec<String> = r.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(cols, fairwatt_billing_api::focus::COLUMNS);
    let at = |c: &str| cols.iter().position(|x| x == c).unwrap();
    let rows: Vec<csv::StringRecord> = r.records().map(|x| x.unwrap()).collect();
    // acme 8 lines + beta 4 + the two credit notes' 1 each.
    assert_eq!(rows.len(), 14);
    let billed: f64 = rows.iter().map(|x| x[at("BilledCost")].parse::<f64>().unwrap()).sum();
    assert!((billed - (1.82 + 0.68 - 0.80 - 0.06)).abs() < 1e-9, "{billed}");
    let corrections = rows.iter().filter(|x| &x[at("ChargeClass")] == "Correction").count();
    assert_eq!(corrections, 2);
    assert!(rows.iter().all(|x| x[at("BillingPeriodStart")] == *"2026-10-01T00:00:00Z" && x[at("ConsumedUnit")] == *"kWh"));
    assert_eq!(call(app, "GET", "/v1/exports/focus?period=2026-10", &app.ops, Value::Null).await.0, 403);

    let Some(venv) = std::env::var_os("FAIRWATT_FOCUS_VENV") else {
        eprintln!("FAIRWATT_FOCUS_VENV is not set: the FinOps focus-validator check is skipped (.ci/run installs it)");
        return;
    };
    let file = app.dir.path().join("focus.csv");
    std::fs::write(&file, &body).unwrap();
    let venv = std::path::PathBuf::from(venv);
    let py = venv.join("bin/python");
    let site = std::process::Command::new(&py).args(["-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).output().unwrap();
    let site = String::from_utf8(site.stdout).unwrap().trim().to_string();
    // It opens its currency list relative to the working directory, and exits 0 on failed rules: read its verdict.
    let out = std::process::Command::new(venv.join("bin/focus-validator")).current_dir(&site).arg("--data-file").arg(&file).args(["--validate-version", "1.0"]).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && text.lines().any(|l| l.trim() == "Validation succeeded."), "focus-validator:\n{text}");
}

/// The real intensity files, imported whole into the store (skipped when
/// ../shared/data is absent).
#[tokio::test]
async fn the_shared_intensity_files_import_whole() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/grid-intensity");
    if !dir.exists() {
        eprintln!("{} is absent: the real-file import test is skipped", dir.display());
        return;
    }
    let app = spawn().await;
    for (file, at_least) in [("ember_country_grid_intensity_latest.csv", 200), ("electricitymaps_zone_grid_intensity_yearly_2021_2025.csv", 1500)] {
        let r = fairwatt_billing_api::carbon::import_file(&app.db, &dir.join(file)).await.unwrap();
        assert!(r.rows >= at_least, "{file}: {r:?}");
    }
    // Germany has an Ember (DEU) and an Electricity Maps (DE) series; a 2026 hour falls back to the latest year.
    for region in ["DEU", "DE", "FR"] {
        let v = ok(&app, "GET", &format!("/v1/carbon/intensity?region={region}&from=2026-11-01T00:00:00Z&to=2026-11-01T03:00:00Z"), &app.finance, Value::Null).await;
        let pts = v.as_array().unwrap();
        assert_eq!(pts.len(), 3, "{region}: {v}");
        let g = pts[0]["gco2e_per_kwh"].as_f64().unwrap();
        assert!(g > 0.0 && g < 1000.0, "{region}: {v}");
    }
}
