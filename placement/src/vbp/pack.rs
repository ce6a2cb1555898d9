//! Packing heuristics for vector bin packing, the checker that proves a
//! packing valid, and the trivial lower bound.
//!
//! Feasibility is decided on the exact integer sizes; floating point is used
//! only to rank items and bins, so a rounding error can make a heuristic
//! choose differently but never overfill a bin.

use std::fmt;

use super::{Instance, VbpError};

/// How an item (or a bin's residual capacity) is reduced to one number.
/// Every dimension is first divided by its capacity so that dimensions with
/// large units (memory in MB against CPU in cores) do not dominate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Measure {
    /// Σ of the normalised sizes: the item's total share of a bin.
    Sum,
    /// Largest normalised size: the item's bottleneck dimension.
    Max,
    /// Product of the normalised sizes: the "volume", which favours items
    /// large in every dimension at once.
    Product,
}

impl Measure {
    /// The measure of a vector of normalised sizes.
    pub fn of(self, v: &[f64]) -> f64 {
        match self {
            Measure::Sum => v.iter().sum(),
            Measure::Max => v.iter().copied().fold(0.0, f64::max),
            Measure::Product => v.iter().product(),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Measure::Sum => "sum",
            Measure::Max => "max",
            Measure::Product => "prod",
        }
    }
}

/// A packing heuristic.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Heuristic {
    /// First fit decreasing: items by decreasing measure, each into the
    /// first open bin it fits, else a new bin.
    Ffd(Measure),
    /// Best fit decreasing: items by decreasing measure, each into the open
    /// bin whose residual after placement has the smallest measure.
    Bfd(Measure),
    /// Bin-centric DotProduct (Panigrahy, Talwar, Uyeda, Wieder, "Heuristics
    /// for Vector Bin Packing", 2011): fill one bin at a time, always adding
    /// the fitting item whose normalised size has the largest dot product
    /// with the bin's normalised residual capacity, so items go where their
    /// big dimensions meet spare room.
    DotProduct,
    /// Bin-centric L2 (same paper): add the fitting item that minimises the
    /// squared L2 distance between the residual capacity and the item, so
    /// the bin's leftover stays balanced across dimensions.
    L2,
}

impl Heuristic {
    /// The heuristics [`super::evaluate`] runs.
    pub const ALL: [Heuristic; 8] = [
        Heuristic::Ffd(Measure::Sum),
        Heuristic::Ffd(Measure::Max),
        Heuristic::Ffd(Measure::Product),
        Heuristic::Bfd(Measure::Sum),
        Heuristic::Bfd(Measure::Max),
        Heuristic::Bfd(Measure::Product),
        Heuristic::DotProduct,
        Heuristic::L2,
    ];
}

impl fmt::Display for Heuristic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Heuristic::Ffd(m) => write!(f, "FFD-{}", m.label()),
            Heuristic::Bfd(m) => write!(f, "BFD-{}", m.label()),
            Heuristic::DotProduct => f.write_str("DotProduct"),
            Heuristic::L2 => f.write_str("L2"),
        }
    }
}

/// A solution: how many bins, and the bin (0-based) of every item copy, in
/// [`Instance::copy_types`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packing {
    pub bins: usize,
    pub assignment: Vec<u32>,
}

/// max over dimensions of ⌈Σ sizes / capacity⌉: no packing can use fewer
/// bins, since each bin's load is at most the capacity (negative sizes
/// included: the bound is on the sum).
pub fn trivial_lower_bound(inst: &Instance) -> u64 {
    (0..inst.dims())
        .map(|k| {
            let total: i128 = inst.items.iter().map(|(s, m)| s[k] as i128 * *m as i128).sum();
            let cap = inst.capacities[k] as i128;
            if total <= 0 { 0 } else { ((total + cap - 1) / cap) as u64 }
        })
        .max()
        .unwrap_or(0)
}

/// Verifies that every copy is in a bin that exists, that every bin is used
/// (so `bins` is an honest count) and that no bin exceeds its capacity in
/// any dimension.
pub fn check(inst: &Instance, p: &Packing) -> Result<(), VbpError> {
    let bad = |problem: String| VbpError::Infeasible { name: inst.name.clone(), problem };
    let types = inst.copy_types();
    if p.assignment.len() != types.len() {
        return Err(bad(format!("{} items assigned, the instance has {}", p.assignment.len(), types.len())));
    }
    let d = inst.dims();
    let mut load = vec![0i128; p.bins * d];
    let mut used = vec![false; p.bins];
    for (copy, (&b, &t)) in p.assignment.iter().zip(&types).enumerate() {
        let b = b as usize;
        if b >= p.bins {
            return Err(bad(format!("item {copy} is in bin {b}, but there are only {} bins", p.bins)));
        }
        used[b] = true;
        for k in 0..d {
            load[b * d + k] += inst.items[t].0[k] as i128;
        }
    }
    if let Some(b) = used.iter().position(|u| !u) {
        return Err(bad(format!("bin {b} is empty")));
    }
    for b in 0..p.bins {
        for k in 0..d {
            if load[b * d + k] > inst.capacities[k] as i128 {
                return Err(bad(format!("bin {b} holds {} in dimension {}, capacity {}", load[b * d + k], k + 1, inst.capacities[k])));
            }
        }
    }
    Ok(())
}

/// Sizes divided by capacities, per item type.
fn normalised(inst: &Instance) -> Vec<Vec<f64>> {
    inst.items.iter().map(|(s, _)| s.iter().zip(&inst.capacities).map(|(&x, &c)| x as f64 / c as f64).collect()).collect()
}

/// Runs one heuristic. Deterministic: ties go to the earlier item type (in
/// file order) and the earlier bin.
pub fn pack(inst: &Instance, h: Heuristic) -> Packing {
    match h {
        Heuristic::Ffd(m) => item_centric(inst, m, false),
        Heuristic::Bfd(m) => item_centric(inst, m, true),
        Heuristic::DotProduct => bin_centric(inst, |r, s| r.iter().zip(s).map(|(a, b)| a * b).sum()),
        Heuristic::L2 => bin_centric(inst, |r, s| -r.iter().zip(s).map(|(a, b)| (a - b) * (a - b)).sum::<f64>()),
    }
}

fn item_centric(inst: &Instance, m: Measure, best_fit: bool) -> Packing {
    let d = inst.dims();
    let cap: Vec<i64> = inst.capacities.iter().map(|&c| c as i64).collect();
    let norm = normalised(inst);
    let types = inst.copy_types();
    let mut order: Vec<usize> = (0..types.len()).collect();
    let key: Vec<f64> = norm.iter().map(|v| m.of(v)).collect();
    // Stable sort keeps file order among equal items, for determinism.
    order.sort_by(|&a, &b| key[types[b]].total_cmp(&key[types[a]]));

    let mut load: Vec<i64> = Vec::new(); // bin b's load is load[b*d..(b+1)*d]
    let mut assignment = vec![0u32; types.len()];
    let mut residual = vec![0.0; d];
    for copy in order {
        let size = &inst.items[types[copy]].0;
        let fits = |b: usize| (0..d).all(|k| load[b * d + k] + size[k] <= cap[k]);
        let bins = load.len() / d;
        let chosen = if best_fit {
            let mut best: Option<(usize, f64)> = None;
            for b in (0..bins).filter(|&b| fits(b)) {
                for k in 0..d {
                    residual[k] = (cap[k] - load[b * d + k] - size[k]) as f64 / cap[k] as f64;
                }
                let score = m.of(&residual);
                if best.is_none_or(|(_, s)| score < s) {
                    best = Some((b, score));
                }
            }
            best.map(|(b, _)| b)
        } else {
            (0..bins).find(|&b| fits(b))
        };
        let b = chosen.unwrap_or_else(|| {
            load.extend(std::iter::repeat_n(0, d));
            bins
        });
        for k in 0..d {
            load[b * d + k] += size[k];
        }
        assignment[copy] = b as u32;
    }
    Packing { bins: load.len() / d, assignment }
}

/// Fills one bin at a time with the fitting item type of highest `score`
/// (normalised residual, normalised size), opening the next bin when none fits.
fn bin_centric(inst: &Instance, score: impl Fn(&[f64], &[f64]) -> f64) -> Packing {
    let d = inst.dims();
    let cap: Vec<i64> = inst.capacities.iter().map(|&c| c as i64).collect();
    let norm = normalised(inst);
    let mut left: Vec<u32> = inst.items.iter().map(|(_, m)| *m).collect();
    // First copy index of each type, advanced as copies are placed.
    let mut next_copy: Vec<usize> = inst.items.iter().scan(0, |acc, (_, m)| {
        let start = *acc;
        *acc += *m as usize;
        Some(start)
    }).collect();
    let mut alive: Vec<usize> = (0..inst.items.len()).collect();
    let mut assignment = vec![0u32; inst.copies()];
    let mut bins = 0usize;
    let mut room = vec![0i64; d];
    let mut r = vec![0.0; d];
    while !alive.is_empty() {
        room.copy_from_slice(&cap);
        let mut placed = 0usize;
        loop {
            for k in 0..d {
                r[k] = room[k] as f64 / cap[k] as f64;
            }
            let mut best: Option<(usize, f64)> = None;
            for (i, &t) in alive.iter().enumerate() {
                let size = &inst.items[t].0;
                if (0..d).all(|k| size[k] <= room[k]) {
                    let s = score(&r, &norm[t]);
                    if best.is_none_or(|(_, bs)| s > bs) {
                        best = Some((i, s));
                    }
                }
            }
            // An empty bin takes any item the parser admits; forcing one in
            // otherwise (a hand-built oversize item) avoids an endless loop
            // and leaves the overflow for `check` to report.
            let Some((i, _)) = best.or(if placed == 0 { Some((0, 0.0)) } else { None }) else { break };
            placed += 1;
            let t = alive[i];
            for (r, s) in room.iter_mut().zip(&inst.items[t].0) {
                *r -= s;
            }
            assignment[next_copy[t]] = bins as u32;
            next_copy[t] += 1;
            left[t] -= 1;
            if left[t] == 0 {
                // `remove`, not `swap_remove`: keeps file order for ties.
                alive.remove(i);
            }
        }
        bins += 1;
    }
    Packing { bins, assignment }
}
