//! The simulated host: a digital twin that produces the same
//! [`IntervalRecord`]s as the agent on a real hypervisor, plus the ground
//! truth that real hosts cannot give — each VM's true dynamic energy per
//! domain and the host's idle energy — so attribution can be scored.
//!
//! # Model (one interval of length Δ)
//!
//! 1. Each active VM `i` wants `u_i` of its
//!    `n_i` vCPUs ([`workload`] gives the per-class processes). When the host
//!    is oversubscribed every VM gets the same share `c = min(1, N·Δ / Σ u_i n_i Δ)`
//!    of what it wants (`N` = logical CPUs); busy vCPU time `b_i = c·u_i·n_i·Δ`.
//! 2. Features as the real collector reads them: QEMU process CPU time
//!    `t_i = 1.015·b_i + 0.5 µs per 4 KiB of disk IO`, cgroup CPU time
//!    `t_i + 0.002·b_i + 0.3 µs per 4 KiB`, task-clock `= t_i`, hardware
//!    counters from `t_i` ([`workload`]), RSS, IO bytes, GPU utilisation.
//! 3. Activity energies `A_i = (A_core, A_uncore, A_dram)` from the counters,
//!    IO bytes and the hidden class factors ([`workload`]).
//! 4. Scaling to the server's power curve `W(u)` ([`power`]): host
//!    utilisation `U = Σ cgroup CPU time / (N·Δ)`, `U_e = max(U, 0.01)`,
//!    `R` = activity watts of one busy thread of nominal batch,
//!    `κ = rapl_dyn · (W(U_e) − W(0)) / (U_e · N · R)`, lowered when needed so
//!    that `κ·Σ A_i ≤ rapl_dyn · (W(1) − W(0))·Δ` (the platform's power cap).
//!    A host full of nominal batch therefore follows the SPECpower curve,
//!    other mixes sit below it, and wall power stays within `[W(0), W(1)]`.
//! 5. Truth (`VmTruth`), integer µJ, with `S` sockets (VMs are not pinned, so
//!    the scheduler spreads each one evenly; socket 0 takes the remainder):
//!    `core-s_i = ⌊κ·A_core·10⁶⌋ / S`, `uncore-s_i` likewise,
//!    `package-s_i = core-s_i + uncore-s_i`, `dram-s_i` from `A_dram`, and
//!    `gpu-g_i = ⌊(P_max − P_idle)·(0.7·sm + 0.3·mem)·Δ·10⁶⌋` from the VM's
//!    reported integer utilisation of device `g`.
//! 6. Idle truth (`HostTruth`) per domain: `⌊P_idle,d·Δ·10⁶⌋`, where the
//!    package's is exactly its core's plus its uncore's.
//! 7. What the meter is given, per domain `d`:
//!    `E_d = idle_d + Σ_i dyn_d,i + n_d`, `n_d = round(ε·(idle_d + Σ_i dyn_d,i))`,
//!    `ε ~ N(0, noise²)` clipped to ±3·noise, independent per domain and
//!    interval, GPUs included (`n_d = 0` when `noise` is 0). `E_d` goes into simulated
//!    RAPL/NVML counters ([`counters`]) and reaches the record through
//!    [`crate::energy::Meter`], like a real host's.
//!
//! The class is hidden from attribution: records name it only inside
//! `VmTruth`, which is for scoring and must never be a model input.
//!
//! # The identity tests rely on
//!
//! For every counter domain (package, core, uncore, DRAM, GPUs with an energy
//! counter) and every interval, exactly in µJ, even across counter wraps:
//!
//! ```text
//! record.domains[d] = truth.idle_uj[d] + Σ_vm vm.truth.energy_uj[d] + n_d
//! ```
//!
//! so with `noise = 0` measured energy equals idle plus VM truth bit for bit.
//! NVML counts whole millijoules, so a GPU's idle truth absorbs the
//! sub-millijoule remainder of each interval (|·| < 1 mJ, telescoping to
//! < 1 mJ over any run). GPUs without an energy counter are metered by the
//! trapezoid rule over interval-average power readings (status
//! `Integrated`); for them the identity holds only over whole runs, within
//! half an interval of the GPU's dynamic range.
//!
//! Counter moduli smaller than two intervals of the server's maximum power
//! cannot be decoded; [`SimHostConfig::validate`] rejects them and
//! [`SimHost::new`] raises them to [`SimHostConfig::min_counter_modulus_uj`].

pub mod counters;
mod host;
pub mod power;
mod rng;
mod scenario;
mod step;
pub mod workload;

use std::collections::BTreeSet;
use std::path::PathBuf;

use fairwatt_core::{HostId, IntervalRecord, Micros, Timestamp, VmInfo};

use crate::error::{Error, Result};

pub use counters::{CounterKind, POWERCAP_RANGE_UJ, SimCounters, SimEnergySource};
pub use host::{HostPower, SimHost};
pub use power::{GpuModel, PowerSplit, ServerModel};
pub use scenario::{Scenario, scenario, scenario_names};
pub use workload::{ParseClassError, WorkloadClass};

/// One VM of a simulated host and when it lives there.
#[derive(Clone, Debug, PartialEq)]
pub struct SimVmSpec {
    pub info: VmInfo,
    pub class: WorkloadClass,
    /// Seconds after the host's start when the VM appears (from the next interval boundary on).
    pub arrive_at_s: u64,
    /// Seconds after the start when it leaves; `None` for never.
    pub depart_at_s: Option<u64>,
}

/// Everything that defines a simulated host except the seed.
#[derive(Clone, Debug, PartialEq)]
pub struct SimHostConfig {
    pub host: HostId,
    pub server: ServerModel,
    pub gpus: Vec<GpuModel>,
    pub vms: Vec<SimVmSpec>,
    pub interval: Micros,
    /// Relative sensor noise (standard deviation), 0 for none; at most 0.2.
    pub noise: f64,
    /// RAPL counter modulus in µJ; `None` is powercap's [`POWERCAP_RANGE_UJ`].
    pub counter_modulus_uj: Option<u64>,
    /// False: the PMU is unavailable, records carry software task-clock only.
    pub hardware_perf: bool,
    pub start: Timestamp,
    /// Scenario name, for the trace header.
    pub scenario: Option<String>,
}

/// Shortest interval the simulator accepts.
pub const MIN_INTERVAL: Micros = Micros::from_millis(10);

impl SimHostConfig {
    /// A host with no VMs: 1 s interval, no noise, powercap counters, hardware perf.
    pub fn new(host: HostId, server: ServerModel, start: Timestamp) -> Self {
        SimHostConfig {
            host,
            server,
            gpus: Vec::new(),
            vms: Vec::new(),
            interval: Micros::from_secs(1),
            noise: 0.0,
            counter_modulus_uj: None,
            hardware_perf: true,
            start,
            scenario: None,
        }
    }

    /// The smallest RAPL modulus whose wraps stay decodable at this interval:
    /// two intervals of the server's maximum power with 3σ of noise on top.
    pub fn min_counter_modulus_uj(&self) -> u64 {
        let max_w = self.server.watts.iter().copied().filter(|w| w.is_finite()).fold(0.0, f64::max);
        let noise = if self.noise.is_finite() { self.noise.clamp(0.0, 0.2) } else { 0.0 };
        let uj = 2.0 * max_w * (1.0 + 3.0 * noise) * self.interval.as_secs_f64() * 1e6;
        (uj.ceil() as u64).max(1_000_000)
    }

    /// Checks what [`SimHost::new`] would otherwise silently repair.
    pub fn validate(&self) -> Result<()> {
        let err = |msg: String| Err(Error::Config { path: PathBuf::from(format!("simulated host {}", self.host)), msg });
        if self.interval < MIN_INTERVAL {
            return err(format!("interval {} is shorter than the minimum {MIN_INTERVAL}", self.interval));
        }
        if !(self.noise.is_finite() && (0.0..=0.2).contains(&self.noise)) {
            return err(format!("noise {} must be a relative standard deviation between 0 and 0.2", self.noise));
        }
        let s = &self.server;
        if s.sockets == 0 || s.threads == 0 || !(s.ghz.is_finite() && s.ghz > 0.0) {
            return err(format!("server {:?} needs at least one socket, one thread and a positive clock", s.name));
        }
        if s.watts.iter().any(|w| !w.is_finite() || *w < 0.0) || s.watts[10] < s.watts[0] {
            return err(format!("server {:?} has a power curve that is not finite, non-negative and rising", s.name));
        }
        let m = self.counter_modulus_uj.unwrap_or(POWERCAP_RANGE_UJ);
        if m < self.min_counter_modulus_uj() {
            return err(format!(
                "counter modulus {m} µJ is below {} µJ, two intervals at the server's maximum power: wraps could not be told apart",
                self.min_counter_modulus_uj()
            ));
        }
        let mut seen = BTreeSet::new();
        for vm in &self.vms {
            if !seen.insert(&vm.info.id) {
                return err(format!("VM {} is listed twice", vm.info.id));
            }
            if vm.depart_at_s.is_some_and(|d| d <= vm.arrive_at_s) {
                return err(format!("VM {} departs before it arrives", vm.info.id));
            }
        }
        Ok(())
    }

    /// Repairs what [`validate`](Self::validate) rejects, so [`SimHost::new`] cannot fail.
    fn sanitized(mut self) -> Self {
        self.interval = self.interval.max(MIN_INTERVAL);
        self.noise = if self.noise.is_finite() { self.noise.clamp(0.0, 0.2) } else { 0.0 };
        let s = &mut self.server;
        s.sockets = s.sockets.max(1);
        s.threads = s.threads.max(s.sockets);
        if !(s.ghz.is_finite() && s.ghz > 0.0) {
            s.ghz = 2.0;
        }
        for w in &mut s.watts {
            if !w.is_finite() || *w < 0.0 {
                *w = 0.0;
            }
        }
        let m = self.counter_modulus_uj.unwrap_or(POWERCAP_RANGE_UJ);
        if m < self.min_counter_modulus_uj() {
            self.counter_modulus_uj = Some(self.min_counter_modulus_uj());
        }
        let mut seen = BTreeSet::new();
        self.vms.retain(|v| seen.insert(v.info.id.clone()));
        self
    }
}

/// Runs `host` for `steps` intervals; a convenience for tests and tools.
pub fn run(host: &mut SimHost, steps: u64) -> Vec<IntervalRecord> {
    (0..steps).map(|_| host.step()).collect()
}
