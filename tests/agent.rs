//! End-to-end tests of `fairwatt agent` on generated fixture trees: the
//! one-shot report, Prometheus metrics over HTTP, and energy conservation
//! across a graceful restart and a SIGKILL.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Stdio};
use std::time::Duration;

use common::{Host, MAX_RANGE, fairwatt, package_energy, spooled, wait_for};
use fairwatt_core::{Domain, IntervalRecord};

#[test]
fn once_reports_sensors_vms_and_tenants() {
    let host = Host::new();
    let out = fairwatt().args(host.args()).args(["--once", "--interval", "0.1"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("rapl-powercap") && stderr.contains("nvml"), "{stderr}");
    assert!(stderr.lines().any(|l| l.contains("nvml") && l.contains("missing")), "{stderr}");
    let rec: IntervalRecord = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(rec.host.as_str(), "fixture-host");
    for d in [Domain::package(0), Domain::core(0), Domain::dram(0)] {
        assert!(rec.domains.contains_key(&d), "{d} missing in {:?}", rec.domains);
    }
    let mut names: Vec<_> = rec.vms.iter().map(|v| (v.name.as_ref(), v.tenant.as_ref().unwrap().as_str())).collect();
    names.sort();
    assert_eq!(names, vec![("batch-1", "tenant-2"), ("db-1", "tenant-1"), ("web-1", "tenant-0")]);
    assert!(rec.vms.iter().all(|v| v.flavor.unwrap().vcpus == 2));
}

#[test]
fn bad_flags_and_config_name_the_problem() {
    let out = fairwatt().args(["agent", "--once", "--interval", "0"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("interval"));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agent.toml");
    std::fs::write(&cfg, "listen = 5\n").unwrap();
    let out = fairwatt().args(["agent", "--once", "--config"]).arg(&cfg).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("agent.toml") && err.contains("listen"), "{err}");
    let out = fairwatt().args(["agent", "--once", "--simulate", "nonesuch"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("mixed"), "{err}");
}

/// Energy counted while the agent was stopped (including a counter wrap)
/// appears exactly once in the spool after it restarts.
#[test]
fn restart_loses_and_doubles_nothing() {
    let mut host = Host::new();
    let spool = host.spool().display().to_string();
    let run = |count: &str| {
        let out = fairwatt()
            .args(host.args())
            .args(["--spool", &spool, "--no-metrics", "--interval", "0.1", "--count", count])
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    };
    run("2");
    // While the agent is down: the package counter wraps and the VMs run.
    host.set_energy(50_000_000);
    host.burn(50);
    // A wrap is told from a reset by its plausibility for the elapsed time.
    std::thread::sleep(Duration::from_secs(1));
    let out = fairwatt()
        .args(host.args())
        .args(["--spool", &spool, "--no-metrics", "--interval", "0.1", "--count", "2"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let recs = spooled(&host.spool());
    let seqs: Vec<u64> = recs.iter().map(|r| r.seq).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3]);
    assert_eq!(package_energy(&recs), 50_000_000 + MAX_RANGE + 1 - 900_000_000);
    // 50 ticks on each of 2 vCPUs at 100 Hz, per VM.
    let ticks_per_s = 100u64;
    let cpu: u64 = recs.iter().flat_map(|r| &r.vms).map(|v| v.features.cpu_time_us).sum();
    assert_eq!(cpu, 3 * 2 * 50 * 1_000_000 / ticks_per_s);
    assert!(recs.windows(2).all(|w| w[0].end == w[1].start), "intervals must tile time");
}

fn spawn_agent(host: &Host, extra: &[&str]) -> Child {
    fairwatt().args(host.args()).args(extra).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap()
}

#[test]
fn sigkill_mid_stream_loses_and_doubles_nothing() {
    let host = Host::new();
    let spool = host.spool().display().to_string();
    let mut agent = spawn_agent(&host, &["--spool", &spool, "--no-metrics", "--interval", "0.05"]);
    let seg_written = || std::fs::read_dir(host.spool()).map(|d| d.flatten().any(|e| e.file_name().to_string_lossy().starts_with("seg-"))).unwrap_or(false);
    wait_for(seg_written, "the first record");
    let mut energy = 900_000_000u64;
    for _ in 0..40 {
        energy = (energy + 7_000_003) % (MAX_RANGE + 1);
        host.set_energy(energy);
        std::thread::sleep(Duration::from_millis(7));
    }
    agent.kill().unwrap();
    agent.wait().unwrap();
    energy = (energy + 12_345_678) % (MAX_RANGE + 1);
    host.set_energy(energy);
    let out = fairwatt().args(host.args()).args(["--spool", &spool, "--no-metrics", "--interval", "0.05", "--count", "2"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let recs = spooled(&host.spool());
    assert!(recs.windows(2).all(|w| w[1].seq == w[0].seq + 1), "no seq gaps");
    let counted = 40 * 7_000_003 + 12_345_678u64;
    assert_eq!(package_energy(&recs), counted);
}

fn http_get(addr: &str, path: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut body = String::new();
    s.read_to_string(&mut body).unwrap();
    body
}

#[test]
fn serves_prometheus_metrics_and_stops_on_sigterm() {
    let host = Host::new();
    let mut agent = spawn_agent(&host, &["--no-spool", "--listen", "127.0.0.1:0", "--interval", "0.05"]);
    let mut err = BufReader::new(agent.stderr.take().unwrap());
    let mut addr = None;
    let mut line = String::new();
    while addr.is_none() && err.read_line(&mut line).unwrap() > 0 {
        if let Some(rest) = line.trim().strip_prefix("metrics") {
            addr = rest.trim().strip_prefix("http://").and_then(|a| a.strip_suffix("/metrics")).map(String::from);
        }
        line.clear();
    }
    let addr = addr.expect("the agent prints its metrics address");
    // Keep draining stderr so the agent never blocks on a full pipe.
    let drain = std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = err.read_to_string(&mut rest);
        rest
    });
    // Change the counter only after the agent's first reading primed it.
    let intervals = |body: &str| -> u64 {
        body.lines().find_map(|l| l.strip_prefix("fairwatt_agent_intervals_total ")).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    };
    wait_for(|| intervals(&http_get(&addr, "/metrics")) >= 1, "a first interval");
    host.set_energy(950_000_000);
    let mut body = String::new();
    wait_for(
        || {
            body = http_get(&addr, "/metrics");
            body.contains("fairwatt_host_energy_joules_total{domain=\"package-0\"} 50")
        },
        "package energy in /metrics",
    );
    for needle in [
        "fairwatt_vm_cpu_seconds_total{vm=",
        "tenant=\"tenant-1\"",
        "fairwatt_sensor_up{sensor=\"rapl-powercap\",state=\"ok\"} 1",
        "fairwatt_agent_resident_memory_bytes",
        "fairwatt_vms 3",
    ] {
        assert!(body.contains(needle), "{needle} not in:\n{body}");
    }
    assert!(http_get(&addr, "/healthz").contains("\"sensors\""));
    // SAFETY: sending a signal to our own child.
    unsafe { libc::kill(agent.id() as i32, libc::SIGTERM) };
    let status = agent.wait().unwrap();
    assert!(status.success());
    let rest = drain.join().unwrap();
    assert!(rest.contains("stopped after"), "{rest}");
}
