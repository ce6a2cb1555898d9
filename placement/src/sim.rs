//! The time-stepped datacenter: VMs' CPU demand from their traces each
//! scheduling interval, what each host can give them, the energy it draws,
//! and CloudSim's SLA metric for hosts running flat out.
//!
//! Semantics follow CloudSim 3.0.3's power package so results sit beside
//! its published runs:
//! - a VM's demand at step `t` is its utilisation there × its requested MIPS;
//!   a host gives each VM its demand, scaled down in proportion when the sum
//!   exceeds its capacity (the shortfall is an SLA violation);
//! - energy over an interval is `(P(u₀) + (P(u₁) − P(u₀)) / 2) × Δt` from the
//!   host's utilisation at its start and end, and zero when it starts at 0
//!   (an idle host counts as switched off); the non-power-aware baseline
//!   draws every host's maximum power all the time;
//! - SLATAH is the share of active host time spent at 100 % utilisation
//!   with demand unmet (summed over hosts, then divided).

use crate::error::{PlaceError, Result};
use crate::model::Datacenter;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerMode {
    /// Every host at maximum power, always (CloudSim's NPA).
    NonPowerAware,
    /// Power follows utilisation; idle hosts are off (CloudSim's DVFS).
    Dvfs,
}

/// What a run measured.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Metrics {
    pub energy_kwh: f64,
    /// SLA violation time per active host (0..=1).
    pub slatah: f64,
    /// Performance degradation due to migrations (0..=1).
    pub pdm: f64,
    pub migrations: u64,
    /// Host-steps with some load, and the mean number of active hosts.
    pub active_host_steps: u64,
    pub mean_active_hosts: f64,
    /// MIPS demanded and MIPS given over the run (their ratio: VM performance).
    pub demanded_mips: f64,
    pub given_mips: f64,
}

impl Metrics {
    /// SLAV = SLATAH × PDM.
    pub fn slav(&self) -> f64 {
        self.slatah * self.pdm
    }

    /// ESV = energy × SLAV.
    pub fn esv(&self) -> f64 {
        self.energy_kwh * self.slav()
    }
}

/// Per-VM utilisation traces, one value (0..=1) per step.
pub struct Demand<'a> {
    pub utilisation: &'a [Vec<f64>],
    pub step_s: f64,
}

/// Host utilisations at one step, and the MIPS demanded and given there.
pub fn host_loads(dc: &Datacenter, demand: &Demand, step: usize) -> (Vec<f64>, f64, f64, Vec<bool>) {
    let mut wanted = vec![0.0; dc.hosts.len()];
    for v in 0..dc.vm_count() {
        if let Some(h) = dc.host_of(v) {
            let u = demand.utilisation[v].get(step).copied().unwrap_or(0.0).clamp(0.0, 1.0);
            wanted[h] += u * dc.vm(v).mips;
        }
    }
    let (mut demanded, mut given) = (0.0, 0.0);
    let mut short = vec![false; dc.hosts.len()];
    let loads = wanted
        .iter()
        .enumerate()
        .map(|(h, w)| {
            let cap = dc.hosts[h].mips();
            demanded += w;
            given += w.min(cap);
            short[h] = *w > cap + 1e-9;
            w.min(cap) / cap
        })
        .collect();
    (loads, demanded, given, short)
}

/// Runs `steps` intervals with the placement fixed (no consolidation).
pub fn run_static(dc: &Datacenter, demand: &Demand, steps: usize, mode: PowerMode) -> Result<Metrics> {
    if demand.utilisation.len() != dc.vm_count() {
        return Err(PlaceError::Config(format!("{} traces for {} VMs", demand.utilisation.len(), dc.vm_count())));
    }
    if steps < 2 {
        return Err(PlaceError::Config("a run needs at least two steps (one interval)".into()));
    }
    let mut m = Metrics::default();
    let (mut prev, d0, g0, _) = host_loads(dc, demand, 0);
    m.demanded_mips += d0;
    m.given_mips += g0;
    let (mut active_time, mut violation_time, mut joules) = (0.0, 0.0, 0.0);
    for step in 1..steps {
        let (now, d, g, short) = host_loads(dc, demand, step);
        m.demanded_mips += d;
        m.given_mips += g;
        for (h, t) in dc.hosts.iter().enumerate() {
            joules += match mode {
                PowerMode::NonPowerAware => t.power(1.0) * demand.step_s,
                PowerMode::Dvfs if prev[h] == 0.0 => 0.0,
                PowerMode::Dvfs => (t.power(prev[h]) + (t.power(now[h]) - t.power(prev[h])) / 2.0) * demand.step_s,
            };
            if prev[h] > 0.0 {
                active_time += demand.step_s;
                m.active_host_steps += 1;
                if short[h] || prev[h] >= 1.0 - 1e-12 {
                    violation_time += demand.step_s;
                }
            }
        }
        prev = now;
    }
    m.energy_kwh = joules / 3.6e6;
    m.slatah = if active_time > 0.0 { violation_time / active_time } else { 0.0 };
    m.mean_active_hosts = m.active_host_steps as f64 / (steps - 1) as f64;
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostType, VmSpec};

    fn one_host(vms: &[f64]) -> Datacenter {
        let mut dc = Datacenter::new(vec![HostType::ML110_G4, HostType::ML110_G5], false).unwrap();
        for (i, m) in vms.iter().enumerate() {
            let v = dc.add_vm(VmSpec { id: format!("v{i}"), mips: *m, ram_mb: 512 }).unwrap();
            dc.place(v, 0).unwrap();
        }
        dc
    }

    #[test]
    fn dvfs_energy_is_cloudsims_trapezoid_and_idle_hosts_are_off() {
        // One 1860-MIPS VM on the G4: 0 %, 50 %, 100 % of it → host at 0, 25 %, 50 %.
        let dc = one_host(&[1860.0]);
        let util = vec![vec![0.0, 0.5, 1.0]];
        let m = run_static(&dc, &Demand { utilisation: &util, step_s: 300.0 }, 3, PowerMode::Dvfs).unwrap();
        // First interval starts at 0: off. Second: (P(.25) + (P(.5) − P(.25)) / 2) × 300 s.
        let g4 = HostType::ML110_G4;
        let want = (g4.power(0.25) + (g4.power(0.5) - g4.power(0.25)) / 2.0) * 300.0 / 3.6e6;
        assert!((m.energy_kwh - want).abs() < 1e-12, "{} vs {want}", m.energy_kwh);
        assert_eq!(m.active_host_steps, 1);
        assert_eq!(m.slatah, 0.0);
        // The empty G5 never draws power in DVFS; in NPA both draw their maximum.
        let npa = run_static(&dc, &Demand { utilisation: &util, step_s: 300.0 }, 3, PowerMode::NonPowerAware).unwrap();
        assert!((npa.energy_kwh - (117.0 + 135.0) * 600.0 / 3.6e6).abs() < 1e-12);
    }

    #[test]
    fn a_host_running_flat_out_counts_as_violating() {
        // Three 1240-MIPS VMs at 100 % fill the 3720-MIPS G4 exactly: no headroom, an SLA violation.
        let dc = one_host(&[1240.0, 1240.0, 1240.0]);
        let util = vec![vec![1.0; 4]; 3];
        let m = run_static(&dc, &Demand { utilisation: &util, step_s: 300.0 }, 4, PowerMode::Dvfs).unwrap();
        assert_eq!(m.slatah, 1.0, "a host at 100 % all its active time");
        assert!((m.given_mips - m.demanded_mips).abs() < 1e-6);
        let half = vec![vec![0.5; 4]; 3];
        let m = run_static(&dc, &Demand { utilisation: &half, step_s: 300.0 }, 4, PowerMode::Dvfs).unwrap();
        assert_eq!(m.slatah, 0.0);
        assert!((m.mean_active_hosts - 1.0).abs() < 1e-12);
        assert!(run_static(&dc, &Demand { utilisation: &half[..2], step_s: 300.0 }, 4, PowerMode::Dvfs).is_err());
    }
}
