//! The time loop. Each step: land migrations in flight (a CloudSim update at
//! each landing), let finished VMs leave and new ones in, read every VM's
//! request from its trace, account the interval that just ended (energy,
//! SLA time, migration degradation), ask the policy for migrations, and
//! start them.
//!
//! `cloudsim` reproduces two behaviours of CloudSim 3.0.3 that its
//! published numbers depend on: nothing is measured at time 0 (hosts count
//! as never updated, so the first interval draws nothing), and a VM whose
//! request reads exactly zero at an update is taken to have finished and
//! leaves for good (`getCompletedVms`). With it off, a VM stays until its
//! trace ends.

use std::time::Instant;

use super::account::{Snap, Totals, account, attribute, lower_bound_watts};
use super::plan::Plan;
use super::state::State;
use super::Policy;
use crate::error::{PlaceError, Result};
use crate::model::{HostType, VmSpec};
use crate::trace::VmTrace;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerMode {
    /// Every host at maximum power, always (CloudSim's NPA).
    NonPowerAware,
    /// Power follows utilisation; idle hosts are off (CloudSim's DVFS).
    Dvfs,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SimConfig {
    pub step_s: f64,
    /// Update instants (trace samples) to run.
    pub steps: usize,
    pub power: PowerMode,
    pub cloudsim: bool,
    /// Migrations and admissions need the VM's RAM free (CloudSim's
    /// PlanetLab VMs hold RAM only from creation).
    pub enforce_ram: bool,
}

impl SimConfig {
    /// The Beloglazov experiment's settings: 300 s, one day, DVFS power.
    pub fn cloudsim_day() -> SimConfig {
        SimConfig { step_s: 300.0, steps: 288, power: PowerMode::Dvfs, cloudsim: true, enforce_ram: false }
    }
}

/// One interval of a run, for plots.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepRecord {
    pub step: usize,
    pub energy_kwh: f64,
    pub active_hosts: usize,
    pub migrations: usize,
    /// Share of active hosts giving their VMs less than they ask.
    pub violating_share: f64,
    /// The interval's energy lower bound (see [`Outcome::lower_bound_kwh`]).
    pub lower_bound_kwh: f64,
}

/// What a run measured (CloudSim's metric definitions).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Outcome {
    pub policy: String,
    pub energy_kwh: f64,
    /// SLA violation time per active host (0..=1).
    pub slatah: f64,
    /// Performance degradation due to migrations (0..=1).
    pub pdm: f64,
    pub migrations: u64,
    pub host_shutdowns: u64,
    pub mean_active_hosts: f64,
    /// Resource utilisation: mean CPU utilisation of active hosts,
    /// weighted by active time (KDQNVMP's measure).
    pub mean_utilisation: f64,
    /// Load balance: the standard deviation of active hosts' utilisation,
    /// averaged over time (lower is more even).
    pub load_imbalance: f64,
    /// MIPS given over MIPS asked for, all VMs over the run.
    pub vm_performance: f64,
    pub admitted: usize,
    /// VMs admitted before the first refusal (KDQNVMP's maximum deployable VMs).
    pub deployable: usize,
    /// VMs no host could take, with why.
    pub refused: Vec<(String, String)>,
    /// VMs that left because CloudSim's completion rule fired.
    pub completed_early: usize,
    /// The demand packed onto the most efficient hosts at full load each
    /// interval (the lesser of its two ends), ignoring SLA: no policy can
    /// use less.
    pub lower_bound_kwh: f64,
    /// Energy as attributed: Σ per-host interval energy in µJ, what went to
    /// VMs, and what did not (`attributed + unattributed = measured`).
    pub measured_uj: u64,
    pub attributed_uj: u64,
    pub unattributed_uj: u64,
    /// Wall time of each consolidation decision and each admission, ns.
    pub decision_ns: Vec<u64>,
    pub admission_ns: Vec<u64>,
    pub series: Vec<StepRecord>,
}

impl Outcome {
    pub fn slav(&self) -> f64 {
        self.slatah * self.pdm
    }

    pub fn esv(&self) -> f64 {
        self.energy_kwh * self.slav()
    }

    /// Admitted over asked for.
    pub fn success_rate(&self) -> f64 {
        let n = self.admitted + self.refused.len();
        if n == 0 { 1.0 } else { self.admitted as f64 / n as f64 }
    }
}

/// Utilisation of `tr` at `step + frac` (linear between samples, as
/// CloudSim's PlanetLab model interpolates); `None` outside its life.
fn utilisation_at(tr: &VmTrace, step: usize, frac: f64) -> Option<f64> {
    let a = tr.cpu_at(step as u32)?;
    let b = tr.cpu_at(step as u32 + 1).unwrap_or(a);
    Some(a + (b - a) * frac)
}

/// Runs `policy` over the traces. `vms[i]` is what VM `i` asks for;
/// `traces[i]` its utilisation over time.
pub fn run(hosts: Vec<HostType>, vms: Vec<VmSpec>, traces: &[VmTrace], cfg: &SimConfig, policy: &mut dyn Policy) -> Result<Outcome> {
    if hosts.is_empty() {
        return Err(PlaceError::Config("a datacenter needs at least one host".into()));
    }
    if vms.len() != traces.len() {
        return Err(PlaceError::Config(format!("{} VM specs for {} traces", vms.len(), traces.len())));
    }
    if cfg.steps < 2 || !(cfg.step_s > 0.0) {
        return Err(PlaceError::Config("a run needs at least two steps of positive length".into()));
    }
    let mut st = State::new(hosts, vms, cfg.enforce_ram);
    let n_hosts = st.hosts.len();
    let mut out = Outcome { policy: policy.name(), ..Outcome::default() };
    let mut tot = Totals { host_j: vec![0.0; n_hosts], weight: vec![Vec::new(); n_hosts], ..Totals::default() };
    let mut prev = Snap { util: vec![0.0; n_hosts], violating: vec![false; n_hosts], vm: vec![(0.0, 1.0, false); st.vms.len()], on: vec![None; st.vms.len()] };
    let mut last_t = 0.0;
    let (mut lb_prev_w, mut lb_prev_t) = (0.0, 0.0);
    // Landing time of each migration in flight.
    let mut landing: Vec<(f64, usize)> = Vec::new();
    for k in 0..cfg.steps {
        let t = k as f64 * cfg.step_s;
        tot.interval_joules = 0.0;
        // Migrations land at their own instants; CloudSim updates at each.
        landing.sort_by(|a, b| a.0.total_cmp(&b.0));
        while let Some(&(at, _)) = landing.first() {
            if at > t {
                break;
            }
            let frac = (at - (t - cfg.step_s)) / cfg.step_s;
            for v in 0..st.vms.len() {
                if st.vms[v].alive
                    && let Some(u) = utilisation_at(&traces[v], k - 1, frac)
                {
                    st.request(v, u);
                }
            }
            prev = account(&st, &prev, at - last_t, cfg.power, &mut tot);
            last_t = at;
            let done: Vec<usize> = landing.iter().take_while(|(a, _)| *a <= at).map(|(_, v)| *v).collect();
            landing.drain(..done.len());
            for v in done {
                st.land(v);
            }
            prev = account(&st, &prev, 0.0, cfg.power, &mut tot);
        }
        // Departures and arrivals.
        for v in 0..st.vms.len() {
            if st.vms[v].alive && traces[v].cpu_at(k as u32).is_none() {
                landing.retain(|(_, x)| *x != v);
                st.destroy(v);
            }
        }
        let arrivals: Vec<usize> = (0..st.vms.len()).filter(|v| !st.vms[*v].alive && traces[*v].start_step as usize == k && traces[*v].cpu_at(k as u32).is_some()).collect();
        if !arrivals.is_empty() {
            let mut chosen = Vec::with_capacity(arrivals.len());
            {
                let mut plan = Plan::new(&st);
                let fits_any = |v: usize| st.hosts.iter().any(|t| st.vms[v].spec.mips <= t.mips_per_core as f64 && st.vms[v].spec.ram_mb <= t.ram_mb);
                let refuse = |out: &mut Outcome, v: usize, why: &str, placed: usize| {
                    if out.refused.is_empty() {
                        out.deployable = out.admitted + placed;
                    }
                    let s = &st.vms[v].spec;
                    out.refused.push((s.id.clone(), format!("VM {} ({} MIPS, {} MB): {why}", s.id, s.mips, s.ram_mb)));
                };
                let started = Instant::now();
                if let Some(batch) = policy.admit_batch(&plan, &arrivals, cfg.step_s) {
                    out.admission_ns.push(started.elapsed().as_nanos() as u64);
                    if batch.len() != arrivals.len() || batch.iter().any(|(v, _)| !arrivals.contains(v)) {
                        return Err(PlaceError::Config(format!("policy {} answered for other VMs than the {} arriving", out.policy, arrivals.len())));
                    }
                    for (v, pick) in batch {
                        match pick {
                            Some(h) if plan.suitable(h, v) => {
                                plan.add(h, v);
                                chosen.push((v, h));
                            }
                            Some(h) => return Err(PlaceError::Config(format!("policy {} put VM {} on host {h}, which has no room", out.policy, st.vms[v].spec.id))),
                            None => refuse(&mut out, v, if fits_any(v) { "no host has room for it now" } else { "it is larger than any host" }, chosen.len()),
                        }
                    }
                } else {
                    for &v in &arrivals {
                        let started = Instant::now();
                        let pick = if fits_any(v) { policy.admit(&plan, v, cfg.step_s).ok_or("no host has room for it now") } else { Err("it is larger than any host") };
                        out.admission_ns.push(started.elapsed().as_nanos() as u64);
                        match pick {
                            Ok(h) => {
                                plan.add(h, v);
                                chosen.push((v, h));
                            }
                            Err(why) => refuse(&mut out, v, why, chosen.len()),
                        }
                    }
                }
            }
            for (v, h) in chosen {
                st.create(v, h);
                out.admitted += 1;
            }
        }
        if k == 0 && cfg.cloudsim {
            // CloudSim's first update comes one interval after creation.
            continue;
        }
        // The update at t: every VM's request from its trace (CloudSim's
        // updates fall 0.1 s after each step, between two samples).
        let offset = if cfg.cloudsim { 0.1 / cfg.step_s } else { 0.0 };
        for v in 0..st.vms.len() {
            if st.vms[v].alive
                && let Some(u) = utilisation_at(&traces[v], k, offset)
            {
                st.observe(v, u);
            }
        }
        prev = account(&st, &prev, t - last_t, cfg.power, &mut tot);
        last_t = t;
        st.measured.clone_from(&prev.util);
        let (measured, given, left) = attribute(&mut st, &mut tot);
        out.measured_uj += measured;
        out.attributed_uj += given;
        out.unattributed_uj += left;
        let demand: f64 = st.vms.iter().filter(|v| v.alive).map(|v| v.request()).sum();
        // The interval's bound takes the lesser demand of its two ends, so
        // it stays below the trapezoid whichever way the load moves.
        let lb_w = lower_bound_watts(&st.hosts, demand);
        let lb_j = lb_w.min(lb_prev_w) * (t - lb_prev_t);
        (lb_prev_w, lb_prev_t) = (lb_w, t);
        out.lower_bound_kwh += lb_j / 3.6e6;
        if cfg.cloudsim {
            // A request of exactly zero at the update: this sample and the
            // next are both zero.
            for v in 0..st.vms.len() {
                if st.vms[v].alive && !st.vms[v].migrating() && st.vms[v].request() == 0.0 {
                    st.destroy(v);
                    out.completed_early += 1;
                }
            }
        }
        policy.observe(&st, cfg.step_s);
        let started = Instant::now();
        let moves = policy.consolidate(&st, cfg.step_s);
        out.decision_ns.push(started.elapsed().as_nanos() as u64);
        for &(v, to) in &moves {
            if !st.vms[v].alive || st.vms[v].migrating() || st.vms[v].host == Some(to) {
                return Err(PlaceError::Config(format!("policy {} moved VM {} that cannot move to host {to}", out.policy, st.vms[v].spec.id)));
            }
            st.start_migration(v, to);
            landing.push((t + st.migration_s(v), v));
        }
        out.migrations += moves.len() as u64;
        prev = account(&st, &prev, 0.0, cfg.power, &mut tot);
        let active = prev.util.iter().filter(|u| **u > 0.0).count();
        let violating = (0..n_hosts).filter(|h| prev.util[*h] > 0.0 && prev.violating[*h]).count();
        out.series.push(StepRecord {
            step: k,
            energy_kwh: tot.interval_joules / 3.6e6,
            active_hosts: active,
            migrations: moves.len(),
            violating_share: if active > 0 { violating as f64 / active as f64 } else { 0.0 },
            lower_bound_kwh: lb_j / 3.6e6,
        });
    }
    let (measured, given, left) = attribute(&mut st, &mut tot);
    out.measured_uj += measured;
    out.attributed_uj += given;
    out.unattributed_uj += left;
    if out.refused.is_empty() {
        out.deployable = out.admitted;
    }
    out.energy_kwh = tot.joules / 3.6e6;
    out.slatah = if tot.active_s > 0.0 { tot.violation_s / tot.active_s } else { 0.0 };
    out.pdm = if tot.requested > 0.0 { tot.under_migration / tot.requested } else { 0.0 };
    out.vm_performance = if tot.requested > 0.0 { tot.given / tot.requested } else { 1.0 };
    out.mean_active_hosts = if tot.elapsed > 0.0 { tot.active_s / tot.elapsed } else { 0.0 };
    out.mean_utilisation = if tot.active_s > 0.0 { tot.util_s / tot.active_s } else { 0.0 };
    out.load_imbalance = if tot.elapsed > 0.0 { tot.spread_s / tot.elapsed } else { 0.0 };
    out.host_shutdowns = tot.shutdowns;
    Ok(out)
}
