//! GPU fragmentation measured against a target workload, the quantity the
//! FGD paper (Weng et al., USENIX ATC'23) schedules by. Our own code, from
//! the paper's definitions:
//!
//! - for one task type m, a node's fragment F_n(m) is the free GPU capacity
//!   m could not use there: all of it when m cannot run on the node at all
//!   (too little CPU, a GPU model it does not accept, no GPU with enough
//!   room); otherwise the free capacity of the GPUs too small for m (for a
//!   sharing task of d thousandths, GPUs with less than d free; for a task
//!   taking whole GPUs, every partly used GPU);
//! - against a workload M of task types with popularity p_m, the node's
//!   fragmentation is F_n(M) = Σ_m p_m F_n(m), the expected free GPU that an
//!   arriving task cannot use;
//! - FGD places a task where F grows least (the steepest descent of the
//!   cluster's fragmentation).
//!
//! Task types are (CPU, GPU need, allowed models), with popularity from the
//! pod list itself (the paper assumes the workload's distribution is known
//! from history). Memory is left out of the types as the paper does (it
//! classes tasks by CPU and GPU); so for each (GPU need, models) group a
//! node's fragment only depends on which CPU demands still fit, found by a
//! binary search over the group's sorted CPU demands. That makes F_n(M) cost
//! O(groups × GPUs) instead of O(types × GPUs).

use std::collections::BTreeMap;

use super::cluster::{Demand, GpuNeed, WHOLE};

#[derive(Clone, Debug)]
struct Group {
    need: GpuNeed,
    allowed: u64,
    /// Distinct CPU demands, ascending, and the popularity of all types of
    /// the group with CPU demand ≤ each (`cum[i]` = Σ weights of `cpu[..=i]`).
    cpu: Vec<u64>,
    cum: Vec<f64>,
    total: f64,
}

/// The target workload's task types and their popularity.
#[derive(Clone, Debug, Default)]
pub(crate) struct FragModel {
    groups: Vec<Group>,
}

impl FragModel {
    /// Types and popularity from a list of demands (each demand counts once).
    pub fn from_demands<'a>(demands: impl IntoIterator<Item = &'a Demand>) -> FragModel {
        let mut counts: BTreeMap<(GpuNeed, u64), BTreeMap<u64, u64>> = BTreeMap::new();
        let mut n = 0u64;
        for d in demands {
            *counts.entry((d.need, d.allowed)).or_default().entry(d.cpu).or_default() += 1;
            n += 1;
        }
        let groups = counts
            .into_iter()
            .map(|((need, allowed), by_cpu)| {
                let (mut cpu, mut cum, mut acc) = (Vec::new(), Vec::new(), 0.0);
                for (c, k) in by_cpu {
                    acc += k as f64 / n as f64;
                    cpu.push(c);
                    cum.push(acc);
                }
                Group { need, allowed, cpu, cum, total: acc }
            })
            .collect();
        FragModel { groups }
    }

    /// F_n(M) in thousandths of a GPU for a node of GPU model `model` with
    /// `cpu_free` CPU and GPUs with `gpu_free` thousandths free each.
    pub fn node_frag(&self, model: Option<u8>, cpu_free: u64, gpu_free: &[u32]) -> f64 {
        if gpu_free.is_empty() {
            return 0.0;
        }
        let (mut free, mut partial, mut full, mut max_free) = (0u64, 0u64, 0u32, 0u32);
        for &f in gpu_free {
            free += f as u64;
            max_free = max_free.max(f);
            if f == WHOLE {
                full += 1;
            } else {
                partial += f as u64;
            }
        }
        if free == 0 {
            return 0.0;
        }
        let free_f = free as f64;
        let mut frag = 0.0;
        for g in &self.groups {
            let model_ok = g.need == GpuNeed::None || model.is_some_and(|m| g.allowed >> m & 1 == 1);
            if !model_ok {
                frag += g.total * free_f;
                continue;
            }
            // Popularity of the group's types whose CPU demand still fits.
            let k = g.cpu.partition_point(|&c| c <= cpu_free);
            let w_fit = if k == 0 { 0.0 } else { g.cum[k - 1] };
            let if_fit = match g.need {
                GpuNeed::None => 0,
                GpuNeed::Share(d) if max_free >= d => gpu_free.iter().filter(|&&f| f < d).map(|&f| f as u64).sum(),
                GpuNeed::Whole(k) if full >= k => partial,
                _ => free,
            };
            frag += w_fit * if_fit as f64 + (g.total - w_fit) * free_f;
        }
        frag
    }
}
