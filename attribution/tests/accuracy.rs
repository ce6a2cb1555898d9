//! Attribution against the simulator's ground truth, on small runs.

use fairwatt_attribution::eval::Scorer;
use fairwatt_attribution::idle_power::IdleSource;
use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, Method, ModelVersion};
use fairwatt_collector::sim::scenario;
use fairwatt_core::{IntervalRecord, Timestamp};

fn start() -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000).unwrap()
}

/// What one run of a `mixed` host gives: the score, the last model version
/// and the last record.
struct Run {
    score: fairwatt_attribution::eval::Score,
    version: Option<ModelVersion>,
    last: IntervalRecord,
}

fn run(host: usize, secs: u64, method: Method) -> Run {
    run_booted(host, secs, method, 0)
}

/// As [`run`], with the host empty for its first `boot_s` seconds and its
/// VMs arriving one by one over the next `boot_s`.
fn run_booted(host: usize, secs: u64, method: Method, boot_s: u64) -> Run {
    let mut sc = scenario("mixed", host + 1, 11, start()).unwrap();
    let n = sc.hosts[host].vms.len() as u64;
    for (k, v) in sc.hosts[host].vms.iter_mut().enumerate() {
        v.arrive_at_s = boot_s + k as u64 * boot_s / n;
    }
    let mut h = sc.build().remove(host);
    let mut a = Attributor::new(AttributorConfig::new(method, IdlePolicy::Reservation)).unwrap();
    let mut s = Scorer::new();
    let mut recs = Vec::new();
    let mut version = None;
    for _ in 0..secs {
        let rec = h.step();
        recs.push(rec.clone());
        for step in a.push(rec).unwrap() {
            assert!(step.attribution.is_conserved());
            let r = &recs[(step.attribution.seq - recs[0].seq) as usize];
            s.add(r, &step.attribution);
            version = step.new_version.or(version);
        }
    }
    Run { score: s.score(), version, last: recs.pop().unwrap() }
}

/// Hosts 0, 1 and 3 of `mixed` mix several workload classes and have
/// hardware counters (host 1's small bursty web VMs keep it above 3 %);
/// host 2 (four VMs, two classes, one of them always busy) and host 4
/// (software counters only) are the shortfalls docs/attribution.md explains.
#[test]
fn with_idle_observed_linear_is_within_3_percent_and_beats_cpu_time() {
    for (host, max_pct, factor) in [(0, 3.0, 3.0), (1, 5.0, 2.0), (3, 3.0, 3.0)] {
        let (r, l) = (run_booted(host, 1800, Method::Ratio, 120).score, run_booted(host, 1800, Method::Linear, 120).score);
        println!("host {host}: ratio {:.2}% (worst {:.2}%), linear {:.2}% (worst {:.2}%) {:?}", r.mape_pct, r.worst_pct, l.mape_pct, l.worst_pct, l.by_class);
        assert!(l.vm_hours > 0 && l.mape_pct <= max_pct, "host {host}: linear {l:?}");
        assert!(l.mape_pct * factor <= r.mape_pct, "host {host}: linear {l:?} vs ratio {r:?}");
    }
}

#[test]
fn idle_seen_at_boot_is_the_true_idle_and_recorded_as_observed() {
    let Run { version, last, .. } = run_booted(0, 600, Method::Linear, 120);
    let v = version.unwrap();
    let dt = last.duration().as_secs_f64();
    let truth = &last.truth.as_ref().unwrap().idle_uj;
    for f in &v.domains {
        let idle = f.idle.unwrap();
        assert_eq!(idle.source, IdleSource::Observed, "{f:?}");
        assert!(idle.observations >= 100, "{f:?}");
        let true_w = truth[&f.domain].as_uj() as f64 / 1e6 / dt;
        assert!((f.idle_w - true_w).abs() <= 0.01 * true_w + 0.05, "{}: {} W estimated, {true_w} W true", f.domain, f.idle_w);
    }
}

#[test]
fn without_a_quiet_interval_idle_is_extrapolated_capped_and_said_so() {
    let Run { version, last, score } = run(3, 900, Method::Linear);
    let v = version.unwrap();
    let dt = last.duration().as_secs_f64();
    for f in &v.domains {
        assert_eq!(f.idle.unwrap().source, IdleSource::Extrapolated, "{f:?}");
        // Never above the least power measured in the window.
        assert!(f.idle_w <= last.domains[&f.domain].energy_uj.as_uj() as f64 / 1e6 / dt * 1.2, "{f:?}");
    }
    let ratio = run(3, 900, Method::Ratio).score;
    assert!(score.mape_pct < ratio.mape_pct, "linear {score:?} vs ratio {ratio:?}");
}

#[test]
#[ignore]
fn diagnose_idle() {
    // The fitted idle power beside the simulator's true idle (docs/attribution.md).
    for host in 0..5 {
        let boot = std::env::var("BOOT").ok().and_then(|b| b.parse().ok()).unwrap_or(0);
        let Run { version, last: rec, .. } = run_booted(host, 1800, Method::Linear, boot);
        let dt = rec.duration().as_secs_f64();
        let v = version.unwrap();
        for f in &v.domains {
            let t = rec.truth.as_ref().unwrap().idle_uj.get(&f.domain).map(|e| e.as_uj() as f64 / 1e6 / dt);
            let m = rec.domains[&f.domain].energy_uj.as_uj() as f64 / 1e6 / dt;
            println!("host {host} v{} ({}) {}: idle {:?} est {:.1} W, true {:?} W, measured now {:.1} W, coef {:?} rmse {:.2}", v.version, v.reason, f.domain, f.idle.map(|i| i.source), f.idle_w, t, m, f.coefficients, f.rmse_w);
        }
    }
}

#[test]
#[ignore]
fn oracle_coefficients() {
    // Package-0 energy on the features three ways: per VM against its true
    // energy (what an additive model could reach), at host level against the
    // summed truth, and at host level against measured minus true idle.
    use fairwatt_attribution::features::{self, FeatureMode};
    use fairwatt_attribution::model::nnls::{Gram, NonNegLinearParams};
    use fairwatt_core::Domain;
    let host: usize = std::env::var("HOST").ok().and_then(|b| b.parse().ok()).unwrap_or(2);
    let mut h = scenario("mixed", host + 1, 11, start()).unwrap().build().remove(host);
    let recs: Vec<_> = (0..3600).map(|_| h.step()).collect();
    let d = Domain::package(0);
    let (mut gv, mut gh, mut gm) = (Gram::new(features::MAX_FEATURES), Gram::new(features::MAX_FEATURES), Gram::new(features::MAX_FEATURES));
    let mut rows = Vec::new();
    for r in &recs {
        features::cpu_rows(r, FeatureMode::Hardware, &[0.0; 4], &mut rows);
        let truth = |v: &fairwatt_core::VmRecord| v.truth.as_ref().unwrap().energy_uj.get(&d).map_or(0.0, |e| e.as_uj() as f64 / 1e6);
        for (v, x) in r.vms.iter().zip(&rows) {
            gv.add(x, truth(v));
        }
        gh.add(&features::sum_rows(&rows), r.vms.iter().map(truth).sum());
        let idle = r.truth.as_ref().unwrap().idle_uj[&d].as_uj() as f64 / 1e6;
        gm.add(&features::sum_rows(&rows), r.domains[&d].energy_uj.as_uj() as f64 / 1e6 - idle);
    }
    let p = NonNegLinearParams::default();
    let mv = gv.solve_with_intercept(&p, Some(0.0)).unwrap();
    let mh = gh.solve_with_intercept(&p, Some(0.0)).unwrap();
    let mm = gm.solve_with_intercept(&p, Some(0.0)).unwrap();
    println!("per VM: {:?} rmse {:.3}", mv.coef, gv.rmse(&mv));
    println!("host, truth: {:?} rmse {:.3} (per-VM fit there: {:.3})", mh.coef, gh.rmse(&mh), gh.rmse(&mv));
    println!("host, measured: {:?} rmse {:.3} (per-VM fit there: {:.3})", mm.coef, gm.rmse(&mm), gm.rmse(&mv));
}

#[test]
#[ignore]
fn per_class_oracle() {
    // An upper bound, not a model: the package-0 split when the fit is told
    // each VM's class (from ground truth, which no model may read), with the
    // true idle power; per-class coefficients on cycles, instructions,
    // refs, misses and IO. NOISE overrides the sensor noise.
    use fairwatt_attribution::features::{self, FeatureMode};
    use fairwatt_attribution::model::nnls::{Gram, NonNegLinearParams};
    use fairwatt_core::Domain;
    let host: usize = std::env::var("HOST").ok().and_then(|b| b.parse().ok()).unwrap_or(2);
    let mut sc = scenario("mixed", host + 1, 11, start()).unwrap();
    sc.hosts[host].noise = std::env::var("NOISE").ok().and_then(|b| b.parse().ok()).unwrap_or(0.005);
    let mut h = sc.build().remove(host);
    let recs: Vec<_> = (0..3600).map(|_| h.step()).collect();
    let d = Domain::package(0);
    let classes = ["ai", "database", "web", "batch"];
    let p = 5 * classes.len();
    let wide = |r: &IntervalRecord, rows: &[features::Row]| -> Vec<Vec<f64>> {
        r.vms
            .iter()
            .zip(rows)
            .map(|(v, x)| {
                let k = classes.iter().position(|c| *c == v.truth.as_ref().unwrap().class).unwrap();
                let mut w = vec![0.0; p];
                w[5 * k..5 * k + 5].copy_from_slice(&x[..5]);
                w
            })
            .collect()
    };
    let truth = |v: &fairwatt_core::VmRecord| v.truth.as_ref().unwrap().energy_uj.get(&d).map_or(0.0, |e| e.as_uj() as f64 / 1e6);
    let (mut g, mut rows) = (Gram::new(p), Vec::new());
    for r in &recs {
        features::cpu_rows(r, FeatureMode::Hardware, &[0.0; 4], &mut rows);
        let sum = wide(r, &rows).into_iter().fold(vec![0.0; p], |a, w| a.iter().zip(&w).map(|(x, y)| x + y).collect());
        let idle = r.truth.as_ref().unwrap().idle_uj[&d].as_uj() as f64 / 1e6;
        g.add(&sum, r.domains[&d].energy_uj.as_uj() as f64 / 1e6 - idle);
    }
    let m = g.solve_with_intercept(&NonNegLinearParams::default(), Some(0.0)).unwrap();
    let (mut err, mut tot) = (0.0, 0.0);
    for r in &recs {
        features::cpu_rows(r, FeatureMode::Hardware, &[0.0; 4], &mut rows);
        let w: Vec<f64> = wide(r, &rows).iter().map(|x| m.coef.iter().zip(x).map(|(a, b)| a * b).sum()).collect();
        let sw: f64 = w.iter().sum();
        let dynamic: f64 = r.vms.iter().map(truth).sum();
        for (v, wi) in r.vms.iter().zip(&w) {
            err += (wi / sw.max(1e-12) * dynamic - truth(v)).abs();
            tot += truth(v);
        }
    }
    println!("host {host}: split error {:.2} % of package-0 dynamic energy", err / tot * 100.0);
}
