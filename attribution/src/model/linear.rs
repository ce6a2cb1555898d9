//! Per domain, a non-negative linear power model on the VMs' features,
//! scaled by a load-dependent efficiency:
//!
//! ```text
//! P_d = idle_d + g_d(L) · Σ_k β_dk · Σ_vm x_vm,k        β ≥ 0, g ≥ 0
//! ```
//!
//! `L` is the host's load: the VMs' CPU seconds per second (a GPU's SM
//! utilisation), the [`features::LOAD`] slot of every row.
//! `g` is piecewise constant over load bins (quantiles of the window) with
//! mean 1: real servers spend more per event at light load than at full
//! load (turbo headroom, shared uncore and fans waking up: the concave
//! SPECpower curves), so a plain line fitted on a window where load and
//! workload mix move together would mistake that curve for a difference
//! between workloads. `g` is common to all VMs of an interval, so it
//! changes how much is dynamic, never the split: a VM's dynamic power is its
//! own term `g(L) · Σ_k β_k x_vm,k`. Fitted by alternating least squares:
//! `β` by the non-negative elastic net on `g`-scaled features with the idle
//! power held ([`super::nnls`]), then each bin's `g` in closed form. The
//! curve is kept only when it pays for its extra parameters (a lower BIC
//! than the plain line's); otherwise `g = 1`.
//!
//! With hardware counters and two or more kinds of work in the window
//! ([`crate::signature`]), a CPU-side domain may instead get one cost per
//! kind: `P = idle + Σ_k Σ_f β_kf Σ_{vm ∈ k} x_vm,f` over the first five
//! features, each VM-interval in the cluster its own counters point to. A
//! vector-heavy job and a memory-bound database then pay their own cost per
//! cycle and per miss, which no single line over all VMs can give them.
//! This model is used unless it fits the window worse than the shared one.

use std::collections::BTreeMap;

use fairwatt_core::Domain;

use super::nnls::{Gram, NonNegLinear, NonNegLinearParams};
use super::{DomainData, DomainFit, Method, PowerModel, TrainingSet};
use crate::error::Result;
use crate::features::{self, CLUSTER, FeatureMode, HwPerCpuSecond, LOAD, Row};
use crate::signature::{BASE, Clusters};
use fairwatt_core::DomainKind;

/// Load bins of the efficiency curve (fewer when the window is small).
const BINS: usize = 8;
/// Fewest samples a bin may hold.
const MIN_PER_BIN: usize = 30;
/// Alternations between `β` and `g`.
const ROUNDS: usize = 8;

/// `g(L)`: efficiency by load bin. `upper[b]` is bin `b`'s upper load edge.
#[derive(Clone, Debug, PartialEq)]
pub struct Efficiency {
    pub upper: Vec<f64>,
    pub g: Vec<f64>,
}

impl Efficiency {
    pub fn flat() -> Self {
        Efficiency { upper: vec![f64::INFINITY], g: vec![1.0] }
    }

    pub fn at(&self, load: f64) -> f64 {
        self.g[self.bin(load)]
    }

    /// Quantile bins of the window's loads, each with at least [`MIN_PER_BIN`] samples.
    fn bins(loads: &[f64]) -> Self {
        // Quantiles of an evenly strided sample: a day's window need not be sorted whole.
        let n = loads.len();
        let k = BINS.min(n / MIN_PER_BIN).max(1);
        let stride = (n / 4096).max(1);
        let mut v: Vec<f64> = loads.iter().step_by(stride).copied().filter(|l| l.is_finite()).collect();
        v.sort_by(f64::total_cmp);
        if v.is_empty() {
            return Efficiency::flat();
        }
        let mut upper: Vec<f64> = (1..k).map(|b| v[b * v.len() / k]).collect();
        upper.dedup();
        upper.push(f64::INFINITY);
        Efficiency { g: vec![1.0; upper.len()], upper }
    }

    fn bin(&self, load: f64) -> usize {
        self.upper.partition_point(|u| *u < load).min(self.g.len() - 1)
    }
}

#[derive(Clone, Debug)]
pub struct DomainLinear {
    pub model: NonNegLinear,
    pub efficiency: Efficiency,
    pub rmse_w: f64,
    pub samples: usize,
}

impl DomainLinear {
    fn dynamic(&self, x: &[f64]) -> f64 {
        self.model.coef.iter().zip(x).map(|(b, x)| b * x).sum::<f64>()
    }

    pub fn predict_row(&self, x: &Row) -> f64 {
        self.model.intercept + self.efficiency.at(x[LOAD]) * self.dynamic(x)
    }

    /// Fits `data` on its first `p` columns.
    pub fn fit(data: &DomainData, p: usize, params: &NonNegLinearParams) -> Result<DomainLinear> {
        let plain = data.fit_linear(p, params)?;
        let n = data.y.len();
        let mut eff = Efficiency::bins(&data.x.iter().map(|x| x[LOAD]).collect::<Vec<_>>());
        let idle = plain.model.intercept;
        let plain_fit = DomainLinear { model: plain.model.clone(), efficiency: Efficiency::flat(), rmse_w: plain.rmse_w, samples: n };
        let mut model = plain.model;
        if eff.g.len() > 1 {
            let bin: Vec<usize> = data.x.iter().map(|x| eff.bin(x[LOAD])).collect();
            let mut scaled = vec![0.0; p];
            for _ in 0..ROUNDS {
                let mut g = Gram::new(p);
                for ((x, y), b) in data.x.iter().zip(&data.y).zip(&bin) {
                    scaled.iter_mut().zip(&x[..p]).for_each(|(s, x)| *s = x * eff.g[*b]);
                    g.add(&scaled, *y);
                }
                model = g.solve_with_intercept(params, Some(idle))?;
                let (mut rs, mut ss) = (vec![0.0; eff.g.len()], vec![0.0; eff.g.len()]);
                for ((x, y), b) in data.x.iter().zip(&data.y).zip(&bin) {
                    let s: f64 = model.coef.iter().zip(&x[..p]).map(|(c, x)| c * x).sum();
                    rs[*b] += (y - idle) * s;
                    ss[*b] += s * s;
                }
                for b in 0..eff.g.len() {
                    eff.g[b] = if ss[b] > 0.0 { (rs[b] / ss[b]).max(0.0) } else { 1.0 };
                }
                // g and β trade a common factor: keep g's sample mean at 1.
                let mean = bin.iter().map(|b| eff.g[*b]).sum::<f64>() / n as f64;
                if !(mean > 0.0 && mean.is_finite()) {
                    eff = Efficiency::flat();
                    model = data.fit_linear(p, params)?.model;
                    break;
                }
                eff.g.iter_mut().for_each(|g| *g /= mean);
            }
        }
        let mut fit = DomainLinear { model, efficiency: eff, rmse_w: 0.0, samples: n };
        let sse: f64 = data.x.iter().zip(&data.y).map(|(x, y)| (fit.predict_row(x) - y).powi(2)).sum();
        fit.rmse_w = if n > 0 { (sse / n as f64).sqrt() } else { 0.0 };
        // The curve's extra parameters must pay for themselves (BIC): a flat
        // g where the load never bends the power is the plain model.
        let extra = fit.efficiency.g.len().saturating_sub(1) as f64;
        let bic = |rmse: f64| n as f64 * (rmse * rmse).max(1e-18).ln();
        if extra == 0.0 || bic(fit.rmse_w) + extra * (n as f64).ln() >= bic(plain_fit.rmse_w) {
            return Ok(plain_fit);
        }
        Ok(fit)
    }
}

/// One domain's model over per-workload-cluster features
/// ([`crate::signature`]): each cluster's cycles, instructions, references,
/// misses and IO have their own non-negative costs.
#[derive(Clone, Debug)]
pub struct ClusteredLinear {
    /// Cluster-major: `coef[k · BASE + f]`.
    pub model: NonNegLinear,
    pub rmse_w: f64,
    pub samples: usize,
}

impl ClusteredLinear {
    fn fit(data: &DomainData, params: &NonNegLinearParams) -> Result<Option<ClusteredLinear>> {
        let Some(p) = data.wide.first().map(|w| w.len()) else { return Ok(None) };
        if data.wide.len() != data.y.len() || p == 0 {
            return Ok(None);
        }
        let mut g = Gram::new(p);
        for (w, y) in data.wide.iter().zip(&data.y) {
            g.add(w, *y);
        }
        let model = g.solve_with_intercept(params, data.fixed_idle)?;
        Ok(Some(ClusteredLinear { rmse_w: g.rmse(&model), samples: g.n(), model }))
    }

    fn dynamic(&self, clusters: &Clusters, row: &Row) -> f64 {
        let k = if row[CLUSTER] >= 1.0 { Some(row[CLUSTER] as usize - 1) } else { clusters.assign(row) };
        match k {
            Some(k) => (0..BASE).map(|f| self.model.coef.get(k * BASE + f).copied().unwrap_or(0.0) * row[f]).sum(),
            None => 0.0,
        }
    }
}

/// What a domain's linear model is: one cost per feature for all VMs, or
/// one per workload cluster where the window holds two or more kinds of
/// work and the per-cluster fit is no worse.
#[derive(Clone, Debug)]
pub enum DomainModel {
    Shared(DomainLinear),
    Clustered(ClusteredLinear),
}

#[derive(Debug, Clone)]
pub struct LinearModel {
    mode: FeatureMode,
    impute: HwPerCpuSecond,
    fits: BTreeMap<Domain, DomainModel>,
    idle_w: BTreeMap<Domain, f64>,
    clusters: Option<Clusters>,
}

impl LinearModel {
    pub fn fit(ts: &TrainingSet, params: &NonNegLinearParams) -> Result<LinearModel> {
        let mut fits = BTreeMap::new();
        for (d, data) in &ts.domains {
            let p = ts.feature_count(*d);
            let shared = DomainLinear::fit(data, p, params)?;
            let choice = match ClusteredLinear::fit(data, params)? {
                // The per-cluster model is the more faithful one (a cost per
                // kind of work); it gives way only where it fits the window worse.
                Some(c) if c.rmse_w <= shared.rmse_w => DomainModel::Clustered(c),
                _ => DomainModel::Shared(shared),
            };
            fits.insert(*d, choice);
        }
        Ok(LinearModel { mode: ts.mode, impute: ts.impute, fits, idle_w: ts.idle_w.clone(), clusters: ts.clusters.clone() })
    }

    pub fn domain(&self, d: Domain) -> Option<&DomainModel> {
        self.fits.get(&d)
    }

    pub fn clusters(&self) -> Option<&Clusters> {
        self.clusters.as_ref()
    }
}

impl PowerModel for LinearModel {
    fn method(&self) -> Method {
        Method::Linear
    }
    fn mode(&self) -> FeatureMode {
        self.mode
    }
    fn impute(&self) -> HwPerCpuSecond {
        self.impute
    }
    fn idle_watts(&self, d: Domain) -> Option<f64> {
        self.idle_w.get(&d).copied()
    }
    fn annotate(&self, rows: &mut [Row]) {
        if let Some(c) = &self.clusters {
            for r in rows {
                r[CLUSTER] = c.assign(r).map_or(0.0, |k| (k + 1) as f64);
            }
        }
    }
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64> {
        match (self.fits.get(&d)?, &self.clusters) {
            (DomainModel::Clustered(c), Some(cl)) => Some(c.model.intercept + rows.iter().map(|r| c.dynamic(cl, r)).sum::<f64>()),
            (DomainModel::Shared(f), _) => Some(f.predict_row(&features::sum_rows(rows))),
            (DomainModel::Clustered(_), None) => None,
        }
    }
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()> {
        out.clear();
        match (self.fits.get(&d)?, &self.clusters) {
            (DomainModel::Clustered(c), Some(cl)) => out.extend(rows.iter().map(|r| c.dynamic(cl, r))),
            (DomainModel::Shared(f), _) => {
                let g = f.efficiency.at(rows.iter().map(|r| r[LOAD]).sum());
                out.extend(rows.iter().map(|r| g * f.dynamic(r)));
            }
            (DomainModel::Clustered(_), None) => return None,
        }
        Some(())
    }
    fn describe(&self) -> Vec<DomainFit> {
        self.fits
            .iter()
            .map(|(d, m)| {
                let idle_w = self.idle_w.get(d).copied();
                match m {
                    DomainModel::Shared(f) => DomainFit {
                        domain: *d,
                        features: features::names(d.kind, self.mode).iter().map(|s| s.to_string()).collect(),
                        coefficients: f.model.coef.clone(),
                        idle_w: idle_w.unwrap_or(f.model.intercept),
                        rmse_w: f.rmse_w,
                        samples: f.samples,
                        detail: (f.efficiency.g.len() > 1).then(|| {
                            let g: Vec<String> = f.efficiency.g.iter().map(|g| format!("{g:.3}")).collect();
                            let up: Vec<String> = f.efficiency.upper.iter().take(f.efficiency.g.len() - 1).map(|u| format!("{u:.3}")).collect();
                            format!("efficiency by load ({}): [{}] at bin edges [{}]", if d.kind == DomainKind::Gpu { "sm" } else { "cpu_s" }, g.join(", "), up.join(", "))
                        }),
                        idle: None,
                    },
                    DomainModel::Clustered(c) => {
                        let names = features::names(d.kind, self.mode);
                        let k = c.model.coef.len() / BASE;
                        DomainFit {
                            domain: *d,
                            features: (0..k).flat_map(|j| names[..BASE].iter().map(move |n| format!("w{j}.{n}"))).collect(),
                            coefficients: c.model.coef.clone(),
                            idle_w: idle_w.unwrap_or(c.model.intercept),
                            rmse_w: c.rmse_w,
                            samples: c.samples,
                            detail: self.clusters.as_ref().map(|cl| {
                                let cs: Vec<String> = cl
                                    .centroids
                                    .iter()
                                    .enumerate()
                                    .map(|(j, s)| format!("w{j}: IPC {:.2}, refs/kinst {:.1}, miss ratio {:.2}, {:.1} MB IO per CPU-s", s[0].exp(), s[1].exp(), s[2], s[3].exp() - 1.0))
                                    .collect();
                                format!("one cost per workload cluster ({}); fits the window no worse than the shared model", cs.join("; "))
                            }),
                            idle: None,
                        }
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two VM kinds on columns 0 and 1 (2 and 3 W per unit), load in the
    /// LOAD slot, power `10 + g(L) · dynamic`; samples on a grid so both
    /// kinds vary independently of the load.
    fn data(g: impl Fn(f64) -> f64) -> DomainData {
        let mut d = DomainData { fixed_idle: Some(10.0), ..Default::default() };
        for i in 0..40 {
            for j in 0..40 {
                let (a, b) = (0.5 + i as f64 / 40.0, 2.0 * j as f64 / 40.0);
                let mut x = [0.0; features::MAX_FEATURES];
                x[0] = a;
                x[1] = b;
                x[LOAD] = a + b;
                d.x.push(x);
                d.y.push(10.0 + g(a + b) * (2.0 * a + 3.0 * b));
            }
        }
        d
    }

    #[test]
    fn a_load_dependent_efficiency_is_learned_and_the_split_recovered() {
        let d = data(|l| 1.5 - 0.25 * l);
        let fit = DomainLinear::fit(&d, 2, &NonNegLinearParams::default()).unwrap();
        assert!(fit.efficiency.g.len() > 1, "{fit:?}");
        let ratio = fit.model.coef[0] / fit.model.coef[1];
        assert!((ratio - 2.0 / 3.0).abs() < 0.02 * 2.0 / 3.0, "β ratio {ratio}: {fit:?}");
        // Efficiency falls with load, as the data do.
        assert!(fit.efficiency.g.first() > fit.efficiency.g.last(), "{:?}", fit.efficiency);
        // The plain line misses the same split by more.
        let plain = d.fit_linear(2, &NonNegLinearParams::default()).unwrap().model;
        assert!((plain.coef[0] / plain.coef[1] - 2.0 / 3.0).abs() > (ratio - 2.0 / 3.0).abs());
    }

    #[test]
    fn a_flat_efficiency_is_the_plain_model() {
        let d = data(|_| 1.0);
        let fit = DomainLinear::fit(&d, 2, &NonNegLinearParams::default()).unwrap();
        assert_eq!(fit.efficiency, Efficiency::flat());
        assert!((fit.model.coef[0] - 2.0).abs() < 1e-6 && (fit.model.coef[1] - 3.0).abs() < 1e-6, "{fit:?}");
    }
}
