//! Multi-resource (CPU, memory, GPU) pod placement for the Alibaba GPU 2023
//! trace (the FGD paper's cluster): an event-driven simulator, seven
//! policies, a power model, and the evaluation the CLI and
//! docs/placement-gpu.md report.
//!
//! - `cluster`: nodes with CPU, memory and GPUs with free fractions;
//!   sharing pods take part of one GPU, others take whole GPUs; a checker
//!   recomputes every node from its pods. `frag`: FGD's fragmentation
//!   measure; `replay`: the event loop and its meters.
//! - [`GpuPolicy`]: first fit, best fit, worst fit, dot product (Tetris),
//!   random, power-aware best fit, FGD.
//! - [`power`]: published GPU and CPU figures and the node power formula.
//! - [`evaluate`]: every policy on the same fleet and pods; [`format_table`].
//! - [`load`]: pod lists without time columns, and proportionally reduced fleets.

mod cluster;
mod demand;
mod frag;
pub mod load;
mod metrics;
mod policy;
pub mod power;
mod replay;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_policy;

pub use metrics::{GpuMetrics, QueueStats, format_table};
pub use policy::GpuPolicy;
pub use power::{GpuPower, NodePower, PowerTable};

use crate::error::{PlaceError, Result};
use crate::trace::{NodeSpec, PodRequest};

/// When pods leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Pods arrive at `created_s` and leave at `deleted_s` (pods without a
    /// deletion time stay to the end).
    Trace,
    /// Pods arrive in creation order, `fill_interval_s` apart, and never
    /// leave: the cluster fills up, as in the FGD paper's experiments, so
    /// policies differ in how much of the workload they fit.
    Fill,
}

/// Queue-and-retry: a pod that finds no node waits and is retried whenever
/// pods leave, for at most `max_wait_s` seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retry {
    pub max_wait_s: i64,
}

/// How a replay runs.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuConfig {
    pub timing: Timing,
    /// Seed of the random policy.
    pub seed: u64,
    /// `None`: a pod no node can take on arrival is a failure at once.
    pub retry: Option<Retry>,
    /// Fill timing: seconds between arrivals (energy is then that of a
    /// cluster filling at this pace).
    pub fill_interval_s: i64,
    /// Fill timing only: pods arrive in an order shuffled by this seed. The
    /// resampled multi-GPU lists append their extra pods at the end, where
    /// in file order they would only meet a full cluster.
    pub shuffle: Option<u64>,
    /// Run the capacity checker every this many events (0: only at the end).
    pub check_every: usize,
    pub power: PowerTable,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig { timing: Timing::Trace, seed: 1, retry: None, fill_interval_s: 60, shuffle: None, check_every: 1000, power: PowerTable::default() }
    }
}

/// One policy's result; an error names what was wrong with the input.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuOutcome {
    pub policy: GpuPolicy,
    pub result: Result<GpuMetrics>,
}

/// Replays `pods` on `nodes` once per policy, all on the same fleet.
pub fn evaluate(nodes: &[NodeSpec], pods: &[PodRequest], policies: &[GpuPolicy], cfg: &GpuConfig) -> Vec<GpuOutcome> {
    policies.iter().map(|&policy| GpuOutcome { policy, result: replay::replay(nodes, pods, policy, cfg) }).collect()
}

/// Pods no node of the fleet could hold even when empty, by index, with
/// the reason (the resource no node has enough of). An empty fleet is an error.
pub fn refusals(nodes: &[NodeSpec], pods: &[PodRequest]) -> Result<Vec<(usize, String)>> {
    if nodes.is_empty() {
        return Err(PlaceError::Config("no nodes: a GPU cluster needs at least one node".into()));
    }
    // Distinct node shapes: the check is per shape, not per node.
    let mut shapes: Vec<(u64, u64, u32, Option<&str>)> = nodes.iter().map(|n| (n.cpu_milli, n.memory_mib, n.gpus, n.gpu_model.as_deref())).collect();
    shapes.sort_unstable();
    shapes.dedup();
    let max_cpu = shapes.iter().map(|s| s.0).max().unwrap_or(0);
    let max_mem = shapes.iter().map(|s| s.1).max().unwrap_or(0);
    let max_gpus = shapes.iter().map(|s| s.2).max().unwrap_or(0);
    // A GPU node without a model name takes only pods that name no model.
    let model_ok = |p: &PodRequest, m: Option<&str>| match (&p.gpu_model, m) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(spec), Some(m)) => spec.split('|').any(|x| x.trim() == m),
    };
    let mut out = Vec::new();
    for (i, p) in pods.iter().enumerate() {
        let fits = |s: &(u64, u64, u32, Option<&str>)| p.cpu_milli <= s.0 && p.memory_mib <= s.1 && (p.gpus == 0 || (p.gpus <= s.2 && model_ok(p, s.3)));
        if shapes.iter().any(fits) {
            continue;
        }
        let why = if p.cpu_milli > max_cpu {
            format!("asks {} mCPU; the largest node has {max_cpu}", p.cpu_milli)
        } else if p.memory_mib > max_mem {
            format!("asks {} MiB of memory; the largest node has {max_mem}", p.memory_mib)
        } else if p.gpus > max_gpus {
            format!("asks {} GPUs; the largest node has {max_gpus}", p.gpus)
        } else if p.gpus > 0 && !shapes.iter().any(|s| s.2 > 0 && model_ok(p, s.3)) {
            format!("asks GPU model {}, which no node has", p.gpu_model.as_deref().unwrap_or("any"))
        } else {
            let model = p.gpu_model.as_deref().map_or(String::new(), |m| format!(" ({m})"));
            format!("no single node has {} mCPU, {} MiB and {} GPUs{model} together", p.cpu_milli, p.memory_mib, p.gpus)
        };
        out.push((i, format!("pod {} is larger than any node: {why}", p.id)));
    }
    Ok(out)
}
