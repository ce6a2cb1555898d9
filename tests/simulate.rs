//! End-to-end tests of `fairwatt simulate`: traces are
//! complete, reproducible by seed, readable by the trace reader, and carry
//! ground truth that accounts for the measured energy.

use std::path::Path;
use std::process::Command;

use fairwatt_collector::trace_io;
use fairwatt_core::trace::TraceSource;

fn fairwatt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fairwatt"));
    c.env("FAIRWATT_LOG", "warn");
    c
}

fn simulate(out: &Path, seed: &str) {
    let o = fairwatt()
        .args(["simulate", "--scenario", "wrap", "--hosts", "2", "--hours", "0.05", "--seed", seed])
        .args(["--start", "2026-01-01T00:00:00Z", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn traces_are_complete_and_reproducible() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b, c) = (dir.path().join("a"), dir.path().join("b"), dir.path().join("c"));
    simulate(&a, "5");
    simulate(&b, "5");
    simulate(&c, "6");
    let files = trace_io::files(&a).unwrap();
    assert_eq!(files.len(), 2);
    for f in &files {
        let name = f.file_name().unwrap();
        let same = std::fs::read(b.join(name)).unwrap();
        assert_eq!(std::fs::read(f).unwrap(), same, "same seed, same bytes");
        assert_ne!(std::fs::read(c.join(name)).unwrap(), same, "another seed, another trace");
        let reader = trace_io::open(f).unwrap();
        assert_eq!(reader.header().source, TraceSource::Simulator);
        assert_eq!(reader.header().seed, Some(5));
        let recs: Vec<_> = reader.map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 180, "0.05 h of 1 s intervals");
        assert!(recs.windows(2).all(|w| w[0].end == w[1].start && w[1].seq == w[0].seq + 1));
        let wrapped = recs.iter().flat_map(|r| r.domains.values()).filter(|d| d.status == fairwatt_core::ReadingStatus::Wrapped).count();
        assert!(wrapped > 0, "the wrap scenario wraps its counters");
        for r in &recs {
            let truth = r.truth.as_ref().expect("simulator records carry host truth");
            for (d, e) in &r.domains {
                let vm_truth: u64 = r.vms.iter().filter_map(|v| v.truth.as_ref()?.energy_uj.get(d)).map(|e| e.as_uj()).sum();
                let expected = truth.idle_uj.get(d).map_or(0, |e| e.as_uj()) + vm_truth;
                let err = (e.energy_uj.as_uj() as f64 - expected as f64).abs() / expected.max(1) as f64;
                assert!(err < 0.05, "{d} measured {} vs truth {expected}", e.energy_uj);
            }
        }
    }
}

#[test]
fn bad_arguments_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let o = fairwatt().args(["simulate", "--scenario", "nonesuch", "--out"]).arg(dir.path()).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && err.contains("nonesuch") && err.contains("mixed"), "{err}");
    let o = fairwatt().args(["simulate", "--hosts", "0", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("--hosts"));
    let o = fairwatt().args(["simulate", "--start", "yesterday", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("RFC 3339"));
    let list = fairwatt().args(["simulate", "--scenario", "list", "--out"]).arg(dir.path()).output().unwrap();
    let names = String::from_utf8_lossy(&list.stdout);
    for n in ["mixed", "ai-heavy", "web-farm", "batch", "database", "churn", "wrap"] {
        assert!(names.lines().any(|l| l == n), "{n} missing from {names}");
    }
}
