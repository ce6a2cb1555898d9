//! What the time-stepped datacenter knows at one instant: each VM's host,
//! current request and utilisation history, migrations in flight, and each
//! host's load, power and SLA state, counted the way CloudSim 3.0.3's
//! power package counts them:
//! - a VM being created asks for its full MIPS and RAM; afterwards it asks
//!   for utilisation × MIPS, and (PlanetLab's null RAM model) holds the RAM
//!   it was created with, while a VM migrated in holds none unless RAM is
//!   enforced;
//! - a migrating VM runs at 90 % of its request on the source (the rest is
//!   the migration's performance degradation, PDM) and costs the
//!   destination 10 % of its request until it arrives;
//! - a host whose VMs ask for more than it has scales them down in
//!   proportion; time spent so is SLA violation time (SLATAH).

use std::collections::VecDeque;

use crate::model::{HostType, VmSpec};

/// How many utilisation samples each VM keeps (CloudSim's `HISTORY_LENGTH`).
pub const HISTORY: usize = 30;

#[derive(Clone, Debug)]
pub struct Vm {
    pub spec: VmSpec,
    /// Host it runs on (the source, while migrating).
    pub host: Option<usize>,
    /// Destination of the migration in flight.
    pub target: Option<usize>,
    /// MIPS it asks for now.
    pub requested: f64,
    /// Utilisation samples, newest first.
    pub history: VecDeque<f64>,
    /// RAM the VM holds on its host.
    pub held_ram: u64,
    /// False once it left (trace ended, or CloudSim's completion rule).
    pub alive: bool,
    /// Energy attributed to it over the last interval and over its life,
    /// microjoules (its host's energy split by the VMs' requests).
    pub attributed_last_uj: u64,
    pub attributed_uj: u64,
    /// Created and not yet measured: the scheduler holds its full MIPS
    /// while its request reads zero (CloudSim before the first update).
    pub fresh: bool,
}

impl Vm {
    /// What it asks for (zero until first measured).
    pub fn request(&self) -> f64 {
        if self.fresh { 0.0 } else { self.requested }
    }

    /// What the scheduler holds for it (its full MIPS until first measured).
    pub fn scheduled(&self) -> f64 {
        if self.fresh { self.spec.mips } else { self.requested }
    }

    pub fn migrating(&self) -> bool {
        self.target.is_some()
    }
}

/// Hosts, VMs and migrations in flight.
#[derive(Clone, Debug)]
pub struct State {
    pub hosts: Vec<HostType>,
    pub vms: Vec<Vm>,
    /// VMs running on each host (including those migrating out).
    pub resident: Vec<Vec<usize>>,
    /// VMs migrating in to each host.
    pub incoming: Vec<Vec<usize>>,
    /// Each host's utilisation at the last update (what CloudSim's
    /// `getPower()` sees until the next one).
    pub measured: Vec<f64>,
    pub enforce_ram: bool,
    /// Bandwidth a migration gets, MB/s (CloudSim: half of 1 Gbit/s).
    pub migration_mb_s: f64,
}

impl State {
    pub fn new(hosts: Vec<HostType>, vms: Vec<VmSpec>, enforce_ram: bool) -> State {
        let n = hosts.len();
        let vms = vms
            .into_iter()
            .map(|spec| Vm { requested: spec.mips, spec, host: None, target: None, history: VecDeque::new(), held_ram: 0, alive: false, fresh: false, attributed_last_uj: 0, attributed_uj: 0 })
            .collect();
        State { hosts, vms, resident: vec![Vec::new(); n], incoming: vec![Vec::new(); n], measured: vec![0.0; n], enforce_ram, migration_mb_s: 1_000_000.0 / 16_000.0 }
    }

    /// Seconds to migrate VM `v` (its RAM over the migration bandwidth).
    pub fn migration_s(&self, v: usize) -> f64 {
        self.vms[v].spec.ram_mb as f64 / self.migration_mb_s
    }

    /// MIPS the host's VMs ask for, migrating-in VMs at their full request.
    pub fn requested(&self, h: usize) -> f64 {
        self.resident[h].iter().chain(&self.incoming[h]).map(|v| self.vms[*v].request()).sum()
    }

    /// MIPS the host's scheduler must find: migrating-in VMs cost 10 %.
    pub fn scheduled(&self, h: usize) -> f64 {
        self.resident[h].iter().map(|v| self.vms[*v].scheduled()).sum::<f64>() + 0.1 * self.incoming[h].iter().map(|v| self.vms[*v].scheduled()).sum::<f64>()
    }

    /// Utilisation the host runs at (0..=1).
    pub fn utilisation(&self, h: usize) -> f64 {
        let cap = self.hosts[h].mips();
        self.scheduled(h).min(cap) / cap
    }

    /// Whether the host gives its VMs less than they ask for.
    pub fn oversubscribed(&self, h: usize) -> bool {
        self.scheduled(h) > self.hosts[h].mips() + 1e-9
    }

    pub fn ram_used(&self, h: usize) -> u64 {
        self.resident[h].iter().chain(&self.incoming[h]).map(|v| self.vms[*v].held_ram).sum()
    }

    /// Starts a VM on `h`, asking for its full MIPS and RAM.
    pub fn create(&mut self, v: usize, h: usize) {
        let vm = &mut self.vms[v];
        vm.alive = true;
        vm.host = Some(h);
        vm.requested = vm.spec.mips;
        vm.fresh = true;
        vm.held_ram = vm.spec.ram_mb;
        self.resident[h].push(v);
    }

    /// Takes a VM out of the datacenter (it finished or left).
    pub fn destroy(&mut self, v: usize) {
        if let Some(t) = self.vms[v].target.take() {
            self.incoming[t].retain(|x| *x != v);
        }
        if let Some(h) = self.vms[v].host.take() {
            self.resident[h].retain(|x| *x != v);
        }
        self.vms[v].alive = false;
    }

    pub fn start_migration(&mut self, v: usize, to: usize) {
        self.vms[v].target = Some(to);
        self.vms[v].held_ram = if self.enforce_ram { self.vms[v].spec.ram_mb } else { 0 };
        self.incoming[to].push(v);
    }

    /// Lands VM `v`'s migration on its destination.
    pub fn land(&mut self, v: usize) {
        let Some(to) = self.vms[v].target.take() else { return };
        self.incoming[to].retain(|x| *x != v);
        if let Some(src) = self.vms[v].host {
            self.resident[src].retain(|x| *x != v);
        }
        self.vms[v].host = Some(to);
        self.resident[to].push(v);
    }

    /// Sets VM `v`'s request from its utilisation and records the sample.
    pub fn observe(&mut self, v: usize, utilisation: f64) {
        let vm = &mut self.vms[v];
        let u = utilisation.clamp(0.0, 1.0);
        vm.requested = u * vm.spec.mips;
        vm.fresh = false;
        vm.history.push_front(u);
        vm.history.truncate(HISTORY);
    }

    /// Sets VM `v`'s request between samples (no history entry).
    pub fn request(&mut self, v: usize, utilisation: f64) {
        let vm = &mut self.vms[v];
        vm.requested = utilisation.clamp(0.0, 1.0) * vm.spec.mips;
        vm.fresh = false;
    }

    /// The host's utilisation history (newest first) as CloudSim builds it:
    /// its VMs' histories weighted by their MIPS, ending where they run out.
    pub fn host_history(&self, h: usize) -> Vec<f64> {
        let mut sum = [0.0; HISTORY];
        for v in self.resident[h].iter().chain(&self.incoming[h]) {
            add_history(&mut sum, &self.vms[*v], self.hosts[h].mips(), 1.0);
        }
        trim_zero_tail(&sum)
    }

    pub fn active_hosts(&self) -> usize {
        (0..self.hosts.len()).filter(|h| self.utilisation(*h) > 0.0).count()
    }
}

/// Adds `sign` × VM `vm`'s history, weighted by its share of `host_mips`.
pub fn add_history(sum: &mut [f64; HISTORY], vm: &Vm, host_mips: f64, sign: f64) {
    for (i, u) in vm.history.iter().enumerate() {
        sum[i] += sign * u * vm.spec.mips / host_mips;
    }
}

pub fn trim_zero_tail(sum: &[f64]) -> Vec<f64> {
    let end = sum.iter().rposition(|x| *x > 1e-12).map_or(0, |i| i + 1);
    sum[..end].to_vec()
}
