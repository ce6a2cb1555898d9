//! The accounting between two updates: each host's state at an update
//! (utilisation, whether it gives less than asked, each VM's request and
//! share), the segment's energy, SLA time, migration degradation and
//! VM-level MIPS, the exact µJ split of each host's energy among its VMs,
//! and the energy lower bound.

use super::state::State;
use crate::model::HostType;
use super::engine::PowerMode;

/// Host state at an update, the start of the next segment.
#[derive(Clone)]
pub(super) struct Snap {
    pub(super) util: Vec<f64>,
    pub(super) violating: Vec<bool>,
    /// Per VM: request, share given, migrating.
    pub(super) vm: Vec<(f64, f64, bool)>,
    /// Per VM: the host it runs on (the source while migrating).
    pub(super) on: Vec<Option<usize>>,
}

pub(super) fn snapshot(st: &State) -> Snap {
    let n = st.hosts.len();
    let mut util = vec![0.0; n];
    let mut violating = vec![false; n];
    let mut scale = vec![1.0; n];
    for h in 0..n {
        let cap = st.hosts[h].mips();
        let sched = st.scheduled(h);
        util[h] = sched.min(cap) / cap;
        scale[h] = if sched > cap { cap / sched } else { 1.0 };
        violating[h] = sched.min(cap) + 1e-6 < st.requested(h);
    }
    let vm = st
        .vms
        .iter()
        .map(|v| match (v.alive, v.host) {
            (true, Some(h)) => (v.request(), scale[h] * if v.migrating() { 0.9 } else { 1.0 }, v.migrating()),
            _ => (0.0, 1.0, false),
        })
        .collect();
    let on = st.vms.iter().map(|v| if v.alive { v.host } else { None }).collect();
    Snap { util, violating, vm, on }
}

#[derive(Default)]
pub(super) struct Totals {
    pub(super) joules: f64,
    pub(super) active_s: f64,
    pub(super) util_s: f64,
    pub(super) spread_s: f64,
    pub(super) violation_s: f64,
    pub(super) requested: f64,
    pub(super) given: f64,
    pub(super) under_migration: f64,
    pub(super) elapsed: f64,
    pub(super) shutdowns: u64,
    pub(super) interval_joules: f64,
    /// Each host's energy since the last attribution, and per VM the
    /// MIPS·s it asked for there (the attribution weights).
    pub(super) host_j: Vec<f64>,
    pub(super) weight: Vec<Vec<(usize, f64)>>,
    /// Whether the first update has been seen (CloudSim counts a host
    /// idle at its first update as shut down).
    pub(super) started: bool,
}

/// Accounts the segment from `prev` to now (`dt` seconds) and returns the
/// state now.
pub(super) fn account(st: &State, prev: &Snap, dt: f64, mode: PowerMode, tot: &mut Totals) -> Snap {
    let now = snapshot(st);
    if dt > 0.0 {
        for (h, t) in st.hosts.iter().enumerate() {
            let j = match mode {
                PowerMode::NonPowerAware => t.power(1.0) * dt,
                PowerMode::Dvfs if prev.util[h] == 0.0 => 0.0,
                PowerMode::Dvfs => (t.power(prev.util[h]) + (t.power(now.util[h]) - t.power(prev.util[h])) / 2.0) * dt,
            };
            tot.joules += j;
            tot.interval_joules += j;
            tot.host_j[h] += j;
            if prev.util[h] > 0.0 {
                tot.active_s += dt;
                tot.util_s += prev.util[h] * dt;
                if prev.violating[h] {
                    tot.violation_s += dt;
                }
            }
        }
        let active: Vec<f64> = prev.util.iter().copied().filter(|u| *u > 0.0).collect();
        if !active.is_empty() {
            let mean = active.iter().sum::<f64>() / active.len() as f64;
            tot.spread_s += (active.iter().map(|u| (u - mean).powi(2)).sum::<f64>() / active.len() as f64).sqrt() * dt;
        }
        for (v, (req, share, migrating)) in prev.vm.iter().enumerate() {
            if let Some(h) = prev.on[v] {
                tot.weight[h].push((v, req * dt));
            }
            tot.requested += req * dt;
            tot.given += req * share * dt;
            if *migrating {
                tot.under_migration += 0.1 * req * dt;
            }
        }
        tot.elapsed += dt;
    }
    let was_active = |h: usize| !tot.started || prev.util[h] > 0.0;
    tot.shutdowns += (0..st.hosts.len()).filter(|h| was_active(*h) && now.util[*h] == 0.0).count() as u64;
    tot.started = true;
    now
}

/// Splits each host's energy since the last call among the VMs that ran
/// there, by MIPS·s requested, exactly in microjoules (the ratio method of
/// the attribution crate); returns (measured, attributed, unattributed) µJ.
pub(super) fn attribute(st: &mut State, tot: &mut Totals) -> (u64, u64, u64) {
    for vm in st.vms.iter_mut() {
        vm.attributed_last_uj = 0;
    }
    let (mut measured, mut given, mut left) = (0u64, 0u64, 0u64);
    for h in 0..st.hosts.len() {
        let total = (tot.host_j[h] * 1e6).round() as u64;
        measured += total;
        tot.host_j[h] = 0.0;
        let parts = std::mem::take(&mut tot.weight[h]);
        let w: Vec<f64> = parts.iter().map(|p| p.1).collect();
        let split = fairwatt_attribution::alloc::split(total, &w);
        for ((v, _), uj) in parts.iter().zip(&split.shares) {
            st.vms[*v].attributed_last_uj += uj;
            st.vms[*v].attributed_uj += uj;
            given += uj;
        }
        left += split.unsplit;
    }
    (measured, given, left)
}


/// Power needed to serve `demand` MIPS with whole hosts at full load on the
/// most efficient types first, and the rest on the cheapest single host.
pub fn lower_bound_watts(hosts: &[HostType], demand: f64) -> f64 {
    let mut order: Vec<&HostType> = hosts.iter().collect();
    order.sort_by(|a, b| a.watts_per_mips().total_cmp(&b.watts_per_mips()));
    let (mut left, mut watts) = (demand, 0.0);
    for (i, t) in order.iter().enumerate() {
        if left <= 1e-9 {
            break;
        }
        if left >= t.mips() {
            watts += t.power(1.0);
            left -= t.mips();
        } else {
            let partial = order[i..].iter().filter(|t| t.mips() >= left).map(|t| t.power(left / t.mips())).fold(f64::INFINITY, f64::min);
            watts += partial.min(t.power(1.0));
            left = 0.0;
        }
    }
    watts
}

