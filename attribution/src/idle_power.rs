//! How much of a domain's power is idle (static) power, the part no VM
//! causes: estimated here, split by [`crate::idle::IdlePolicy`].
//!
//! Every watt of error in the idle estimate moves energy between "idle"
//! (split by reservation, or kept as overhead) and "dynamic" (split by what
//! each VM did), so this estimate bounds attribution accuracy. Sources, best
//! first:
//!
//! 1. **Configured**: watts per domain the operator measured (a host
//!    calibration with nothing running, or the figure for its server model).
//! 2. **Observed**: the median power of the intervals in which no VM ran
//!    (no VMs, or none with CPU time or GPU use) — a host after boot, after
//!    an evacuation, before its first VM. Such an interval *is* the idle
//!    power plus sensor noise; the last [`IdleTracker::KEEP`] are kept for
//!    the host's lifetime, not just the fitting window, and at least
//!    `min_quiet` are needed.
//! 3. **Extrapolated**: the intercept of the non-negative linear fit of the
//!    domain's power on its features, capped at the least power measured in
//!    the window. Server power curves are concave, so when the window holds
//!    no lightly loaded interval the tangent's intercept lands above the
//!    true idle (docs/attribution.md measures how far). Recorded as such in
//!    the model version, so a bill can say how its idle was known.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use fairwatt_core::{Domain, IntervalRecord};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdleSource {
    Configured,
    Observed,
    Extrapolated,
}

impl IdleSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IdleSource::Configured => "configured",
            IdleSource::Observed => "observed",
            IdleSource::Extrapolated => "extrapolated",
        }
    }
}

/// One domain's idle power and where it came from.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct IdleEstimate {
    pub watts: f64,
    pub source: IdleSource,
    /// Quiet intervals behind an observed estimate (0 otherwise).
    pub observations: usize,
}

/// True when no VM ran in the interval: nothing of its energy is dynamic.
pub fn is_quiet(rec: &IntervalRecord) -> bool {
    rec.vms.iter().all(|v| v.features.cpu_time_us == 0 && v.features.gpus.iter().all(|g| g.sm_util_pct == 0 && g.mem_util_pct == 0))
}

/// Idle power seen in quiet intervals, per domain, over a host's lifetime.
#[derive(Clone, Debug, Default)]
pub struct IdleTracker {
    obs: BTreeMap<Domain, VecDeque<f64>>,
    quiet: u64,
}

impl IdleTracker {
    /// Quiet intervals kept per domain (the newest): enough for a stable
    /// median, recent enough to follow a firmware or fan change.
    pub const KEEP: usize = 600;

    pub fn new() -> Self {
        Self::default()
    }

    /// Records the interval's power per domain if it is quiet; returns whether it was.
    pub fn observe(&mut self, rec: &IntervalRecord) -> bool {
        let dt_s = rec.duration().as_secs_f64();
        if dt_s <= 0.0 || !is_quiet(rec) {
            return false;
        }
        self.quiet += 1;
        for (d, e) in &rec.domains {
            let q = self.obs.entry(*d).or_default();
            if q.len() == Self::KEEP {
                q.pop_front();
            }
            q.push_back(e.energy_uj.as_uj() as f64 / 1e6 / dt_s);
        }
        true
    }

    /// Quiet intervals seen so far.
    pub fn quiet_intervals(&self) -> u64 {
        self.quiet
    }

    /// Quiet intervals kept for `d` (at most [`Self::KEEP`]).
    pub fn observations(&self, d: Domain) -> usize {
        self.obs.get(&d).map_or(0, VecDeque::len)
    }

    /// The observed idle power of `d`, given at least `min_quiet` observations.
    pub fn estimate(&self, d: Domain, min_quiet: usize) -> Option<IdleEstimate> {
        let q = self.obs.get(&d)?;
        if q.len() < min_quiet.max(1) {
            return None;
        }
        let mut v: Vec<f64> = q.iter().copied().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let watts = if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 };
        Some(IdleEstimate { watts, source: IdleSource::Observed, observations: n })
    }

    /// Every domain's known idle power: configured values first, then observed ones.
    pub fn known(&self, configured: &BTreeMap<Domain, f64>, min_quiet: usize) -> BTreeMap<Domain, IdleEstimate> {
        let mut out: BTreeMap<Domain, IdleEstimate> = self.obs.keys().filter_map(|d| Some((*d, self.estimate(*d, min_quiet)?))).collect();
        for (d, w) in configured {
            out.insert(*d, IdleEstimate { watts: *w, source: IdleSource::Configured, observations: 0 });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fairwatt_core::{DomainEnergy, Energy, HostId, Micros, PerfSource, Timestamp, VmFeatures, VmId, VmRecord};

    fn rec(seq: u64, pkg_uj: u64, vm_cpu: Option<u64>) -> IntervalRecord {
        let start = Timestamp::from_micros(1_700_000_000_000_000 + seq as i64 * 1_000_000).unwrap();
        let vms = vm_cpu
            .map(|cpu| VmRecord {
                vm: VmId::new("vm-1").unwrap(),
                name: "vm-1".into(),
                tenant: None,
                flavor: None,
                perf: PerfSource::Software,
                features: VmFeatures { cpu_time_us: cpu, ..Default::default() },
                truth: None,
            })
            .into_iter()
            .collect();
        let domains = BTreeMap::from([(Domain::package(0), DomainEnergy::ok(Energy::from_uj(pkg_uj)))]);
        IntervalRecord { host: HostId::new("h").unwrap(), seq, start, end: start.plus(Micros::from_secs(1)), domains, vms, truth: None }
    }

    #[test]
    fn only_quiet_intervals_count_and_the_median_resists_outliers() {
        let mut t = IdleTracker::new();
        assert!(!t.observe(&rec(0, 90_000_000, Some(500_000))));
        for (i, w) in [50.0, 51.0, 49.0, 50.5, 400.0].into_iter().enumerate() {
            assert!(t.observe(&rec(1 + i as u64, (w * 1e6) as u64, if i % 2 == 0 { None } else { Some(0) })));
        }
        assert_eq!(t.quiet_intervals(), 5);
        assert!(t.estimate(Domain::package(0), 6).is_none());
        let e = t.estimate(Domain::package(0), 5).unwrap();
        assert_eq!((e.watts, e.source, e.observations), (50.5, IdleSource::Observed, 5));
        assert!(t.estimate(Domain::dram(0), 1).is_none());
    }

    #[test]
    fn configured_values_win_and_the_window_is_bounded() {
        let mut t = IdleTracker::new();
        for i in 0..(IdleTracker::KEEP as u64 + 50) {
            t.observe(&rec(i, if i < 50 { 10_000_000 } else { 20_000_000 }, None));
        }
        assert_eq!(t.estimate(Domain::package(0), 1).unwrap().watts, 20.0, "the oldest observations are forgotten");
        let known = t.known(&BTreeMap::from([(Domain::package(0), 33.0), (Domain::dram(0), 4.0)]), 1);
        assert_eq!(known[&Domain::package(0)].source, IdleSource::Configured);
        assert_eq!(known[&Domain::package(0)].watts, 33.0);
        assert_eq!(known[&Domain::dram(0)].watts, 4.0);
    }
}
