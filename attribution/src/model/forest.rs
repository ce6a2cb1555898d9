//! [`Method::Forest`]: a non-additive power model, split by Shapley values.
//!
//! Per domain, `f(x) = base(x) + forest(x)` on the host's summed features:
//! `base` is the non-negative linear model ([`super::linear`]'s fit, on all
//! samples), `forest` a random forest (smartcore) on its residuals, fitted
//! on an evenly strided subsample of at most `max_train_samples` intervals
//! (a fit costs O(trees · K log K); the stride keeps the window's spread).
//! The forest captures what a line cannot: the concave or convex power
//! curve of a real server, interactions between features.
//!
//! `f` is not additive, so a VM's dynamic power is its Shapley value in the
//! game `v(S) = f(Σ_{i∈S} x_i) − f(0)`: the only split that is efficient
//! (the values sum to `f(N) − f(0)`), symmetric (identical VMs get the same)
//! and gives nothing to a VM that adds nothing. Shapley values are linear in
//! the game, so the linear part contributes exactly `β · x_i` and only the
//! forest residual goes through [`crate::shapley`]: exactly up to
//! `shapley_exact_max` active VMs, by antithetic permutation sampling beyond,
//! in batches until the largest 95 % half-width is below `target_rel_error`
//! of the total dynamic power (or `max_permutations`). The sampler is seeded
//! from `seed` and the domain, so the same inputs give the same shares.
//! VMs with an all-zero row are null players: exactly 0, left out of the game.
//!
//! A Shapley value can be negative (a VM whose load moves `f` into a dip of
//! the forest); split weights cannot, so negative values are clamped to 0 in
//! [`PowerModel::vm_dynamic`] (the engine splits the measured dynamic energy
//! by the weights, so the others absorb it). [`ForestModel::shapley`] gives
//! the unclamped values and their standard errors.
//!
//! Idle power is the estimator shared by every method ([`TrainingSet::idle_w`],
//! see [`super`]), so that comparisons are about the split; `max(0, f(0))`
//! stands in for a domain without it, and `describe()` reports `f(0)`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use smartcore::ensemble::random_forest_regressor::{RandomForestRegressor, RandomForestRegressorParameters};
use smartcore::linalg::basic::matrix::DenseMatrix;

use fairwatt_core::Domain;

use super::nnls::NonNegLinear;
use super::{DomainFit, Method, ModelParams, PowerModel, TrainingSet};
use crate::error::{Error, Result};
use crate::features::{self, FeatureMode, HwPerCpuSecond, Row};
use crate::shapley::{self, ShapleyEstimate};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ForestParams {
    pub trees: u16,
    pub max_depth: u16,
    pub min_samples_leaf: usize,
    /// Intervals per domain the forest trains on (evenly strided subsample).
    pub max_train_samples: usize,
    pub seed: u64,
    /// Exact Shapley values up to this many active VMs (at most 20).
    pub shapley_exact_max: usize,
    /// Permutations per sampling batch beyond that (antithetic pairs).
    pub shapley_permutations: usize,
    pub max_permutations: usize,
    /// Sample until the largest 95 % half-width is below this fraction of
    /// the total dynamic power.
    pub target_rel_error: f64,
}

impl Default for ForestParams {
    fn default() -> Self {
        ForestParams {
            trees: 50,
            max_depth: 10,
            min_samples_leaf: 5,
            max_train_samples: 4000,
            seed: 7,
            shapley_exact_max: 10,
            shapley_permutations: 64,
            max_permutations: 512,
            target_rel_error: 0.01,
        }
    }
}

impl ForestParams {
    pub fn check(&self) -> Result<()> {
        let bad = |m: String| Err(Error::Param(m));
        if self.trees == 0 || self.max_depth == 0 || self.min_samples_leaf == 0 || self.max_train_samples == 0 {
            return bad(format!("forest trees, max_depth, min_samples_leaf and max_train_samples must be ≥ 1, got {self:?}"));
        }
        if self.shapley_exact_max > shapley::EXACT_MAX {
            return bad(format!("shapley_exact_max must be ≤ {}, got {}", shapley::EXACT_MAX, self.shapley_exact_max));
        }
        if self.shapley_permutations == 0 || self.max_permutations < self.shapley_permutations {
            return bad(format!("need 1 ≤ shapley_permutations ≤ max_permutations, got {} and {}", self.shapley_permutations, self.max_permutations));
        }
        if !(self.target_rel_error >= 0.0 && self.target_rel_error.is_finite()) {
            return bad(format!("target_rel_error must be finite and ≥ 0, got {}", self.target_rel_error));
        }
        Ok(())
    }
}

type Forest = RandomForestRegressor<f64, f64, DenseMatrix<f64>, Vec<f64>>;

#[derive(Debug)]
struct DomainModel {
    /// Feature columns used.
    p: usize,
    base: NonNegLinear,
    /// `None`: degenerate data, base model alone (said in `detail`).
    forest: Option<Forest>,
    idle_w: f64,
    f0: f64,
    rmse: f64,
    samples: usize,
    detail: String,
    seed: u64,
}

impl DomainModel {
    fn residual(&self, x: &[f64]) -> f64 {
        let Some(forest) = &self.forest else { return 0.0 };
        // A 1×p matrix cannot be mis-shaped and the forest is fitted, so
        // neither call fails; 0 (the base model alone) if one ever did.
        DenseMatrix::new(1, self.p, x[..self.p].to_vec(), false).and_then(|m| forest.predict(&m)).map_or(0.0, |y| y[0])
    }

    fn f(&self, x: &[f64]) -> f64 {
        self.base.predict_row(&x[..self.p]) + self.residual(x)
    }
}

#[derive(Debug)]
pub struct ForestModel {
    mode: FeatureMode,
    impute: HwPerCpuSecond,
    params: ForestParams,
    fits: BTreeMap<Domain, DomainModel>,
}

impl ForestModel {
    pub fn fit(ts: &TrainingSet, p: &ModelParams) -> Result<Box<dyn PowerModel>> {
        Ok(Box::new(ForestModel::fit_model(ts, p)?))
    }

    pub fn fit_model(ts: &TrainingSet, params: &ModelParams) -> Result<ForestModel> {
        let fp = &params.forest;
        fp.check()?;
        let mut fits = BTreeMap::new();
        for (d, data) in &ts.domains {
            let p = ts.feature_count(*d);
            let base = data.fit_linear(p, &params.linear)?.model;

            // Evenly strided subsample: deterministic, spans the window.
            let n = data.y.len();
            let k = n.min(fp.max_train_samples);
            let idx: Vec<usize> = (0..k).map(|j| j * n / k).collect();
            let xs: Vec<f64> = idx.iter().flat_map(|&i| data.x[i][..p].iter().copied()).collect();
            let resid: Vec<f64> = idx.iter().map(|&i| data.y[i] - base.predict_row(&data.x[i][..p])).collect();

            let seed = domain_seed(fp.seed, *d);
            let why_not = degenerate(&xs, &resid, p, fp.min_samples_leaf);
            let forest = match why_not {
                Some(_) => None,
                None => {
                    let m = DenseMatrix::new(k, p, xs.clone(), false).map_err(smartcore_err)?;
                    let rp = RandomForestRegressorParameters::default()
                        .with_n_trees(fp.trees as usize)
                        .with_max_depth(fp.max_depth)
                        .with_min_samples_leaf(fp.min_samples_leaf)
                        .with_min_samples_split(2 * fp.min_samples_leaf)
                        // All features as split candidates (sklearn's regression
                        // default): smartcore's √p would leave one of two.
                        .with_m(p)
                        .with_seed(seed);
                    Some(Forest::fit(&m, &resid, rp).map_err(smartcore_err)?)
                }
            };
            let mut dm = DomainModel { p, base, forest, idle_w: 0.0, f0: 0.0, rmse: 0.0, samples: n, detail: String::new(), seed };
            dm.f0 = dm.f(&[0.0; features::MAX_FEATURES]);
            dm.idle_w = ts.idle_w.get(d).copied().unwrap_or(dm.f0.max(0.0));
            // Training RMSE of f on the forest's subsample (all of it up to
            // max_train_samples), one batched prediction.
            let pred = match &dm.forest {
                Some(f) => DenseMatrix::new(k, p, xs, false).and_then(|m| f.predict(&m)).map_err(smartcore_err)?,
                None => vec![0.0; k],
            };
            let sse: f64 = idx.iter().zip(&pred).map(|(&i, r)| (dm.base.predict_row(&data.x[i][..p]) + r - data.y[i]).powi(2)).sum();
            dm.rmse = if k > 0 { (sse / k as f64).sqrt() } else { 0.0 };
            dm.detail = match why_not {
                None => format!("forest: {} trees, depth {}, trained on {k} samples; f(0) = {:.2} W", fp.trees, fp.max_depth, dm.f0),
                Some(why) => format!("forest: none ({why}), base linear model alone; f(0) = {:.2} W", dm.f0),
            };
            fits.insert(*d, dm);
        }
        Ok(ForestModel { mode: ts.mode, impute: ts.impute, params: fp.clone(), fits })
    }

    /// The unclamped Shapley values of the VMs in `d` (W), with their
    /// standard errors: 0 for inactive VMs and whenever the game was solved
    /// exactly. Efficient: they sum to `f(Σ rows) − f(0)`.
    pub fn shapley(&self, d: Domain, rows: &[Row]) -> Option<ShapleyEstimate> {
        let m = self.fits.get(&d)?;
        let p = m.p;
        let active: Vec<usize> = (0..rows.len()).filter(|&i| rows[i][..p].iter().any(|&x| x != 0.0)).collect();
        // The linear part, exactly: each VM's own term.
        let mut values: Vec<f64> = rows.iter().map(|r| m.base.coef.iter().zip(r).map(|(b, x)| b * x).sum()).collect();
        let mut std_err = vec![0.0; rows.len()];
        if m.forest.is_none() || active.is_empty() {
            return Some(ShapleyEstimate { values, std_err, evaluations: 0, exact: true });
        }
        // The residual game over the active VMs; its constant forest(0) term
        // cancels in every marginal contribution, so it is left out.
        let mut sum = [0.0; features::MAX_FEATURES];
        let mut game = |s: &[bool]| {
            sum = [0.0; features::MAX_FEATURES];
            for (&i, _) in active.iter().zip(s).filter(|(_, s)| **s) {
                sum.iter_mut().zip(&rows[i]).for_each(|(a, x)| *a += x);
            }
            m.residual(&sum)
        };
        let fp = &self.params;
        let est = if active.len() <= fp.shapley_exact_max {
            shapley::exact(active.len(), &mut game)
        } else {
            let total = m.f(&features::sum_rows(rows)) - m.f0;
            shapley::sample_until(active.len(), fp.shapley_permutations, fp.max_permutations, fp.target_rel_error, total, m.seed, &mut game)
        };
        for (j, &i) in active.iter().enumerate() {
            values[i] += est.values[j];
            std_err[i] = est.std_err[j];
        }
        Some(ShapleyEstimate { values, std_err, evaluations: est.evaluations, exact: est.exact })
    }
}

/// Why the forest cannot be fitted on these residuals, if it cannot:
/// smartcore needs samples and variation, and a forest on noise-free
/// residuals would only add evaluation cost.
fn degenerate(xs: &[f64], resid: &[f64], p: usize, leaf: usize) -> Option<&'static str> {
    let k = resid.len();
    if k < 2 * leaf.max(1) {
        return Some("too few samples");
    }
    if xs.iter().chain(resid).any(|v| !v.is_finite()) {
        return Some("non-finite data");
    }
    let spread = |it: &mut dyn Iterator<Item = f64>| it.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    let constant = |c: usize| {
        let (lo, hi) = spread(&mut xs.iter().skip(c).step_by(p).copied());
        lo == hi
    };
    if (0..p).all(constant) {
        return Some("constant features");
    }
    let (lo, hi) = spread(&mut resid.iter().copied());
    let level = resid.iter().fold(0.0f64, |m, r| m.max(r.abs())).max(1.0);
    if hi - lo <= 1e-9 * level {
        return Some("constant residuals");
    }
    None
}

/// A fixed seed per domain (FNV-1a of its name, mixed with the configured
/// seed): stable across runs and platforms, unlike `Hash`.
fn domain_seed(seed: u64, d: Domain) -> u64 {
    let h = d.to_string().bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3));
    shapley::SplitMix64::new(seed ^ h).next_u64()
}

fn smartcore_err(e: smartcore::error::Failed) -> Error {
    Error::Fit { method: "forest", msg: e.to_string() }
}

impl PowerModel for ForestModel {
    fn method(&self) -> Method {
        Method::Forest
    }
    fn mode(&self) -> FeatureMode {
        self.mode
    }
    fn impute(&self) -> HwPerCpuSecond {
        self.impute
    }
    fn idle_watts(&self, d: Domain) -> Option<f64> {
        self.fits.get(&d).map(|m| m.idle_w)
    }
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64> {
        Some(self.fits.get(&d)?.f(&features::sum_rows(rows)))
    }
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()> {
        let est = self.shapley(d, rows)?;
        out.clear();
        // Split weights cannot be negative (see the module doc).
        out.extend(est.values.iter().map(|v| v.max(0.0)));
        Some(())
    }
    fn describe(&self) -> Vec<DomainFit> {
        self.fits
            .iter()
            .map(|(d, m)| DomainFit {
                domain: *d,
                features: features::names(d.kind, self.mode).iter().map(|s| s.to_string()).collect(),
                coefficients: m.base.coef.clone(),
                idle_w: m.idle_w,
                rmse_w: m.rmse,
                samples: m.samples,
                detail: Some(m.detail.clone()),
                idle: None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::DomainData;
    use crate::shapley::SplitMix64;
    use fairwatt_core::DomainKind;
    use std::time::Instant;

    const PKG: Domain = Domain::new(DomainKind::Package, 0);

    /// A convex server power curve in total CPU seconds per second.
    fn curve(u: f64) -> f64 {
        50.0 + 20.0 * u + 30.0 * u * u
    }

    /// Software mode (cpu_s, io_mb), u uniform on [0, 4]; power ignores IO.
    fn training(n: usize) -> TrainingSet {
        let mut rng = SplitMix64::new(11);
        let mut unif = || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut data = DomainData::default();
        for _ in 0..n {
            let u = 4.0 * unif();
            data.x.push(row(u, 20.0 * unif()));
            data.y.push(curve(u));
        }
        let domains = BTreeMap::from([(PKG, data)]);
        TrainingSet { mode: FeatureMode::Software, impute: [0.0; 4], domains, first_seq: 0, last_seq: n as u64 - 1, intervals: n, idle_w: BTreeMap::new(), idle: BTreeMap::new(), clusters: None }
    }

    fn row(cpu: f64, io: f64) -> Row {
        [cpu, io, 0.0, 0.0, 0.0, 0.0, 0.0, cpu, 0.0]
    }
    fn fit(ts: &TrainingSet) -> ForestModel {
        ForestModel::fit_model(ts, &ModelParams::default()).unwrap()
    }

    #[test]
    fn fits_a_convex_curve_and_its_idle() {
        let ts = training(3000);
        let m = fit(&ts);
        for k in 1..40 {
            let u = k as f64 / 10.0;
            let p = m.predict_watts(PKG, &[row(u * 0.3, 1.0), row(u * 0.7, 2.0)]).unwrap();
            assert!((p - curve(u)).abs() < 0.03 * curve(u), "u = {u}: {p} vs {}", curve(u));
        }
        let f0 = m.predict_watts(PKG, &[]).unwrap();
        assert!((f0 - 50.0).abs() < 2.5, "f(0) = {f0}");
        // Without a shared estimate, idle is max(0, f(0)); with one, that one.
        assert_eq!(m.idle_watts(PKG), Some(f0.max(0.0)));
        let mut shared = ts.clone();
        shared.idle_w.insert(PKG, 44.0);
        assert_eq!(fit(&shared).idle_watts(PKG), Some(44.0));
        let d = &m.describe()[0];
        assert_eq!(d.detail.as_deref().unwrap().split(';').next(), Some("forest: 50 trees, depth 10, trained on 3000 samples"));
        assert!(d.rmse_w < 5.0 && d.samples == 3000 && d.features == ["cpu_s", "io_mb"], "{d:?}");
        assert!(m.idle_watts(Domain::new(DomainKind::Dram, 0)).is_none());
    }

    #[test]
    fn shares_are_shapley_values_of_the_curve() {
        let m = fit(&training(3000));
        // v(S) = 20·Σx + 30·(Σx)²  ⇒  φ_i = x_i·(20 + 30·Σx): VM 1 does
        // twice VM 0's work and gets twice its share, not more.
        let rows = [row(1.0, 0.0), row(2.0, 5.0), row(0.0, 0.0), row(0.5, 0.0), row(0.5, 0.0)];
        let mut out = Vec::new();
        m.vm_dynamic(PKG, &rows, &mut out).unwrap();
        let total: f64 = rows.iter().map(|r| r[0]).sum();
        for (i, r) in rows.iter().enumerate() {
            let want = r[0] * (20.0 + 30.0 * total);
            assert!(out[i] >= 0.0 && (out[i] - want).abs() < 0.05 * want.max(10.0), "VM {i}: {} vs {want} ({out:?})", out[i]);
        }
        assert_eq!(out[2], 0.0, "a VM that did nothing gets nothing");
        assert!((out[3] - out[4]).abs() < 1e-9 * out[3], "identical VMs: {out:?}");
        let est = m.shapley(PKG, &rows).unwrap();
        let dynamic = m.predict_watts(PKG, &rows).unwrap() - m.predict_watts(PKG, &[]).unwrap();
        assert!(est.exact && (est.values.iter().sum::<f64>() - dynamic).abs() < 1e-9);
        // An unknown domain has no model.
        assert!(m.vm_dynamic(Domain::new(DomainKind::Gpu, 0), &rows, &mut out).is_none());
    }

    #[test]
    fn many_vms_are_sampled_efficiently_and_deterministically() {
        let m = fit(&training(3000));
        let mut rows: Vec<Row> = (0..14).map(|i| row(0.05 + 0.03 * i as f64, i as f64)).collect();
        rows.push(row(0.0, 0.0));
        rows.push(rows[3]);
        let est = m.shapley(PKG, &rows).unwrap();
        assert!(!est.exact && est.evaluations > 0);
        let dynamic = m.predict_watts(PKG, &rows).unwrap() - m.predict_watts(PKG, &[]).unwrap();
        assert!((est.values.iter().sum::<f64>() - dynamic).abs() < 1e-9, "{} vs {dynamic}", est.values.iter().sum::<f64>());
        let (mut a, mut b) = (Vec::new(), Vec::new());
        m.vm_dynamic(PKG, &rows, &mut a).unwrap();
        m.vm_dynamic(PKG, &rows, &mut b).unwrap();
        assert!(a == b && a[14] == 0.0 && a.iter().all(|&w| w >= 0.0), "{a:?}");
        assert!((a.iter().sum::<f64>() - dynamic).abs() < 0.01 * dynamic, "{a:?} vs {dynamic}");
        // Sampled, so identical VMs agree within the reported error.
        assert!((a[3] - a[15]).abs() <= 1.96 * (est.std_err[3] + est.std_err[15]) + 1e-9, "{} vs {}", a[3], a[15]);
        // A refit gives the same model.
        let mut c = Vec::new();
        fit(&training(3000)).vm_dynamic(PKG, &rows, &mut c).unwrap();
        assert_eq!(a, c);
    }

    #[test]
    fn degenerate_data_falls_back_to_the_base_model() {
        let cases: [(&str, Vec<(Row, f64)>); 3] = [
            ("constant power", (0..100).map(|i| (row(i as f64 / 50.0, 1.0), 80.0)).collect()),
            ("one sample", vec![(row(1.0, 2.0), 90.0)]),
            ("no activity", (0..100).map(|i| (row(0.0, 0.0), 60.0 + (i % 3) as f64)).collect()),
        ];
        for (what, samples) in cases {
            let mut ts = training(10);
            let data = ts.domains.get_mut(&PKG).unwrap();
            data.x = samples.iter().map(|s| s.0).collect();
            data.y = samples.iter().map(|s| s.1).collect();
            let m = fit(&ts);
            assert!(m.describe()[0].detail.as_deref().unwrap().contains("base linear model alone"), "{what}");
            let mut out = Vec::new();
            m.vm_dynamic(PKG, &[row(1.0, 0.0), row(0.0, 0.0)], &mut out).unwrap();
            assert!(out.iter().all(|w| w.is_finite() && *w >= 0.0) && out[1] == 0.0, "{what}: {out:?}");
            assert!(m.predict_watts(PKG, &[row(0.5, 0.0)]).unwrap().is_finite(), "{what}");
        }
        // Nonsense parameters are refused; an empty config gives the defaults.
        let bad = ModelParams { forest: ForestParams { shapley_exact_max: 25, ..Default::default() }, ..Default::default() };
        assert!(ForestModel::fit(&training(100), &bad).is_err());
        assert_eq!(serde_json::from_str::<ForestParams>("{}").unwrap(), ForestParams::default());
    }

    /// `CARGO_TARGET_DIR=/work/target-release cargo test --release -p
    /// fairwatt-attribution -- --ignored --nocapture forest_timing`
    #[test]
    #[ignore]
    fn forest_timing() {
        for n in [1800, 4000, 20_000] {
            let t = Instant::now();
            let m = fit(&training(n));
            println!("fit on {n} intervals: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
            for vms in if n == 4000 { vec![8, 10, 11, 20, 50] } else { vec![] } {
                let rows: Vec<Row> = (0..vms).map(|i| row(3.0 / vms as f64 * (0.5 + (i % 4) as f64 / 3.0), (i % 5) as f64)).collect();
                let (mut out, t) = (Vec::new(), Instant::now());
                (0..20).for_each(|_| m.vm_dynamic(PKG, &rows, &mut out).unwrap());
                let est = m.shapley(PKG, &rows).unwrap();
                let (ms, hw) = (t.elapsed().as_secs_f64() * 1e3 / 20.0, est.max_half_width());
                let pct = 100.0 * hw / est.values.iter().sum::<f64>();
                println!("vm_dynamic, {vms} VMs: {ms:.2} ms, {} evaluations, exact {}, 95 % half-width {hw:.3} W ({pct:.2} %)", est.evaluations, est.exact);
            }
        }
    }
}
