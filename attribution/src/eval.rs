//! Scoring attribution against the simulator's ground truth.
//!
//! Compared per VM: the dynamic energy attributed to it against its true
//! dynamic energy (`VmTruth`), both summed over the top-level domains
//! (packages, DRAM, GPUs), per VM-hour. Idle shares are a policy choice,
//! not a fact, so they are not scored. VM-hours whose true dynamic energy is
//! under [`MIN_TRUE_J`] (a VM averaging under 0.1 W above idle) are left out
//! of the percentage errors: their relative error says nothing about the
//! bill. The worst VM is taken over whole runs.

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use fairwatt_core::{IntervalRecord, VmId};

use crate::result::IntervalAttribution;

/// VM-hours with less true dynamic energy than this are not scored (0.1 W for an hour).
pub const MIN_TRUE_J: f64 = 360.0;

#[derive(Default, Clone, Copy)]
struct Acc {
    truth_uj: u128,
    got_uj: u128,
}

#[derive(Default)]
pub struct Scorer {
    hours: HashMap<(VmId, i64), Acc>,
    vms: HashMap<VmId, (Acc, String)>,
    /// Intervals whose record carried no ground truth.
    pub without_truth: u64,
}

#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Score {
    /// Mean absolute percentage error over scored VM-hours.
    pub mape_pct: f64,
    pub vm_hours: usize,
    /// The VM with the largest error over its whole run, and that error.
    pub worst_vm: Option<String>,
    pub worst_pct: f64,
    /// MAPE per workload class.
    pub by_class: BTreeMap<String, f64>,
    pub true_kwh: f64,
    pub attributed_kwh: f64,
}

impl Scorer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn add(&mut self, rec: &IntervalRecord, att: &IntervalAttribution) {
        let hour = rec.start.as_micros().div_euclid(3_600_000_000);
        let mut any = false;
        for (i, v) in rec.vms.iter().enumerate() {
            let Some(t) = &v.truth else { continue };
            any = true;
            let truth: u128 = t.energy_uj.iter().filter(|(d, _)| d.is_top_level()).map(|(_, e)| e.as_uj() as u128).sum();
            let got: u128 = att.domains.iter().filter(|d| d.domain.is_top_level()).filter_map(|d| d.vms.get(i)).map(|s| s.dynamic_uj.as_uj() as u128).sum();
            let h = self.hours.entry((v.vm.clone(), hour)).or_default();
            h.truth_uj += truth;
            h.got_uj += got;
            let (acc, _) = self.vms.entry(v.vm.clone()).or_insert_with(|| (Acc::default(), t.class.to_string()));
            acc.truth_uj += truth;
            acc.got_uj += got;
        }
        if !any {
            self.without_truth += 1;
        }
    }

    pub fn score(&self) -> Score {
        let pct = |a: &Acc| (a.got_uj as f64 - a.truth_uj as f64).abs() / a.truth_uj as f64 * 100.0;
        let scored = |a: &&Acc| a.truth_uj as f64 / 1e6 >= MIN_TRUE_J;
        let mut sum = 0.0;
        let mut n = 0;
        let mut class_sum: BTreeMap<String, (f64, usize)> = BTreeMap::new();
        for ((vm, _), a) in &self.hours {
            if !scored(&a) {
                continue;
            }
            let e = pct(a);
            sum += e;
            n += 1;
            if let Some((_, class)) = self.vms.get(vm) {
                let c = class_sum.entry(class.clone()).or_default();
                c.0 += e;
                c.1 += 1;
            }
        }
        let mut worst = (None, 0.0);
        for (vm, (a, class)) in &self.vms {
            if scored(&a) {
                let e = pct(a);
                if e > worst.1 || worst.0.is_none() {
                    worst = (Some(format!("{vm} ({class})")), e);
                }
            }
        }
        Score {
            mape_pct: if n > 0 { sum / n as f64 } else { 0.0 },
            vm_hours: n,
            worst_vm: worst.0,
            worst_pct: worst.1,
            by_class: class_sum.into_iter().map(|(k, (s, n))| (k, s / n as f64)).collect(),
            true_kwh: self.vms.values().map(|(a, _)| a.truth_uj as f64).sum::<f64>() / 3.6e12,
            attributed_kwh: self.vms.values().map(|(a, _)| a.got_uj as f64).sum::<f64>() / 3.6e12,
        }
    }
}
