//! End-to-end: `fairwatt keys create` and `fairwatt serve` on embedded
//! SQLite, an agent-style batch over real HTTP, a resend, a restart.

mod common;

use std::io::{Read, Write};

use common::{fairwatt, serve};

fn post(addr: &str, key: &str, body: &str) -> (u16, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "POST /v1/ingest HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

#[test]
fn keys_serve_ingest_and_a_restart_keep_every_interval_once() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("data/fairwatt.db").display());
    let o = fairwatt().args(["keys", "create", "--role", "collector", "--database", &db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8(o.stdout).unwrap().trim().to_string();
    assert!(key.starts_with("fw_"), "{key}");
    let bad = fairwatt().args(["keys", "create", "--role", "tenant", "--database", &db]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("--tenant"));
    // Ingest takes only registered hosts.
    let reg = dir.path().join("registry.json");
    std::fs::write(&reg, r#"{"hosts": {"h1": {"region": "DE", "pue": 1.3, "embodied_kgco2e": 1200, "lifetime_years": 5, "vcpus": 32, "memory_mib": 131072}}}"#).unwrap();
    let o = fairwatt().args(["registry", "import"]).arg(&reg).args(["--database", &db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));

    // One simulated interval in the trace format, stamped now.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
    let rec = |seq: i64| {
        use fairwatt_core::{Domain, DomainEnergy, Energy, HostId, IntervalRecord, Micros, Timestamp};
        let start = Timestamp::from_micros(now - 60_000_000 + seq * 1_000_000).unwrap();
        let domains = [(Domain::package(0), DomainEnergy::ok(Energy::from_uj(1_000_000 + seq as u64)))].into_iter().collect();
        let r = IntervalRecord { host: HostId::new("h1").unwrap(), seq: seq as u64, start, end: start.plus(Micros::from_secs(1)), domains, vms: Vec::new(), truth: None };
        serde_json::to_value(r).unwrap()
    };
    let body = |id: &str, seqs: std::ops::Range<i64>| serde_json::json!({"batch_id": id, "records": seqs.map(rec).collect::<Vec<_>>()}).to_string();

    let s = serve(&db, "127.0.0.1:0", &[]);
    let (code, b) = post(&s.addr, &key, &body("b-1", 0..3));
    assert_eq!(code, 200, "{b}");
    assert!(b.contains("\"accepted\":3"), "{b}");
    drop(s);
    // After a restart the store still has them: a resend is a replay, an overlap counts once.
    let s = serve(&db, "127.0.0.1:0", &[]);
    let (_, b) = post(&s.addr, &key, &body("b-1", 0..3));
    assert!(b.contains("\"replay\":true") && b.contains("\"accepted\":3"), "{b}");
    let (_, b) = post(&s.addr, &key, &body("b-2", 2..5));
    assert!(b.contains("\"accepted\":2") && b.contains("\"duplicates\":1"), "{b}");
    let (code, _) = post(&s.addr, "fw_nope", &body("b-3", 5..6));
    assert_eq!(code, 401);
}

/// A temporary directory with a SQLite store and a collector key for it.
fn store_with_collector_key() -> (tempfile::TempDir, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("fairwatt.db").display());
    let o = fairwatt().args(["keys", "create", "--role", "collector", "--database", &db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let key = String::from_utf8(o.stdout).unwrap().trim().to_string();
    // The simulated agent's fleet, registered as ops would before it ships.
    let o = fairwatt().args(["registry", "scenario", "mixed", "--host-id", "sim-mixed-00"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reg = dir.path().join("registry.json");
    std::fs::write(&reg, &o.stdout).unwrap();
    let o = fairwatt().args(["registry", "import"]).arg(&reg).args(["--database", &db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    (dir, db, key)
}

/// Runs the agent on the simulated host for `count` intervals, shipping to `server`.
fn agent(spool: &std::path::Path, record: &std::path::Path, server: &str, key: &str, count: u64) -> String {
    let o = fairwatt()
        .args(["agent", "--simulate", "mixed", "--host-id", "sim-mixed-00", "--fast", "--no-metrics", "--count", &count.to_string(), "--ship-batch", "40"])
        .arg("--spool")
        .arg(spool)
        .arg("--record")
        .arg(record)
        .args(["--server", server, "--key", key])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

fn trace_energy(path: &std::path::Path) -> (u64, u64) {
    let mut n = 0;
    let mut e = 0;
    for r in fairwatt_collector::trace_io::open(path).unwrap() {
        let r = r.unwrap();
        n += 1;
        e += r.domains.values().map(|d| d.energy_uj.as_uj()).sum::<u64>();
    }
    (n, e)
}

#[test]
fn the_agent_ships_its_spool_and_a_server_down_for_a_while_loses_nothing() {
    let (dir, db, key) = store_with_collector_key();
    // A port with nothing on it yet.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let server = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");

    // The server is down: everything stays in the spool.
    let err = agent(&spool, &dir.path().join("run1.jsonl"), &server, &key, 100);
    assert!(err.contains("shipped 0 intervals, 100 still in the spool"), "{err}");

    // Up again: the backlog and the new intervals go out, each once.
    let _server = serve(&db, &format!("127.0.0.1:{port}"), &[]);
    let err = agent(&spool, &dir.path().join("run2.jsonl"), &server, &key, 50);
    assert!(err.contains("shipped 150 intervals, 0 still in the spool"), "{err}");
    // Nothing new: a third run ships only its own intervals.
    let err = agent(&spool, &dir.path().join("run3.jsonl"), &server, &key, 5);
    assert!(err.contains("shipped 5 intervals, 0 still in the spool"), "{err}");

    let (mut n, mut e) = (0, 0);
    for run in ["run1.jsonl", "run2.jsonl", "run3.jsonl"] {
        let (rn, re) = trace_energy(&dir.path().join(run));
        n += rn;
        e += re;
    }
    assert_eq!(n, 155);
    let stored = actix_web::rt::System::new().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("{db}?mode=ro")).await.unwrap();
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM intervals").fetch_one(&pool).await.unwrap();
        let (energy,): (i64,) = sqlx::query_as("SELECT CAST(SUM(energy_uj) AS BIGINT) FROM interval_energy").fetch_one(&pool).await.unwrap();
        (count, energy)
    });
    // Every interval the agent measured is stored once, with exactly its energy.
    assert_eq!(stored, (155, e as i64));
    // The server's attribution worker splits them all into the ledger, exactly.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ledger = loop {
        let l = actix_web::rt::System::new().block_on(async {
            let pool = sqlx::AnyPool::connect(&format!("{db}?mode=ro")).await.unwrap();
            let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").fetch_one(&pool).await.unwrap();
            let (measured,): (i64,) = sqlx::query_as("SELECT CAST(COALESCE(SUM(measured_uj), 0) AS BIGINT) FROM ledger_domains").fetch_one(&pool).await.unwrap();
            let (split,): (i64,) = sqlx::query_as("SELECT CAST(COALESCE((SELECT SUM(dynamic_uj + idle_uj) FROM ledger), 0) + COALESCE((SELECT SUM(unattributed_uj) FROM ledger_domains), 0) AS BIGINT)").fetch_one(&pool).await.unwrap();
            (left, measured, split)
        });
        if l.0 == 0 || std::time::Instant::now() > deadline {
            break l;
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    };
    assert_eq!(ledger, (0, e as i64, e as i64), "(unattributed intervals, measured µJ in the ledger, split µJ)");
}

#[test]
fn a_record_the_server_refuses_is_set_aside_not_lost_and_does_not_block_the_rest() {
    use fairwatt_collector::spool::{Spool, SpoolConfig};
    use fairwatt_core::{Domain, DomainEnergy, Energy, HostId, IntervalRecord, Micros, Timestamp};
    let (dir, db, key) = store_with_collector_key();
    let s = serve(&db, "127.0.0.1:0", &[]);
    // A spooled interval stamped two days ahead (a clock that jumped): the server refuses it.
    let spool = dir.path().join("spool");
    {
        let mut sp = Spool::open(SpoolConfig::new(&spool)).unwrap();
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_micros() as i64;
        let start = Timestamp::from_micros(now + 2 * 86_400_000_000).unwrap();
        let domains = [(Domain::package(0), DomainEnergy::ok(Energy::from_uj(5)))].into_iter().collect();
        sp.append(&IntervalRecord { host: HostId::new("sim-mixed-00").unwrap(), seq: 0, start, end: start.plus(Micros::from_secs(1)), domains, vms: Vec::new(), truth: None }).unwrap();
    }
    let err = agent(&spool, &dir.path().join("run.jsonl"), &format!("http://{}", s.addr), &key, 6);
    assert!(err.contains("shipped 6 intervals, 0 still in the spool"), "{err}");
    let rejected = std::fs::read_to_string(spool.join("rejected.jsonl")).unwrap();
    assert_eq!(rejected.lines().count(), 1, "{rejected}");
    assert!(rejected.contains("in the future") && rejected.contains("\"seq\":0"), "{rejected}");
}
