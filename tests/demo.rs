//! `fairwatt demo --no-serve`, the README's first command, on a small fleet:
//! every step of the flow reports, the invoices are issued and conserve the
//! sensors' energy (the demo itself fails if they do not), a VM too large for
//! any host is refused, and the URLs and keys to try are printed.

use std::process::Command;

#[test]
fn the_demo_runs_the_whole_flow_and_prints_what_to_try() {
    let dir = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_fairwatt"))
        .args(["demo", "--hosts", "2", "--interval", "1800", "--no-serve", "--listen", "127.0.0.1:0", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}\n{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("rapl-powercap"), "the demo reports this machine's sensors:\n{out}");
    let reg = out.lines().find(|l| l.contains("Registered over HTTP")).unwrap_or_else(|| panic!("no registry step:\n{out}"));
    let tenants: usize = reg.split(": ").nth(1).and_then(|r| r.split_whitespace().next()).and_then(|n| n.parse().ok()).unwrap();
    assert!(tenants >= 2, "{reg}");
    // One issued, numbered invoice per tenant.
    assert_eq!(out.lines().filter(|l| l.contains(" FW-0000")).count(), tenants, "{out}");
    assert!(out.contains("invoiced + unattributed = measured, exactly"), "{out}");
    assert!(out.contains("shipped 1440 intervals, 0 still in the spool"), "{out}");
    // Placement: the new VMs land on demo hosts; the huge one is refused.
    assert!(out.lines().any(|l| l.contains("demo-new-0") && l.contains("sim-demo-0")), "{out}");
    assert!(out.lines().any(|l| l.contains("refused (409)") && l.contains("larger than any host")), "{out}");
    // Attribution quality: every class reported; linear beats the CPU-time split.
    for class in ["ai", "batch", "database", "web"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(class)), "{class} row missing:\n{out}");
    }
    let line = out.lines().find(|l| l.contains("per-VM error over VM-hours")).unwrap_or_else(|| panic!("no attribution score:\n{out}"));
    let nums: Vec<f64> = line.split(|c: char| !(c.is_ascii_digit() || c == '.')).filter_map(|t| t.parse().ok()).collect();
    assert!(nums.len() >= 2 && nums[1] < nums[0], "linear should beat CPU time: {line}");
    // What to try next.
    for needle in ["/docs", "/openapi.json", "tenant key   fw_", "finance key  fw_", "?format=pdf", "aggregate=tenant"] {
        assert!(out.contains(needle), "{needle} missing:\n{out}");
    }
    assert_eq!(fairwatt_collector::trace_io::files(&dir.path().join("traces")).unwrap().len(), 2);
}
