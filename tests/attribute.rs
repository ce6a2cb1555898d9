//! End-to-end tests of `fairwatt attribute`: a simulated trace in, per-VM
//! energy out, every interval conserved exactly; damaged traces handled.

use std::path::Path;
use std::process::Command;

use fairwatt_attribution::IntervalAttribution;

fn fairwatt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fairwatt"));
    c.env("FAIRWATT_LOG", "warn");
    c
}

fn simulate(out: &Path) {
    let o = fairwatt()
        .args(["simulate", "--scenario", "mixed", "--hosts", "2", "--hours", "0.05", "--seed", "3"])
        .args(["--start", "2026-01-01T00:00:00Z", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

fn attribute(input: &Path, out: &Path, method: &str) -> String {
    let o = fairwatt().args(["attribute", "--method", method, "--idle-policy", "reservation", "--input"]).arg(input).arg("--out").arg(out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(o.status.success(), "{err}");
    err
}

#[test]
fn every_interval_is_attributed_and_conserved() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("t");
    simulate(&traces);
    let out = dir.path().join("out.jsonl");
    let err = attribute(&traces, &out, "linear");
    assert!(err.contains("model version 1") && err.contains("initial"), "{err}");
    let text = std::fs::read_to_string(&out).unwrap();
    let mut lines = text.lines();
    let header: serde_json::Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(header["format"], "fairwatt-attribution");
    assert_eq!(header["method"], "linear");
    let (mut models, mut intervals) = (0, 0);
    for l in lines {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        if let Some(m) = v.get("model") {
            models += 1;
            assert!(m["domains"].as_array().unwrap().iter().all(|d| d["coefficients"].as_array().unwrap().iter().all(|c| c.as_f64().unwrap() >= 0.0)));
        } else {
            let a: IntervalAttribution = serde_json::from_value(v["interval"].clone()).unwrap();
            assert!(a.is_conserved(), "seq {}", a.seq);
            assert!(a.model_version >= 1);
            intervals += 1;
        }
    }
    // Two hosts, 180 one-second intervals each; one model per host at least.
    assert_eq!(intervals, 360);
    assert!(models >= 2);

    let csv = dir.path().join("out.csv");
    attribute(&traces, &csv, "ratio");
    let text = std::fs::read_to_string(&csv).unwrap();
    assert!(text.starts_with("host,seq,start,end,domain,measured_uj,model_version,kind,vm,tenant,energy_uj,idle_uj\n"));
    // Per interval and domain, the rows add up to the measured energy.
    let mut sums: std::collections::HashMap<(String, String, String), (u64, u64)> = Default::default();
    for row in text.lines().skip(1) {
        let f: Vec<&str> = row.split(',').collect();
        let e = sums.entry((f[0].into(), f[1].into(), f[4].into())).or_default();
        e.0 = f[5].parse().unwrap();
        e.1 += f[10].parse::<u64>().unwrap() + f[11].parse::<u64>().unwrap();
    }
    assert!(sums.len() > 360);
    assert!(sums.values().all(|(m, s)| m == s));
}

#[test]
fn damaged_traces_lose_only_what_is_unreadable() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("t");
    simulate(&traces);
    let file = fairwatt_collector::trace_io::files(&traces).unwrap().remove(0);
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // A negative feature (kept, repaired), a garbage line (skipped), a missing line (a gap).
    lines[5] = lines[5].replacen("\"cpu_time_us\":", "\"cpu_time_us\":-", 1);
    lines[9] = "{this is not json".into();
    lines.remove(20);
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();
    let out = dir.path().join("out.jsonl");
    let o = fairwatt().args(["attribute", "--input"]).arg(&file).arg("--out").arg(&out).output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("cpu_time_us") && err.contains("dropped"), "{err}");
    assert!(err.contains("line 10") && err.contains("skipped"), "{err}");
    assert!(err.contains("1 intervals unreadable or refused, 2 missing from the sequence"), "{err}");
    let n = std::fs::read_to_string(&out).unwrap().lines().filter(|l| l.starts_with("{\"interval\"")).count();
    assert_eq!(n, 180 - 2);

    let o = fairwatt().args(["attribute", "--method", "magic", "--input"]).arg(&file).arg("--out").arg(&out).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("expected ratio, linear or forest"));
}

#[test]
fn configured_idle_power_is_used_and_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let traces = dir.path().join("t");
    simulate(&traces);
    let file = fairwatt_collector::trace_io::files(&traces).unwrap().remove(0);
    let out = dir.path().join("out.jsonl");
    let o = fairwatt().args(["attribute", "--idle-watts", "package-0=42.5,dram-0=3", "--input"]).arg(&file).arg("--out").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let model: serde_json::Value = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()).find_map(|v| v.get("model").cloned()).unwrap();
    let dom = |name: &str| model["domains"].as_array().unwrap().iter().find(|d| d["domain"] == name).cloned().unwrap();
    assert_eq!(dom("package-0")["idle_w"], 42.5);
    assert_eq!(dom("package-0")["idle"]["source"], "configured");
    assert_eq!(dom("dram-0")["idle_w"], 3.0);
    // The simulated hosts start busy: other domains' idle is extrapolated.
    assert_eq!(dom("package-1")["idle"]["source"], "extrapolated");

    for (bad, says) in [("package-0", "expected DOMAIN=WATTS"), ("pkg-0=3", "invalid energy domain"), ("dram-0=-1", "finite and ≥ 0")] {
        let o = fairwatt().args(["attribute", "--idle-watts", bad, "--input"]).arg(&file).arg("--out").arg(&out).output().unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(says), "{bad}: {err}");
    }
}

#[test]
fn attribution_eval_writes_its_table_data_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let o = fairwatt()
        .args(["attribution", "eval", "--quick", "--hours", "0.1", "--forest-hours", "0.05", "--forest-max-vms", "8", "--boot-s", "60", "--only", "database", "--out"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}{}", stdout, String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(dir.path().join("eval.md")).unwrap();
    assert!(md.contains("| mix | database sim-database-00 |") && md.contains("### Forest beside the others"), "{md}");
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("eval.json")).unwrap()).unwrap();
    let case = &json.as_array().unwrap()[0];
    assert_eq!(case["idle"], "observed");
    let mape = |list: &serde_json::Value, m: &str| list.as_array().unwrap().iter().find(|p| p[0] == m).map(|p| p[1]["mape_pct"].as_f64().unwrap());
    let (r, l) = (mape(&case["scores"], "ratio").unwrap(), mape(&case["scores"], "linear").unwrap());
    assert!(r.is_finite() && l.is_finite() && l < r, "linear {l} vs ratio {r}");
    assert!(mape(&case["short"], "forest").is_some());
    for plot in ["mape-by-case.svg", "mape-by-vm-count.svg"] {
        let svg = std::fs::read_to_string(dir.path().join(plot)).unwrap();
        assert!(svg.starts_with("<svg") && svg.contains("MAPE"), "{plot}");
    }
    let o = fairwatt().args(["attribution", "eval", "--methods", "ratio,psychic", "--out"]).arg(dir.path()).output().unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("expected ratio, linear or forest"));
}
