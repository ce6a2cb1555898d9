//! The billing API end to end: the app on port 0 with a fresh, migrated
//! database per test (SQLite in a temporary directory; PostgreSQL when
//! `FAIRWATT_TEST_POSTGRES_URL` names a server, a new database per test),
//! talked to over real HTTP.

use std::collections::BTreeMap;
use std::net::TcpListener;

use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::{Db, Role, serve};
use fairwatt_core::{Domain, DomainEnergy, Energy, HostId, IntervalRecord, Micros, Timestamp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::test_db;

struct TestApp {
    addr: std::net::SocketAddr,
    db: Db,
    _dir: tempfile::TempDir,
}

async fn spawn_app() -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(dir.path()).await;
    common::register(&db, &[record("h1", 0, 1), record("h2", 0, 1)]).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = serve(listener, db.clone()).unwrap();
    tokio::spawn(server);
    TestApp { addr, db, _dir: dir }
}

/// One HTTP/1.1 exchange; returns the status and the body.
async fn http(app: &TestApp, method: &str, path: &str, key: Option<&str>, body: &[u8]) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    let head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Type: application/json\r\n{auth}Content-Length: {}\r\n\r\n", body.len());
    s.write_all(head.as_bytes()).await.unwrap();
    // A refused oversize body may close the connection early.
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64
}

fn record(host: &str, seq: u64, pkg_uj: u64) -> IntervalRecord {
    let start = Timestamp::from_micros(now_us() - 3_600_000_000 + seq as i64 * 1_000_000).unwrap();
    let domains = BTreeMap::from([(Domain::package(0), DomainEnergy::ok(Energy::from_uj(pkg_uj))), (Domain::dram(0), DomainEnergy::ok(Energy::from_uj(1_000)))]);
    IntervalRecord { host: HostId::new(host).unwrap(), seq, start, end: start.plus(Micros::from_secs(1)), domains, vms: Vec::new(), truth: None }
}

fn batch(id: &str, recs: &[IntervalRecord]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "batch_id": id, "records": recs })).unwrap()
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    let (n,): (i64,) = sqlx::query_as(sql).fetch_one(&db.pool).await.unwrap();
    n
}

#[tokio::test]
async fn health_readiness_and_unknown_paths() {
    let app = spawn_app().await;
    assert_eq!(http(&app, "GET", "/healthz", None, b"").await.0, 200);
    let (s, body) = http(&app, "GET", "/readyz", None, b"").await;
    assert_eq!((s, body.contains("ready")), (200, true), "{body}");
    let (s, body) = http(&app, "GET", "/v1/nothing", None, b"").await;
    assert_eq!(s, 404, "{body}");
    assert!(body.contains("not_found"), "{body}");
}

#[tokio::test]
async fn ingest_is_for_collectors_only() {
    let app = spawn_app().await;
    let body = batch("b-1", &[record("h1", 0, 5_000)]);
    assert_eq!(http(&app, "POST", "/v1/ingest", None, &body).await.0, 401);
    assert_eq!(http(&app, "POST", "/v1/ingest", Some("fw_0123456789abcdef"), &body).await.0, 401);
    for role in [Role::Finance, Role::Ops, Role::Placement] {
        let k = create_key(&app.db, role, None).await.unwrap();
        let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &body).await;
        assert_eq!(s, 403, "{role}: {b}");
    }
    let t = create_key(&app.db, Role::Tenant, Some("acme")).await.unwrap();
    assert_eq!(http(&app, "POST", "/v1/ingest", Some(&t.secret), &body).await.0, 403);
    let c = create_key(&app.db, Role::Collector, None).await.unwrap();
    let (s, b) = http(&app, "POST", "/v1/ingest", Some(&c.secret), &body).await;
    assert_eq!(s, 200, "{b}");
    // Keys are stored hashed: the secret appears nowhere in the table.
    let (hash,): (String,) = sqlx::query_as("SELECT hash FROM api_keys WHERE id = $1").bind(&c.id).fetch_one(&app.db.pool).await.unwrap();
    assert!(!hash.contains(&c.secret[3..]) && hash.len() == 64);
    assert!(create_key(&app.db, Role::Tenant, None).await.is_err());
    assert!(create_key(&app.db, Role::Ops, Some("acme")).await.is_err());
}

#[tokio::test]
async fn a_resent_batch_or_interval_is_never_counted_twice() {
    let app = spawn_app().await;
    let k = create_key(&app.db, Role::Collector, None).await.unwrap();
    let first: Vec<_> = (0..5).map(|s| record("h1", s, 1_000_000 + s)).collect();
    let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("b-1", &first)).await;
    assert_eq!(s, 200, "{b}");
    let r: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((r["accepted"].as_u64(), r["duplicates"].as_u64(), r["replay"].as_bool()), (Some(5), Some(0), Some(false)));
    let want: u64 = first.iter().map(|r| r.measured_total().as_uj()).sum();
    assert_eq!(r["energy_uj"].as_u64(), Some(want));

    // The same batch again: the first result, nothing stored twice.
    let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("b-1", &first)).await;
    assert_eq!(s, 200, "{b}");
    let again: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((again["accepted"].as_u64(), again["replay"].as_bool()), (Some(5), Some(true)));
    // A new batch id carrying two old intervals (3, 4) and three new ones.
    let mixed: Vec<_> = (3..8).map(|s| record("h1", s, 1_000_000 + s)).collect();
    let (_, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("b-2", &mixed)).await;
    let r: serde_json::Value = serde_json::from_str(&b).unwrap();
    assert_eq!((r["accepted"].as_u64(), r["duplicates"].as_u64()), (Some(3), Some(2)), "{b}");
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM intervals").await, 8);
    // Energy stored equals the distinct intervals' energy exactly.
    let total: i64 = count(&app.db, "SELECT CAST(SUM(energy_uj) AS BIGINT) FROM interval_energy").await;
    let distinct: u64 = (0..8).map(|s| record("h1", s, 1_000_000 + s).domains.values().map(|e| e.energy_uj.as_uj()).sum::<u64>()).sum();
    assert_eq!(total as u64, distinct);
    // The same seq on another host is another interval.
    let (_, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("b-3", &[record("h2", 0, 7)])).await;
    assert!(b.contains("\"accepted\":1"), "{b}");
}

#[tokio::test]
async fn bad_batches_are_refused_whole_with_the_reason() {
    let app = spawn_app().await;
    let k = create_key(&app.db, Role::Collector, None).await.unwrap();
    let good = record("h1", 0, 10);
    let mut future = record("h1", 1, 10);
    future.start = Timestamp::from_micros(now_us() + 86_400_000_000).unwrap();
    future.end = future.start.plus(Micros::from_secs(1));
    let mut ancient = record("h1", 2, 10);
    ancient.start = Timestamp::from_micros(now_us() - 500 * 86_400_000_000).unwrap();
    ancient.end = ancient.start.plus(Micros::from_secs(1));
    let mut empty = record("h1", 3, 10);
    empty.end = empty.start;
    let negative = String::from_utf8(batch("b-neg", std::slice::from_ref(&good))).unwrap().replace("\"energy_uj\":10", "\"energy_uj\":-10");
    let nan = String::from_utf8(batch("b-nan", std::slice::from_ref(&good))).unwrap().replace("\"energy_uj\":10", "\"energy_uj\":\"NaN\"");
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (b"{not json".to_vec(), "malformed batch"),
        (b"{\"batch_id\": 7, \"records\": []}".to_vec(), "malformed batch"),
        (negative.into_bytes(), "malformed batch"),
        (nan.into_bytes(), "malformed batch"),
        (batch("b-f", &[good.clone(), future]), "records[1]"),
        (batch("b-a", &[ancient]), "days ago"),
        (batch("b-e", &[empty]), "not after start"),
        (batch("b-d", &[good.clone(), good.clone()]), "appears twice"),
        (batch("", std::slice::from_ref(&good)), "batch_id"),
        (batch("b/../x", std::slice::from_ref(&good)), "batch_id"),
        (batch("b-none", &[]), "at least one record"),
        (b"{\"batch_id\": \"b-x\", \"records\": [], \"extra\": 1}".to_vec(), "unknown field"),
    ];
    for (body, says) in cases {
        let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &body).await;
        assert_eq!(s, 400, "{says}: {b}");
        assert!(b.contains(says), "expected {says:?} in {b}");
    }
    // Nothing of any refused batch was kept.
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM intervals").await, 0);
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM ingest_batches").await, 0);

    let big = vec![b' '; fairwatt_billing_api::app::MAX_BODY + 10];
    let (s, _) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &big).await;
    assert_eq!(s, 413);
}

#[tokio::test]
async fn a_database_that_goes_away_is_a_503() {
    let app = spawn_app().await;
    let k = create_key(&app.db, Role::Collector, None).await.unwrap();
    app.db.pool.close().await;
    let (s, b) = http(&app, "GET", "/readyz", None, b"").await;
    assert_eq!(s, 503, "{b}");
    assert!(b.contains("unavailable"), "{b}");
    let (s, _) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("b-1", &[record("h1", 0, 1)])).await;
    assert_eq!(s, 503);
}

#[tokio::test]
async fn the_same_batch_sent_concurrently_is_stored_once() {
    let app = spawn_app().await;
    let k = create_key(&app.db, Role::Collector, None).await.unwrap();
    let recs: Vec<_> = (0..50).map(|s| record("h1", s, 10 + s)).collect();
    let body = batch("b-race", &recs);
    let send = || http(&app, "POST", "/v1/ingest", Some(&k.secret), &body);
    // Polled together on one task: six requests in flight at once.
    let (a, b, c, d, e, f) = tokio::join!(send(), send(), send(), send(), send(), send());
    let answers = [a, b, c, d, e, f];
    for (s, b) in &answers {
        assert_eq!(*s, 200, "{b}");
        let r: serde_json::Value = serde_json::from_str(b).unwrap();
        assert_eq!(r["accepted"].as_u64(), Some(50), "{b}");
    }
    assert_eq!(answers.iter().filter(|(_, b)| b.contains("\"replay\":false")).count(), 1, "exactly one request stored the batch: {answers:?}");
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM intervals").await, 50);
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM ingest_batches").await, 1);
}

fn with_vm(mut r: IntervalRecord, vm: &str, tenant: Option<&str>) -> IntervalRecord {
    use fairwatt_core::{TenantId, VmFeatures, VmId, VmRecord};
    r.vms.push(VmRecord {
        vm: VmId::new(vm).unwrap(),
        name: vm.into(),
        tenant: tenant.map(|t| TenantId::new(t).unwrap()),
        flavor: None,
        perf: Default::default(),
        features: VmFeatures { cpu_time_us: 500_000, ..Default::default() },
        truth: None,
    });
    r
}

#[tokio::test]
async fn ingest_takes_only_what_the_registry_knows_and_follows_migrations() {
    let app = spawn_app().await;
    let k = create_key(&app.db, Role::Collector, None).await.unwrap();
    let ops = create_key(&app.db, Role::Ops, None).await.unwrap().secret;
    let put = |path: &str, body: serde_json::Value| {
        let path = path.to_string();
        let (app, ops) = (&app, ops.clone());
        async move { http(app, "PUT", &path, Some(&ops), body.to_string().as_bytes()).await }
    };
    assert_eq!(put("/v1/tenants/acme", serde_json::json!({"name": "Acme", "currency": "EUR"})).await.0, 200);
    assert_eq!(put("/v1/tenants/beta", serde_json::json!({"name": "Beta", "currency": "EURO"})).await.0, 400);
    let (s, b) = put("/v1/vms/vm-1", serde_json::json!({"tenant": "acme", "flavor": "m1", "vcpus": 2, "memory_mib": 4096, "host": "h1", "at": "2020-01-01T00:00:00Z"})).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = put("/v1/vms/vm-2", serde_json::json!({"tenant": "nobody", "flavor": "m1", "vcpus": 2, "memory_mib": 4096})).await;
    assert!(s == 400 && b.contains("unknown tenant"), "{b}");
    let (s, b) = put("/v1/hosts/h3", serde_json::json!({"region": "DE", "pue": 0.9, "embodied_kgco2e": 1, "lifetime_years": 4, "vcpus": 8, "memory_mib": 1024})).await;
    assert!(s == 400 && b.contains("pue"), "{b}");

    let refused = [
        (with_vm(record("h9", 0, 10), "vm-1", None), "unknown host \\\"h9\\\""),
        (with_vm(record("h1", 0, 10), "vm-404", None), "unknown VM \\\"vm-404\\\""),
        (with_vm(record("h1", 0, 10), "vm-1", Some("beta")), "belongs to tenant acme, not beta"),
    ];
    for (i, (r, why)) in refused.into_iter().enumerate() {
        let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch(&format!("bad-{i}"), &[record("h1", 100 + i as u64, 1), r])).await;
        assert_eq!(s, 400, "{b}");
        assert!(b.contains(why), "{why} not in {b}");
    }
    assert_eq!(count(&app.db, "SELECT COUNT(*) FROM intervals").await, 0, "a refused batch stores nothing");

    // Reported by h1, then by h2 a second later: the agents saw a live migration.
    let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("ok-1", &[with_vm(record("h1", 0, 10), "vm-1", Some("acme")), with_vm(record("h2", 1, 10), "vm-1", None)])).await;
    assert_eq!(s, 200, "{b}");
    let (_, vm) = common::get(app.addr, "/v1/vms/vm-1", Some(&ops)).await;
    let vm: serde_json::Value = serde_json::from_str(&vm).unwrap();
    let hosts: Vec<&str> = vm["placements"].as_array().unwrap().iter().map(|p| p["host"].as_str().unwrap()).collect();
    assert_eq!(hosts, ["h1", "h2"], "{vm}");
    assert!(vm["placements"][1]["to"].is_null() && vm["tenant"] == "acme", "{vm}");
    // A deleted VM reported later is refused.
    assert_eq!(http(&app, "DELETE", "/v1/vms/vm-1", Some(&ops), b"").await.0, 200);
    let (s, b) = http(&app, "POST", "/v1/ingest", Some(&k.secret), &batch("late", &[with_vm(record("h2", 3600, 10), "vm-1", None)])).await;
    assert!(s == 400 && b.contains("was deleted"), "{b}");
}
