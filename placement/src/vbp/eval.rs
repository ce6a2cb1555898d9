//! Optimality gaps: every heuristic on every instance, checked, then
//! summarised per benchmark set and instance family against the proven
//! optimum, the best lower bound and the best published heuristic.
//!
//! A gap is `(bins - reference) / reference` in percent. Against the lower
//! bound it over-states the true gap (the bound may be below the optimum)
//! but exists for every instance; against OPT it is exact but only where
//! an optimum is known, which is why both are reported.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;

use super::{Heuristic, Instance, Known, VbpError, check, pack, trivial_lower_bound};

/// Name of the per-instance "best of our heuristics" row.
const BEST_OF: &str = "best-of";

/// Every heuristic's result on one instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceResult {
    pub set: String,
    pub name: String,
    pub family: String,
    /// Item copies.
    pub items: usize,
    /// [`trivial_lower_bound`] of the instance.
    pub trivial_lb: u64,
    /// The benchmark's reference values, when the summary has the instance.
    pub known: Option<Known>,
    /// Bins used by each heuristic, in the order they were run.
    pub bins: Vec<(Heuristic, usize)>,
}

impl InstanceResult {
    /// The best lower bound: the trivial one or the published one.
    pub fn lower_bound(&self) -> u64 {
        self.trivial_lb.max(self.known.map_or(0, |k| k.lb))
    }

    /// Fewest bins of any heuristic run, and the first heuristic reaching it.
    pub fn best(&self) -> Option<(Heuristic, usize)> {
        self.bins.iter().copied().reduce(|a, b| if b.1 < a.1 { b } else { a })
    }
}

/// Fewest bins any of our heuristics found on an instance (0 when none ran).
pub fn best_of(r: &InstanceResult) -> usize {
    r.best().map_or(0, |(_, b)| b)
}

/// Gap statistics of one heuristic (or of "best-of") over a group of instances.
#[derive(Debug, Clone, PartialEq)]
pub struct FamilyGap {
    pub set: String,
    /// Instance family (`class1`, `classC`, ...), or `all` for a whole set.
    pub family: String,
    /// The heuristic's name ([`Heuristic`]'s `Display`), or `best-of`.
    pub heuristic: String,
    pub instances: usize,
    /// Instances whose optimum is known: the OPT columns' population.
    pub with_opt: usize,
    pub mean_gap_opt_pct: Option<f64>,
    pub max_gap_opt_pct: Option<f64>,
    /// Share (0..=1) of the instances with a known optimum solved to it.
    pub solved_opt_share: Option<f64>,
    /// Gap to [`InstanceResult::lower_bound`], over all instances.
    pub mean_gap_lb_pct: f64,
    pub max_gap_lb_pct: f64,
    /// Mean gap to the paper's best heuristic result (negative: we beat it),
    /// over the instances that have one.
    pub mean_gap_best_pct: Option<f64>,
}

fn gap_pct(bins: usize, reference: u64) -> f64 {
    // An empty instance needs 0 bins; dividing by 1 keeps its gap finite.
    (bins as f64 - reference as f64) / reference.max(1) as f64 * 100.0
}

/// Runs every heuristic on one instance and checks each packing.
pub fn solve(inst: &Instance, known: Option<&Known>, heuristics: &[Heuristic]) -> Result<InstanceResult, VbpError> {
    let mut bins = Vec::with_capacity(heuristics.len());
    for &h in heuristics {
        let p = pack(inst, h);
        check(inst, &p).map_err(|e| match e {
            VbpError::Infeasible { name, problem } => VbpError::Infeasible { name, problem: format!("{h}: {problem}") },
            e => e,
        })?;
        bins.push((h, p.bins));
    }
    Ok(InstanceResult {
        set: inst.set.clone(),
        name: inst.name.clone(),
        family: inst.family().to_string(),
        items: inst.copies(),
        trivial_lb: trivial_lower_bound(inst),
        known: known.copied(),
        bins,
    })
}

/// [`evaluate_with`] all of [`Heuristic::ALL`].
pub fn evaluate(instances: &[Instance], known: &HashMap<String, Known>) -> Result<Vec<FamilyGap>, VbpError> {
    evaluate_with(instances, known, &Heuristic::ALL)
}

/// Runs and checks `heuristics` on every instance and summarises them per
/// family ([`summarise`]). `known` is the summary of the instances' set,
/// looked up by name; the instances must all come from that one set, since
/// names repeat across sets.
pub fn evaluate_with(instances: &[Instance], known: &HashMap<String, Known>, heuristics: &[Heuristic]) -> Result<Vec<FamilyGap>, VbpError> {
    if let Some(other) = instances.iter().find(|i| i.set != instances[0].set) {
        return Err(VbpError::MixedSets(instances[0].set.clone(), other.set.clone()));
    }
    let results = instances.iter().map(|i| solve(i, known.get(&i.name), heuristics)).collect::<Result<Vec<_>, _>>()?;
    Ok(summarise(&results, true))
}

/// Gap rows per (set, family), or per set (family `all`) when `per_family`
/// is false: one row per heuristic, in the order run, then `best-of`.
/// Rows are sorted by set and family name.
pub fn summarise(results: &[InstanceResult], per_family: bool) -> Vec<FamilyGap> {
    let mut groups: BTreeMap<(String, String), Vec<&InstanceResult>> = BTreeMap::new();
    for r in results {
        let family = if per_family { r.family.clone() } else { "all".to_string() };
        groups.entry((r.set.clone(), family)).or_default().push(r);
    }
    let mut out = Vec::new();
    for ((set, family), rs) in groups {
        let heuristics: Vec<Heuristic> = rs[0].bins.iter().map(|(h, _)| *h).collect();
        let columns = heuristics.iter().map(|h| Some(*h)).chain([None]);
        for h in columns {
            // None stands for the best of all heuristics on each instance.
            let bins_of = |r: &InstanceResult| match h {
                Some(h) => r.bins.iter().find(|(x, _)| *x == h).map_or(0, |(_, b)| *b),
                None => best_of(r),
            };
            let name = h.map_or(BEST_OF.to_string(), |h| h.to_string());
            out.push(row(set.clone(), family.clone(), name, &rs, bins_of));
        }
    }
    out
}

fn row(set: String, family: String, heuristic: String, rs: &[&InstanceResult], bins_of: impl Fn(&InstanceResult) -> usize) -> FamilyGap {
    let mean = |v: &[f64]| (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64);
    let max = |v: &[f64]| v.iter().copied().reduce(f64::max);
    let mut opt_gaps = Vec::new();
    let mut solved = 0usize;
    let mut lb_gaps = Vec::new();
    let mut best_gaps = Vec::new();
    for r in rs {
        let b = bins_of(r);
        lb_gaps.push(gap_pct(b, r.lower_bound()));
        if let Some(opt) = r.known.and_then(|k| k.opt) {
            opt_gaps.push(gap_pct(b, opt));
            solved += usize::from(b as u64 == opt);
        }
        if let Some(best) = r.known.and_then(|k| k.best_overall) {
            best_gaps.push(gap_pct(b, best));
        }
    }
    FamilyGap {
        set,
        family,
        heuristic,
        instances: rs.len(),
        with_opt: opt_gaps.len(),
        mean_gap_opt_pct: mean(&opt_gaps),
        max_gap_opt_pct: max(&opt_gaps),
        solved_opt_share: (!opt_gaps.is_empty()).then(|| solved as f64 / opt_gaps.len() as f64),
        mean_gap_lb_pct: mean(&lb_gaps).unwrap_or(0.0),
        max_gap_lb_pct: max(&lb_gaps).unwrap_or(0.0),
        mean_gap_best_pct: mean(&best_gaps),
    }
}

/// The rows as a GitHub markdown table ("–" where a value is unknown).
pub fn markdown_table(rows: &[FamilyGap]) -> String {
    let opt = |v: Option<f64>| v.map_or("–".to_string(), |x| format!("{x:.2}"));
    let mut s = String::from(
        "| set | family | heuristic | instances | OPT known | mean gap OPT % | max gap OPT % | solved to OPT | mean gap LB % | max gap LB % | mean gap best % |\n\
         |---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for r in rows {
        let solved = r.solved_opt_share.map_or("–".to_string(), |x| format!("{:.0} %", x * 100.0));
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.2} | {} |",
            r.set,
            r.family,
            r.heuristic,
            r.instances,
            r.with_opt,
            opt(r.mean_gap_opt_pct),
            opt(r.max_gap_opt_pct),
            solved,
            r.mean_gap_lb_pct,
            r.max_gap_lb_pct,
            opt(r.mean_gap_best_pct)
        );
    }
    s
}
