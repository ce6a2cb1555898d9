//! `fairwatt place eval` as a user runs it: a synthetic day through every
//! kind of policy, the table, series and plots it writes, and the errors a
//! bad trace, policy or config gets.

use std::process::Command;

fn fairwatt(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_fairwatt")).args(["--log", "error"]).args(args).output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn eval_prints_every_policy_and_writes_series_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("eval");
    let (ok, stdout, stderr) = fairwatt(&["place", "eval", "--trace", "synthetic:60:48", "--hosts", "40", "--config", "fairwatt", "--policy", "npa,dvfs,lr-mmt-1.2,fairwatt", "--out", out.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let kwh = |name: &str| -> f64 {
        let line = stdout.lines().find(|l| l.split_whitespace().next() == Some(name)).unwrap_or_else(|| panic!("no {name} row in\n{stdout}"));
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    };
    // Every host at full power all day is the most any policy can draw.
    assert!(kwh("npa") > kwh("dvfs") && kwh("dvfs") > kwh("lr-mmt-1.2"), "{stdout}");
    assert!(stdout.contains("energy lower bound"));
    let series = std::fs::read_to_string(out.join("series.csv")).unwrap();
    assert!(series.starts_with("policy,step,energy_kwh,active_hosts,migrations,violating_share,lower_bound_kwh\n"));
    assert_eq!(series.lines().filter(|l| l.starts_with("fairwatt,")).count(), 48);
    for plot in ["energy.svg", "active-hosts.svg", "sla.svg"] {
        let svg = std::fs::read_to_string(out.join(plot)).unwrap();
        assert!(svg.contains("<svg") && svg.contains("fairwatt"), "{plot}");
    }
}

#[test]
fn bad_traces_policies_and_configs_say_what_is_wrong() {
    for (args, want) in [
        (vec!["--trace", "synthetic:10", "--policy", "lr-xx-1.2"], "selectors are mmt, mc, mu, rs"),
        (vec!["--trace", "synthetic:ten"], "VMS must be a number"),
        (vec!["--trace", "nowhere"], "expected KIND:ARG"),
        (vec!["--trace", "planetlab:/nonexistent/day"], "loading planetlab traces from /nonexistent/day"),
        (vec!["--trace", "synthetic:10", "--config", "cloudsimm"], "expected cloudsim or fairwatt"),
        (vec!["--trace", "synthetic:10", "--hosts", "0"], "--hosts must be at least 1"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut full = vec!["place", "eval", "--out", dir.path().to_str().unwrap()];
        full.extend(args.iter().copied());
        let (ok, _, stderr) = fairwatt(&full);
        assert!(!ok && stderr.contains(want), "{args:?}: {stderr}");
    }
}

#[test]
fn train_saves_a_model_that_eval_runs_and_a_foreign_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("q.model");
    let (ok, stdout, stderr) = fairwatt(&["place", "train", "--agent", "q-table", "--trace", "synthetic:40:24", "--hosts", "20", "--episodes", "2", "--model", model.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("trained q-table for 2 episodes"), "{stdout}");
    let policy = format!("rl:{}", model.display());
    let (ok, stdout, stderr) = fairwatt(&["place", "eval", "--trace", "synthetic:40:24", "--hosts", "20", "--policy", &format!("dvfs,{policy}"), "--out", dir.path().join("e").to_str().unwrap()]);
    assert!(ok, "{stderr}");
    assert!(stdout.lines().any(|l| l.starts_with(&policy)), "{stdout}");
    let junk = dir.path().join("junk.model");
    std::fs::write(&junk, "not a model\n").unwrap();
    let (ok, _, stderr) = fairwatt(&["place", "eval", "--trace", "synthetic:10:4", "--hosts", "5", "--policy", &format!("rl:{}", junk.display()), "--out", dir.path().join("j").to_str().unwrap()]);
    assert!(!ok && stderr.contains("junk.model"), "{stderr}");
    let (ok, _, stderr) = fairwatt(&["place", "train", "--agent", "sarsa", "--trace", "synthetic:10", "--model", model.to_str().unwrap()]);
    assert!(!ok && stderr.contains("expected q-table, dqn, a2c or dqnvmp"), "{stderr}");
}

#[test]
fn vbp_without_the_benchmark_says_what_it_looked_for() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, _, stderr) = fairwatt(&["place", "vbp", "--dir", dir.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("no benchmark set found (expected New/Panigrahy/Triplet_instances.tar.gz)"), "{stderr}");
    // A tarball that is not one names the file.
    std::fs::write(dir.path().join("New_instances.tar.gz"), b"not gzip").unwrap();
    let (ok, _, stderr) = fairwatt(&["place", "vbp", "--dir", dir.path().to_str().unwrap()]);
    assert!(!ok && stderr.contains("New_instances.tar.gz"), "{stderr}");
}
