//! What an agent sees for one placement decision and how its outcome is
//! measured.
//!
//! The action is a cluster slot (hosts clustered by [`super::cluster`],
//! slots in a canonical order so that slot i means much the same thing
//! after each re-clustering: active before sleeping, efficient before not,
//! loaded before idle). Taking slot i places the VM on that cluster's best
//! candidate: the host, not excluded, that fits the VM, that the detector
//! would not overload, with the least rise in power, waking a sleeping host
//! priced at its full power (fairwatt's PABFD, restricted to the cluster).
//! Slots without a candidate are masked.
//!
//! The observation: the VM (size, RAM, recent utilisation, whether it is
//! being created), per slot (candidate exists, free capacity share, mean
//! utilisation of its active hosts, active share, watts per MIPS, energy
//! attributed per MIPS last interval, the candidate's power rise and its
//! utilisation after, the slot's share of hosts), and the pool (load,
//! active share, utilisation spread).
//!
//! The measurement vector m = (performance, utilisation, balance, −energy)
//! is read for the pool at each update and, for a decision, at the update
//! after it has run an interval: the chosen host's share of what its VMs
//! ask for, its utilisation, −std of active hosts' utilisation, and minus
//! the energy attributed to the VM per unit of its work (see `vm_energy`).
//! A decision's Δm is its outcome minus the pool's m when it was taken.

use super::cluster;
use super::config::{EnvConfig, MEASURES};
use crate::dynamic::{Detector, Plan, State};

pub type Measures = [f64; MEASURES];

pub const VM_FEATURES: usize = 4;
pub const SLOT_FEATURES: usize = 9;
pub const GLOBAL_FEATURES: usize = 3;
/// Offsets of a slot's features.
pub const F_FEASIBLE: usize = 0;
pub const F_UTIL: usize = 2;
pub const F_ACTIVE: usize = 3;
pub const F_WPM: usize = 4;
pub const F_RISE: usize = 6;
pub const F_AFTER: usize = 7;

/// Length of the observation with `k` slots.
pub fn feature_len(k: usize) -> usize {
    VM_FEATURES + k * SLOT_FEATURES + GLOBAL_FEATURES
}

/// Feature `f` of slot `a` in observation `s`.
pub fn slot_feature(s: &[f32], a: usize, f: usize) -> f32 {
    s[VM_FEATURES + a * SLOT_FEATURES + f]
}

/// One decision as an agent sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Obs {
    pub s: Vec<f32>,
    pub mask: Vec<bool>,
    /// Each slot's candidate host.
    pub hosts: Vec<Option<usize>>,
    /// The pool's measurements at the last update.
    pub m: Measures,
}

impl Obs {
    pub fn feasible(&self) -> Vec<usize> {
        (0..self.mask.len()).filter(|a| self.mask[*a]).collect()
    }
}

/// Scales for the features: the fleet's largest core, RAM, watts per MIPS
/// and full power.
#[derive(Clone, Debug)]
struct Norms {
    core_mips: f64,
    ram: f64,
    wpm: f64,
    power: f64,
}

#[derive(Clone, Debug)]
pub struct Env {
    pub cfg: EnvConfig,
    slot: Vec<usize>,
    slots: usize,
    norms: Option<Norms>,
    /// Watts attributed to each host's VMs over the last interval.
    host_watts: Vec<f64>,
    pool: Measures,
    /// Utilisation of each active host at the last update.
    active_utils: Vec<f64>,
    updates: usize,
    pub reclusterings: usize,
}

fn share(st: &State, h: usize) -> f64 {
    let (sched, cap) = (st.scheduled(h), st.hosts[h].mips());
    if sched > cap { cap / sched } else { 1.0 }
}

impl Env {
    pub fn new(cfg: EnvConfig) -> Env {
        Env { cfg, slot: Vec::new(), slots: 0, norms: None, host_watts: Vec::new(), pool: [1.0, 0.0, 0.0, 0.0], active_utils: Vec::new(), updates: 0, reclusterings: 0 }
    }

    /// Forgets the pool and fleet (a new run): the first decision or
    /// update clusters the hosts again.
    pub fn reset(&mut self) {
        (self.slots, self.updates, self.norms) = (0, 0, None);
        self.pool = [1.0, 0.0, 0.0, 0.0];
        self.active_utils.clear();
    }

    pub fn k(&self) -> usize {
        self.cfg.k_max
    }

    pub fn pool(&self) -> Measures {
        self.pool
    }

    /// Share of active hosts running below `load`.
    pub fn low_load_share(&self, load: f64) -> f64 {
        let n = self.active_utils.len();
        if n == 0 { 0.0 } else { self.active_utils.iter().filter(|u| **u < load).count() as f64 / n as f64 }
    }

    fn init(&mut self, st: &State) {
        if self.norms.is_none() {
            let max = |f: &dyn Fn(&crate::model::HostType) -> f64| st.hosts.iter().map(f).fold(0.0, f64::max);
            self.norms = Some(Norms { core_mips: max(&|t| t.mips_per_core as f64), ram: max(&|t| t.ram_mb as f64), wpm: max(&|t| t.watts_per_mips()), power: max(&|t| t.power(1.0)) });
            self.host_watts = vec![0.0; st.hosts.len()];
        }
        if self.slots == 0 {
            self.recluster(st);
        }
    }

    /// Clusters hosts on (capacity, RAM, watts/MIPS at full load, idle
    /// watts, utilisation, active) and orders the slots canonically.
    pub fn recluster(&mut self, st: &State) {
        let mut pts: Vec<Vec<f64>> = (0..st.hosts.len())
            .map(|h| {
                let t = &st.hosts[h];
                let active = st.measured[h] > 0.0 || !st.resident[h].is_empty();
                vec![t.mips(), t.ram_mb as f64, t.watts_per_mips(), t.power(0.0), st.measured[h], if active { 1.0 } else { 0.0 }]
            })
            .collect();
        cluster::normalise(&mut pts);
        let c = cluster::cluster(&pts, self.cfg.k_min, self.cfg.k_max, &self.cfg.cluster);
        let mut order: Vec<usize> = (0..c.k).collect();
        let key = |i: usize| {
            let ctr = &c.centres[i];
            (ctr[5] < 0.5, ctr[2], -ctr[4])
        };
        order.sort_by(|a, b| key(*a).partial_cmp(&key(*b)).unwrap_or(std::cmp::Ordering::Equal));
        let mut rank = vec![0; c.k];
        for (slot, cl) in order.iter().enumerate() {
            rank[*cl] = slot;
        }
        self.slot = c.assign.iter().map(|a| rank[*a]).collect();
        self.slots = c.k;
        self.reclusterings += 1;
    }

    /// Reads the pool after an update; re-clusters when due.
    pub fn observe(&mut self, st: &State, step_s: f64) {
        let due = self.updates.is_multiple_of(self.cfg.recluster_every.max(1));
        self.read(st, step_s, due);
    }

    /// Reads the pool; re-clusters when `recluster` says (or on first use).
    pub fn read(&mut self, st: &State, step_s: f64, recluster: bool) {
        self.init(st);
        for w in self.host_watts.iter_mut() {
            *w = 0.0;
        }
        for vm in st.vms.iter().filter(|v| v.alive) {
            if let Some(h) = vm.host {
                self.host_watts[h] += vm.attributed_last_uj as f64 / 1e6 / step_s;
            }
        }
        let active: Vec<usize> = (0..st.hosts.len()).filter(|h| st.measured[*h] > 0.0).collect();
        self.active_utils = active.iter().map(|h| st.measured[*h]).collect();
        let n = active.len().max(1) as f64;
        let perf = if active.is_empty() { 1.0 } else { active.iter().map(|h| share(st, *h)).sum::<f64>() / n };
        let mean = self.active_utils.iter().sum::<f64>() / n;
        let std = (self.active_utils.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / n).sqrt();
        let e: Vec<f64> = st.vms.iter().filter(|v| v.alive && v.attributed_last_uj > 0).map(|v| vm_energy(v, step_s)).collect();
        let energy = if e.is_empty() { 0.0 } else { e.iter().sum::<f64>() / e.len() as f64 };
        self.pool = [perf, mean, -std, -energy];
        if recluster {
            self.recluster(st);
        }
        self.updates += 1;
    }

    /// The measurements of placing VM `v` on host `h`, read now (after
    /// [`Env::observe`] for this update).
    pub fn outcome(&self, st: &State, v: usize, h: usize, step_s: f64) -> Measures {
        [share(st, h), st.utilisation(h), self.pool[2], -vm_energy(&st.vms[v], step_s)]
    }

    /// The observation, mask and candidates for placing VM `v`.
    pub fn decision(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Obs {
        let st = plan.st;
        self.init(st);
        let norms = self.norms.clone().expect("initialised");
        let k = self.cfg.k_max;
        let vm = &st.vms[v];
        let need = if vm.alive { vm.request() } else { vm.spec.mips };
        let mut best: Vec<Option<(usize, f64, f64)>> = vec![None; k];
        // Per slot: capacity, free, hosts, active, Σ util of active, Σ W/MIPS, watts, active capacity.
        let mut agg = vec![[0.0f64; 8]; k];
        let (mut used_all, mut cap_all, mut active_all) = (0.0, 0.0, 0usize);
        #[allow(clippy::needless_range_loop)] // h indexes five per-host arrays
        for h in 0..plan.hosts() {
            let (t, s) = (&st.hosts[h], self.slot[h]);
            let (used, cap) = (plan.used_mips(h), t.mips());
            let asleep = st.measured[h] == 0.0 && !plan.has_vms(h);
            let a = &mut agg[s];
            a[0] += cap;
            a[1] += cap - used;
            a[2] += 1.0;
            a[5] += t.watts_per_mips();
            a[6] += self.host_watts[h];
            if !asleep {
                a[3] += 1.0;
                a[4] += used / cap;
                a[7] += cap;
                active_all += 1;
            }
            used_all += used;
            cap_all += cap;
            if excluded[h] || !plan.suitable(h, v) || (used != 0.0 && detector.overloaded_with(plan, h, v, step_s)) {
                continue;
            }
            let after = (used + need) / cap;
            if after > 1.0 + 1e-12 {
                continue;
            }
            let rise = if asleep { t.power(after) } else { t.power(after) - t.power(st.measured[h]) };
            if best[s].is_none_or(|(_, r, _)| rise < r) {
                best[s] = Some((h, rise, after));
            }
        }
        let recent: Vec<f64> = vm.history.iter().take(6).copied().collect();
        let util = if recent.is_empty() { 1.0 } else { recent.iter().sum::<f64>() / recent.len() as f64 };
        let mut s = Vec::with_capacity(feature_len(k));
        s.extend([vm.spec.mips / norms.core_mips, vm.spec.ram_mb as f64 / norms.ram, util, if vm.alive { 0.0 } else { 1.0 }]);
        let hosts_n = plan.hosts() as f64;
        for (b, a) in best.iter().zip(&agg) {
            let (n, act) = (a[2].max(1.0), a[3].max(1.0));
            let (rise, after) = b.map_or((0.0, 0.0), |(_, r, u)| (r / norms.power, u));
            let energy = if a[7] > 0.0 { a[6] / a[7] / norms.wpm } else { 0.0 };
            let free = if a[0] > 0.0 { a[1] / a[0] } else { 0.0 };
            s.extend([if b.is_some() { 1.0 } else { 0.0 }, free, a[4] / act, a[3] / n, a[5] / n / norms.wpm, energy, rise, after, a[2] / hosts_n]);
        }
        s.extend([used_all / cap_all.max(1.0), active_all as f64 / hosts_n.max(1.0), -self.pool[2]]);
        Obs { s: s.into_iter().map(|x| x as f32).collect(), mask: best.iter().map(Option::is_some).collect(), hosts: best.iter().map(|b| b.map(|x| x.0)).collect(), m: self.pool }
    }
}

/// Energy attributed to the VM over the last interval per unit of work:
/// watts per 1000 MIPS it asked for, / 100 (≈ 0.25 on a G5 at full load,
/// ≈ 1.8 at 10 %). Attribution splits a host's energy by requested MIPS·s,
/// so this is its host's energy per unit of work and depends on where the
/// VM runs, not on how busy it is.
fn vm_energy(vm: &crate::dynamic::state::Vm, step_s: f64) -> f64 {
    // The request the interval was attributed by: the sample before the newest.
    let u = vm.history.get(1).or(vm.history.front()).copied().unwrap_or(1.0).max(0.01);
    vm.attributed_last_uj as f64 / 1e6 / step_s / (u * vm.spec.mips / 1000.0) / 100.0
}
