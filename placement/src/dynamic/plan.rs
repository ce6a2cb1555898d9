//! A tentative reallocation over a [`State`]: VMs taken off hosts and put on
//! others while a policy decides, without touching the state (CloudSim's
//! `saveAllocation`/`vmCreate`/`vmDestroy`/`restoreAllocation` dance). Per
//! host sums are kept up to date so each question a policy asks of a host
//! costs O(1), or O(history) for the history.

use super::state::{HISTORY, State, add_history, trim_zero_tail};

#[derive(Clone)]
pub struct Plan<'a> {
    pub st: &'a State,
    /// Σ request of each host's VM list (migrating-in at full).
    listed: Vec<f64>,
    /// Σ the scheduler holds on each host (migrating-in at 10 %).
    sched: Vec<f64>,
    ram: Vec<u64>,
    hist: Vec<[f64; HISTORY]>,
    removed: Vec<bool>,
    added: Vec<Vec<usize>>,
    /// Largest RAM on each host's list, for LR's migration-time horizon.
    max_ram: Vec<u64>,
}

impl<'a> Plan<'a> {
    pub fn new(st: &'a State) -> Plan<'a> {
        let n = st.hosts.len();
        let mut p = Plan { st, listed: vec![0.0; n], sched: vec![0.0; n], ram: vec![0; n], hist: vec![[0.0; HISTORY]; n], removed: vec![false; st.vms.len()], added: vec![Vec::new(); n], max_ram: vec![0; n] };
        for h in 0..n {
            p.listed[h] = st.requested(h);
            p.sched[h] = st.scheduled(h);
            p.ram[h] = st.ram_used(h);
            for v in st.resident[h].iter().chain(&st.incoming[h]) {
                add_history(&mut p.hist[h], &st.vms[*v], st.hosts[h].mips(), 1.0);
                p.max_ram[h] = p.max_ram[h].max(st.vms[*v].spec.ram_mb);
            }
        }
        p
    }

    pub fn hosts(&self) -> usize {
        self.st.hosts.len()
    }

    fn cap(&self, h: usize) -> f64 {
        self.st.hosts[h].mips()
    }

    /// Requested MIPS on the host's list over its capacity (THR's measure).
    pub fn requested_share(&self, h: usize) -> f64 {
        self.listed[h] / self.cap(h)
    }

    /// The host's MIPS in use as CloudSim's policies count it (a migrating-in
    /// VM at its full request).
    pub fn used_mips(&self, h: usize) -> f64 {
        let incoming: f64 = self.st.incoming[h].iter().map(|v| self.st.vms[*v].scheduled()).sum();
        (self.sched[h] + 0.9 * incoming).min(self.cap(h))
    }

    /// Whether VM `v` fits on host `h` now: its request within a core and
    /// within what the scheduler has free; RAM when it must be held.
    pub fn suitable(&self, h: usize, v: usize) -> bool {
        let (vm, t) = (&self.st.vms[v], &self.st.hosts[h]);
        let need = vm.scheduled();
        let ram = if self.st.enforce_ram || !vm.alive { vm.spec.ram_mb } else { 0 };
        need <= t.mips_per_core as f64 + 1e-9 && self.sched[h] + need <= t.mips() + 1e-9 && self.ram[h] + ram <= t.ram_mb
    }

    /// The host's utilisation history (newest first).
    pub fn history(&self, h: usize) -> Vec<f64> {
        trim_zero_tail(&self.hist[h])
    }

    /// The host's history with VM `v` added.
    pub fn history_with(&self, h: usize, v: usize) -> Vec<f64> {
        let mut sum = self.hist[h];
        add_history(&mut sum, &self.st.vms[v], self.cap(h), 1.0);
        trim_zero_tail(&sum)
    }

    pub fn max_ram(&self, h: usize) -> u64 {
        self.max_ram[h]
    }

    /// Puts VM `v` on host `h` tentatively, at its current request.
    pub fn add(&mut self, h: usize, v: usize) {
        let vm = &self.st.vms[v];
        let ram = if self.st.enforce_ram || !vm.alive { vm.spec.ram_mb } else { 0 };
        // A VM being created holds its full MIPS but asks for nothing until
        // its first update (CloudSim's PlanetLab VMs before their cloudlet).
        self.listed[h] += if vm.alive { vm.request() } else { 0.0 };
        self.sched[h] += vm.scheduled();
        self.ram[h] += ram;
        let cap = self.cap(h);
        add_history(&mut self.hist[h], vm, cap, 1.0);
        self.max_ram[h] = self.max_ram[h].max(vm.spec.ram_mb);
        self.added[h].push(v);
    }

    /// Takes VM `v` off its host tentatively.
    pub fn remove(&mut self, v: usize) {
        let vm = &self.st.vms[v];
        let Some(h) = vm.host else { return };
        if self.removed[v] {
            return;
        }
        self.removed[v] = true;
        self.listed[h] -= vm.request();
        self.sched[h] -= vm.scheduled();
        self.ram[h] = self.ram[h].saturating_sub(vm.held_ram);
        let cap = self.cap(h);
        add_history(&mut self.hist[h], vm, cap, -1.0);
    }

    pub fn undo_add(&mut self, h: usize, v: usize) {
        let vm = &self.st.vms[v];
        let ram = if self.st.enforce_ram || !vm.alive { vm.spec.ram_mb } else { 0 };
        self.listed[h] -= if vm.alive { vm.request() } else { 0.0 };
        self.sched[h] -= vm.scheduled();
        self.ram[h] = self.ram[h].saturating_sub(ram);
        let cap = self.cap(h);
        add_history(&mut self.hist[h], vm, cap, -1.0);
        self.added[h].retain(|x| *x != v);
    }

    /// VMs on host `h` that may be moved now: resident, not migrating, not
    /// already taken off.
    pub fn migratable(&self, h: usize) -> Vec<usize> {
        self.st.resident[h].iter().copied().filter(|v| !self.removed[*v] && !self.st.vms[*v].migrating()).collect()
    }

    /// Whether anything is left on the host's list.
    pub fn has_vms(&self, h: usize) -> bool {
        self.st.resident[h].iter().any(|v| !self.removed[*v]) || !self.st.incoming[h].is_empty() || !self.added[h].is_empty()
    }
}
