//! Ready-made experiment setups: the Beloglazov/CloudSim fleet and VM types,
//! and policies by name (as the CLI and the API take them).

use super::{Admission, Batch, BatchStatic, Beloglazov, Detector, NoMigration, Policy, Selector};
use crate::meta::{GaConfig, Meta, PsoConfig};
use crate::error::{PlaceError, Result};
use crate::model::{HostType, VmSpec};
use crate::trace::VmTrace;

/// `n` hosts alternating HP ML110 G4 and G5 (CloudSim's PlanetLab setup).
pub fn cloudsim_hosts(n: usize) -> Vec<HostType> {
    (0..n).map(|i| if i % 2 == 0 { HostType::ML110_G4 } else { HostType::ML110_G5 }).collect()
}

/// CloudSim's four VM types (2500/2000/1000/500 MIPS; 870/1740/1740/613
/// MB), given by quarter of the VM list as its `Helper.createVmList` does.
pub fn cloudsim_vms(traces: &[VmTrace]) -> Vec<VmSpec> {
    let per_type = traces.len().div_ceil(4).max(1);
    traces
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let k = (i / per_type).min(3);
            VmSpec { id: t.id.clone(), mips: [2500.0, 2000.0, 1000.0, 500.0][k], ram_mb: [870, 1740, 1740, 613][k] }
        })
        .collect()
}

/// The policies `policy_by_name` knows, for help texts.
pub const POLICY_NAMES: &str = "dvfs, pabfd-static, ffd, bfd, pso, ga, {thr|iqr|mad|lr|lrr}-{mmt|mc|mu|rs}-PARAM (e.g. lr-mmt-1.2), fairwatt (= fairwatt-lr-mmt-1.2), fairwatt-DETECTOR-SELECTOR-PARAM";

/// A policy from its name: CloudSim's (`dvfs`, `lr-mmt-1.2`, …) or
/// fairwatt's (`fairwatt`, `fairwatt-mad-mc-2.5`, …).
pub fn policy_by_name(name: &str, seed: u64) -> Result<Box<dyn Policy>> {
    let bad = |why: &str| PlaceError::Config(format!("unknown policy {name:?}: {why}; known: {POLICY_NAMES}"));
    match name {
        "dvfs" => return Ok(Box::new(NoMigration(Admission::FirstFit))),
        "pabfd-static" => return Ok(Box::new(NoMigration(Admission::Pabfd(Detector::Thr(1.0))))),
        "fairwatt" => return Ok(Box::new(Beloglazov::fairwatt(Detector::Lr(1.2), Selector::Mmt, seed))),
        "ffd" => return Ok(Box::new(BatchStatic(Batch::FirstFitDecreasing))),
        "bfd" => return Ok(Box::new(BatchStatic(Batch::BestFitDecreasing))),
        "pso" => return Ok(Box::new(BatchStatic(Batch::Search(Meta::Pso(PsoConfig { seed, ..PsoConfig::default() }))))),
        "ga" => return Ok(Box::new(BatchStatic(Batch::Search(Meta::Ga(GaConfig { seed, ..GaConfig::default() }))))),
        _ => {}
    }
    let (ours, rest) = match name.strip_prefix("fairwatt-") {
        Some(r) => (true, r),
        None => (false, name),
    };
    let parts: Vec<&str> = rest.split('-').collect();
    let [det, sel, param] = parts[..] else { return Err(bad("expected DETECTOR-SELECTOR-PARAM")) };
    let p: f64 = param.parse().map_err(|_| bad("the parameter is not a number"))?;
    if !(p.is_finite() && p > 0.0) {
        return Err(bad("the parameter must be positive"));
    }
    let detector = match det {
        "thr" => Detector::Thr(p),
        "iqr" => Detector::Iqr(p),
        "mad" => Detector::Mad(p),
        "lr" => Detector::Lr(p),
        "lrr" => Detector::Lrr(p),
        _ => return Err(bad("detectors are thr, iqr, mad, lr, lrr")),
    };
    let selector = match sel {
        "mmt" => Selector::Mmt,
        "mc" => Selector::Mc,
        "mu" => Selector::Mu,
        "rs" => Selector::Rs,
        _ => return Err(bad("selectors are mmt, mc, mu, rs")),
    };
    Ok(Box::new(if ours { Beloglazov::fairwatt(detector, selector, seed) } else { Beloglazov::new(detector, selector, seed) }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_bad_names_say_why() {
        for n in ["dvfs", "lr-mmt-1.2", "thr-rs-0.8", "iqr-mc-1.5", "fairwatt-mad-mu-2.5"] {
            let p = policy_by_name(n, 1).unwrap();
            assert!(p.name().starts_with(n.trim_start_matches("fairwatt-")) || p.name().contains("wake"), "{n} → {}", p.name());
        }
        assert_eq!(policy_by_name("fairwatt", 1).unwrap().name(), "lr-mmt-1.2+wake");
        for (n, why) in [("lr-xx-1.2", "selectors"), ("zz-mmt-1", "detectors"), ("lr-mmt-x", "not a number"), ("lr-mmt", "expected"), ("lr-mmt--1", "expected")] {
            let e = policy_by_name(n, 1).err().unwrap().to_string();
            assert!(e.contains(why), "{n}: {e}");
        }
        let traces: Vec<VmTrace> = (0..6).map(|i| VmTrace { id: format!("v{i}"), step_s: 300, cpu: vec![0.1], mem: None, cores: None, cpu_mhz: None, mem_mib: None, start_step: 0, end_step: None }).collect();
        let mips: Vec<f64> = cloudsim_vms(&traces).iter().map(|v| v.mips).collect();
        assert_eq!(mips, [2500.0, 2500.0, 2000.0, 2000.0, 1000.0, 1000.0]);
        assert_eq!(cloudsim_hosts(3).iter().map(|h| h.mips_per_core).collect::<Vec<_>>(), [1860, 2660, 1860]);
    }
}
