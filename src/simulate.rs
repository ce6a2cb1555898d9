//! `fairwatt simulate`: writes a simulated fleet's trace, one file per host,
//! with ground-truth columns, for attribution and placement work.

use std::path::PathBuf;

use anyhow::Context;
use clap::Args;
use fairwatt_collector::sim::{self, SimHost};
use fairwatt_collector::trace_io::{TraceWriter, host_file};
use fairwatt_core::clock::{Clock, SystemClock};
use fairwatt_core::{Energy, Micros, Timestamp};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Scenario name; `--scenario list` prints them.
    #[arg(long, default_value = "mixed")]
    pub scenario: String,
    /// Number of hosts.
    #[arg(long, default_value_t = 1)]
    pub hosts: usize,
    /// Simulated hours.
    #[arg(long, default_value_t = 1.0)]
    pub hours: f64,
    /// Seed; the same seed gives the same trace.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sampling interval in seconds.
    #[arg(long, default_value_t = 1.0)]
    pub interval: f64,
    /// Start time (RFC 3339) [default: midnight UTC of today].
    #[arg(long)]
    pub start: Option<String>,
    /// Output directory (one HOST.jsonl per host).
    #[arg(long)]
    pub out: PathBuf,
}

pub struct HostSummary {
    pub host: String,
    pub records: u64,
    pub vms: usize,
    pub energy: Energy,
}

fn start_time(s: &Option<String>) -> anyhow::Result<Timestamp> {
    match s {
        Some(s) => {
            let dt = chrono::DateTime::parse_from_rfc3339(s).with_context(|| format!("--start {s:?} is not RFC 3339"))?;
            Ok(Timestamp::from_datetime(dt.with_timezone(&chrono::Utc)))
        }
        None => Ok(start_of_today()),
    }
}

/// Midnight UTC of the current day.
pub fn start_of_today() -> Timestamp {
    let now = SystemClock.now();
    let day = 86_400_000_000i64;
    Timestamp::from_micros(now.as_micros() - now.as_micros().rem_euclid(day)).unwrap_or(now)
}

pub fn run(a: SimulateArgs) -> anyhow::Result<()> {
    if a.scenario == "list" {
        for n in sim::scenario_names() {
            println!("{n}");
        }
        return Ok(());
    }
    let interval_ok = a.interval.is_finite() && a.interval >= 0.01;
    let hours_ok = a.hours.is_finite() && a.hours > 0.0 && a.hours <= 24.0 * 366.0;
    if !interval_ok || !hours_ok {
        anyhow::bail!("--interval must be at least 0.01 s and --hours between 0 and 8784");
    }
    if a.hosts == 0 || a.hosts > 10_000 {
        anyhow::bail!("--hosts must be between 1 and 10000");
    }
    let interval = Micros((a.interval * 1e6).round() as u64);
    let steps = ((a.hours * 3600.0) / a.interval).round() as u64;
    let scenario = sim::scenario(&a.scenario, a.hosts, a.seed, start_time(&a.start)?)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let bar = ProgressBar::new(steps * scenario.hosts.len() as u64).with_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} intervals ({eta} left)").unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar.set_message(format!("simulating {}", a.scenario));
    let summaries = simulate_to(&scenario, a.seed, interval, steps, &a.out, &bar)?;
    bar.finish_and_clear();
    println!("{:<16} {:>10} {:>5} {:>14}", "host", "intervals", "vms", "energy kWh");
    for s in &summaries {
        println!("{:<16} {:>10} {:>5} {:>14.6}", s.host, s.records, s.vms, s.energy.as_kwh());
    }
    println!("trace written to {}", a.out.display());
    Ok(())
}

/// Simulates every host (in parallel, one thread per core) into `out`.
pub fn simulate_to(
    scenario: &sim::Scenario,
    seed: u64,
    interval: Micros,
    steps: u64,
    out: &std::path::Path,
    bar: &ProgressBar,
) -> anyhow::Result<Vec<HostSummary>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunks: Vec<Vec<_>> = {
        let mut c: Vec<Vec<_>> = (0..threads).map(|_| Vec::new()).collect();
        for (i, h) in scenario.hosts.iter().enumerate() {
            c[i % threads].push(h.clone());
        }
        c
    };
    let results: Vec<anyhow::Result<Vec<HostSummary>>> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|hosts| {
                s.spawn(move || -> anyhow::Result<Vec<HostSummary>> {
                    let mut out_s = Vec::new();
                    for mut cfg in hosts {
                        cfg.interval = interval;
                        let mut host = SimHost::new(cfg, seed);
                        let header = host.header();
                        let path = host_file(out, &header.host);
                        let mut w = TraceWriter::create(&path, &header)?;
                        let mut sum = HostSummary { host: header.host.to_string(), records: 0, vms: 0, energy: Energy::ZERO };
                        let mut names = std::collections::BTreeSet::new();
                        for i in 0..steps {
                            let r = host.step();
                            sum.energy += r.measured_total();
                            for v in &r.vms {
                                names.insert(v.vm.clone());
                            }
                            w.write(&r)?;
                            sum.records += 1;
                            if i % 1000 == 999 {
                                bar.inc(1000);
                            }
                        }
                        bar.inc(steps % 1000);
                        w.flush()?;
                        sum.vms = names.len();
                        out_s.push(sum);
                    }
                    Ok(out_s)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap_or_else(|_| Err(anyhow::anyhow!("simulation thread panicked")))).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    all.sort_by(|a, b| a.host.cmp(&b.host));
    Ok(all)
}
