//! `fairwatt bench usage` and `fairwatt bench invoices`: the billing API's
//! read and invoicing speed on a seeded store, ours beside a baseline in
//! the same run.
//!
//! The store is seeded with what a month of 1-minute ledger data for the
//! fleet rolls up to: per VM and minute a share of package and DRAM energy
//! is drawn and summed into the hourly and daily rollups the endpoints
//! read (the per-interval ledger itself is not written: no endpoint here
//! reads it). Registry, an hourly grid-intensity series (imported through
//! `carbon::import_file`) and a time-of-use tariff come with it.
//!
//! - usage: `--clients` closed-loop clients with keep-alive connections
//!   send a tenant's month-long usage queries (per VM per day, per VM over
//!   the window, per tenant per day, per domain); ours reads the daily
//!   rollups and caches answers per ledger generation, shown also without
//!   the cache; the baseline reads the hourly rollups. Latency p50/p90/p99.
//! - invoices: the invoice run issuing every tenant's invoice for the
//!   month (one computation per tenant, shared context); the baseline is a
//!   client issuing them one `POST /v1/tenants/{id}/invoices` at a time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

use fairwatt_billing_api::registry::{HostBody, RegistryFile, TenantBody, VmBody};
use fairwatt_billing_api::{Db, Role, Settings};

use crate::bench_ingest::{FreshPg, start_api};

const HOUR_US: i64 = 3_600_000_000;
const DAY_US: i64 = 24 * HOUR_US;
/// 2026-10-01T00:00:00Z: the seeded month.
const MONTH_START_US: i64 = 1_790_812_800_000_000;

#[derive(Args, Debug)]
pub struct UsageBenchArgs {
    /// `sqlite` and/or `postgres://USER:PASS@HOST/DB` (a fresh database each).
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    database: Vec<String>,
    /// VMs of the tenant whose usage is queried.
    #[arg(long, default_value_t = 100)]
    vms: usize,
    /// Other tenants of as many VMs in the store.
    #[arg(long, default_value_t = 4)]
    others: usize,
    /// Days of October 2026 (31: the whole month).
    #[arg(long, default_value_t = 31)]
    days: i64,
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Queries per client.
    #[arg(long, default_value_t = 60)]
    queries: usize,
    /// Keep the SQLite store (its path is printed) for a look afterwards.
    #[arg(long)]
    keep: bool,
}

#[derive(Args, Debug)]
pub struct InvoiceBenchArgs {
    #[arg(long, value_delimiter = ',', default_value = "sqlite")]
    database: Vec<String>,
    #[arg(long, default_value_t = 1000)]
    tenants: usize,
    #[arg(long, default_value_t = 2)]
    vms_per_tenant: usize,
    /// Days of October 2026 (31: the whole month).
    #[arg(long, default_value_t = 31)]
    days: i64,
    /// Skip the one-request-per-tenant baseline.
    #[arg(long)]
    no_baseline: bool,
}

/// Deterministic noise in [0, 1).
fn noise(a: u64, b: u64) -> f64 {
    let mut x = a.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
    x ^= x >> 31;
    x = x.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x ^= x >> 29;
    (x >> 11) as f64 / (1u64 << 53) as f64
}

struct Fleet {
    /// (tenant, vms)
    tenants: Vec<(String, Vec<String>)>,
    hosts: usize,
    days: i64,
}

impl Fleet {
    fn registry(&self) -> RegistryFile {
        let mut f = RegistryFile::default();
        for h in 0..self.hosts {
            f.hosts.insert(format!("host-{h:03}"), HostBody { region: "DE".into(), pue: 1.3, embodied_kgco2e: 1500.0, lifetime_years: 4.0, vcpus: 64, memory_mib: 262_144 });
        }
        let mut n = 0;
        for (t, vms) in &self.tenants {
            f.tenants.insert(t.clone(), TenantBody { name: format!("Tenant {t}"), currency: "EUR".into() });
            for vm in vms {
                let host = format!("host-{:03}", n % self.hosts);
                n += 1;
                f.vms.insert(vm.clone(), VmBody { tenant: t.clone(), flavor: "m4".into(), vcpus: 4, memory_mib: 16_384, host: Some(host), at: Some("2026-09-01T00:00:00Z".into()) });
            }
        }
        f
    }
}

/// Seeds registry, rollups of a month of 1-minute data, intensity and tariff.
async fn seed(db: &Db, fleet: &Fleet, dir: &std::path::Path) -> anyhow::Result<(usize, usize)> {
    fairwatt_billing_api::registry::import(db, &fleet.registry()).await?;
    let mut csv = String::from("region,start,gco2e_per_kwh,source\n");
    for h in 0..fleet.days * 24 {
        let t = fairwatt_billing_api::params::format_time(MONTH_START_US + h * HOUR_US);
        let _ = writeln!(csv, "DE,{t},{:.1},bench grid", 250.0 + 150.0 * noise(h as u64, 7));
    }
    let path = dir.join("intensity.csv");
    std::fs::write(&path, csv)?;
    fairwatt_billing_api::carbon::import_file(db, &path).await?;
    sqlx::query(
        "INSERT INTO tariffs (id, region, currency, price_per_kwh, windows, utc_offset_min, valid_from_us, created_us) VALUES ('de', 'DE', 'EUR', '0.25', \
         '[{\"days\":[1,2,3,4,5],\"from_hour\":17,\"to_hour\":21,\"price_per_kwh\":\"0.41\"}]', 60, 0, 0)",
    )
    .execute(&db.pool)
    .await?;
    let (mut hourly, mut daily) = (Vec::new(), Vec::new());
    let mut n = 0usize;
    for (t, vms) in &fleet.tenants {
        for vm in vms {
            let host = format!("host-{:03}", n % fleet.hosts);
            let base_w = 20.0 + 60.0 * noise(n as u64, 1);
            n += 1;
            for d in 0..fleet.days {
                let mut day = [0i64; 4];
                for h in 0..24 {
                    let mut sums = [0i64; 4];
                    for m in 0..60 {
                        let minute = ((d * 24 + h) * 60 + m) as u64;
                        let w = base_w * (0.4 + 0.6 * noise(n as u64, minute));
                        // 1-minute shares: package dynamic/idle, DRAM dynamic/idle, µJ.
                        let shares = [w * 0.8, 4.0, w * 0.1, 1.0].map(|x| (x * 60e6) as i64);
                        for (s, x) in sums.iter_mut().zip(shares) {
                            *s += x;
                        }
                    }
                    let hour = MONTH_START_US + (d * 24 + h) * HOUR_US;
                    hourly.push((hour, host.clone(), vm.clone(), t.clone(), "package-0", sums[0], sums[1]));
                    hourly.push((hour, host.clone(), vm.clone(), t.clone(), "dram-0", sums[2], sums[3]));
                    for (a, b) in day.iter_mut().zip(sums) {
                        *a += b;
                    }
                }
                let at = MONTH_START_US + d * DAY_US;
                daily.push((at, host.clone(), vm.clone(), t.clone(), "package-0", day[0], day[1]));
                daily.push((at, host.clone(), vm.clone(), t.clone(), "dram-0", day[2], day[3]));
            }
        }
    }
    for (table, col, rows) in [("usage_hourly", "hour_us", &hourly), ("usage_daily", "day_us", &daily)] {
        for chunk in rows.chunks(1000) {
            let mut sql = format!("INSERT INTO {table} ({col}, host, vm, tenant, domain, top_level, dynamic_uj, idle_uj) VALUES ");
            let mut first = true;
            for (at, host, vm, t, dom, dy, idle) in chunk {
                // Every value is made here from ids and numbers this code generated.
                let _ = write!(sql, "{}({at}, '{host}', '{vm}', '{t}', '{dom}', 1, {dy}, {idle})", if first { "" } else { ", " });
                first = false;
            }
            let mut tx = db.begin_write().await?;
            sqlx::query(sqlx::AssertSqlSafe(sql)).execute(&mut *tx).await?;
            tx.commit().await?;
        }
    }
    Ok((hourly.len(), daily.len()))
}

/// The store for one run: a temporary SQLite file or a fresh PostgreSQL database.
fn store(url: &str, dir: &std::path::Path, name: &str) -> anyhow::Result<(String, Option<FreshPg>)> {
    if url.starts_with("postgres") {
        let pg = FreshPg::create(url)?;
        Ok((pg.url.clone(), Some(pg)))
    } else {
        Ok((format!("sqlite://{}", dir.join(format!("{name}.db")).display()), None))
    }
}

/// A keep-alive HTTP/1.1 connection.
pub(crate) struct Conn {
    r: BufReader<tokio::net::TcpStream>,
}

impl Conn {
    pub(crate) async fn open(addr: std::net::SocketAddr) -> anyhow::Result<Conn> {
        Ok(Conn { r: BufReader::new(tokio::net::TcpStream::connect(addr).await?) })
    }

    pub(crate) async fn send(&mut self, method: &str, path: &str, key: &str, body: &str) -> anyhow::Result<(u16, Vec<u8>)> {
        let head = format!("{method} {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len());
        self.r.get_mut().write_all(head.as_bytes()).await?;
        let mut line = String::new();
        self.r.read_line(&mut line).await?;
        let status: u16 = line.split_whitespace().nth(1).and_then(|s| s.parse().ok()).context("no status line")?;
        let mut len = 0usize;
        loop {
            line.clear();
            self.r.read_line(&mut line).await?;
            if line == "\r\n" || line.is_empty() {
                break;
            }
            if let Some((k, v)) = line.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                len = v.trim().parse()?;
            }
        }
        let mut out = vec![0; len];
        self.r.read_exact(&mut out).await?;
        Ok((status, out))
    }
}

pub(crate) fn quantiles(mut ms: Vec<f64>) -> (f64, f64, f64, f64) {
    ms.sort_by(f64::total_cmp);
    let q = |p: f64| ms[((ms.len() - 1) as f64 * p).round() as usize];
    (q(0.5), q(0.9), q(0.99), *ms.last().unwrap_or(&0.0))
}

pub fn usage(a: UsageBenchArgs) -> anyhow::Result<()> {
    if a.clients == 0 || a.queries == 0 || a.vms == 0 || !(1..=31).contains(&a.days) {
        bail!("--clients, --queries and --vms must be positive, --days 1 to 31");
    }
    let tenants: Vec<(String, Vec<String>)> = (0..=a.others).map(|t| (format!("t-{t:03}"), (0..a.vms).map(|v| format!("vm-{t:03}-{v:03}")).collect())).collect();
    let fleet = Fleet { tenants, hosts: 10, days: a.days };
    let (from, to) = (fairwatt_billing_api::params::format_time(MONTH_START_US), fairwatt_billing_api::params::format_time(MONTH_START_US + a.days * DAY_US));
    let queries: Vec<String> = [("vm", "1d"), ("vm", "window"), ("tenant", "1d"), ("domain", "window")]
        .iter()
        .map(|(agg, step)| format!("/v1/usage?from={from}&to={to}&aggregate={agg}&step={step}"))
        .collect();
    println!(
        "usage: tenant t-000 with {} VMs ({} other tenants alike), {} days of 1-minute data rolled up; {} clients × {} queries (4 kinds in turn)",
        a.vms, a.others, a.days, a.clients, a.queries
    );
    println!("{:<10} {:<28} {:>9} {:>9} {:>9} {:>9} {:>10}", "store", "rollups read", "p50 ms", "p90 ms", "p99 ms", "max ms", "queries/s");
    for url in &a.database {
        let dir = tempfile::tempdir()?;
        let (url, _pg) = store(url, dir.path(), "usage")?;
        if a.keep {
            eprintln!("  keeping {url}");
        }
        let mut p99s = Vec::new();
        for (i, (label, daily, cached)) in [("daily + cache (ours)", true, true), ("daily, no cache", true, false), ("hourly, no cache (baseline)", false, false)].into_iter().enumerate() {
            let settings = Settings { daily_rollups: daily, usage_cache: cached, ..Settings::default() };
            let seed_dir = dir.path().to_path_buf();
            let first = i == 0;
            let t = Instant::now();
            let fleet_reg = Fleet { tenants: fleet.tenants.clone(), hosts: fleet.hosts, days: fleet.days };
            let (addr, keys) = start_api(&url, settings, &[(Role::Tenant, Some("t-000"))], move |db| {
                Box::pin(async move {
                    if first {
                        let (h, d) = seed(&db, &fleet_reg, &seed_dir).await?;
                        eprintln!("  seeded {h} hourly and {d} daily rollup rows");
                    }
                    Ok(())
                })
            })?;
            if first {
                eprintln!("  seeding took {:.1} s", t.elapsed().as_secs_f64());
            }
            let key = keys[0].clone();
            let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
            let (ms, wall) = rt.block_on(async {
                // Warm-up: one of each, and every answer checked once.
                let mut c = Conn::open(addr).await?;
                for q in &queries {
                    let (s, b) = c.send("GET", q, &key, "").await?;
                    if s != 200 {
                        bail!("{q}: HTTP {s}: {}", String::from_utf8_lossy(&b));
                    }
                }
                let t0 = Instant::now();
                let mut tasks = Vec::new();
                for i in 0..a.clients {
                    let (key, queries) = (key.clone(), queries.clone());
                    let n = a.queries;
                    tasks.push(tokio::spawn(async move {
                        let mut c = Conn::open(addr).await?;
                        let mut out = Vec::with_capacity(n);
                        for j in 0..n {
                            let q = &queries[(i + j) % queries.len()];
                            let t = Instant::now();
                            let (s, _) = c.send("GET", q, &key, "").await?;
                            if s != 200 {
                                bail!("{q}: HTTP {s}");
                            }
                            out.push(t.elapsed().as_secs_f64() * 1e3);
                        }
                        anyhow::Ok(out)
                    }));
                }
                let mut ms = Vec::new();
                for t in tasks {
                    ms.extend(t.await??);
                }
                anyhow::Ok((ms, t0.elapsed().as_secs_f64()))
            })?;
            let n = ms.len();
            let (p50, p90, p99, max) = quantiles(ms);
            p99s.push(p99);
            let store = if url.starts_with("sqlite") { "sqlite" } else { "postgres" };
            println!("{store:<10} {label:<28} {p50:>9.1} {p90:>9.1} {p99:>9.1} {max:>9.1} {:>10.0}", n as f64 / wall);
        }
        println!("  p99 baseline / ours: {:.1}× (baseline / daily without cache: {:.1}×)", p99s[2] / p99s[0], p99s[2] / p99s[1]);
        if a.keep {
            let _ = dir.keep();
        }
    }
    Ok(())
}

pub fn invoices(a: InvoiceBenchArgs) -> anyhow::Result<()> {
    if a.tenants == 0 || a.vms_per_tenant == 0 || !(1..=31).contains(&a.days) {
        bail!("--tenants and --vms-per-tenant must be positive, --days 1 to 31");
    }
    let tenants: Vec<(String, Vec<String>)> = (0..a.tenants).map(|t| (format!("t-{t:04}"), (0..a.vms_per_tenant).map(|v| format!("vm-{t:04}-{v}")).collect())).collect();
    let hosts = (a.tenants * a.vms_per_tenant).div_ceil(16).max(1);
    let period = if a.days == 31 { "2026-10".to_string() } else {
        format!("{}/{}", fairwatt_billing_api::params::format_time(MONTH_START_US), fairwatt_billing_api::params::format_time(MONTH_START_US + a.days * DAY_US))
    };
    println!("invoices: {} tenants × {} VMs on {hosts} hosts, {} days of hourly rollups, period {period}", a.tenants, a.vms_per_tenant, a.days);
    println!("{:<10} {:<36} {:>10} {:>12} {:>8}", "store", "how", "wall s", "invoices/s", "lines");
    for url in &a.database {
        let mut walls = BTreeMap::new();
        let runs: &[&str] = if a.no_baseline { &["run"] } else { &["run", "baseline"] };
        for how in runs {
            let dir = tempfile::tempdir()?;
            let (db_url, _pg) = store(url, dir.path(), how)?;
            let fleet = Fleet { tenants: tenants.clone(), hosts, days: a.days };
            let seed_dir = dir.path().to_path_buf();
            let t = Instant::now();
            let (addr, keys) = start_api(&db_url, Settings::default(), &[(Role::Finance, None)], move |db| {
                Box::pin(async move {
                    let (h, d) = seed(&db, &fleet, &seed_dir).await?;
                    eprintln!("  seeded {h} hourly and {d} daily rollup rows");
                    Ok(())
                })
            })?;
            eprintln!("  seeding took {:.1} s", t.elapsed().as_secs_f64());
            let key = keys[0].clone();
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let body = serde_json::json!({ "period": period, "issue": true }).to_string();
            let t0 = Instant::now();
            rt.block_on(async {
                let mut c = Conn::open(addr).await?;
                if *how == "run" {
                    let (s, b) = c.send("POST", "/v1/invoice-runs", &key, &body).await?;
                    let v: serde_json::Value = serde_json::from_slice(&b)?;
                    if s != 200 || v["issued"].as_u64() != Some(a.tenants as u64) {
                        bail!("invoice run: HTTP {s}: {v}");
                    }
                } else {
                    for (t, _) in &tenants {
                        let (s, b) = c.send("POST", &format!("/v1/tenants/{t}/invoices"), &key, &body).await?;
                        if s != 201 {
                            bail!("{t}: HTTP {s}: {}", String::from_utf8_lossy(&b));
                        }
                    }
                }
                anyhow::Ok(())
            })?;
            let wall = t0.elapsed().as_secs_f64();
            let lines = rt.block_on(async {
                let db = Db::connect(&db_url).await?;
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invoice_lines").fetch_one(&db.pool).await?;
                db.pool.close().await;
                anyhow::Ok(n)
            })?;
            let store = if url.starts_with("sqlite") { "sqlite" } else { "postgres" };
            let label = if *how == "run" { "invoice run (ours)" } else { "one POST per tenant (baseline)" };
            println!("{store:<10} {label:<36} {wall:>10.2} {:>12.0} {lines:>8}", a.tenants as f64 / wall);
            walls.insert(*how, wall);
        }
        if let (Some(r), Some(b)) = (walls.get("run"), walls.get("baseline")) {
            println!("  baseline / ours: {:.2}×", b / r);
        }
    }
    Ok(())
}
