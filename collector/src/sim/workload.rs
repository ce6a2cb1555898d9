//! Workload classes: how much a VM wants to run, what its CPU counters look
//! like while it runs, and how much energy those events cost.
//!
//! Demand (fraction `u` of the VM's vCPUs it keeps busy) per class, with
//! `d(h) = ½ − ½·cos(2π(h − 3)/24)` a diurnal wave (low at 03:00 UTC, high at
//! 15:00) and `x` an AR(1) deviation, `x ← ρx + σ√(1−ρ²)·z`, `ρ = e^(−Δ/300 s)`:
//!
//! | class | demand | GPU |
//! |---|---|---|
//! | batch | jobs (mean 40 min) at `0.97 + 0.02j`, gaps (mean 2 min) at 0.02 | — |
//! | database | `0.15 + 0.45·d + x`, σ = 0.08 | — |
//! | web | `0.04 + 0.10·d + x` (σ = 0.02) plus bursts: arrivals at rate `(0.5 + d)/120 s`, mean 15 s long, level U(0.3, 0.9) | — |
//! | ai | training (mean 25 min) at `0.35 + x`, eval/checkpoint (mean 90 s) at 0.6 | train: SM `0.90 + 0.04j`, mem `0.55 + 0.05j`; checkpoint: SM 0.15, mem 0.10 |
//!
//! `z` is an AR innovation (Gaussian); `j` below and in the table's other
//! terms is unit-variance triangular jitter. Disk IO is the class's bytes per
//! busy vCPU-second times `1 + 0.3j` (web `0.2j`); AI checkpoints add 400 MB/s
//! of writes.
//!
//! Counters per interval, from the process's CPU time `t` (s) at clock `f`:
//!
//! ```text
//! cycles       C = t · f · F_class · (1 + 0.01j)
//! instructions I = C · IPC_class · g_vm · (1 + 0.05j)
//! LLC refs     R = I · r_class · h_vm · (1 + 0.05j) / 1000
//! LLC misses   M = R · m_class · k_vm · (1 + 0.05j)          (≤ R)
//! ```
//!
//! with `g, h, k ~ U(0.85, 1.15)` fixed per VM (different applications in the
//! same class). Activity energy in joules at nominal efficiency:
//!
//! ```text
//! A_core   = φ_class · (0.50 nJ·C + 0.35 nJ·I)
//! A_uncore = 2 nJ·R + 8 nJ·M + 0.5 nJ/B·IO
//! A_dram   = ψ_class · 15 nJ·M + 1 nJ/B·IO
//! ```
//!
//! `φ` (batch 1.2 for wide-vector units, web 1.1 for C-state wake-ups, else 1)
//! and `ψ` (database 1.6 for prefetch and dirty write-backs the miss counter
//! does not show, ai 1.3, else 1) are hidden per class: they are why energy
//! is not one feature times a constant, and why a model that knows the class
//! (or learns it from the counters' signature) beats one that does not.

use std::fmt;
use std::str::FromStr;

use super::rng::Rng;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WorkloadClass {
    /// GPU training/inference: high SM utilisation, moderate CPU feeding it.
    Ai,
    /// Memory and IO bound: low IPC, many LLC misses, heavy DRAM traffic.
    Database,
    /// Light and bursty.
    Web,
    /// CPU bound: high IPC, its vCPUs busy most of the time.
    Batch,
}

impl WorkloadClass {
    pub const ALL: [WorkloadClass; 4] = [WorkloadClass::Ai, WorkloadClass::Database, WorkloadClass::Web, WorkloadClass::Batch];

    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadClass::Ai => "ai",
            WorkloadClass::Database => "database",
            WorkloadClass::Web => "web",
            WorkloadClass::Batch => "batch",
        }
    }

    pub(crate) fn profile(self) -> &'static Profile {
        match self {
            WorkloadClass::Ai => &AI,
            WorkloadClass::Database => &DATABASE,
            WorkloadClass::Web => &WEB,
            WorkloadClass::Batch => &BATCH,
        }
    }
}

impl fmt::Display for WorkloadClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown workload class {0:?}: expected one of ai, database, web, batch")]
pub struct ParseClassError(pub String);

impl FromStr for WorkloadClass {
    type Err = ParseClassError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        WorkloadClass::ALL.into_iter().find(|c| c.as_str() == s).ok_or_else(|| ParseClassError(s.to_string()))
    }
}

/// Per-class constants of the counter and energy model (see the module doc).
#[derive(Debug)]
pub(crate) struct Profile {
    ipc: f64,
    refs_per_kinst: f64,
    miss_ratio: f64,
    /// Effective clock relative to nominal (AVX frequency offset).
    freq: f64,
    /// φ: hidden core energy factor.
    core: f64,
    /// ψ: hidden DRAM traffic per counted miss.
    dram: f64,
    /// Disk bytes per busy vCPU-second.
    io_read: f64,
    io_write: f64,
    /// Resident share of the VM's memory once warmed up.
    pub rss: f64,
}

const BATCH: Profile =
    Profile { ipc: 2.2, refs_per_kinst: 4.0, miss_ratio: 0.08, freq: 0.92, core: 1.2, dram: 1.0, io_read: 1e6, io_write: 1e6, rss: 0.5 };
const DATABASE: Profile =
    Profile { ipc: 0.6, refs_per_kinst: 40.0, miss_ratio: 0.55, freq: 1.0, core: 1.0, dram: 1.6, io_read: 15e6, io_write: 6e6, rss: 0.85 };
const WEB: Profile =
    Profile { ipc: 1.1, refs_per_kinst: 12.0, miss_ratio: 0.25, freq: 1.0, core: 1.1, dram: 1.0, io_read: 0.5e6, io_write: 0.3e6, rss: 0.3 };
const AI: Profile =
    Profile { ipc: 1.4, refs_per_kinst: 10.0, miss_ratio: 0.35, freq: 1.0, core: 1.0, dram: 1.3, io_read: 10e6, io_write: 0.2e6, rss: 0.7 };

// Energy per event at nominal efficiency, joules (module doc).
const E_CYCLE: f64 = 0.50e-9;
const E_INST: f64 = 0.35e-9;
const E_REF: f64 = 2e-9;
const E_MISS: f64 = 8e-9;
const E_DRAM_MISS: f64 = 15e-9;
const E_IO_UNCORE: f64 = 0.5e-9;
const E_IO_DRAM: f64 = 1e-9;

/// Per-step inputs shared by all VMs of a host.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepCtx {
    pub dt_s: f64,
    /// Hour of day (UTC), fractional.
    pub hour: f64,
    /// AR(1) coefficient for this interval length, and `√(1−ρ²)`.
    pub rho: f64,
    pub innov: f64,
}

impl StepCtx {
    pub fn new(dt_s: f64) -> Self {
        let rho = (-dt_s / 300.0).exp();
        StepCtx { dt_s, hour: 0.0, rho, innov: (1.0 - rho * rho).max(0.0).sqrt() }
    }

    fn diurnal(&self) -> f64 {
        0.5 - 0.5 * (std::f64::consts::TAU * (self.hour - 3.0) / 24.0).cos()
    }
}

/// What a VM wants this interval, before the host's CPU contention.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Demand {
    pub cpu: f64,
    pub gpu_sm: f64,
    pub gpu_mem: f64,
    /// Multiplies the class's IO rate (cache hit ratio swings, request mix).
    pub io_factor: f64,
    /// Bytes written on top of the CPU-driven rate (checkpoints).
    pub extra_write: f64,
}

/// Hardware events of one interval.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Counts {
    pub cycles: f64,
    pub instructions: f64,
    pub refs: f64,
    pub misses: f64,
}

/// One VM's workload process and its private random stream.
#[derive(Clone, Debug)]
pub(crate) struct VmWorkload {
    pub class: WorkloadClass,
    rng: Rng,
    ipc_f: f64,
    refs_f: f64,
    miss_f: f64,
    pub gpu_mem_frac: f64,
    ar: f64,
    /// Batch: in a job; web: in a burst; ai: training (not checkpointing).
    on: bool,
    remaining_s: f64,
    level: f64,
}

impl VmWorkload {
    pub fn new(class: WorkloadClass, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        let ipc_f = rng.range(0.85, 1.15);
        let refs_f = rng.range(0.85, 1.15);
        let miss_f = rng.range(0.85, 1.15);
        let gpu_mem_frac = rng.range(0.6, 0.95);
        // Start mid-phase so hosts do not begin in lockstep.
        let remaining_s = match class {
            WorkloadClass::Batch => rng.exponential(2400.0),
            WorkloadClass::Ai => rng.exponential(1500.0),
            // Web counts down only inside a burst; the others have no phases.
            _ => 0.0,
        };
        let on = class != WorkloadClass::Web;
        VmWorkload { class, rng, ipc_f, refs_f, miss_f, gpu_mem_frac, ar: 0.0, on, remaining_s, level: 0.0 }
    }

    fn step_ar(&mut self, ctx: &StepCtx, sigma: f64) -> f64 {
        self.ar = ctx.rho * self.ar + sigma * ctx.innov * self.rng.normal();
        self.ar
    }

    /// Alternating on/off phases with exponential lengths; returns the share of the interval spent on.
    fn phases(&mut self, ctx: &StepCtx, on_mean: f64, off_mean: f64) -> f64 {
        let mut left = ctx.dt_s;
        let mut on_time = 0.0;
        // Bounded: an interval rarely spans more than a few phases.
        for _ in 0..64 {
            if left <= 0.0 {
                break;
            }
            let take = self.remaining_s.min(left);
            if self.on {
                on_time += take;
            }
            left -= take;
            self.remaining_s -= take;
            if self.remaining_s <= 0.0 {
                self.on = !self.on;
                self.remaining_s = self.rng.exponential(if self.on { on_mean } else { off_mean }).max(1e-3);
            }
        }
        (on_time / ctx.dt_s).clamp(0.0, 1.0)
    }

    pub fn demand(&mut self, ctx: &StepCtx) -> Demand {
        let d = ctx.diurnal();
        let mut out = Demand { io_factor: 1.0, ..Demand::default() };
        match self.class {
            WorkloadClass::Batch => {
                let on = self.phases(ctx, 2400.0, 120.0);
                out.cpu = on * (0.97 + 0.02 * self.rng.jitter()) + (1.0 - on) * 0.02;
                out.io_factor = (1.0 + 0.3 * self.rng.jitter()).clamp(0.3, 2.0);
            }
            WorkloadClass::Database => {
                let x = self.step_ar(ctx, 0.08);
                out.cpu = 0.15 + 0.45 * d + x;
                out.io_factor = (1.0 + 0.3 * self.rng.jitter()).clamp(0.3, 2.0);
            }
            WorkloadClass::Web => {
                let x = self.step_ar(ctx, 0.02);
                if !self.on {
                    // Poisson arrivals: a burst starts within this interval.
                    let rate = (0.5 + d) / 120.0;
                    if self.rng.chance(1.0 - (-rate * ctx.dt_s).exp()) {
                        self.on = true;
                        self.remaining_s = self.rng.exponential(15.0).max(1e-3);
                        self.level = self.rng.range(0.3, 0.9);
                    }
                }
                let mut burst = 0.0;
                if self.on {
                    let take = self.remaining_s.min(ctx.dt_s);
                    burst = take / ctx.dt_s;
                    self.remaining_s -= take;
                    if self.remaining_s <= 0.0 {
                        self.on = false;
                        self.remaining_s = 0.0;
                    }
                }
                out.cpu = 0.04 + 0.10 * d + x + burst * self.level;
                out.io_factor = (1.0 + 0.2 * self.rng.jitter()).clamp(0.3, 2.0);
            }
            WorkloadClass::Ai => {
                let x = self.step_ar(ctx, 0.05);
                let train = self.phases(ctx, 1500.0, 90.0);
                out.cpu = train * (0.35 + x) + (1.0 - train) * 0.6;
                let sm = (0.90 + 0.04 * self.rng.jitter()).clamp(0.0, 1.0);
                let mem = (0.55 + 0.05 * self.rng.jitter()).clamp(0.0, 1.0);
                out.io_factor = (1.0 + 0.3 * self.rng.jitter()).clamp(0.3, 2.0);
                out.gpu_sm = train * sm + (1.0 - train) * 0.15;
                out.gpu_mem = train * mem + (1.0 - train) * 0.10;
                out.extra_write = (1.0 - train) * 400e6 * ctx.dt_s;
            }
        }
        out.cpu = out.cpu.clamp(0.0, 1.0);
        out
    }

    /// Counters for `cpu_s` seconds of CPU time at `ghz`.
    pub fn counts(&mut self, cpu_s: f64, ghz: f64) -> Counts {
        let p = self.class.profile();
        let cycles = cpu_s * ghz * 1e9 * p.freq * (1.0 + 0.01 * self.rng.jitter()).max(0.0);
        let instructions = cycles * p.ipc * self.ipc_f * (1.0 + 0.05 * self.rng.jitter()).max(0.0);
        let refs = instructions * p.refs_per_kinst * self.refs_f * (1.0 + 0.05 * self.rng.jitter()).max(0.0) / 1000.0;
        let misses = (refs * p.miss_ratio * self.miss_f * (1.0 + 0.05 * self.rng.jitter()).max(0.0)).min(refs);
        Counts { cycles, instructions, refs, misses }
    }

    /// Disk bytes (read, written) for `busy_s` vCPU-seconds.
    pub fn io(&self, busy_s: f64, demand: &Demand) -> (f64, f64) {
        let p = self.class.profile();
        (busy_s * p.io_read * demand.io_factor, busy_s * p.io_write * demand.io_factor + demand.extra_write)
    }
}

/// Activity energy (core, uncore, dram) in joules at nominal efficiency.
pub(crate) fn activity(class: WorkloadClass, c: &Counts, io_bytes: f64) -> [f64; 3] {
    let p = class.profile();
    [
        p.core * (E_CYCLE * c.cycles + E_INST * c.instructions),
        E_REF * c.refs + E_MISS * c.misses + E_IO_UNCORE * io_bytes,
        p.dram * E_DRAM_MISS * c.misses + E_IO_DRAM * io_bytes,
    ]
}

/// Activity watts of one busy thread running nominal batch at `ghz`: the
/// reference that the server's power curve is calibrated against.
pub(crate) fn reference_watts(ghz: f64) -> f64 {
    let p = &BATCH;
    let cycles = ghz * 1e9 * p.freq;
    let instructions = cycles * p.ipc;
    let refs = instructions * p.refs_per_kinst / 1000.0;
    let c = Counts { cycles, instructions, refs, misses: refs * p.miss_ratio };
    activity(WorkloadClass::Batch, &c, p.io_read + p.io_write).iter().sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_names_round_trip() {
        for c in WorkloadClass::ALL {
            assert_eq!(c.as_str().parse::<WorkloadClass>().unwrap(), c);
        }
        assert!("gpu".parse::<WorkloadClass>().unwrap_err().to_string().contains("ai, database, web, batch"));
    }

    #[test]
    fn classes_differ_per_cpu_second() {
        let per_cpu_s = |class: WorkloadClass| {
            let mut w = VmWorkload::new(class, 1);
            let c = w.counts(1.0, 2.7);
            activity(class, &c, 0.0)
        };
        let (b, d, web) = (per_cpu_s(WorkloadClass::Batch), per_cpu_s(WorkloadClass::Database), per_cpu_s(WorkloadClass::Web));
        assert!(b[0] + b[1] > 1.3 * (d[0] + d[1]), "batch package {b:?} vs database {d:?}");
        assert!(d[2] > 10.0 * b[2], "database DRAM {d:?} vs batch {b:?}");
        assert!(web[0] < b[0]);
        let r = reference_watts(2.7);
        assert!(r > 3.0 && r < 5.0, "reference {r}");
    }

    #[test]
    fn demand_stays_in_range() {
        for class in WorkloadClass::ALL {
            let mut w = VmWorkload::new(class, 9);
            let mut ctx = StepCtx::new(1.0);
            let mut mean = 0.0;
            for i in 0..20_000 {
                ctx.hour = (i as f64 / 3600.0) % 24.0;
                let d = w.demand(&ctx);
                assert!((0.0..=1.0).contains(&d.cpu) && (0.0..=1.0).contains(&d.gpu_sm), "{class} {d:?}");
                mean += d.cpu / 20_000.0;
            }
            match class {
                WorkloadClass::Batch => assert!(mean > 0.8, "batch mean {mean}"),
                WorkloadClass::Web => assert!(mean < 0.3, "web mean {mean}"),
                _ => assert!(mean > 0.05 && mean < 0.8, "{class} mean {mean}"),
            }
        }
    }
}
