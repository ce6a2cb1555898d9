//! The placement policies: given the cluster and one pod, which node (and
//! which of its GPUs). Every policy looks only at nodes where the pod fits
//! now, so none can exceed capacity; ties go to the lowest node index, so
//! runs are deterministic (the random policy by its seed).

use std::collections::HashMap;

use super::cluster::{Cluster, Demand, GpuNeed, GpuTake, Node, WHOLE};
use super::frag::FragModel;
use crate::error::{PlaceError, Result};
use crate::rng::SplitMix64;

/// A placement policy for GPU pods.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GpuPolicy {
    /// The first node (in list order) where the pod fits.
    FirstFit,
    /// Least remaining CPU + memory + GPU (each as a share of the node) after placing.
    BestFit,
    /// Most remaining after placing: spreads the load.
    WorstFit,
    /// Largest dot product of the demand and the free vector, both as
    /// shares of the node (Grandl et al., Tetris, SIGCOMM'14).
    DotProduct,
    /// A uniformly random node where the pod fits (seeded).
    Random,
    /// Least power increase; waking an empty node costs its idle power.
    PowerAware,
    /// Fragmentation gradient descent (Weng et al., ATC'23): least growth of
    /// the node's fragmentation against the workload's task types.
    Fgd,
}

impl GpuPolicy {
    pub const ALL: [GpuPolicy; 7] = [
        GpuPolicy::FirstFit,
        GpuPolicy::BestFit,
        GpuPolicy::WorstFit,
        GpuPolicy::DotProduct,
        GpuPolicy::Random,
        GpuPolicy::PowerAware,
        GpuPolicy::Fgd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            GpuPolicy::FirstFit => "first-fit",
            GpuPolicy::BestFit => "best-fit",
            GpuPolicy::WorstFit => "worst-fit",
            GpuPolicy::DotProduct => "dot-product",
            GpuPolicy::Random => "random",
            GpuPolicy::PowerAware => "power-aware",
            GpuPolicy::Fgd => "fgd",
        }
    }

    /// Parses a name (case and `_`/`-` insensitive; a few aliases such as
    /// `ff`, `load-balance`, `tetris`); an unknown name's error lists the known ones.
    pub fn by_name(name: &str) -> Result<GpuPolicy> {
        let key = name.trim().to_ascii_lowercase().replace('_', "-");
        let p = match key.as_str() {
            "first-fit" | "firstfit" | "ff" => GpuPolicy::FirstFit,
            "best-fit" | "bestfit" | "bf" => GpuPolicy::BestFit,
            "worst-fit" | "worstfit" | "wf" | "load-balance" | "lb" => GpuPolicy::WorstFit,
            "dot-product" | "dotproduct" | "dotprod" | "tetris" => GpuPolicy::DotProduct,
            "random" | "random-fit" => GpuPolicy::Random,
            "power-aware" | "poweraware" | "power-aware-best-fit" | "pabfd" => GpuPolicy::PowerAware,
            "fgd" | "fragmentation-gradient-descent" => GpuPolicy::Fgd,
            _ => {
                let known: Vec<_> = GpuPolicy::ALL.iter().map(|p| p.name()).collect();
                return Err(PlaceError::Config(format!("unknown GPU placement policy `{name}`; known: {}", known.join(", "))));
            }
        };
        Ok(p)
    }
}

impl std::fmt::Display for GpuPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A node's state as far as FGD's ΔF goes: (model + 1 or 0, free CPU, GPU
/// count, free thousandths per GPU sorted).
type FgdKey = (u8, u64, u8, [u16; 8]);

/// What a policy may keep between decisions.
pub(crate) struct PolicyCtx<'a> {
    pub rng: SplitMix64,
    pub frag: &'a FragModel,
    scratch: Vec<usize>,
    fgd_memo: HashMap<FgdKey, (f64, u32)>,
}

impl<'a> PolicyCtx<'a> {
    pub fn new(seed: u64, frag: &'a FragModel) -> Self {
        PolicyCtx { rng: SplitMix64::new(seed), frag, scratch: Vec::new(), fgd_memo: HashMap::new() }
    }
}

/// Which GPU a sharing pod takes on the chosen node.
#[derive(Clone, Copy)]
enum Pick {
    First,
    Tightest,
    Loosest,
}

fn share_gpu(node: &Node, milli: u32, pick: Pick) -> Option<u8> {
    let fit = node.gpu_free.iter().enumerate().filter(|&(_, &f)| f >= milli);
    let g = match pick {
        Pick::First => fit.map(|(i, _)| i).next(),
        Pick::Tightest => fit.min_by_key(|&(i, &f)| (f, i)).map(|(i, _)| i),
        Pick::Loosest => fit.min_by_key(|&(i, &f)| (std::cmp::Reverse(f), i)).map(|(i, _)| i),
    };
    g.map(|i| i as u8)
}

fn take_on(node: &Node, d: &Demand, pick: Pick) -> Option<GpuTake> {
    match d.need {
        GpuNeed::None => Some(GpuTake::None),
        GpuNeed::Share(m) => share_gpu(node, m, pick).map(|gpu| GpuTake::Share { gpu, milli: m }),
        GpuNeed::Whole(k) => node.whole_take(k).map(GpuTake::Whole),
    }
}

/// Remaining CPU, memory and GPU after placing, each as a share of the node.
fn remaining(node: &Node, d: &Demand) -> f64 {
    let cpu = (node.cpu_free - d.cpu) as f64 / node.cpu_cap as f64;
    let mem = (node.mem_free - d.mem) as f64 / node.mem_cap as f64;
    let gpu = if node.gpus() == 0 { 0.0 } else { (node.gpu_free_total() - d.gpu_milli()) as f64 / (node.gpus() as f64 * WHOLE as f64) };
    cpu + mem + gpu
}

fn alignment(node: &Node, d: &Demand) -> f64 {
    let (c, m) = (node.cpu_cap as f64, node.mem_cap as f64);
    let mut s = (d.cpu as f64 / c) * (node.cpu_free as f64 / c) + (d.mem as f64 / m) * (node.mem_free as f64 / m);
    if node.gpus() > 0 {
        let g = node.gpus() as f64 * WHOLE as f64;
        s += (d.gpu_milli() as f64 / g) * (node.gpu_free_total() as f64 / g);
    }
    s
}

/// Lowest `key` wins; ties go to the earlier node.
fn argmin(c: &Cluster, d: &Demand, mut key: impl FnMut(&Node) -> f64) -> Option<usize> {
    let mut best: Option<(f64, usize)> = None;
    for (i, n) in c.nodes.iter().enumerate() {
        if n.fits(d) {
            let k = key(n);
            if best.is_none_or(|(b, _)| k < b - 1e-12) {
                best = Some((k, i));
            }
        }
    }
    best.map(|(_, i)| i)
}

/// The node and GPUs the policy picks for `d`, `None` when it fits nowhere.
pub(crate) fn choose(p: GpuPolicy, c: &Cluster, d: &Demand, ctx: &mut PolicyCtx) -> Option<(usize, GpuTake)> {
    let (n, pick) = match p {
        GpuPolicy::FirstFit => (c.nodes.iter().position(|n| n.fits(d))?, Pick::First),
        GpuPolicy::BestFit => (argmin(c, d, |n| remaining(n, d))?, Pick::Tightest),
        GpuPolicy::WorstFit => (argmin(c, d, |n| -remaining(n, d))?, Pick::Loosest),
        GpuPolicy::DotProduct => (argmin(c, d, |n| -alignment(n, d))?, Pick::Tightest),
        GpuPolicy::Random => {
            ctx.scratch.clear();
            ctx.scratch.extend(c.nodes.iter().enumerate().filter(|(_, n)| n.fits(d)).map(|(i, _)| i));
            if ctx.scratch.is_empty() {
                return None;
            }
            let k = (ctx.rng.next_u64() % ctx.scratch.len() as u64) as usize;
            (ctx.scratch[k], Pick::First)
        }
        // The power increase, then the best-fit score to break its many
        // ties (every busy node of a type costs the same dynamic watts), so
        // that it packs: a scale of 1e-3 W per unit of remaining share keeps
        // the watts first.
        GpuPolicy::PowerAware => (argmin(c, d, |n| n.watts_with(d) - n.watts + 1e-3 * remaining(n, d))?, Pick::Tightest),
        GpuPolicy::Fgd => return fgd(c, d, ctx),
    };
    Some((n, take_on(&c.nodes[n], d, pick)?))
}

/// FGD: for each node where the pod fits, the least growth of F_n(M) over
/// the GPUs it could take; nodes in the same state give the same answer, so
/// it is computed once per distinct state (most empty nodes are alike).
fn fgd(c: &Cluster, d: &Demand, ctx: &mut PolicyCtx) -> Option<(usize, GpuTake)> {
    ctx.fgd_memo.clear();
    let mut best: Option<(f64, usize, u32)> = None;
    for (i, n) in c.nodes.iter().enumerate() {
        if !n.fits(d) {
            continue;
        }
        let memo_key = (n.gpu_free.len() <= 8).then(|| {
            let mut frees = [0u16; 8];
            for (s, &f) in frees.iter_mut().zip(&n.gpu_free) {
                *s = f as u16;
            }
            frees[..n.gpu_free.len()].sort_unstable();
            (n.model.map_or(0, |m| m + 1), n.cpu_free, n.gpu_free.len() as u8, frees)
        });
        let cached = memo_key.and_then(|k| ctx.fgd_memo.get(&k).copied());
        let (delta, free_value) = match cached {
            Some(v) => v,
            None => {
                let v = fgd_delta(n, d, ctx.frag);
                if let Some(k) = memo_key {
                    ctx.fgd_memo.insert(k, v);
                }
                v
            }
        };
        if best.is_none_or(|(b, _, _)| delta < b - 1e-9) {
            best = Some((delta, i, free_value));
        }
    }
    let (_, i, free_value) = best?;
    let node = &c.nodes[i];
    let take = match d.need {
        GpuNeed::None => GpuTake::None,
        // The GPU with the chosen free amount (any of them: they are alike).
        GpuNeed::Share(m) => GpuTake::Share { gpu: node.gpu_free.iter().position(|&f| f == free_value)? as u8, milli: m },
        GpuNeed::Whole(k) => GpuTake::Whole(node.whole_take(k)?),
    };
    Some((i, take))
}

/// (ΔF, free amount of the GPU to take) for placing `d` on `n`: for a
/// sharing pod every distinct free amount that fits is tried.
fn fgd_delta(n: &Node, d: &Demand, frag: &FragModel) -> (f64, u32) {
    let cpu = n.cpu_free - d.cpu;
    let mut after = n.gpu_free.clone();
    match d.need {
        GpuNeed::None => (frag.node_frag(n.model, cpu, &after) - n.frag, 0),
        GpuNeed::Whole(k) => {
            let mut left = k;
            for f in after.iter_mut().filter(|f| **f == WHOLE) {
                if left == 0 {
                    break;
                }
                *f = 0;
                left -= 1;
            }
            (frag.node_frag(n.model, cpu, &after) - n.frag, WHOLE)
        }
        GpuNeed::Share(m) => {
            let mut best = (f64::INFINITY, 0);
            for g in 0..after.len() {
                let f = n.gpu_free[g];
                // GPUs with the same free amount are alike: try each amount once.
                if f < m || n.gpu_free[..g].contains(&f) {
                    continue;
                }
                after[g] = f - m;
                let delta = frag.node_frag(n.model, cpu, &after) - n.frag;
                after[g] = f;
                // On equal ΔF the tightest GPU, as best fit would.
                if delta < best.0 - 1e-9 || (delta <= best.0 + 1e-9 && f < best.1) {
                    best = (delta, f);
                }
            }
            best
        }
    }
}
