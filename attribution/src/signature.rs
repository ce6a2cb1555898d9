//! Workload signatures: what kind of work a VM does, read from the shape of
//! its hardware counters rather than their size, so that the linear model
//! can learn one energy cost per kind of work.
//!
//! A signature is `(ln IPC, ln LLC references per kilo-instruction, LLC miss
//! ratio, ln(1 + disk MB per CPU-second))`: a vector-heavy batch job, a
//! memory-bound database and a light web server sit far apart, while two
//! VMs running the same software differ by a few tenths at most. Clusters
//! are found on the window's per-VM signatures (weighted by CPU time) by a
//! leader pass with [`RADIUS`] followed by k-means refinement; every
//! VM-interval row is then assigned to its nearest centroid by its own
//! counters, so a VM whose work changes changes cluster, and no VM identity
//! is needed. Nothing here reads a class label: signatures are made from
//! counters only.

use serde::{Deserialize, Serialize};

use crate::features::{LOAD, Row};

pub const SIG: usize = 4;
/// Per-cluster features: cycles, instructions, references, misses, disk IO
/// (the first five slots of a hardware-mode row).
pub const BASE: usize = 5;
pub const MAX_CLUSTERS: usize = 6;
/// Signatures closer than this (Euclidean, in the units above) are one
/// kind of work: 0.4 is a 50 % difference in IPC alone.
pub const RADIUS: f64 = 0.4;
/// A VM needs this much CPU time in the window for its signature to seed a cluster.
pub const MIN_CPU_S: f64 = 5.0;

/// The signature of a hardware-mode row (rates per second); `None` without cycles.
pub fn signature(row: &Row) -> Option<[f64; SIG]> {
    let (c, i, r, m, io, cpu) = (row[0], row[1], row[2], row[3], row[4], row[LOAD]);
    if !(c > 0.0 && c.is_finite()) {
        return None;
    }
    // Instructions are 10⁹/s and references 10⁶/s: refs per kilo-instruction = r / i.
    let ipc = (i / c).clamp(1e-3, 1e6);
    let rpki = if i > 0.0 { (r / i).clamp(1e-3, 1e6) } else { 1e-3 };
    let miss = if r > 0.0 { (m / r).clamp(0.0, 1.0) } else { 0.0 };
    let io_per_cpu = if cpu > 0.0 { (io / cpu).clamp(0.0, 1e9) } else { 0.0 };
    Some([fast_ln(ipc), fast_ln(rpki), miss, fast_ln(1.0 + io_per_cpu)])
}

/// `ln x` for positive normal `x` within 1.3·10⁻⁴ (a quartic for the
/// mantissa's log): every VM-interval row is assigned a cluster, in every
/// CPU-side domain, and libm's `ln` was the largest cost of fitting and
/// applying the model; clustering needs a tenth of a unit, not 15 digits.
fn fast_ln(x: f64) -> f64 {
    let bits = x.to_bits();
    let e = ((bits >> 52) & 0x7ff) as f64 - 1023.0;
    let t = f64::from_bits((bits & 0x000f_ffff_ffff_ffff) | 0x3ff0_0000_0000_0000) - 1.0;
    let log2m = t * (1.438_546_791_502_270_7 + t * (-0.678_081_485_770_555_9 + t * (0.323_630_368_199_333_1 - 0.084_285_092_621_622_19 * t)));
    std::f64::consts::LN_2 * (e + log2m)
}

fn dist2(a: &[f64; SIG], b: &[f64; SIG]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).powi(2)).sum()
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Clusters {
    pub centroids: Vec<[f64; SIG]>,
}

impl Clusters {
    /// Clusters `(signature, weight)` pairs; deterministic for the same input.
    pub fn fit(points: &[([f64; SIG], f64)]) -> Clusters {
        let mut pts: Vec<&([f64; SIG], f64)> = points.iter().filter(|(s, w)| *w > 0.0 && s.iter().all(|x| x.is_finite())).collect();
        // Heaviest first, ties by value: the order decides the leaders.
        pts.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal)));
        let mut centroids: Vec<[f64; SIG]> = Vec::new();
        for (s, _) in &pts {
            let near = centroids.iter().any(|c| dist2(c, s) <= RADIUS * RADIUS);
            if !near && centroids.len() < MAX_CLUSTERS {
                centroids.push(*s);
            }
        }
        for _ in 0..5 {
            let mut acc = vec![([0.0; SIG], 0.0); centroids.len()];
            for (s, w) in &pts {
                let k = nearest(&centroids, s);
                acc[k].0.iter_mut().zip(s).for_each(|(a, x)| *a += w * x);
                acc[k].1 += w;
            }
            centroids = acc.into_iter().filter(|(_, w)| *w > 0.0).map(|(s, w)| s.map(|x| x / w)).collect();
        }
        Clusters { centroids }
    }

    pub fn len(&self) -> usize {
        self.centroids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.centroids.is_empty()
    }

    /// The cluster of a row's work; `None` for a row without cycles (no work).
    pub fn assign(&self, row: &Row) -> Option<usize> {
        let s = signature(row)?;
        (!self.centroids.is_empty()).then(|| nearest(&self.centroids, &s))
    }

    /// Per-cluster sums of the [`BASE`] features over `rows`, `len() × BASE` wide.
    pub fn wide(&self, rows: &[Row], out: &mut Vec<f64>) {
        out.clear();
        out.resize(self.len() * BASE, 0.0);
        for r in rows {
            if let Some(k) = self.assign(r) {
                for f in 0..BASE {
                    out[k * BASE + f] += r[f];
                }
            }
        }
    }
}

fn nearest(centroids: &[[f64; SIG]], s: &[f64; SIG]) -> usize {
    let mut best = (0, f64::INFINITY);
    for (k, c) in centroids.iter().enumerate() {
        let d = dist2(c, s);
        if d < best.1 {
            best = (k, d);
        }
    }
    best.0
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row of `cpu` CPU-seconds of work with the given IPC, refs per
    /// kilo-instruction, miss ratio and disk MB per CPU-second.
    fn row(cpu: f64, ipc: f64, rpki: f64, miss: f64, io: f64) -> Row {
        let c = 2.5 * cpu;
        let i = c * ipc;
        let r = i * rpki;
        let mut x = [0.0; crate::features::MAX_FEATURES];
        x[..5].copy_from_slice(&[c, i, r, r * miss, io * cpu]);
        x[LOAD] = cpu;
        x
    }

    #[test]
    fn kinds_of_work_separate_and_same_software_stays_together() {
        let batch = |f: f64| row(4.0, 2.2 * f, 4.0 / f, 0.08, 1.0);
        let db = |f: f64| row(2.0, 0.6 * f, 40.0 * f, 0.55, 20.0);
        let web = |f: f64| row(0.5, 1.1 * f, 12.0, 0.25 * f, 0.8);
        let pts: Vec<_> = [batch(0.9), batch(1.1), db(0.88), db(1.12), web(0.9), web(1.15)].iter().map(|r| (signature(r).unwrap(), r[LOAD])).collect();
        let c = Clusters::fit(&pts);
        assert_eq!(c.len(), 3, "{c:?}");
        let (kb, kd, kw) = (c.assign(&batch(1.0)).unwrap(), c.assign(&db(1.0)).unwrap(), c.assign(&web(1.0)).unwrap());
        assert!(kb != kd && kd != kw && kb != kw);
        assert_eq!(c.assign(&batch(0.87)), Some(kb));
        assert_eq!(c.assign(&[0.0; crate::features::MAX_FEATURES]), None);
        // Per-cluster sums keep each kind's counters in its own columns.
        let mut w = Vec::new();
        c.wide(&[batch(1.0), db(1.0), batch(1.0)], &mut w);
        assert_eq!(w.len(), 3 * BASE);
        assert_eq!(w[kb * BASE], 2.0 * batch(1.0)[0]);
        assert_eq!(w[kd * BASE + 4], db(1.0)[4]);
        assert_eq!(w[kw * BASE], 0.0);
        // Deterministic, whatever the input order.
        let mut rev = pts.clone();
        rev.reverse();
        assert_eq!(Clusters::fit(&rev), c);
    }

    #[test]
    fn fast_ln_is_close_to_ln() {
        for x in [1e-3, 0.07, 0.5, 1.0, 1.5, 2.0, 3.7, 40.0, 1234.5, 1e6, 1e9] {
            assert!((fast_ln(x) - x.ln()).abs() < 2e-4, "{x}: {} vs {}", fast_ln(x), x.ln());
        }
    }

    #[test]
    fn one_kind_of_work_is_one_cluster_and_bad_points_are_ignored() {
        let pts: Vec<_> = (0..10).map(|k| (signature(&row(1.0 + k as f64, 1.4 * (0.9 + 0.02 * k as f64), 10.0, 0.35, 10.0)).unwrap(), 1.0)).collect();
        assert_eq!(Clusters::fit(&pts).len(), 1);
        let mut bad = pts.clone();
        bad.push(([f64::NAN; SIG], 5.0));
        bad.push(([9.0; SIG], 0.0));
        assert_eq!(Clusters::fit(&bad).len(), 1);
        assert!(Clusters::fit(&[]).is_empty());
    }
}
