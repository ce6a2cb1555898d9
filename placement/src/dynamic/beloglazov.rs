//! CloudSim's consolidation loop (Beloglazov & Buyya 2012), step by step as
//! `PowerVmAllocationPolicyMigrationAbstract.optimizeAllocation` runs it:
//! 1. find overloaded hosts; take VMs off each (by the selector) until it
//!    is not;
//! 2. place those VMs, most loaded first, by power-aware best fit decreasing
//!    (PABFD: the least rise in power, skipping hosts it would overload),
//!    never back on an overloaded host;
//! 3. repeatedly take the least-utilised active host not yet involved and
//!    try to empty it onto others (all its VMs or none);
//! 4. start the migrations.
//!
//! Plus the admission rules for new VMs: CloudSim's simple first fit (its
//! DVFS run) and PABFD (its consolidation runs).

use super::detect::Detector;
use super::plan::Plan;
use super::select::Selector;
use super::state::State;
use super::batch::{Batch, BatchStatic};
use super::{HostChooser, Policy};
use crate::meta::{Meta, PsoConfig};
use crate::rng::SplitMix64;

/// How a new VM finds a host.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Admission {
    /// The first host it fits (CloudSim's `PowerVmAllocationPolicySimple`).
    FirstFit,
    /// Power-aware best fit with this overload check.
    Pabfd(Detector),
}

impl Admission {
    pub fn choose(&self, plan: &Plan, v: usize, step_s: f64) -> Option<usize> {
        match self {
            Admission::FirstFit => (0..plan.hosts()).find(|h| plan.suitable(*h, v)),
            Admission::Pabfd(d) => pabfd(plan, v, &vec![false; plan.hosts()], *d, step_s),
        }
    }
}

/// The host whose power rises least when it takes VM `v`, among those not
/// excluded that fit it and that it would not overload.
pub fn pabfd(plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize> {
    pabfd_with(plan, v, excluded, detector, step_s, false)
}

/// PABFD; with `wake_cost`, a host that is off pays its idle power too
/// (CloudSim's PABFD prices waking a host at the dynamic part only, so it
/// spreads VMs onto sleeping hosts that the next step empties again).
pub fn pabfd_with(plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64, wake_cost: bool) -> Option<usize> {
    let st = plan.st;
    let vm = &st.vms[v];
    let need = if vm.alive { vm.request() } else { vm.spec.mips };
    let mut best: Option<(usize, f64)> = None;
    for h in 0..plan.hosts() {
        if excluded[h] || !plan.suitable(h, v) {
            continue;
        }
        let used = plan.used_mips(h);
        if used != 0.0 && detector.overloaded_with(plan, h, v, step_s) {
            continue;
        }
        let t = &st.hosts[h];
        let after = (used + need) / t.mips();
        if after > 1.0 + 1e-12 {
            continue;
        }
        // CloudSim compares with the power the host drew at the last update.
        let asleep = st.measured[h] == 0.0 && !plan.has_vms(h);
        let rise = if wake_cost && asleep { t.power(after) } else { t.power(after) - t.power(st.measured[h]) };
        if best.is_none_or(|(_, b)| rise < b) {
            best = Some((h, rise));
        }
    }
    best.map(|b| b.0)
}

/// A VM placement held fixed after admission (CloudSim's DVFS run).
#[derive(Clone, Debug)]
pub struct NoMigration(pub Admission);

impl Policy for NoMigration {
    fn name(&self) -> String {
        match self.0 {
            Admission::FirstFit => "dvfs".into(),
            Admission::Pabfd(_) => "pabfd-static".into(),
        }
    }

    fn admit(&mut self, plan: &Plan, v: usize, step_s: f64) -> Option<usize> {
        self.0.choose(plan, v, step_s)
    }

    fn consolidate(&mut self, _: &State, _: f64) -> Vec<(usize, usize)> {
        Vec::new()
    }
}

/// Dynamic consolidation: an overload detector with a VM selector, placing
/// by PABFD unless a [`HostChooser`] (a learned agent) is plugged in.
pub struct Beloglazov {
    pub detector: Detector,
    pub selector: Selector,
    pub rng: SplitMix64,
    /// Price waking a sleeping host at its full power (fairwatt's change).
    pub wake_cost: bool,
    /// How new VMs are placed (CloudSim: PABFD with the same detector).
    pub admission: Admission,
    /// Replaces PABFD for admissions and migration targets when set.
    pub chooser: Option<Box<dyn HostChooser>>,
    /// Places each step's arrivals together (before the chooser or PABFD
    /// see them) when set.
    pub batch: Option<Batch>,
}

impl std::fmt::Debug for Beloglazov {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Beloglazov").field("detector", &self.detector).field("selector", &self.selector).field("wake_cost", &self.wake_cost).field("batch", &self.batch).field("chooser", &self.chooser.as_ref().map(|c| c.name())).finish()
    }
}

impl Beloglazov {
    pub fn new(detector: Detector, selector: Selector, seed: u64) -> Beloglazov {
        Beloglazov { detector, selector, rng: SplitMix64::new(seed), wake_cost: false, admission: Admission::Pabfd(detector), chooser: None, batch: None }
    }

    /// Beloglazov's loop with `chooser` picking every host.
    pub fn with_chooser(detector: Detector, selector: Selector, seed: u64, chooser: Box<dyn HostChooser>) -> Beloglazov {
        Beloglazov { chooser: Some(chooser), ..Beloglazov::new(detector, selector, seed) }
    }

    fn place(&mut self, plan: &Plan, v: usize, excluded: &[bool], step_s: f64) -> Option<usize> {
        match &mut self.chooser {
            Some(c) => c.choose(plan, v, excluded, self.detector, step_s),
            None => pabfd_with(plan, v, excluded, self.detector, step_s, self.wake_cost),
        }
    }

    /// fairwatt's consolidation: Beloglazov's loop with waking a host priced
    /// at its full power, in placement and admission alike, and each step's
    /// arrivals placed together by PSO (most VMs placed first, then the
    /// fewest watts), so it admits at least what the batch searches do.
    pub fn fairwatt(detector: Detector, selector: Selector, seed: u64) -> Beloglazov {
        let pso = Batch::Search(Meta::Pso(PsoConfig { seed, ..PsoConfig::default() }));
        Beloglazov { wake_cost: true, batch: Some(pso), ..Beloglazov::new(detector, selector, seed) }
    }
}

impl Policy for Beloglazov {
    fn name(&self) -> String {
        let d = self.detector.name();
        let (kind, param) = d.split_once('-').unwrap_or((&d, ""));
        let base = format!("{kind}-{}-{param}", self.selector.name());
        match &self.chooser {
            Some(c) => format!("{base}+{}", c.name()),
            None if self.wake_cost => format!("{base}+wake"),
            None => base,
        }
    }

    fn admit(&mut self, plan: &Plan, v: usize, step_s: f64) -> Option<usize> {
        match self.admission {
            Admission::Pabfd(_) => self.place(plan, v, &vec![false; plan.hosts()], step_s),
            other => other.choose(plan, v, step_s),
        }
    }

    fn admit_batch(&mut self, plan: &Plan, vms: &[usize], step_s: f64) -> Option<Vec<(usize, Option<usize>)>> {
        // One VM needs no search: the loop's own placement takes it.
        let b = self.batch.filter(|_| vms.len() > 1)?;
        BatchStatic(b).admit_batch(plan, vms, step_s)
    }

    fn observe(&mut self, st: &State, step_s: f64) {
        if let Some(c) = &mut self.chooser {
            c.observe(st, step_s);
        }
    }

    fn consolidate(&mut self, st: &State, step_s: f64) -> Vec<(usize, usize)> {
        let mut plan = Plan::new(st);
        let n = st.hosts.len();
        let over: Vec<bool> = (0..n).map(|h| self.detector.overloaded(&plan, h, step_s)).collect();
        let mut leaving = Vec::new();
        for h in (0..n).filter(|h| over[*h]) {
            while let Some(v) = self.selector.pick(&plan, h, &mut self.rng) {
                plan.remove(v);
                leaving.push(v);
                if !self.detector.overloaded(&plan, h, step_s) {
                    break;
                }
            }
        }
        let by_load = |vms: &mut Vec<usize>| vms.sort_by(|a, b| st.vms[*b].request().total_cmp(&st.vms[*a].request()));
        by_load(&mut leaving);
        let mut moves = Vec::new();
        for v in leaving {
            if let Some(h) = self.place(&plan, v, &over, step_s) {
                plan.add(h, v);
                moves.push((v, h));
            }
        }
        // Underloaded hosts: the least-utilised first, emptied whole or not at all.
        let off: Vec<bool> = (0..n).map(|h| st.measured[h] == 0.0).collect();
        let mut not_source: Vec<bool> = (0..n).map(|h| over[h] || off[h]).collect();
        let mut not_target = not_source.clone();
        loop {
            let Some(h) = (0..n)
                .filter(|h| !not_source[*h] && st.measured[*h] > 0.0 && plan.has_vms(*h) && st.incoming[*h].is_empty())
                .min_by(|a, b| st.measured[*a].total_cmp(&st.measured[*b]))
            else {
                break;
            };
            not_source[h] = true;
            not_target[h] = true;
            let mut vms = plan.migratable(h);
            if vms.is_empty() {
                continue;
            }
            by_load(&mut vms);
            let mut placed = Vec::new();
            for v in vms {
                match self.place(&plan, v, &not_target, step_s) {
                    Some(t) => {
                        plan.add(t, v);
                        placed.push((v, t));
                    }
                    None => {
                        for (v, t) in placed.drain(..) {
                            plan.undo_add(t, v);
                        }
                        break;
                    }
                }
            }
            for (_, t) in &placed {
                not_source[*t] = true;
            }
            moves.extend(placed);
        }
        moves
    }
}
