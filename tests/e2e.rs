//! End to end over real processes and HTTP: agents (on a fixture
//! sysfs/procfs tree, and on simulated hosts) ship to `fairwatt serve`, its
//! attribution worker fills the ledger, and the month's invoices are issued.
//! The joules the sensors counted equal the energy on the invoices plus the
//! ledger's unattributed remainder, to the µJ, across an agent killed with
//! SIGKILL and restarted and a server killed and restarted mid-stream.

mod common;

use std::io::{Read, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Host, MAX_RANGE, Server, fairwatt, serve, spooled, wait_for};
use fairwatt_collector::sampler::{IntervalSource, SimSource};
use fairwatt_core::{Domain, IntervalRecord, Micros, Timestamp};
use serde_json::{Value, json};

/// `fairwatt serve` on 127.0.0.1:`port`, once it listens.
fn serve_on(db: &str, port: u16, method: &str) -> Server {
    let s = serve(db, &format!("127.0.0.1:{port}"), &["--method", method]);
    assert_eq!(s.addr, format!("127.0.0.1:{port}"));
    s
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn key(db: &str, role: &str) -> String {
    let o = fairwatt().args(["keys", "create", "--role", role, "--database", db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

fn call(port: u16, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    let body = if body.is_null() { String::new() } else { body.to_string() };
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(s, "{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let text = out.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

fn ok(port: u16, method: &str, path: &str, key: &str, body: Value) -> Value {
    let (s, v) = call(port, method, path, key, body);
    assert!((200..300).contains(&s), "{method} {path}: {s} {v}");
    v
}

fn query<T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::any::AnyRow> + 'static>(db: &str, sql: &'static str) -> Vec<T> {
    actix_web::rt::System::new().block_on(async {
        sqlx::any::install_default_drivers();
        let pool = sqlx::AnyPool::connect(&format!("{db}?mode=ro")).await.unwrap();
        let rows = sqlx::query_as(sql).fetch_all(&pool).await.unwrap();
        pool.close().await;
        rows
    })
}

/// Waits until the store holds `expected` intervals, all in the ledger.
fn wait_attributed(db: &str, expected: i64) {
    let t0 = Instant::now();
    loop {
        let (n, left): (i64, i64) = query(db, "SELECT COUNT(*), COUNT(*) - COUNT(model_id) FROM intervals")[0];
        if n == expected && left == 0 {
            return;
        }
        assert!(n <= expected, "{n} intervals stored, {expected} measured: something was doubled");
        assert!(t0.elapsed() < Duration::from_secs(120), "{n} of {expected} intervals stored, {left} not attributed");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// (measured, unattributed) µJ of the top-level domains in the ledger.
fn ledger_totals(db: &str) -> (i64, i64) {
    let rows: Vec<(String, i64, i64)> = query(db, "SELECT domain, CAST(SUM(measured_uj) AS BIGINT), CAST(SUM(unattributed_uj) AS BIGINT) FROM ledger_domains GROUP BY domain");
    let top = rows.iter().filter(|(d, ..)| d.parse::<Domain>().unwrap().is_top_level());
    top.fold((0, 0), |(m, u), (_, dm, du)| (m + dm, u + du))
}

/// Issues `period`'s invoices and returns their IT energy (the cpu, dram,
/// gpu and idle lines: what the sensors measured), µJ, checking each tenant
/// got a numbered invoice.
fn issue_and_sum(port: u16, finance: &str, tenants: &[String], period: &str) -> i64 {
    let run = ok(port, "POST", "/v1/invoice-runs", finance, json!({"period": period, "issue": true}));
    assert_eq!(run["failed"], json!([]), "{run}");
    let mut total = 0;
    for t in tenants {
        let list = ok(port, "GET", &format!("/v1/tenants/{t}/invoices"), finance, Value::Null);
        let inv = list.as_array().unwrap().iter().find(|i| i["period"] == period && i["kind"] == "invoice").unwrap_or_else(|| panic!("no invoice for {t}: {list}"));
        assert_eq!(inv["status"], "issued", "{inv}");
        assert!(inv["number"].as_str().is_some_and(|n| n.starts_with("FW-")), "{inv}");
        let full = ok(port, "GET", &format!("/v1/invoices/{}", inv["id"].as_str().unwrap()), finance, Value::Null);
        let it: i64 = full["lines"].as_array().unwrap().iter().filter(|l| matches!(l["charge"].as_str(), Some("cpu" | "dram" | "gpu" | "idle"))).map(|l| l["energy_uj"].as_i64().unwrap()).sum();
        assert!(it > 0, "{t}'s invoice bills no energy: {full}");
        total += it;
    }
    total
}

fn month_of(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m").to_string()
}

/// Carbon intensity for DE all year and a DE tariff, as finance sets them up.
fn carbon_and_tariff(db: &str, dir: &std::path::Path, port: u16, finance: &str, year: i32) {
    let csv = dir.join("intensity.csv");
    std::fs::write(&csv, format!("zone,zone_name,year,gco2e_per_kwh,renewable_pct,carbon_free_pct,source\nDE,Germany,{year},381,50,60,e2e test\n")).unwrap();
    let o = fairwatt().args(["carbon", "import"]).arg(&csv).args(["--database", db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    ok(port, "POST", "/v1/tariffs", finance, json!({"id": "de", "region": "DE", "currency": "EUR", "price_per_kwh": "0.30", "valid_from": format!("{}-01-01T00:00:00Z", year - 1)}));
}

fn sigkill(c: &mut Child) {
    c.kill().unwrap();
    c.wait().unwrap();
}

/// The fixture host's agent in real time: killed with SIGKILL while the
/// counter moves (and wraps), restarted; the server killed and restarted
/// while the agent ships. Every µJ the counter advanced after the agent's
/// first reading is billed once.
#[test]
fn fixture_host_through_kills_and_restarts_bills_every_joule_once() {
    let mut host = Host::new();
    let db = format!("sqlite://{}", host.dir.path().join("store.db").display());
    let (collector, ops, finance) = (key(&db, "collector"), key(&db, "ops"), key(&db, "finance"));
    let port = free_port();
    let server = serve_on(&db, port, "ratio");
    let now = chrono::Utc::now();
    let vms = host.vms();
    let tenants: Vec<String> = vms.iter().map(|(_, t)| t.clone()).collect();
    for t in &tenants {
        ok(port, "PUT", &format!("/v1/tenants/{t}"), &ops, json!({"name": t, "currency": "EUR"}));
    }
    ok(port, "PUT", "/v1/hosts/fixture-host", &ops, json!({"region": "DE", "pue": 1.25, "embodied_kgco2e": 1200, "lifetime_years": 5, "vcpus": 32, "memory_mib": 131072}));
    let since = (now - chrono::Duration::days(1)).format("%Y-%m-%dT%H:%M:%SZ").to_string();
    for (vm, t) in &vms {
        ok(port, "PUT", &format!("/v1/vms/{vm}"), &ops, json!({"tenant": t, "flavor": "m2", "vcpus": 2, "memory_mib": 2048, "host": "fixture-host", "at": since}));
    }
    carbon_and_tariff(&db, host.dir.path(), port, &finance, chrono::Datelike::year(&now));

    let spool = host.spool().display().to_string();
    let server_url = format!("http://127.0.0.1:{port}");
    let agent_args = ["--spool", &spool, "--no-metrics", "--interval", "0.03", "--ship-batch", "20", "--server", &server_url, "--key", &collector];
    let start_agent = |host: &Host| fairwatt().args(host.args()).args(agent_args).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let mut agent = start_agent(&host);
    let stored = |db: &str| query::<(i64,)>(db, "SELECT COUNT(*) FROM intervals")[0].0;
    wait_for(|| stored(&db) > 0, "a first shipped interval");

    // The counter moves (wrapping once) and the VMs burn CPU; `counted` is the truth.
    let (mut energy, mut counted) = (900_000_000u64, 0u64);
    let mut advance = |host: &mut Host, steps: u32| {
        for _ in 0..steps {
            energy = (energy + 3_000_017) % (MAX_RANGE + 1);
            counted += 3_000_017;
            host.set_energy(energy);
            host.burn(1);
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    // The worker's first split waits for 60 intervals with VM activity.
    advance(&mut host, 100);
    sigkill(&mut agent);
    advance(&mut host, 30); // measured by the restarted agent's first interval
    agent = start_agent(&host);
    advance(&mut host, 100);
    let before_restart = stored(&db);
    drop(server); // SIGKILL: whatever was mid-write is rolled back, the agent resends
    advance(&mut host, 40);
    let _server = serve_on(&db, port, "ratio");
    advance(&mut host, 100);
    // Let the agent read the final counter, then stop it: SIGTERM drains the spool.
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    assert!(agent.wait().unwrap().success());
    assert!(spooled(&host.spool()).is_empty(), "the spool was not drained");
    assert!(counted > MAX_RANGE - 900_000_000, "the counter should have wrapped");

    let n = stored(&db);
    assert!(n > before_restart, "nothing arrived after the server restart");
    wait_attributed(&db, n);
    let times: Vec<(i64, i64, i64)> = query(&db, "SELECT seq, start_us, end_us FROM intervals ORDER BY seq");
    assert!(times.iter().enumerate().all(|(i, t)| t.0 == i as i64), "sequence numbers have gaps");
    assert!(times.windows(2).all(|w| w[0].2 == w[1].1), "intervals must tile time across the restarts");
    let (measured, unattributed) = ledger_totals(&db);
    assert_eq!(measured, counted as i64, "the ledger measured what the counter advanced");
    let invoiced = issue_and_sum(port, &finance, &tenants, &month_of(now));
    assert_eq!(invoiced + unattributed, counted as i64, "invoiced {invoiced} + unattributed {unattributed} µJ");
}

/// Two simulated hosts replay part of last month at full speed; one agent
/// is killed mid-stream and restarted. What is stored is, interval by
/// interval, what the simulator measured (nothing lost, nothing twice),
/// and the invoices bill it exactly.
#[test]
fn simulated_hosts_bill_exactly_what_the_simulator_measured() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("store.db").display());
    let (collector, finance) = (key(&db, "collector"), key(&db, "finance"));
    let o = fairwatt().args(["registry", "scenario", "demo", "--hosts", "2", "--seed", "7"]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let reg: Value = serde_json::from_slice(&o.stdout).unwrap();
    let tenants: Vec<String> = reg["tenants"].as_object().unwrap().keys().cloned().collect();
    let hosts: Vec<String> = reg["hosts"].as_object().unwrap().keys().cloned().collect();
    std::fs::write(dir.path().join("registry.json"), &o.stdout).unwrap();
    let o = fairwatt().args(["registry", "import"]).arg(dir.path().join("registry.json")).args(["--database", &db]).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let port = free_port();
    let _server = serve_on(&db, port, "linear");

    let now = chrono::Utc::now();
    let last = now - chrono::Duration::days(chrono::Datelike::day(&now) as i64);
    let start_s = format!("{}-01T00:00:00Z", month_of(last));
    let start: Timestamp = start_s.parse().unwrap();
    carbon_and_tariff(&db, dir.path(), port, &finance, chrono::Datelike::year(&last));
    const STEPS: u64 = 480; // 40 h of 5-minute intervals
    let agent = |i: usize, count: u64| {
        let spool = dir.path().join(format!("spool-{i}"));
        fairwatt()
            .args(["agent", "--simulate", "demo", "--sim-host", &i.to_string(), "--sim-start", &start_s, "--host-id", &hosts[i], "--seed", "7", "--interval", "300", "--fast"])
            .args(["--count", &count.to_string(), "--no-metrics", "--ship-batch", "50", "--server", &format!("http://127.0.0.1:{port}"), "--key", &collector])
            .arg("--spool")
            .arg(&spool)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut a0 = agent(0, STEPS);
    let a1 = agent(1, STEPS);
    let of_host0 = || query::<(String, i64)>(&db, "SELECT host, COUNT(*) FROM intervals GROUP BY host").iter().find(|r| r.0 == hosts[0]).map_or(0, |r| r.1);
    wait_for(|| of_host0() >= 100, "host 0's first hundred intervals");
    sigkill(&mut a0);
    let done = fairwatt_collector::spool::Spool::open(fairwatt_collector::spool::SpoolConfig::new(dir.path().join("spool-0"))).unwrap().last_seq().map_or(0, |s| s + 1);
    assert!(done < STEPS, "the agent finished before it was killed");
    let mut a0 = agent(0, STEPS - done);
    for mut a in [a0, a1] {
        assert!(a.wait().unwrap().success());
    }
    a0 = agent(0, 0); // a run with nothing to add: only drains
    assert!(a0.wait().unwrap().success());
    wait_attributed(&db, 2 * STEPS as i64);

    // The simulator's own intervals, replayed here: the agents' ground truth.
    let mut truth = 0i64;
    for (i, host) in hosts.iter().enumerate() {
        let mut sim = SimSource::nth("demo", i, host, 7, Micros::from_secs(300), start).unwrap();
        let stored: Vec<(i64, String)> = query(&db, "SELECT seq, record FROM intervals ORDER BY host, seq");
        let stored: Vec<IntervalRecord> = stored.into_iter().map(|(_, r)| serde_json::from_str::<IntervalRecord>(&r).unwrap()).filter(|r| r.host.as_str() == host).collect();
        assert_eq!(stored.len() as u64, STEPS, "{host}");
        for (k, rec) in stored.iter().enumerate() {
            let want = sim.sample(start).record.unwrap();
            assert_eq!(rec.seq, k as u64, "{host}: seq");
            assert_eq!((rec.start, rec.measured_total()), (want.start, want.measured_total()), "{host}: interval {k} differs from the simulator's");
            truth += want.measured_total().as_uj() as i64;
        }
    }
    let (measured, unattributed) = ledger_totals(&db);
    assert_eq!(measured, truth);
    let invoiced = issue_and_sum(port, &finance, &tenants, &month_of(last));
    assert_eq!(invoiced + unattributed, truth, "invoiced {invoiced} + unattributed {unattributed} µJ");
}
