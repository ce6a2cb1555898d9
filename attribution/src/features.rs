//! Model inputs: what each VM did in an interval, as rates per second, per
//! kind of energy domain.
//!
//! - CPU-side domains (package, core, uncore, DRAM, psys) use the hardware
//!   counters when the host has them (`cycles`, `instructions`, LLC
//!   references and misses, disk IO) and CPU time plus disk IO when it does
//!   not ([`FeatureMode`]). DRAM uses the same set: the non-negative fit
//!   gives weight only to what explains its energy (misses, IO).
//! - `gpu-N` uses each VM's SM and memory utilisation of device N.
//!
//! Two hardware-mode features are per-VM shapes, not raw counts: misses
//! weighted by the VM's own miss ratio (`M·M/R`) and instructions weighted
//! by its own IPC (`I·I/C`). Both are still rates that add up over VMs (so
//! the model stays additive and a VM's share is its own term), but they let
//! a linear model charge a memory-bound VM more per miss than a cache-friendly
//! one (prefetch and write-back traffic the miss counter does not show), and
//! a wide-vector, high-IPC VM more per cycle.
//!
//! Records hold unsigned integers, so a feature here is never NaN or
//! negative; a trace whose JSON carries such values is repaired (the value
//! dropped, the VM kept) when it is read, see `fairwatt attribute`.

use serde::{Deserialize, Serialize};

use fairwatt_core::{Domain, DomainKind, IntervalRecord, PerfSource, VmRecord};

/// Most features any domain's model uses.
pub const MAX_FEATURES: usize = 9;

/// The slot of every row that holds the VM's load (CPU seconds per second;
/// a GPU's SM utilisation), outside the model features.
pub const LOAD: usize = 7;

/// The slot a model may fill with the row's workload cluster plus one
/// ([`crate::model::PowerModel::annotate`]); 0 is "not assigned".
pub const CLUSTER: usize = 8;

pub type Row = [f64; MAX_FEATURES];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureMode {
    /// cycles, instructions (10⁹/s), LLC references, misses (10⁶/s), disk IO
    /// (MB/s), misses × miss ratio (10⁶/s), instructions × IPC (10⁹/s).
    Hardware,
    /// CPU seconds per second and disk IO (MB/s).
    Software,
}

impl FeatureMode {
    pub fn names(self) -> &'static [&'static str] {
        match self {
            FeatureMode::Hardware => &["cycles_g", "instructions_g", "llc_refs_m", "llc_misses_m", "io_mb", "miss_weighted_m", "ipc_weighted_g"],
            FeatureMode::Software => &["cpu_s", "io_mb"],
        }
    }

    /// Hardware when every VM that ran reports hardware counters.
    pub fn of(rec: &IntervalRecord) -> FeatureMode {
        let mut any = false;
        for v in rec.vms.iter().filter(|v| v.features.cpu_time_us > 0) {
            if !has_hw(v) {
                return FeatureMode::Software;
            }
            any = true;
        }
        if any { FeatureMode::Hardware } else { FeatureMode::Software }
    }
}

pub const GPU_NAMES: &[&str] = &["sm", "mem"];

/// The feature names a domain kind's model uses under `mode`.
pub fn names(kind: DomainKind, mode: FeatureMode) -> &'static [&'static str] {
    match kind {
        DomainKind::Gpu => GPU_NAMES,
        _ => mode.names(),
    }
}

fn has_hw(v: &VmRecord) -> bool {
    let f = &v.features;
    v.perf == PerfSource::Hardware && f.cycles.is_some() && f.instructions.is_some() && f.cache_references.is_some() && f.cache_misses.is_some()
}

/// Hardware counters per CPU-second, used to stand in for a VM that lacks
/// them on a host whose model needs them (learned at fit time).
pub type HwPerCpuSecond = [f64; 4];

/// Per-second CPU-side features of one VM; `true` when hardware counters were imputed.
pub fn cpu_row(v: &VmRecord, dt_s: f64, mode: FeatureMode, impute: &HwPerCpuSecond) -> (Row, bool) {
    let f = &v.features;
    let rate = |x: u64| x as f64 / dt_s;
    let io = (rate(f.io_read_bytes.unwrap_or(0)) + rate(f.io_write_bytes.unwrap_or(0))) / 1e6;
    let cpu_s = rate(f.cpu_time_us) / 1e6;
    match mode {
        FeatureMode::Software => ([cpu_s, io, 0.0, 0.0, 0.0, 0.0, 0.0, cpu_s, 0.0], false),
        FeatureMode::Hardware if has_hw(v) => {
            let (c, i) = (rate(f.cycles.unwrap_or(0)) / 1e9, rate(f.instructions.unwrap_or(0)) / 1e9);
            let (r, m) = (rate(f.cache_references.unwrap_or(0)) / 1e6, rate(f.cache_misses.unwrap_or(0)) / 1e6);
            (hw_row(c, i, r, m, io, cpu_s), false)
        }
        FeatureMode::Hardware => {
            let imputed = cpu_s > 0.0;
            (hw_row(cpu_s * impute[0], cpu_s * impute[1], cpu_s * impute[2], cpu_s * impute[3], io, cpu_s), imputed)
        }
    }
}

fn hw_row(c: f64, i: f64, r: f64, m: f64, io: f64, cpu_s: f64) -> Row {
    let ratio = |a: f64, b: f64| if b > 0.0 { (a / b).min(1e3) } else { 0.0 };
    [c, i, r, m, io, m * ratio(m, r).min(1.0), i * ratio(i, c), cpu_s, 0.0]
}

/// The VM's SM and memory utilisation of GPU `gpu` (0–1); a passthrough
/// owner's too, so the device's idle power can be learned like any other's.
pub fn gpu_row(v: &VmRecord, gpu: u32) -> Option<Row> {
    v.features.gpus.iter().find(|g| g.gpu == gpu).map(|g| {
        let sm = g.sm_util_pct as f64 / 100.0;
        [sm, g.mem_util_pct as f64 / 100.0, 0.0, 0.0, 0.0, 0.0, 0.0, sm, 0.0]
    })
}

/// The VM that owns GPU `gpu` outright, if one does.
pub fn passthrough_owner(rec: &IntervalRecord, gpu: u32) -> Option<usize> {
    rec.vms.iter().position(|v| v.features.gpus.iter().any(|g| g.gpu == gpu && g.passthrough))
}

/// Every VM's row for one domain kind (zeros for a VM with no use of it).
pub fn rows(rec: &IntervalRecord, kind: DomainKind, index: u32, mode: FeatureMode, impute: &HwPerCpuSecond, out: &mut Vec<Row>) -> usize {
    let dt_s = rec.duration().as_secs_f64().max(1e-6);
    out.clear();
    let mut imputed = 0;
    for v in &rec.vms {
        let row = match kind {
            DomainKind::Gpu => gpu_row(v, index).unwrap_or([0.0; MAX_FEATURES]),
            _ => {
                let (r, imp) = cpu_row(v, dt_s, mode, impute);
                imputed += usize::from(imp);
                r
            }
        };
        out.push(row);
    }
    imputed
}

/// Every VM's CPU-side row (one computation serves all CPU-side domains);
/// returns how many VMs had hardware counters imputed.
pub fn cpu_rows(rec: &IntervalRecord, mode: FeatureMode, impute: &HwPerCpuSecond, out: &mut Vec<Row>) -> usize {
    rows(rec, DomainKind::Package, 0, mode, impute, out)
}

/// The rows domain `d`'s model reads: `cpu` (from [`cpu_rows`]) for a
/// CPU-side domain, the GPU's rows, computed into `gpu`, for a GPU.
pub fn domain_rows<'a>(rec: &IntervalRecord, d: Domain, mode: FeatureMode, impute: &HwPerCpuSecond, cpu: &'a [Row], gpu: &'a mut Vec<Row>) -> &'a [Row] {
    if d.kind == DomainKind::Gpu {
        rows(rec, d.kind, d.index, mode, impute, gpu);
        gpu
    } else {
        cpu
    }
}

pub fn sum_rows(rows: &[Row]) -> Row {
    let mut s = [0.0; MAX_FEATURES];
    for r in rows {
        for k in 0..MAX_FEATURES {
            s[k] += r[k];
        }
    }
    s
}
