//! `fairwatt bench`: speed measurements recorded in docs/benchmarks.md.
//!
//! `agent` times the agent's full tick (sensors → record → spool → metrics)
//! on generated fixture trees of N VMs, in a child process per size so each
//! size's peak memory is its own; `sim` times the simulator.

use std::time::Instant;

use anyhow::Context;
use clap::{Args, Subcommand};

#[derive(Args, Debug)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub what: BenchWhat,
}

#[derive(Subcommand, Debug)]
pub enum BenchWhat {
    /// CPU time and memory of the agent's tick with N VMs on a generated procfs.
    Agent {
        /// VM counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "10,100,500")]
        vms: Vec<usize>,
        /// Ticks per size.
        #[arg(long, default_value_t = 200)]
        ticks: u64,
        /// Use real processes on the real /proc (fake QEMU command lines) instead of a generated procfs.
        #[arg(long)]
        real: bool,
        /// Reopen procfs files every tick (the baseline the held-open reader is compared with).
        #[arg(long)]
        reopen: bool,
        /// Internal: measure one size in this process.
        #[arg(long, hide = true)]
        child: bool,
    },
    /// Attribution speed: fit on a day of a simulated N-VM host, then apply.
    Attribution {
        #[arg(long, default_value_t = 50)]
        vms: usize,
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
    },
    /// Billing API ingest on loopback: batches of simulated records posted by concurrent clients.
    Ingest(crate::bench_ingest::IngestBenchArgs),
    /// The attribution worker clearing a backlog of ingested intervals (rows per INSERT compared).
    Worker(crate::bench_worker::WorkerBenchArgs),
    /// Billing API: a tenant's month-long usage queries under concurrent clients (daily vs hourly rollups).
    Usage(crate::bench_billing::UsageBenchArgs),
    /// Billing API: issuing every tenant's monthly invoice (invoice run vs one request per tenant).
    Invoices(crate::bench_billing::InvoiceBenchArgs),
    /// A simulated day per placement policy, and the live decision for one VM at 800 hosts (in process and over HTTP).
    Placement(crate::bench_place::PlaceBenchArgs),
    /// Simulator speed: intervals of one host with N VMs.
    Sim {
        #[arg(long, default_value_t = 50)]
        vms: usize,
        #[arg(long, default_value_t = 24.0)]
        hours: f64,
    },
}

pub fn run(a: BenchArgs) -> anyhow::Result<()> {
    match a.what {
        BenchWhat::Agent { vms, ticks, real, reopen, child: true } => agent_child(vms.first().copied().unwrap_or(10), ticks, real, reopen),
        BenchWhat::Agent { vms, ticks, real, reopen, child: false } => agent_parent(&vms, ticks, real, reopen),
        BenchWhat::Sim { vms, hours } => sim(vms, hours),
        BenchWhat::Attribution { vms, hours } => attribution(vms, hours),
        BenchWhat::Ingest(a) => crate::bench_ingest::run(a),
        BenchWhat::Worker(a) => crate::bench_worker::run(a),
        BenchWhat::Usage(a) => crate::bench_billing::usage(a),
        BenchWhat::Invoices(a) => crate::bench_billing::invoices(a),
        BenchWhat::Placement(a) => crate::bench_place::run(a),
    }
}

fn thread_cpu_s() -> f64 {
    // SAFETY: clock_gettime writes into the struct we pass.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts);
        ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
    }
}

fn agent_parent(sizes: &[usize], ticks: u64, real: bool, reopen: bool) -> anyhow::Result<()> {
    let exe = std::env::current_exe()?;
    println!("{:>6} {:>8} {:>16} {:>18} {:>14}", "VMs", "ticks", "CPU ms/tick", "CPU ms/tick/100VM", "peak RSS MB");
    for &n in sizes {
        let out = std::process::Command::new(&exe)
            .args(["--log", "error", "bench", "agent", "--child", "--vms", &n.to_string(), "--ticks", &ticks.to_string()])
            .args(real.then_some("--real"))
            .args(reopen.then_some("--reopen"))
            .output()
            .context("running the benchmark child")?;
        if !out.status.success() {
            anyhow::bail!("benchmark child for {n} VMs failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        print!("{}", String::from_utf8_lossy(&out.stdout));
    }
    Ok(())
}

/// Real processes whose command lines look like libvirt's QEMU: a shell run
/// under the name `qemu-system-x86_64`, sleeping. Killed on drop.
struct FakeQemus(Vec<std::process::Child>);

impl FakeQemus {
    fn spawn(dir: &std::path::Path, n: usize) -> anyhow::Result<Self> {
        use std::os::unix::process::CommandExt;
        let exe = dir.join("qemu-system-x86_64");
        std::os::unix::fs::symlink("/bin/sh", &exe)?;
        // The shells' `sleep`s, orphaned when the group is killed, come to
        // us to be reaped in `drop` instead of lingering as zombies under
        // init, where the next measurement's /proc walk would meet them.
        // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag on this process.
        unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) };
        let mut kids = Vec::with_capacity(n);
        for i in 0..n {
            let child = std::process::Command::new(&exe)
                // `; :` keeps the shell alive (no exec of sleep) so its cmdline stays.
                .args(["-c", "sleep 100000; :", "-name"])
                .arg(format!("guest=vm-{i},debug-threads=on"))
                .args(["-uuid", &format!("be0c0000-0000-4000-8000-{i:012x}"), "-smp", "2", "-m", "1024"])
                // Their sleeping children must not hold our stdout open.
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                // Its own process group, so the sleep goes with the shell.
                .process_group(0)
                .spawn()?;
            kids.push(child);
        }
        Ok(FakeQemus(kids))
    }
}

impl Drop for FakeQemus {
    fn drop(&mut self) {
        for c in &mut self.0 {
            // The group: killing only the shell would leave its sleep running.
            // SAFETY: kill(2) with a negative pid signals that process group.
            unsafe { libc::kill(-(c.id() as i32), libc::SIGKILL) };
            let _ = c.wait();
        }
        // SAFETY: waitpid with a null status pointer; reaps the orphaned sleeps
        // (this process has no other children) until there are none.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), 0) } > 0 {}
    }
}

fn agent_child(n: usize, ticks: u64, real: bool, reopen: bool) -> anyhow::Result<()> {
    use fairwatt_collector::fixture;
    use fairwatt_collector::sampler::{HostSampler, IntervalSource, SamplerConfig};
    use fairwatt_collector::spool::{Spool, SpoolConfig};
    use fairwatt_core::clock::{Clock, ManualClock};
    use fairwatt_core::{HostId, Micros, Timestamp};

    let dir = tempfile::tempdir()?;
    let proc_root = dir.path().join("proc");
    let sys_root = dir.path().join("sys");
    let mut tree = fixture::proc::generate(&proc_root, &sys_root, if real { 0 } else { n })?;
    let pids: Vec<u32> = tree.vms().map(|v| v.pid).collect();
    let _qemus = if real { Some(FakeQemus::spawn(dir.path(), n)?) } else { None };
    let proc_root = if real { "/proc".into() } else { proc_root };
    let rapl = fixture::rapl::PowercapTree::new(&sys_root)
        .package(0, 1_000_000, &[("core", 500_000), ("uncore", 100_000), ("dram", 200_000)])
        .package(1, 1_000_000, &[("core", 500_000), ("uncore", 100_000), ("dram", 200_000)])
        .write()?;
    let cfg = SamplerConfig {
        host_id: HostId::new("bench")?,
        interval: Micros::from_secs(1),
        sysfs_root: sys_root.clone(),
        procfs_root: proc_root.clone(),
        dev_root: dir.path().join("dev"),
        libvirt_dirs: vec![dir.path().join("libvirt")],
        mapping: None,
        nvml: false,
        perf: false,
    };
    let mut sampler = HostSampler::new(cfg)?;
    if reopen {
        sampler = sampler.with_held_files(false);
    }
    let mut spool = Spool::open(SpoolConfig { fsync: false, ..SpoolConfig::new(dir.path().join("spool")) })?;
    let metrics = crate::agent::metrics::Metrics::new();
    let clock = ManualClock::new(Timestamp::from_micros(1_700_000_000_000_000).context("time")?);
    // sensors, resume state, spool append, metrics
    let mut parts = [0.0f64; 4];
    let mut measured = 0u64;
    let mut energy = 1_000_000u64;
    for i in 0..=ticks {
        // Make the host look alive between ticks; not part of the measured cost.
        clock.advance(Micros::from_secs(1));
        energy += 90_000_000;
        rapl.set_energy("intel-rapl:0", energy)?;
        for p in &pids {
            tree.add_cpu_time(*p, 50, 5)?;
        }
        let t0 = thread_cpu_s();
        let s = sampler.sample(clock.now());
        let t1 = thread_cpu_s();
        if let Some(state) = sampler.snapshot() {
            spool.save_state(&state)?;
        }
        let t2 = thread_cpu_s();
        let rec = s.record.map(|mut r| {
            r.seq = i;
            r
        });
        if let Some(r) = &rec {
            spool.append(r)?;
        }
        let t3 = thread_cpu_s();
        if let Some(r) = &rec {
            metrics.observe(r, &s.errors, 0.0, Some(spool.stats()));
        }
        let t4 = thread_cpu_s();
        if i > 0 {
            for (p, d) in parts.iter_mut().zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3]) {
                *p += d;
            }
            measured += 1;
        }
    }
    let cpu: f64 = parts.iter().sum();
    let per_tick_ms = cpu / measured.max(1) as f64 * 1e3;
    let ms = |x: f64| x / measured.max(1) as f64 * 1e3;
    println!(
        "{:>6} {:>8} {:>16.3} {:>18.3} {:>14.1}   (sensors {:.3}, state {:.3}, spool {:.3}, metrics {:.3})",
        n,
        measured,
        per_tick_ms,
        per_tick_ms * 100.0 / n.max(1) as f64,
        crate::agent::metrics::peak_rss() as f64 / 1e6,
        ms(parts[0]),
        ms(parts[1]),
        ms(parts[2]),
        ms(parts[3]),
    );
    Ok(())
}

pub fn sim_host(vms: usize) -> anyhow::Result<fairwatt_collector::sim::SimHost> {
    use fairwatt_collector::sim::{self, SimHost};
    use fairwatt_core::Micros;
    let mut sc = sim::scenario("mixed", 1, 7, crate::simulate::start_of_today())?;
    let mut cfg = sc.hosts.remove(0);
    cfg.vms = sim::scenario("mixed", 8, 7, cfg.start)?.hosts.into_iter().flat_map(|h| h.vms).take(vms).collect();
    if cfg.vms.len() < vms {
        anyhow::bail!("the mixed scenario has only {} VMs to draw from", cfg.vms.len());
    }
    cfg.interval = Micros::from_secs(1);
    Ok(SimHost::new(cfg, 7))
}

fn sim(vms: usize, hours: f64) -> anyhow::Result<()> {
    let mut host = sim_host(vms)?;
    let steps = (hours * 3600.0) as u64;
    let (t0, c0) = (Instant::now(), thread_cpu_s());
    let mut vm_steps = 0u64;
    for _ in 0..steps {
        vm_steps += host.step().vms.len() as u64;
    }
    let (el, cpu) = (t0.elapsed().as_secs_f64(), thread_cpu_s() - c0);
    println!(
        "simulator: {steps} intervals of 1 s, {vms} VMs, {vm_steps} VM-intervals: {cpu:.3} s CPU ({el:.3} s wall), {:.0} VM-intervals per CPU-second",
        vm_steps as f64 / cpu
    );
    Ok(())
}

/// Times the fit on the whole run, the model applied alone (features to
/// per-VM dynamic power for every domain), and the full attributor
/// (idle, exact splits, results); the CPU-time ratio beside each.
fn attribution(vms: usize, hours: f64) -> anyhow::Result<()> {
    use fairwatt_attribution::features;
    use fairwatt_attribution::model::{self, ModelParams, TrainingSet};
    use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, Method};
    let mut host = sim_host(vms)?;
    let steps = (hours * 3600.0) as u64;
    let recs: Vec<_> = (0..steps).map(|_| host.step()).collect();
    let vm_intervals: u64 = recs.iter().map(|r| r.vms.len() as u64).sum();
    println!("{steps} intervals of a {vms}-VM host ({vm_intervals} VM-intervals, {} domains)", recs[0].domains.len());
    for method in [Method::Ratio, Method::Linear] {
        let c0 = thread_cpu_s();
        let mode = (method == Method::Ratio).then_some(features::FeatureMode::Software);
        let ts = TrainingSet::build(recs.iter(), mode, &Default::default())?;
        let m = model::fit(method, &ts, &ModelParams::default())?;
        let fit_s = thread_cpu_s() - c0;

        let (mut rows, mut w, mut sink) = (Vec::new(), Vec::new(), 0.0);
        let c0 = thread_cpu_s();
        let mut gpu_rows = Vec::new();
        for r in &recs {
            features::cpu_rows(r, m.mode(), &m.impute(), &mut rows);
            m.annotate(&mut rows);
            for d in r.domains.keys() {
                m.vm_dynamic(*d, features::domain_rows(r, *d, m.mode(), &m.impute(), &rows, &mut gpu_rows), &mut w);
                sink += w.iter().sum::<f64>();
            }
        }
        let apply_s = thread_cpu_s() - c0;

        let mut cfg = AttributorConfig::new(method, IdlePolicy::Reservation);
        cfg.threshold_w = f64::INFINITY;
        let mut att = Attributor::new(cfg)?;
        let c0 = thread_cpu_s();
        let mut n = 0usize;
        for r in recs.iter().take(3600.min(recs.len())) {
            n += att.push(r.clone())?.len();
        }
        let full_s = thread_cpu_s() - c0;
        let full_vm: u64 = recs.iter().take(n).map(|r| r.vms.len() as u64).sum();
        println!(
            "{method:>6}: fit {fit_s:.3} s CPU; apply {:.2} M VM-intervals/CPU-s ({} domains each); full attributor {:.2} M VM-intervals/CPU-s (first hour, record clones included){}",
            vm_intervals as f64 / apply_s / 1e6,
            recs[0].domains.len(),
            full_vm as f64 / full_s / 1e6,
            if sink.is_nan() { " (NaN)" } else { "" }
        );
    }
    Ok(())
}
