//! Shared by the API tests: a fresh migrated store per test.

use fairwatt_billing_api::Db;

/// SQLite in `dir`, or a new database on the PostgreSQL server named by
/// `FAIRWATT_TEST_POSTGRES_URL` when that is set.
pub async fn test_db(dir: &std::path::Path) -> Db {
    match std::env::var("FAIRWATT_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("fw_test_{}", std::process::id() as u64 * 1_000_000 + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 % 1_000_000));
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.expect("the PostgreSQL server in FAIRWATT_TEST_POSTGRES_URL");
            // The name is made here from digits: nothing to inject.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            Db::connect(&format!("{base}/{name}")).await.unwrap()
        }
        Err(_) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("FAIRWATT_TEST_POSTGRES_URL is not set: these tests run on SQLite only (.ci/run also runs them on PostgreSQL)"));
            Db::connect(&format!("sqlite://{}", dir.join("fairwatt.db").display())).await.unwrap()
        }
    }
}

/// One HTTP/1.1 GET; returns the status and the body.
#[allow(dead_code)]
pub async fn get(addr: std::net::SocketAddr, path: &str, key: Option<&str>) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    s.write_all(format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\r\n").as_bytes()).await.unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (status, text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default())
}

/// Registers what `records` name (hosts, VMs, tenants), as ops would
/// before agents ship: ingest refuses what the registry does not know.
#[allow(dead_code)]
pub async fn register(db: &Db, records: &[fairwatt_core::IntervalRecord]) {
    let f = fairwatt_billing_api::registry::RegistryFile::from_records(records, "DE", "EUR");
    fairwatt_billing_api::registry::import(db, &f).await.unwrap();
}

/// One HTTP/1.1 exchange with extra headers; returns the status, the
/// head (lower-cased) and the raw body.
#[allow(dead_code)]
pub async fn request(addr: std::net::SocketAddr, method: &str, path: &str, key: Option<&str>, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    if let Some(k) = key {
        head.push_str(&format!("Authorization: Bearer {k}\r\n"));
    }
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    let _ = s.write_all(body).await;
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out).await;
    let split = out.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(out.len());
    let head = String::from_utf8_lossy(&out[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut body = out.get(split + 4..).unwrap_or_default().to_vec();
    if head.contains("transfer-encoding: chunked") {
        body = dechunk(&body);
    }
    (status, head, body)
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(nl) = b.windows(2).position(|w| w == b"\r\n") else { return out };
        let n = usize::from_str_radix(String::from_utf8_lossy(&b[..nl]).trim(), 16).unwrap_or(0);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&b[nl + 2..nl + 2 + n]);
        b = &b[nl + 2 + n + 2..];
    }
}

/// The app on port 0 over a fresh migrated store (zero-to-production's
/// `spawn_app`); the store's directory lives as long as the value.
#[allow(dead_code)]
pub struct Spawned {
    pub addr: std::net::SocketAddr,
    pub db: Db,
    pub dir: tempfile::TempDir,
}

#[allow(dead_code)]
pub async fn spawn(settings: fairwatt_billing_api::Settings) -> Spawned {
    let dir = tempfile::tempdir().unwrap();
    let db = test_db(dir.path()).await;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(fairwatt_billing_api::serve_with(listener, db.clone(), settings).unwrap());
    Spawned { addr, db, dir }
}

/// One JSON exchange: the status and the parsed body (null when not JSON).
#[allow(dead_code)]
pub async fn call(addr: std::net::SocketAddr, method: &str, path: &str, key: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
    let body = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
    let (s, _, b) = request(addr, method, path, Some(key), &[], &body).await;
    (s, serde_json::from_slice(&b).unwrap_or(serde_json::Value::Null))
}
