//! The demo's look at attribution quality, from the agents' recorded traces
//! (which carry the simulator's ground truth): per workload class, the true
//! energy next to what a CPU-time split would bill, then the trace
//! attributed offline by the CPU-time baseline and the workload-aware linear
//! model, scored against the truth.

use std::collections::BTreeMap;
use std::path::Path;

use fairwatt_collector::trace_io;

/// Per workload class: CPU seconds, true dynamic energy, and the dynamic
/// energy a CPU-time split would assign.
#[derive(Default)]
struct ClassTotals {
    vms: std::collections::BTreeSet<String>,
    cpu_s: f64,
    true_j: f64,
    cpu_split_j: f64,
}

/// Why splitting by CPU time is unfair: per class, true dynamic energy
/// against a CPU-time split of each interval's dynamic energy.
pub fn cpu_split_table(trace_dir: &Path) -> anyhow::Result<()> {
    let mut classes: BTreeMap<String, ClassTotals> = BTreeMap::new();
    for file in trace_io::files(&trace_dir)? {
        for rec in trace_io::open(&file)? {
            let rec = rec?;
            let idle: u64 = rec.truth.as_ref().map_or(0, |t| {
                t.idle_uj.iter().filter(|(d, _)| d.is_top_level()).map(|(_, e)| e.as_uj()).sum()
            });
            let dynamic = rec.measured_total().as_uj().saturating_sub(idle) as f64 / 1e6;
            let cpu_total: u64 = rec.vms.iter().map(|v| v.features.cpu_time_us).sum();
            for vm in &rec.vms {
                let Some(truth) = &vm.truth else { continue };
                let c = classes.entry(truth.class.to_string()).or_default();
                c.vms.insert(vm.vm.to_string());
                c.cpu_s += vm.features.cpu_time_us as f64 / 1e6;
                c.true_j += truth.energy_uj.iter().filter(|(d, _)| d.is_top_level()).map(|(_, e)| e.as_joules()).sum::<f64>();
                if cpu_total > 0 {
                    c.cpu_split_j += dynamic * vm.features.cpu_time_us as f64 / cpu_total as f64;
                }
            }
        }
    }
    println!("   Why CPU-time splitting is unfair (dynamic energy, ground truth vs a CPU-time split):");
    println!("   {:<10} {:>4} {:>12} {:>12} {:>12} {:>12} {:>9}", "class", "VMs", "CPU hours", "true kWh", "CPU-split", "J/CPU-s", "error");
    for (name, c) in &classes {
        let err = if c.true_j > 0.0 { (c.cpu_split_j - c.true_j) / c.true_j * 100.0 } else { 0.0 };
        println!(
            "   {:<10} {:>4} {:>12.2} {:>12.4} {:>12.4} {:>12.1} {:>+8.1}%",
            name,
            c.vms.len(),
            c.cpu_s / 3600.0,
            c.true_j / 3.6e6,
            c.cpu_split_j / 3.6e6,
            c.true_j / c.cpu_s.max(1e-9),
            err
        );
    }
    println!("\n   A CPU-time split bills GPU-heavy AI VMs for a fraction of their energy and");
    println!("   charges the difference to everyone else.");
    Ok(())
}

/// The trace attributed by the CPU-time baseline and by the linear
/// model, per class against the ground truth, and each method's per-VM error.
pub fn attribution(trace_dir: &Path) -> anyhow::Result<()> {
    use fairwatt_attribution::eval::Scorer;
    use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, Method};
    let methods = [Method::Ratio, Method::Linear];
    // Per class: true dynamic J, then attributed dynamic J per method.
    let mut classes: BTreeMap<String, (f64, [f64; 2])> = BTreeMap::new();
    let mut scores = [Scorer::new(), Scorer::new()];
    for file in trace_io::files(trace_dir)? {
        let recs: Vec<_> = trace_io::open(&file)?.collect::<Result<_, _>>()?;
        for (m, method) in methods.iter().enumerate() {
            let mut att = Attributor::new(AttributorConfig::new(*method, IdlePolicy::Reservation))?;
            let mut steps = Vec::new();
            for r in &recs {
                steps.extend(att.push(r.clone())?);
            }
            steps.extend(att.flush());
            for s in steps {
                let Ok(at) = recs.binary_search_by_key(&s.attribution.seq, |r| r.seq) else { continue };
                let rec = &recs[at];
                anyhow::ensure!(s.attribution.is_conserved(), "interval {} of {} is not conserved", rec.seq, rec.host);
                scores[m].add(rec, &s.attribution);
                for (i, vm) in rec.vms.iter().enumerate() {
                    let Some(truth) = &vm.truth else { continue };
                    let c = classes.entry(truth.class.to_string()).or_default();
                    if m == 0 {
                        c.0 += truth.energy_uj.iter().filter(|(d, _)| d.is_top_level()).map(|(_, e)| e.as_joules()).sum::<f64>();
                    }
                    c.1[m] += s.attribution.domains.iter().filter(|d| d.domain.is_top_level()).filter_map(|d| d.vms.get(i)).map(|v| v.dynamic_uj.as_joules()).sum::<f64>();
                }
            }
        }
    }
    println!("\n   The same traces attributed offline (dynamic energy; idle observed while the hosts were empty):");
    println!("   {:<10} {:>12} {:>12} {:>9} {:>12} {:>9}", "class", "true kWh", "CPU-time", "error", "linear", "error");
    let pct = |got: f64, t: f64| if t > 0.0 { (got - t) / t * 100.0 } else { 0.0 };
    for (name, (t, got)) in &classes {
        println!("   {:<10} {:>12.4} {:>12.4} {:>+8.1}% {:>12.4} {:>+8.1}%", name, t / 3.6e6, got[0] / 3.6e6, pct(got[0], *t), got[1] / 3.6e6, pct(got[1], *t));
    }
    let (r, l) = (scores[0].score(), scores[1].score());
    println!("   per-VM error over VM-hours: CPU-time {:.2} %, linear {:.2} % (worst VM {:.2} % vs {:.2} %)", r.mape_pct, l.mape_pct, r.worst_pct, l.worst_pct);
    println!("   every interval conserved exactly: VM shares + unattributed = measured, in µJ");
    Ok(())
}
