//! `fairwatt bench ingest`: a load generator on loopback against the real
//! billing API. The server runs in this process on port 0 over the given
//! store(s); client threads post pre-built batches of simulated agent
//! records (ground truth stripped) over HTTP and wait for each answer.
//! Reports VM-intervals stored per second of wall time and batch latency,
//! one store after another in the same run.

use std::net::TcpListener;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;

use fairwatt_billing_api::registry::RegistryFile;
use fairwatt_billing_api::{Db, Role, Settings, auth};

#[derive(Args, Debug)]
pub struct IngestBenchArgs {
    /// Stores to measure: `sqlite` (a fresh file in a temporary directory)
    /// or `postgres://USER:PASS@HOST/DB` (a fresh database is created on
    /// that server for the run and dropped after it).
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    database: Vec<String>,
    /// VMs per simulated host record.
    #[arg(long, default_value_t = 100)]
    vms: usize,
    /// Host intervals to send in all.
    #[arg(long, default_value_t = 3_000)]
    intervals: usize,
    /// Intervals per batch.
    #[arg(long, default_value_t = 100)]
    batch: usize,
    /// Concurrent clients.
    #[arg(long, default_value_t = 4)]
    clients: usize,
}

pub fn run(a: IngestBenchArgs) -> anyhow::Result<()> {
    if a.batch == 0 || a.clients == 0 || a.intervals == 0 {
        bail!("--batch, --clients and --intervals must be positive");
    }
    // Records as an agent sends them: hosts of `vms` VMs, 1 s intervals ending now.
    let mut host = crate::bench::sim_host(a.vms)?;
    let hosts = a.intervals.div_ceil(3_600).max(1);
    let mut records = Vec::with_capacity(a.intervals);
    while records.len() < a.intervals {
        let mut r = host.step();
        r.truth = None;
        r.vms.iter_mut().for_each(|v| v.truth = None);
        records.push(r);
    }
    // Shift to recent time and spread over hosts so sequence numbers stay unique per host.
    let now = fairwatt_core::Timestamp::from_micros(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64)
        .context("the clock")?;
    let offset = now.as_micros() - records.last().map_or(0, |r| r.end.as_micros());
    for (i, r) in records.iter_mut().enumerate() {
        r.start = fairwatt_core::Timestamp::from_micros(r.start.as_micros() + offset).context("a timestamp out of range")?;
        r.end = fairwatt_core::Timestamp::from_micros(r.end.as_micros() + offset).context("a timestamp out of range")?;
        r.host = fairwatt_core::HostId::new(format!("bench-{:02}", i % hosts))?;
    }
    let vm_intervals: usize = records.iter().map(|r| r.vms.len()).sum();
    let batches: Vec<Vec<u8>> = records
        .chunks(a.batch)
        .enumerate()
        .map(|(i, c)| serde_json::to_vec(&serde_json::json!({ "batch_id": format!("bench-{i}"), "records": c })))
        .collect::<Result<_, _>>()?;
    let mb = batches.iter().map(Vec::len).sum::<usize>() as f64 / 1e6;
    println!(
        "{} intervals of {} VMs ({vm_intervals} VM-intervals) in {} batches of {} ({mb:.1} MB of JSON), {} clients",
        records.len(),
        a.vms,
        batches.len(),
        a.batch,
        a.clients
    );
    println!("{:<12} {:>10} {:>16} {:>14} {:>12} {:>12}", "store", "wall s", "VM-intervals/s", "intervals/s", "batch p50", "batch p99");
    for url in &a.database {
        let dir = tempfile::tempdir()?;
        let fresh = if url.starts_with("postgres") { Some(FreshPg::create(url)?) } else { None };
        let url = match (&fresh, url.as_str()) {
            (Some(f), _) => f.url.clone(),
            (None, "sqlite") => format!("sqlite://{}", dir.path().join("bench.db").display()),
            (None, u) => u.to_string(),
        };
        let registry = RegistryFile::from_records(&records, "DE", "EUR");
        let (addr, mut keys) = start_api(&url, Settings::default(), &[(Role::Collector, None)], move |db| Box::pin(async move {
            fairwatt_billing_api::registry::import(&db, &registry).await?;
            Ok(())
        }))?;
        let key = keys.remove(0);
        let next = std::sync::atomic::AtomicUsize::new(0);
        let t0 = Instant::now();
        let lat: Vec<anyhow::Result<Vec<f64>>> = std::thread::scope(|s| {
            let hs: Vec<_> = (0..a.clients)
                .map(|_| {
                    s.spawn(|| -> anyhow::Result<Vec<f64>> {
                        let mut out = Vec::new();
                        loop {
                            let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            let Some(b) = batches.get(i) else { return Ok(out) };
                            let t = Instant::now();
                            let (code, body) = crate::agent::ship::post_ingest(&addr.to_string(), &key, b)?;
                            if code != 200 {
                                bail!("batch {i}: HTTP {code}: {body}");
                            }
                            out.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                    })
                })
                .collect();
            hs.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("a client panicked")))).collect()
        });
        let wall = t0.elapsed().as_secs_f64();
        let mut ms: Vec<f64> = Vec::new();
        for l in lat {
            ms.extend(l?);
        }
        ms.sort_by(f64::total_cmp);
        let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
        let store = if url.starts_with("sqlite") { "sqlite" } else { "postgres" };
        println!(
            "{store:<12} {wall:>10.2} {:>16.0} {:>14.0} {:>9.1} ms {:>9.1} ms",
            vm_intervals as f64 / wall,
            records.len() as f64 / wall,
            q(0.5),
            q(0.99)
        );
    }
    Ok(())
}

/// A database of its own on a PostgreSQL server, dropped when done.
pub struct FreshPg {
    admin: String,
    name: String,
    pub url: String,
}

impl FreshPg {
    pub fn create(admin: &str) -> anyhow::Result<FreshPg> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.subsec_nanos();
        let name = format!("fw_bench_{}_{nanos}", std::process::id());
        let (base, _) = admin.rsplit_once('/').context("a postgres URL ends in /DATABASE")?;
        Self::exec(admin, &format!("CREATE DATABASE {name}"))?;
        Ok(FreshPg { admin: admin.to_string(), url: format!("{base}/{name}"), name })
    }

    fn exec(url: &str, sql: &str) -> anyhow::Result<()> {
        let (url, sql) = (url.to_string(), sql.to_string());
        actix_web::rt::System::new().block_on(async move {
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&url).await?;
            // The statement names a database this code made from digits.
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&pool).await?;
            pool.close().await;
            anyhow::Ok(())
        })
    }
}

impl Drop for FreshPg {
    fn drop(&mut self) {
        let _ = Self::exec(&self.admin, &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

/// The API on 127.0.0.1:0 in a thread of its own (no attribution worker),
/// after `setup` ran on its store, with a key per `(role, tenant)` asked for.
pub fn start_api(
    url: &str,
    settings: Settings,
    keys: &[(Role, Option<&str>)],
    setup: impl FnOnce(Db) -> std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>,
) -> anyhow::Result<(std::net::SocketAddr, Vec<String>)> {
    let secrets = actix_web::rt::System::new().block_on(async {
        let db = Db::connect(url).await?;
        setup(db.clone()).await?;
        let mut secrets = Vec::new();
        for (role, tenant) in keys {
            secrets.push(auth::create_key(&db, *role, *tenant).await?.secret);
        }
        db.pool.close().await;
        anyhow::Ok(secrets)
    })?;
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    crate::serve::spawn_in_thread(url, listener, settings, None)?;
    Ok((addr, secrets))
}
