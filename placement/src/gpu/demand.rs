//! A pod's request in the simulator's terms (CPU, memory, what it needs
//! from the GPUs, which GPU models it accepts) and what a placement takes.

use crate::error::{PlaceError, Result};
use crate::trace::{NodeSpec, PodRequest};

/// A whole GPU in thousandths.
pub(crate) const WHOLE: u32 = 1000;

/// What a pod needs from the GPUs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum GpuNeed {
    None,
    /// A fraction of one GPU, 1..=999 thousandths.
    Share(u32),
    /// This many whole GPUs.
    Whole(u32),
}

/// A pod's request in the simulator's terms.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Demand {
    pub cpu: u64,
    pub mem: u64,
    pub need: GpuNeed,
    /// Bit i set: GPU model i of the cluster is allowed (all bits: any).
    pub allowed: u64,
}

impl Demand {
    pub fn gpu_milli(&self) -> u64 {
        match self.need {
            GpuNeed::None => 0,
            GpuNeed::Share(m) => m as u64,
            GpuNeed::Whole(k) => k as u64 * WHOLE as u64,
        }
    }
}

/// Which GPUs a placement takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GpuTake {
    None,
    Share { gpu: u8, milli: u32 },
    /// Bit i: GPU i taken whole.
    Whole(u64),
}

/// The cluster's GPU model names in order of first appearance; GPU nodes
/// without a name share the entry "", which no constraint names. At most 64.
pub(crate) fn model_names(specs: &[NodeSpec]) -> Result<Vec<String>> {
    let mut models: Vec<String> = Vec::new();
    for n in specs.iter().filter(|n| n.gpus > 0) {
        let m = n.gpu_model.clone().unwrap_or_default();
        if !models.contains(&m) {
            models.push(m);
        }
    }
    if models.len() > 64 {
        return Err(PlaceError::Config(format!("{} GPU models; at most 64 are supported", models.len())));
    }
    Ok(models)
}

/// A pod's demand: GPU-sharing pods (`gpus == 1`, `gpu_milli` below 1000)
/// share one GPU; any other GPU pod takes whole GPUs. `models` lists the
/// cluster's GPU models; a constraint naming none of them allows nothing.
pub(crate) fn demand(p: &PodRequest, models: &[String]) -> Demand {
    let need = match (p.gpus, p.gpu_milli) {
        (0, _) => GpuNeed::None,
        (1, m) if m > 0 && m < WHOLE => GpuNeed::Share(m),
        (k, _) => GpuNeed::Whole(k),
    };
    let allowed = match &p.gpu_model {
        None => u64::MAX,
        Some(spec) => spec
            .split('|')
            .map(str::trim)
            .filter(|m| !m.is_empty())
            .filter_map(|m| models.iter().position(|x| x == m))
            .fold(0u64, |a, i| a | 1 << i),
    };
    Demand { cpu: p.cpu_milli, mem: p.memory_mib, need, allowed }
}
