//! `fairwatt agent`: samples the host every interval, keeps the samples in
//! the crash-safe spool, ships them to the billing API when given a server,
//! optionally records a trace, and serves Prometheus metrics. A sensor that is missing or failing is reported and the rest keep
//! sampling.

mod config;
pub mod metrics;
mod server;
pub mod ship;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use anyhow::Context;
use fairwatt_collector::sampler::{HostSampler, IntervalSource, SamplerConfig, SimSource};
use fairwatt_collector::spool::{Spool, SpoolConfig};
use fairwatt_collector::trace_io::TraceWriter;
use fairwatt_core::clock::{Clock, SystemClock};
use fairwatt_core::{IntervalRecord, Micros, SensorStatus};

pub use config::{AgentArgs, AgentConfig, OutputFormat};
use metrics::Metrics;

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signal_handlers() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, on_signal as *const () as libc::sighandler_t);
        libc::signal(libc::SIGTERM, on_signal as *const () as libc::sighandler_t);
    }
}

pub fn build_source(args: &AgentArgs, cfg: &AgentConfig, interval: Micros) -> anyhow::Result<Box<dyn IntervalSource>> {
    if let Some(scenario) = &args.simulate {
        let start = args.sim_start.unwrap_or_else(|| SystemClock.now());
        let src = SimSource::nth(scenario, args.sim_host, &cfg.host_id, args.seed, interval, start)
            .with_context(|| format!("--simulate {scenario}"))?;
        return Ok(Box::new(src));
    }
    let sc = SamplerConfig {
        host_id: fairwatt_core::HostId::new(cfg.host_id.clone())?,
        interval,
        sysfs_root: cfg.sysfs_root.clone(),
        procfs_root: cfg.procfs_root.clone(),
        dev_root: cfg.dev_root.clone(),
        libvirt_dirs: cfg.libvirt_dirs.clone(),
        mapping: cfg.mapping.clone(),
        nvml: true,
        perf: true,
    };
    Ok(Box::new(HostSampler::new(sc)?))
}

pub fn print_sensors(statuses: &[SensorStatus]) {
    eprintln!("fairwatt agent: sensors");
    for s in statuses {
        eprintln!("  {s}");
    }
}

/// The readers keep per-VM files open between ticks (a budget of a fraction
/// of the soft limit); a large host needs more than the usual 1024.
fn raise_fd_limit() {
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    unsafe {
        let mut rl: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) == 0 && rl.rlim_cur < rl.rlim_max {
            rl.rlim_cur = rl.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &rl);
        }
    }
}

pub fn run(args: AgentArgs) -> anyhow::Result<()> {
    let cfg = args.resolve()?;
    raise_fd_limit();
    let interval = Micros((cfg.interval_s * 1e6).round() as u64);
    let mut source = build_source(&args, &cfg, interval)?;
    let statuses = source.status();
    print_sensors(&statuses);
    if args.once {
        return once(source.as_mut(), interval, args.format, args.simulate.is_some());
    }
    install_signal_handlers();

    let mut spool: Option<Spool> = match &cfg.spool {
        Some(dir) => {
            let sc = SpoolConfig { max_bytes: cfg.spool_max_mb.saturating_mul(1 << 20), ..SpoolConfig::new(dir) };
            let s = Spool::open(sc).with_context(|| format!("opening spool {}", dir.display()))?;
            eprintln!("  spool          {} ({} intervals pending)", dir.display(), s.stats().pending_records);
            Some(s)
        }
        None => None,
    };
    let mut shipper = match (&cfg.server, &cfg.spool) {
        (Some(server), Some(dir)) => {
            let sh = ship::Shipper::new(server, args.key.as_deref().unwrap_or(""), args.ship_batch, dir)?;
            eprintln!("  server         {server} (ships the spool, {} intervals per batch)", args.ship_batch.max(1));
            Some(sh)
        }
        (Some(_), None) => anyhow::bail!("--server ships the spool: it cannot be used with --no-spool"),
        _ => None,
    };
    let mut next_seq = spool.as_ref().and_then(|s| s.last_seq()).map_or(0, |s| s + 1);
    let mut previous_state: Option<Vec<u8>> = None;
    if let Some(saved) = spool.as_ref().and_then(|s| s.load_state()) {
        match resume_state(&saved, next_seq.checked_sub(1)) {
            Some(state) => match source.restore(&state) {
                Ok(()) => {
                    tracing::info!("resumed counters from the spool's saved state");
                    previous_state = Some(state);
                }
                Err(e) => tracing::warn!("could not resume from saved state, starting fresh: {e}"),
            },
            None => tracing::warn!("saved state does not match the spool's last interval; starting counters fresh"),
        }
    }
    let mut recorder = match &args.record {
        Some(p) => Some(TraceWriter::create(p, &source.header())?),
        None => None,
    };

    let metrics = Arc::new(Metrics::new());
    metrics.set_sensors(&statuses);
    let sensors = Arc::new(RwLock::new(statuses));
    let server = match &cfg.listen {
        Some(addr) => Some(spawn_server(server::Shared { metrics: metrics.clone(), sensors: sensors.clone() }, addr)?),
        None => None,
    };

    let fast = args.simulate.is_some() && args.fast;
    let step = interval.as_std();
    let mut deadline = Instant::now();
    let mut log_limit = LogLimiter::default();
    let mut done = 0u64;
    while !STOP.load(Ordering::SeqCst) && args.count.is_none_or(|c| done < c) {
        if !fast {
            deadline += step;
            let now = Instant::now();
            if deadline > now {
                sleep_until(deadline);
            } else {
                // Fell behind (suspend, overload): skip missed ticks instead of bursting.
                deadline = now;
            }
            if STOP.load(Ordering::SeqCst) {
                break;
            }
        }
        let t0 = Instant::now();
        let sampled = source.sample(SystemClock.now());
        for e in &sampled.errors {
            log_limit.warn(e);
        }
        let Some(mut rec) = sampled.record else { continue };
        rec.seq = next_seq;
        next_seq += 1;
        if let Some(s) = spool.as_mut() {
            // State first, tagged with the seq it follows, keeping the one before:
            // whichever side of the append a crash hits, the restart finds the
            // state that matches the spool's last record (see `resume_state`).
            let current = source.snapshot();
            if let Some(cur) = &current
                && let Err(e) = s.save_state(&state_envelope(rec.seq, cur, previous_state.as_deref()))
            {
                tracing::error!("{e}");
            }
            if let Err(e) = s.append(&rec) {
                tracing::error!("{e}");
            }
            previous_state = current;
        }
        if let Some(w) = recorder.as_mut() {
            w.write(&rec)?;
            w.flush()?;
        }
        if let (Some(sh), Some(s)) = (shipper.as_mut(), spool.as_mut()) {
            sh.tick(s);
        }
        metrics.observe(&rec, &sampled.errors, t0.elapsed().as_secs_f64(), spool.as_ref().map(|s| s.stats()));
        if let Ok(mut s) = sensors.write() {
            *s = source.status();
        }
        done += 1;
    }
    if let (Some(sh), Some(s)) = (shipper.as_mut(), spool.as_mut()) {
        // A last try, bounded: what does not go out now waits in the spool.
        sh.drain(s, Duration::from_secs(10));
        eprintln!("fairwatt agent: shipped {} intervals, {} still in the spool", sh.shipped, s.stats().pending_records);
    }
    if let Some((handle, thread)) = server {
        actix_web::rt::System::new().block_on(handle.stop(true));
        let _ = thread.join();
    }
    eprintln!("fairwatt agent: stopped after {done} intervals");
    Ok(())
}

/// At most one log line per sensor per minute: a broken sensor fails every
/// tick, and a flood of identical warnings hides everything else. Every error
/// still counts in `fairwatt_sensor_errors_total`.
#[derive(Default)]
struct LogLimiter {
    last: BTreeMap<&'static str, (Instant, u64)>,
}

impl LogLimiter {
    const EVERY: Duration = Duration::from_secs(60);

    fn warn(&mut self, e: &fairwatt_collector::Error) {
        let now = Instant::now();
        match self.last.get_mut(e.sensor()) {
            Some((at, suppressed)) if now.duration_since(*at) < Self::EVERY => *suppressed += 1,
            Some((at, suppressed)) => {
                tracing::warn!("{e} ({} similar {} errors in the last minute)", *suppressed, e.sensor());
                *at = now;
                *suppressed = 0;
            }
            None => {
                tracing::warn!("{e}");
                self.last.insert(e.sensor(), (now, 0));
            }
        }
    }
}

/// `{"seq":N,"current":STATE,"previous":STATE|null}`: the source state after
/// record N and after record N-1. Both states are JSON documents.
fn state_envelope(seq: u64, current: &[u8], previous: Option<&[u8]>) -> Vec<u8> {
    let mut out = format!("{{\"seq\":{seq},\"current\":").into_bytes();
    out.extend_from_slice(current);
    out.extend_from_slice(b",\"previous\":");
    out.extend_from_slice(previous.unwrap_or(b"null"));
    out.push(b'}');
    out
}

/// Picks the saved state that matches the spool's last record: `current`
/// when the crash came after the append, `previous` when it came between
/// saving the state and appending. Anything else is stale: starting fresh
/// loses the downtime interval but never counts energy twice.
fn resume_state(saved: &[u8], last_seq: Option<u64>) -> Option<Vec<u8>> {
    #[derive(serde::Deserialize)]
    struct Envelope {
        seq: u64,
        current: Box<serde_json::value::RawValue>,
        previous: Option<Box<serde_json::value::RawValue>>,
    }
    let env: Envelope = serde_json::from_slice(saved).ok()?;
    let last = last_seq?;
    if env.seq == last {
        Some(env.current.get().as_bytes().to_vec())
    } else if env.seq == last + 1 {
        env.previous.map(|p| p.get().as_bytes().to_vec())
    } else {
        None
    }
}

fn sleep_until(deadline: Instant) {
    while !STOP.load(Ordering::SeqCst) {
        let now = Instant::now();
        if now >= deadline {
            return;
        }
        // Short naps so a signal stops the agent promptly.
        std::thread::sleep((deadline - now).min(Duration::from_millis(200)));
    }
}

fn spawn_server(
    shared: server::Shared,
    addr: &str,
) -> anyhow::Result<(actix_web::dev::ServerHandle, std::thread::JoinHandle<()>)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let addr = addr.to_string();
    let thread = std::thread::Builder::new().name("metrics-http".into()).spawn(move || {
        actix_web::rt::System::new().block_on(async move {
            match server::build(shared, &addr) {
                Ok((srv, addrs)) => {
                    let _ = tx.send(Ok((srv.handle(), addrs)));
                    if let Err(e) = srv.await {
                        tracing::error!("metrics server: {e}");
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(anyhow::anyhow!("cannot listen on {addr}: {e}")));
                }
            }
        });
    })?;
    let (handle, addrs) = rx.recv().context("metrics server thread ended early")??;
    for a in addrs {
        eprintln!("  metrics        http://{a}/metrics");
    }
    Ok((handle, thread))
}

fn once(source: &mut dyn IntervalSource, interval: Micros, format: OutputFormat, simulated: bool) -> anyhow::Result<()> {
    let mut sampled = source.sample(SystemClock.now());
    if sampled.record.is_none() {
        if !simulated {
            std::thread::sleep(interval.as_std());
        }
        sampled = source.sample(SystemClock.now());
    }
    for e in &sampled.errors {
        eprintln!("warning: {e}");
    }
    let rec = sampled.record.context("no interval was produced")?;
    match format {
        OutputFormat::Json => println!("{}", fairwatt_core::trace::encode_record(&rec)),
        OutputFormat::Text => print!("{}", text_report(&rec)),
    }
    Ok(())
}

pub fn text_report(rec: &IntervalRecord) -> String {
    use std::fmt::Write;
    let dt = rec.duration().as_secs_f64().max(1e-9);
    let mut s = String::new();
    let _ = writeln!(s, "host {}  {} .. {}  ({:.3} s)", rec.host, rec.start, rec.end, dt);
    let _ = writeln!(s, "{:<12} {:>14} {:>10}  status", "domain", "energy J", "power W");
    for (d, e) in &rec.domains {
        let _ = writeln!(s, "{:<12} {:>14.6} {:>10.3}  {:?}", d.to_string(), e.energy_uj.as_joules(), e.energy_uj.as_joules() / dt, e.status);
    }
    let _ = writeln!(s, "{:<38} {:<16} {:<10} {:>7} {:>10}", "vm", "name", "tenant", "cpu %", "rss MiB");
    for vm in &rec.vms {
        let f = &vm.features;
        let _ = writeln!(
            s,
            "{:<38} {:<16} {:<10} {:>7.1} {:>10.1}",
            vm.vm.as_str(),
            vm.name,
            vm.tenant.as_ref().map_or("-", |t| t.as_str()),
            f.cpu_time_us as f64 / 1e4 / dt,
            f.rss_bytes.unwrap_or(0) as f64 / (1 << 20) as f64
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_picks_the_state_matching_the_spool() {
        let env = state_envelope(7, br#"{"a":2}"#, Some(br#"{"a":1}"#));
        assert_eq!(resume_state(&env, Some(7)).unwrap(), br#"{"a":2}"#);
        assert_eq!(resume_state(&env, Some(6)).unwrap(), br#"{"a":1}"#);
        assert_eq!(resume_state(&env, Some(3)), None);
        assert_eq!(resume_state(&env, None), None);
        let first = state_envelope(0, br#"{"a":0}"#, None);
        assert_eq!(resume_state(&first, None), None);
        assert_eq!(resume_state(b"garbage", Some(1)), None);
    }
}
