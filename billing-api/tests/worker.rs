//! The attribution worker on a fresh store (SQLite, or PostgreSQL when
//! `FAIRWATT_TEST_POSTGRES_URL` is set): simulated agent intervals in, the
//! ledger out, every interval and domain conserved exactly, late intervals
//! and a restart handled without loss or double counting.

use fairwatt_attribution::{IdlePolicy, Method};
use fairwatt_billing_api::app::AppState;
use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::ingest::{Batch, store};
use fairwatt_billing_api::worker::Worker;
use fairwatt_billing_api::{Db, Role, Settings};
use fairwatt_collector::sim::scenario;
use fairwatt_core::{IntervalRecord, Timestamp};

mod common;

/// `n` intervals of `mixed` host 3 (15 VMs), empty for its first 2 minutes,
/// as an agent sends them (no ground truth).
fn records(n: usize) -> Vec<IntervalRecord> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let mut sc = scenario("mixed", 4, 11, Timestamp::from_micros(now - 3_600_000_000).unwrap()).unwrap();
    let k = sc.hosts[3].vms.len() as u64;
    for (i, v) in sc.hosts[3].vms.iter_mut().enumerate() {
        v.arrive_at_s = 120 + i as u64 * 60 / k;
    }
    let mut h = sc.build().remove(3);
    (0..n)
        .map(|_| {
            let mut r = h.step();
            r.truth = None;
            r.vms.iter_mut().for_each(|v| v.truth = None);
            r
        })
        .collect()
}

async fn ingest(state: &AppState, key: &str, id: &str, recs: &[IntervalRecord]) {
    store(state, key, &Batch { batch_id: id.into(), records: recs.to_vec() }).await.unwrap();
}

async fn scalar(db: &Db, sql: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_string())).fetch_one(&db.pool).await.unwrap();
    n
}

async fn drain(w: &mut Worker) -> usize {
    let mut total = 0;
    loop {
        let n = w.run_once().await.unwrap();
        total += n;
        if n == 0 {
            return total;
        }
    }
}

/// Every check the ledger must pass whatever happened before.
async fn assert_ledger_exact(db: &Db) {
    let broken = scalar(
        db,
        "SELECT COUNT(*) FROM ledger_domains d WHERE d.measured_uj <> d.unattributed_uj + \
         COALESCE((SELECT SUM(l.dynamic_uj + l.idle_uj) FROM ledger l WHERE l.host = d.host AND l.seq = d.seq AND l.domain = d.domain), 0)",
    )
    .await;
    assert_eq!(broken, 0, "intervals whose split does not add up");
    let measured = scalar(db, "SELECT CAST(COALESCE(SUM(measured_uj), 0) AS BIGINT) FROM ledger_domains").await;
    let ingested = scalar(db, "SELECT CAST(COALESCE(SUM(e.energy_uj), 0) AS BIGINT) FROM interval_energy e JOIN intervals i ON i.host = e.host AND i.seq = e.seq WHERE i.model_id IS NOT NULL").await;
    assert_eq!(measured, ingested, "the ledger holds exactly the attributed intervals' measured energy");
    let shares = scalar(db, "SELECT CAST(COALESCE(SUM(dynamic_uj + idle_uj), 0) AS BIGINT) FROM ledger").await;
    let rolled = scalar(db, "SELECT CAST(COALESCE(SUM(dynamic_uj + idle_uj), 0) AS BIGINT) FROM usage_hourly").await;
    assert_eq!(shares, rolled, "hourly rollups add up to the ledger");
    let unattributed_domains = scalar(db, "SELECT COUNT(*) FROM intervals i WHERE i.model_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ledger_domains d WHERE d.host = i.host AND d.seq = i.seq)").await;
    assert_eq!(unattributed_domains, 0);
}

#[tokio::test]
async fn ingested_intervals_become_an_exact_ledger_once_even_late_or_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path()).await;
    let key = create_key(&db, Role::Collector, None).await.unwrap();
    let state = AppState::new(db.clone(), Settings::default());
    let recs = records(400);
    common::register(&db, &recs).await;
    // Three batches, with interval 150 held back (it will arrive late).
    let early: Vec<_> = recs[..300].iter().filter(|r| r.seq != 150).cloned().collect();
    for (i, c) in early.chunks(100).enumerate() {
        ingest(&state, &key.id, &format!("b-{i}"), c).await;
    }
    let mut w = Worker::new(db.clone(), Method::Linear, IdlePolicy::Reservation).unwrap();
    let done = drain(&mut w).await;
    assert_eq!(done, 299, "every interval but the late one");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").await, 0);
    assert_ledger_exact(&db).await;
    // The model that split them is recorded with its fit; quiet intervals at boot gave the idle.
    let (desc,): (String,) = sqlx::query_as("SELECT description FROM models WHERE method = 'linear' AND version >= 1 ORDER BY id LIMIT 1").fetch_one(&db.pool).await.unwrap();
    assert!(desc.contains("coefficients") && desc.contains("\"observed\""), "{desc}");
    // Ledger rows name the VMs and tenants.
    assert!(scalar(&db, "SELECT COUNT(DISTINCT vm) FROM ledger").await >= 10);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM ledger WHERE tenant = ''").await, 0);

    // The late interval: attributed on its own with the current model.
    ingest(&state, &key.id, "b-late", &recs[150..151]).await;
    assert_eq!(drain(&mut w).await, 1);
    assert_ledger_exact(&db).await;

    // A restart: a new worker, warmed on what is in the ledger, takes the rest.
    let before = scalar(&db, "SELECT COUNT(*) FROM ledger_domains").await;
    let mut w = Worker::new(db.clone(), Method::Linear, IdlePolicy::Reservation).unwrap();
    assert_eq!(drain(&mut w).await, 0, "nothing is attributed twice");
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM ledger_domains").await, before);
    ingest(&state, &key.id, "b-3", &recs[300..]).await;
    assert_eq!(drain(&mut w).await, 100);
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").await, 0);
    let domains_per_interval = recs[0].domains.len() as i64;
    assert_eq!(scalar(&db, "SELECT COUNT(*) FROM ledger_domains").await, 400 * domains_per_interval);
    assert_ledger_exact(&db).await;
    usage_reads_the_ledger(&db).await;
}

/// `GET /v1/usage` over the ledger just built: totals agree with it, a
/// tenant sees only its own, bad windows and roles are refused.
async fn usage_reads_the_ledger(db: &Db) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(fairwatt_billing_api::serve(listener, db.clone()).unwrap());
    let finance = create_key(db, Role::Finance, None).await.unwrap().secret;
    let acme = create_key(db, Role::Tenant, Some("tenant-1")).await.unwrap().secret;
    let collector = create_key(db, Role::Collector, None).await.unwrap().secret;
    let hour = 3_600_000_000i64;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let from = Timestamp::from_micros((now / hour - 3) * hour).unwrap();
    let to = Timestamp::from_micros((now / hour + 2) * hour).unwrap();
    let q = |agg: &str, step: &str| format!("/v1/usage?from={from}&to={to}&aggregate={agg}&step={step}");
    let total = |body: &str| -> i64 {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        v["rows"].as_array().unwrap().iter().map(|r| r["energy_uj"].as_i64().unwrap()).sum()
    };
    let all_domains = scalar(db, "SELECT CAST(SUM(dynamic_uj + idle_uj) AS BIGINT) FROM ledger").await;
    // Sums across domains count the top-level ones only: cores lie inside packages.
    let top = "(domain LIKE 'package-%' OR domain LIKE 'dram-%' OR domain LIKE 'gpu-%')";
    let ledger_total = scalar(db, &format!("SELECT CAST(SUM(dynamic_uj + idle_uj) AS BIGINT) FROM ledger WHERE {top}")).await;
    for (agg, step, want) in [("tenant", "window", ledger_total), ("vm", "1h", ledger_total), ("host", "1d", ledger_total), ("region", "1h", ledger_total), ("domain", "window", all_domains)] {
        let (s, b) = common::get(addr, &q(agg, step), Some(&finance)).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(total(&b), want, "{agg}/{step}: {b}");
    }
    // OpenCost's window form covers the same intervals (all within the last hour).
    let (s, b) = common::get(addr, "/v1/usage?window=24h&aggregate=host", Some(&finance)).await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(total(&b), ledger_total, "{b}");
    assert_eq!(common::get(addr, &format!("/v1/usage?window=24h&from={from}&to={to}"), Some(&finance)).await.0, 400);
    // A tenant: its own energy only, whatever it asks to group by.
    let own = scalar(db, &format!("SELECT CAST(SUM(dynamic_uj + idle_uj) AS BIGINT) FROM ledger WHERE tenant = 'tenant-1' AND {top}")).await;
    assert!(own > 0 && own < ledger_total);
    for agg in ["tenant", "vm", "host"] {
        let (s, b) = common::get(addr, &q(agg, "window"), Some(&acme)).await;
        assert_eq!(s, 200, "{b}");
        assert_eq!(total(&b), own, "{agg}: {b}");
    }
    let (_, b) = common::get(addr, &q("tenant", "window"), Some(&acme)).await;
    assert!(!b.contains("tenant-2"), "{b}");
    // The placement engine's view: mean watts over the window, from the same ledger.
    let placement = create_key(db, Role::Placement, None).await.unwrap().secret;
    let (s, b) = common::get(addr, &format!("/v1/placement/power?from={from}&to={to}"), Some(&placement)).await;
    assert_eq!(s, 200, "{b}");
    let hosts: serde_json::Value = serde_json::from_str(&b).unwrap();
    let secs = (to.as_micros() - from.as_micros()) as f64 / 1e6;
    let vm_j: f64 = hosts.as_array().unwrap().iter().flat_map(|h| h["vms"].as_array().unwrap()).map(|v| v["dynamic_w"].as_f64().unwrap() + v["idle_w"].as_f64().unwrap()).sum::<f64>() * secs;
    assert!((vm_j - ledger_total as f64 / 1e6).abs() < 1e-6 * vm_j.max(1.0), "{vm_j} J against {ledger_total} µJ");
    let measured = scalar(db, &format!("SELECT CAST(SUM(measured_uj) AS BIGINT) FROM ledger_domains WHERE {top}")).await;
    let host_j: f64 = hosts.as_array().unwrap().iter().map(|h| h["measured_w"].as_f64().unwrap()).sum::<f64>() * secs;
    assert!((host_j - measured as f64 / 1e6).abs() < 1e-6 * host_j.max(1.0), "{host_j} J against {measured} µJ");
    assert_eq!(common::get(addr, &format!("/v1/placement/power?from={from}&to={to}"), Some(&acme)).await.0, 403);
    assert_eq!(common::get(addr, &q("tenant", "window"), Some(&collector)).await.0, 403);
    assert_eq!(common::get(addr, &q("tenant", "window"), None).await.0, 401);
    for bad in [
        format!("/v1/usage?from={to}&to={from}"),
        format!("/v1/usage?from=2026-12-01T00:30:00Z&to={to}"),
        format!("/v1/usage?from=yesterday&to={to}"),
        q("colour", "window"),
        q("tenant", "5m"),
        format!("/v1/usage?from={from}&to={to}&sql=drop"),
    ] {
        let (s, b) = common::get(addr, &bad, Some(&finance)).await;
        assert_eq!(s, 400, "{bad}: {b}");
    }
}
