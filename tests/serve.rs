//! End-to-end: `fairwatt keys create` and `fairwatt serve` on embedded
//! SQLite, an agent-style batch over real HTTP, a resend, a restart.

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};

fn fairwatt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fairwatt"));
    c.env("FAIRWATT_LOG", "warn");
    c
}

struct Server(Child, String);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start(db: &str) -> Server {
    let mut child = fairwatt().args(["serve", "--database", db, "--listen", "127.0.0.1:0"]).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stderr.take().unwrap()).read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("no address in {line:?}")).to_string();
    Server(child, addr)
}

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

    let s = start(&db);
    let (code, b) = post(&s.1, &key, &body("b-1", 0..3));
    assert_eq!(code, 200, "{b}");
    assert!(b.contains("\"accepted\":3"), "{b}");
    drop(s);
    // After a restart the store still has them: a resend is a replay, an overlap counts once.
    let s = start(&db);
    let (_, b) = post(&s.1, &key, &body("b-1", 0..3));
    assert!(b.contains("\"replay\":true") && b.contains("\"accepted\":3"), "{b}");
    let (_, b) = post(&s.1, &key, &body("b-2", 2..5));
    assert!(b.contains("\"accepted\":2") && b.contains("\"duplicates\":1"), "{b}");
    let (code, _) = post(&s.1, "fw_nope", &body("b-3", 5..6));
    assert_eq!(code, 401);
}
