//! `fairwatt demo`: the README's first command, the whole flow on one
//! machine with nothing installed. A fresh embedded SQLite store in
//! `--dir`; the billing API with its attribution worker in this process;
//! the fleet (four server types, about 40 VMs of the four workload classes,
//! six tenants in three grid regions) registered over HTTP, with grid
//! intensity and tariffs; one real `fairwatt agent` process per simulated
//! host replaying last month at full speed through the real spool and HTTP
//! ingest path; the worker training and attributing; every tenant's invoice
//! issued; sensor joules checked against the invoices to the µJ; placement
//! decisions for new VMs; the attribution scored against the simulator's
//! ground truth. Then the server keeps running (unless `--no-serve`) and the
//! demo prints its URLs, two API keys and `curl` lines to try.

pub(crate) mod fleet;
mod quality;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use chrono::{Datelike, NaiveDate};
use clap::Args;
use fairwatt_billing_api::params::format_time;
use fairwatt_billing_api::{Db, Role, Settings, auth};
use fairwatt_collector::sampler::{HostSampler, IntervalSource, SamplerConfig};
use fairwatt_core::{HostId, Micros, Timestamp};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use crate::agent::ship::request;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Hosts in the simulated fleet (the `demo` scenario's four server types, cycled).
    #[arg(long, default_value_t = 4)]
    pub hosts: usize,
    /// The agents' sampling interval in simulated seconds.
    #[arg(long, default_value_t = 300.0)]
    pub interval: f64,
    /// The month to replay and invoice (YYYY-MM); default last month.
    #[arg(long)]
    pub period: Option<String>,
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Working directory: the store, the agents' spools, traces and logs.
    /// Its demo store is replaced on every run.
    #[arg(long, default_value = "fairwatt-data/demo")]
    pub dir: PathBuf,
    /// Where the API listens (another free port is taken if this one is busy).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Exit after the run instead of serving the API.
    #[arg(long)]
    pub no_serve: bool,
}

/// The keys the demo makes, one per role it uses.
struct Keys {
    ops: String,
    collector: String,
    finance: String,
    placement: String,
    tenant: String,
}

/// The tenant whose key the demo prints.
const SHOWN_TENANT: &str = "tenant-1";

pub fn run(a: DemoArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    ensure!(a.hosts > 0, "--hosts: a fleet needs at least one host");
    ensure!(a.interval.is_finite() && (1.0..=3600.0).contains(&a.interval), "--interval {}: expected 1 to 3600 seconds", a.interval);
    let period = a.period.clone().unwrap_or_else(fairwatt_billing_api::params::last_month);
    let (from, to) = month(&period)?;
    let interval = Micros((a.interval * 1e6).round() as u64);
    let steps = ((to.as_micros() - from.as_micros()) as u64).div_ceil(interval.0);

    println!("fairwatt demo: a simulated month ({period}) through the whole flow\n");
    println!("1. Sensors on this machine (what `fairwatt agent` would read here):");
    match HostSampler::new(SamplerConfig::new(HostId::new("this-host")?, Micros::from_secs(1))) {
        Ok(s) => s.status().iter().for_each(|st| println!("   {st}")),
        Err(e) => println!("   (could not probe: {e})"),
    }

    let rt = actix_web::rt::System::new();
    let url = fresh_store(&a.dir)?;
    let reg = fleet::registry(a.hosts, a.seed, from)?;
    let intensity = a.dir.join("grid-intensity.csv");
    std::fs::write(&intensity, fleet::intensity_csv(from, to, a.seed)).with_context(|| format!("writing {}", intensity.display()))?;
    let (db, keys) = rt.block_on(async {
        let db = Db::connect(&url).await.with_context(|| format!("opening {url}"))?;
        let key = |role, tenant| {
            let db = db.clone();
            async move { anyhow::Ok(auth::create_key(&db, role, tenant).await?.secret) }
        };
        let keys = Keys {
            ops: key(Role::Ops, None).await?,
            collector: key(Role::Collector, None).await?,
            finance: key(Role::Finance, None).await?,
            placement: key(Role::Placement, None).await?,
            tenant: key(Role::Tenant, Some(SHOWN_TENANT)).await?,
        };
        // What `fairwatt carbon import` does, on the demo's hourly file.
        let imported = fairwatt_billing_api::carbon::import_file(&db, &intensity).await?;
        println!("\n2. A fresh store at {url}");
        println!("   grid intensity: {} hourly rows for {} regions ({})", imported.rows, imported.regions, intensity.display());
        anyhow::Ok((db, keys))
    })?;

    let listener = std::net::TcpListener::bind(&a.listen).or_else(|e| {
        println!("   {} is busy ({e}); taking a free port instead", a.listen);
        std::net::TcpListener::bind("127.0.0.1:0")
    })?;
    let addr = listener.local_addr()?.to_string();
    let settings = Settings { issuer: "FW".into(), idle_policy: "reservation".into(), daily_rollups: true, usage_cache: true, placement_cache: true, placement_model: None };
    crate::serve::spawn_in_thread(&url, listener, settings, Some((fairwatt_attribution::Method::Linear, fairwatt_attribution::IdlePolicy::Reservation)))?;
    println!("   the billing API and its attribution worker: http://{addr}");

    register(&addr, &keys, &reg, from)?;
    let counts: BTreeMap<&str, usize> = reg.hosts.keys().map(|h| (h.as_str(), reg.vms.values().filter(|v| v.host.as_deref() == Some(h)).count())).collect();
    println!("\n3. Registered over HTTP: {} tenants, {} hosts in {} regions, {} VMs; a tariff per region", reg.tenants.len(), reg.hosts.len(), fleet::REGIONS.len().min(reg.hosts.len()), reg.vms.len());
    let servers = server_names(a.seed, a.hosts);
    for (i, (h, body)) in reg.hosts.iter().enumerate() {
        println!("   {h}  {:<2}  {:>3} vCPUs  PUE {:.2}  {:>2} VMs  {}", body.region, body.vcpus, body.pue, counts[h.as_str()], servers.get(i).map_or("", String::as_str));
    }

    println!("\n4. {} agents replay {period} at {} s intervals ({steps} intervals each), shipping to /v1/ingest:", reg.hosts.len(), a.interval);
    let traces = a.dir.join("traces");
    let agents = spawn_agents(&a, &reg, &addr, &keys.collector, from, steps, &traces)?;
    let expected = steps * reg.hosts.len() as u64;
    follow(&rt, &db, agents, &reg, steps, expected)?;

    println!("\n6. Invoices for {period}, issued (POST /v1/invoice-runs):");
    let invoices = issue(&addr, &keys, &reg, &period)?;
    conservation(&rt, &db, &traces, &invoices)?;

    println!("\n7. Placement decisions for new VMs (POST /v1/placement/decide, then registered):");
    placements(&addr, &keys, &reg)?;

    println!("\n8. Attribution quality against the simulator's ground truth:");
    quality::cpu_split_table(&traces)?;
    quality::attribution(&traces)?;

    let shown = invoices.iter().find(|i| i.tenant == SHOWN_TENANT).or(invoices.first());
    println!("\nDone in {:.0} s. The API (store: {url}):", started.elapsed().as_secs_f64());
    println!("   API docs     http://{addr}/docs   (OpenAPI: http://{addr}/openapi.json)");
    println!("   metrics      http://{addr}/metrics");
    println!("   tenant key   {}   ({SHOWN_TENANT}: its own VMs, usage and invoices)", keys.tenant);
    println!("   finance key  {}", keys.finance);
    println!("\n   export TENANT_KEY={} FINANCE_KEY={}", keys.tenant, keys.finance);
    if let Some(inv) = shown {
        println!("   curl -H \"Authorization: Bearer $TENANT_KEY\" -o invoice.pdf 'http://{addr}/v1/invoices/{}?format=pdf'", inv.id);
    }
    let (f, t) = (format_time(from.as_micros()), format_time(to.as_micros()));
    println!("   curl -H \"Authorization: Bearer $FINANCE_KEY\" 'http://{addr}/v1/usage?from={f}&to={t}&aggregate=tenant&step=window&cost=true'");
    println!("   curl -H \"Authorization: Bearer $FINANCE_KEY\" 'http://{addr}/v1/exports/focus?period={period}'");
    if a.no_serve {
        return Ok(());
    }
    println!("\nServing until Ctrl-C.");
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

/// `[first instant, first instant of the next month)` of `YYYY-MM`, UTC.
fn month(period: &str) -> anyhow::Result<(Timestamp, Timestamp)> {
    let d = NaiveDate::parse_from_str(&format!("{period}-01"), "%Y-%m-%d").with_context(|| format!("--period {period:?}: expected YYYY-MM"))?;
    let next = if d.month() == 12 { NaiveDate::from_ymd_opt(d.year() + 1, 1, 1) } else { NaiveDate::from_ymd_opt(d.year(), d.month() + 1, 1) }.context("month out of range")?;
    let at = |d: NaiveDate| -> anyhow::Result<Timestamp> { Timestamp::from_micros(d.and_hms_opt(0, 0, 0).context("midnight")?.and_utc().timestamp_micros()).context("time out of range") };
    let (start, end) = (at(d)?, at(next)?);
    let now = chrono::Utc::now().timestamp_micros();
    ensure!(end.as_micros() <= now, "--period {period}: the month has not ended yet, so it cannot be invoiced");
    ensure!(start.as_micros() >= now - fairwatt_billing_api::ingest::MAX_AGE_US, "--period {period}: ingest takes intervals of the last 400 days only");
    Ok((start, end))
}

/// Removes the previous demo's store and agent state under `dir` (nothing
/// else), and returns the store's URL.
fn fresh_store(dir: &Path) -> anyhow::Result<String> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for f in ["fairwatt.db", "fairwatt.db-wal", "fairwatt.db-shm"] {
        let p = dir.join(f);
        if p.exists() {
            std::fs::remove_file(&p).with_context(|| format!("removing the previous demo's {}", p.display()))?;
        }
    }
    for d in ["agents", "traces"] {
        let p = dir.join(d);
        if p.exists() {
            std::fs::remove_dir_all(&p).with_context(|| format!("removing the previous demo's {}", p.display()))?;
        }
    }
    Ok(format!("sqlite://{}", dir.join("fairwatt.db").display()))
}

/// Each host's server model (and GPUs), as the registry listing shows it.
fn server_names(seed: u64, hosts: usize) -> Vec<String> {
    let Some(sc) = Timestamp::from_micros(0).and_then(|s| fairwatt_collector::sim::scenario(fleet::SCENARIO, hosts, seed, s).ok()) else { return Vec::new() };
    sc.hosts
        .iter()
        .map(|h| {
            let gpus = if h.gpus.is_empty() { String::new() } else { format!(" + {} × {}", h.gpus.len(), h.gpus[0].name) };
            format!("{}{gpus}", h.server.name.split(" (").next().unwrap_or(h.server.name))
        })
        .collect()
}

/// A call that must succeed: its JSON answer, or an error naming the call.
fn call(addr: &str, method: &str, path: &str, key: &str, body: &Value) -> anyhow::Result<Value> {
    let bytes = if body.is_null() { Vec::new() } else { serde_json::to_vec(body)? };
    let (status, text) = request(addr, method, path, key, &bytes).with_context(|| format!("{method} {path}"))?;
    if !(200..300).contains(&status) {
        bail!("{method} {path} answered {status}: {text}");
    }
    Ok(if text.is_empty() { Value::Null } else { serde_json::from_str(&text).with_context(|| format!("{method} {path}: not JSON: {text}"))? })
}

/// Tenants, hosts and VMs (ops) and tariffs (finance), as operators would.
fn register(addr: &str, keys: &Keys, reg: &fairwatt_billing_api::registry::RegistryFile, from: Timestamp) -> anyhow::Result<()> {
    for (id, t) in &reg.tenants {
        call(addr, "PUT", &format!("/v1/tenants/{id}"), &keys.ops, &serde_json::to_value(t)?)?;
    }
    for (id, h) in &reg.hosts {
        call(addr, "PUT", &format!("/v1/hosts/{id}"), &keys.ops, &serde_json::to_value(h)?)?;
    }
    for (id, v) in &reg.vms {
        call(addr, "PUT", &format!("/v1/vms/{id}"), &keys.ops, &serde_json::to_value(v)?)?;
    }
    for t in fleet::tariffs(from) {
        call(addr, "POST", "/v1/tariffs", &keys.finance, &t)?;
    }
    Ok(())
}

struct Agent {
    host: String,
    child: Child,
    log: PathBuf,
}

/// One `fairwatt agent --simulate` process per host: the real agent binary,
/// its crash-safe spool and its shipper, at full speed from `from`.
fn spawn_agents(a: &DemoArgs, reg: &fairwatt_billing_api::registry::RegistryFile, addr: &str, key: &str, from: Timestamp, steps: u64, traces: &Path) -> anyhow::Result<Vec<Agent>> {
    let exe = std::env::current_exe().context("finding this program to start the agents")?;
    std::fs::create_dir_all(traces)?;
    let mut out = Vec::new();
    for (i, host) in reg.hosts.keys().enumerate() {
        let dir = a.dir.join("agents").join(host);
        std::fs::create_dir_all(&dir)?;
        let log = dir.join("agent.log");
        let child = Command::new(&exe)
            .args(["agent", "--simulate", fleet::SCENARIO, "--sim-host", &i.to_string(), "--sim-start", &from.to_string(), "--host-id", host])
            .args(["--seed", &a.seed.to_string(), "--interval", &a.interval.to_string(), "--fast", "--count", &steps.to_string(), "--no-metrics"])
            .arg("--spool")
            .arg(dir.join("spool"))
            .arg("--record")
            .arg(traces.join(format!("{host}.jsonl")))
            .args(["--server", &format!("http://{addr}"), "--key", key, "--ship-batch", "500"])
            .env("FAIRWATT_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .with_context(|| format!("starting the agent for {host}"))?;
        out.push(Agent { host: host.clone(), child, log });
    }
    Ok(out)
}

/// Follows ingest per host and the worker's attribution from the store,
/// until every agent has exited having shipped everything and every
/// interval is in the ledger.
fn follow(rt: &actix_web::rt::SystemRunner, db: &Db, mut agents: Vec<Agent>, reg: &fairwatt_billing_api::registry::RegistryFile, steps: u64, expected: u64) -> anyhow::Result<()> {
    let multi = MultiProgress::new();
    let style = ProgressStyle::with_template("   {prefix:<14} [{bar:36}] {pos:>6}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ");
    let bars: BTreeMap<String, ProgressBar> = reg.hosts.keys().map(|h| (h.clone(), multi.add(ProgressBar::new(steps).with_style(style.clone()).with_prefix(h.clone()).with_message("ingested")))).collect();
    let attributed = multi.add(ProgressBar::new(expected).with_style(style).with_prefix("ledger").with_message("attributed"));
    let t0 = Instant::now();
    let mut last_move = (Instant::now(), 0u64);
    let mut ingested_at = None;
    loop {
        let mut running = 0;
        for ag in &mut agents {
            match ag.child.try_wait()? {
                None => running += 1,
                Some(status) if !status.success() => {
                    let log = std::fs::read_to_string(&ag.log).unwrap_or_default();
                    bail!("the agent for {} failed ({status}); its log {}:\n{log}", ag.host, ag.log.display());
                }
                Some(_) => {}
            }
        }
        // Both read indexes only (the primary key, the unattributed partial
        // index): polling must not slow the worker it watches, and a
        // COUNT(*) of `intervals` reads every stored record. The agents'
        // seqs run from 0 without gaps, so the highest one counts them.
        let (rows, left): (Vec<(String, i64)>, (i64,)) = rt.block_on(async {
            let rows = sqlx::query_as("SELECT host, MAX(seq) + 1 FROM intervals GROUP BY host").fetch_all(&db.pool).await?;
            let left = sqlx::query_as("SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").fetch_one(&db.pool).await?;
            anyhow::Ok((rows, left))
        })?;
        for (host, n) in &rows {
            if let Some(b) = bars.get(host) {
                b.set_position(*n as u64);
            }
        }
        let stored: u64 = rows.iter().map(|r| r.1 as u64).sum();
        let done = stored.saturating_sub(left.0 as u64);
        attributed.set_position(done);
        if stored >= expected && ingested_at.is_none() {
            ingested_at = Some(t0.elapsed());
        }
        if done > last_move.1 {
            last_move = (Instant::now(), done);
        }
        if running == 0 && done >= expected {
            break;
        }
        if running == 0 && stored < expected && last_move.0.elapsed() > Duration::from_secs(5) {
            let rejected: Vec<String> = agents.iter().filter_map(|a| a.log.parent().map(|d| d.join("spool/rejected.jsonl"))).filter(|p| p.exists()).map(|p| p.display().to_string()).collect();
            let logs: Vec<String> = agents.iter().map(|a| a.log.display().to_string()).collect();
            bail!("the agents are done but the store holds {stored} of {expected} intervals; see their logs ({}) and the server's reasons in [{}]", logs.join(", "), rejected.join(", "));
        }
        // The worker holds a host's intervals at most `HOLD` for its first model.
        if running == 0 && last_move.0.elapsed() > fairwatt_billing_api::worker::HOLD + Duration::from_secs(60) {
            bail!("the attribution worker stopped at {done} of {expected} intervals");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    bars.values().for_each(ProgressBar::finish);
    attributed.finish();
    let mut shipped = Vec::new();
    for ag in &agents {
        let log = std::fs::read_to_string(&ag.log).unwrap_or_default();
        shipped.push(log.lines().find(|l| l.contains("shipped")).map_or_else(|| format!("{}: ?", ag.host), |l| format!("{}: {}", ag.host, l.trim_start_matches("fairwatt agent: "))));
    }
    let ingest_s = ingested_at.unwrap_or_else(|| t0.elapsed()).as_secs_f64();
    println!("\n5. {expected} intervals ingested in {ingest_s:.1} s and attributed in {:.1} s (a linear model per host, idle by reservation)", t0.elapsed().as_secs_f64());
    for s in shipped {
        println!("   {s}");
    }
    Ok(())
}

/// An issued invoice as the demo reports it.
struct Issued {
    tenant: String,
    id: String,
    /// Energy of the IT lines (cpu, dram, gpu, idle), µJ: what the sensors measured for it.
    it_uj: i64,
}

/// Runs the period's invoices (finance) and prints each tenant's.
fn issue(addr: &str, keys: &Keys, reg: &fairwatt_billing_api::registry::RegistryFile, period: &str) -> anyhow::Result<Vec<Issued>> {
    let run = call(addr, "POST", "/v1/invoice-runs", &keys.finance, &json!({"period": period, "issue": true}))?;
    let failed = run["failed"].as_array().map_or(0, Vec::len);
    ensure!(failed == 0, "the invoice run failed for some tenants: {}", run["failed"]);
    println!("   {:<10} {:<18} {:<10} {:>10} {:>11} {:>11} {:>10}", "tenant", "name", "number", "kWh", "kgCO2e loc", "kgCO2e emb", "total");
    let mut out = Vec::new();
    for (t, body) in &reg.tenants {
        let list = call(addr, "GET", &format!("/v1/tenants/{t}/invoices"), &keys.finance, &Value::Null)?;
        let items = list["items"].as_array().or_else(|| list.as_array()).cloned().unwrap_or_default();
        let Some(id) = items.iter().find(|i| i["period"] == period && i["kind"] == "invoice").and_then(|i| i["id"].as_str()) else {
            bail!("no invoice for {t} in {period}: {list}");
        };
        let inv = call(addr, "GET", &format!("/v1/invoices/{id}"), &keys.finance, &Value::Null)?;
        let it_uj: i64 = inv["lines"].as_array().into_iter().flatten().filter(|l| matches!(l["charge"].as_str(), Some("cpu" | "dram" | "gpu" | "idle"))).filter_map(|l| l["energy_uj"].as_i64()).sum();
        println!(
            "   {:<10} {:<18} {:<10} {:>10.3} {:>11.2} {:>11.2} {:>6} {}",
            t,
            body.name,
            inv["number"].as_str().unwrap_or("-"),
            inv["energy_kwh"].as_f64().unwrap_or(0.0),
            inv["co2e_location_g"].as_f64().unwrap_or(0.0) / 1000.0,
            inv["co2e_embodied_g"].as_f64().unwrap_or(0.0) / 1000.0,
            inv["total"].as_str().unwrap_or("?"),
            inv["currency"].as_str().unwrap_or("")
        );
        out.push(Issued { tenant: t.clone(), id: id.to_string(), it_uj });
    }
    Ok(out)
}

/// Joules from the sensors (the agents' own records) against the invoices'
/// IT energy plus what the ledger left unattributed: equal to the µJ.
fn conservation(rt: &actix_web::rt::SystemRunner, db: &Db, traces: &Path, invoices: &[Issued]) -> anyhow::Result<()> {
    let mut sensors: u64 = 0;
    for file in fairwatt_collector::trace_io::files(traces)? {
        for rec in fairwatt_collector::trace_io::open(&file)? {
            sensors += rec?.measured_total().as_uj();
        }
    }
    let rows: Vec<(String, i64)> = rt.block_on(sqlx::query_as("SELECT domain, CAST(SUM(unattributed_uj) AS BIGINT) FROM ledger_domains GROUP BY domain").fetch_all(&db.pool))?;
    let unattributed: i64 = rows.iter().filter(|(d, _)| d.parse::<fairwatt_core::Domain>().is_ok_and(|d| d.is_top_level())).map(|(_, e)| e).sum();
    let invoiced: i64 = invoices.iter().map(|i| i.it_uj).sum();
    let kwh = |uj: i64| uj as f64 / fairwatt_billing_api::money::UJ_PER_KWH as f64;
    println!("   measured by the agents' sensors {:>16} µJ ({:.3} kWh)", sensors, kwh(sensors as i64));
    println!("   on the invoices (IT energy)     {:>16} µJ ({:.3} kWh)", invoiced, kwh(invoiced));
    println!("   unattributed (hosts without VMs){:>16} µJ ({:.3} kWh)", unattributed, kwh(unattributed));
    ensure!(invoiced + unattributed == sensors as i64, "energy is not conserved: {invoiced} + {unattributed} != {sensors} µJ");
    println!("   invoiced + unattributed = measured, exactly; the PUE's facility share is billed on top");
    Ok(())
}

/// New VM requests, each decided by the live placement endpoint and then
/// registered on the host it chose; one too large for any host is refused.
fn placements(addr: &str, keys: &Keys, reg: &fairwatt_billing_api::registry::RegistryFile) -> anyhow::Result<()> {
    let asks: [(&str, u32, u64, Option<&str>); 6] =
        [("tenant-1", 8, 32_768, None), ("tenant-2", 2, 4_096, Some("FR")), ("tenant-3", 16, 65_536, None), ("tenant-4", 4, 8_192, Some("PL")), ("tenant-5", 1, 2_048, Some("DE")), ("tenant-6", 4096, 1 << 22, None)];
    println!("   {:<22} {:>5} {:>8} {:<6} {:<14} {:>9} {:>10}", "new VM", "vCPUs", "GiB", "region", "host", "added W", "candidates");
    for (k, (tenant, vcpus, mib, region)) in asks.iter().enumerate() {
        ensure!(reg.tenants.contains_key(*tenant), "the demo fleet has no {tenant}");
        let vm = format!("demo-new-{k}");
        let body = json!({"vcpus": vcpus, "memory_mib": mib, "region": region, "vm": vm});
        let (status, text) = request(addr, "POST", "/v1/placement/decide", &keys.placement, &serde_json::to_vec(&body)?)?;
        let label = format!("{vm} ({tenant})");
        let gib = *mib as f64 / 1024.0;
        match status {
            200 => {
                let d: Value = serde_json::from_str(&text)?;
                let host = d["host"].as_str().unwrap_or("?");
                println!("   {label:<22} {vcpus:>5} {gib:>8.0} {:<6} {host:<14} {:>9.1} {:>10}", d["region"].as_str().unwrap_or("?"), d["added_w"].as_f64().unwrap_or(0.0), d["candidates"]);
                let put = json!({"tenant": tenant, "flavor": format!("new.{vcpus}c"), "vcpus": vcpus, "memory_mib": mib, "host": host});
                call(addr, "PUT", &format!("/v1/vms/{vm}"), &keys.ops, &put)?;
            }
            409 => {
                let msg = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["message"].as_str().map(String::from)).unwrap_or(text);
                println!("   {label:<22} {vcpus:>5} {gib:>8.0} refused (409): {msg}");
            }
            s => bail!("POST /v1/placement/decide answered {s}: {text}"),
        }
    }
    Ok(())
}
