//! Power models: fitted on a window of a host's intervals, they give each
//! domain's idle power and each VM's dynamic power, which the engine turns
//! into exact integer shares of the measured energy.
//!
//! - [`Method::Ratio`]: CPU-time ratio, the Kepler/Scaphandre baseline (GPU
//!   domains by SM utilisation).
//! - [`Method::Linear`]: per domain a non-negative elastic net on the VMs'
//!   summed features ([`nnls`]); additive, so each VM's share is its own term.
//! - [`Method::Forest`]: the linear model plus a random forest on its
//!   residuals (non-additive), shares by Shapley values over the VMs.
//!
//! Idle power, per domain, comes from one estimator shared by every method
//! ([`TrainingSet::idle`], see [`crate::idle_power`]): configured or
//! observed in quiet intervals where known — the linear fits then keep it
//! as their intercept and fit only the slopes — else the intercept of the
//! non-negative linear fit, capped at the least power the window measured.
//! Sharing it keeps method comparisons about the split alone.

pub mod forest;
pub mod linear;
pub mod nnls;
pub mod ratio;

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use std::collections::HashMap;

use fairwatt_core::{Domain, DomainKind, IntervalRecord, VmId};

use crate::error::{Error, Result};
use crate::features::{self, FeatureMode, HwPerCpuSecond, Row};
use crate::idle_power::{IdleEstimate, IdleSource};
use crate::signature::{self, Clusters};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    Ratio,
    Linear,
    Forest,
}

impl Method {
    pub const ALL: [Method; 3] = [Method::Ratio, Method::Linear, Method::Forest];

    pub fn as_str(self) -> &'static str {
        match self {
            Method::Ratio => "ratio",
            Method::Linear => "linear",
            Method::Forest => "forest",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Method {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Method::ALL.into_iter().find(|m| m.as_str() == s).ok_or_else(|| Error::Param(format!("unknown method {s:?}: expected ratio, linear or forest")))
    }
}

/// What a model learned for one domain, kept with its version for audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DomainFit {
    pub domain: Domain,
    pub features: Vec<String>,
    pub coefficients: Vec<f64>,
    pub idle_w: f64,
    /// Training error of predicted against measured domain power.
    pub rmse_w: f64,
    pub samples: usize,
    /// Anything else worth recording (forest size, depth).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// How `idle_w` was known (filled in by the engine from the training set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<IdleEstimate>,
}

/// A fitted model for one host.
pub trait PowerModel: Send + Sync + fmt::Debug {
    fn method(&self) -> Method;
    /// Which CPU-side features the model reads.
    fn mode(&self) -> FeatureMode;
    /// Hardware counters per CPU-second, for VMs that lack them.
    fn impute(&self) -> HwPerCpuSecond;
    /// Idle power of `d` in watts; `None` for a domain the model never saw.
    fn idle_watts(&self, d: Domain) -> Option<f64>;
    /// The domain's predicted power with these VMs (idle included).
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64>;
    /// Fills what the model precomputes per row once per interval (the
    /// [`features::CLUSTER`] slot), so the per-domain calls below need not
    /// repeat it; a row left unannotated is still handled, only slower.
    fn annotate(&self, _rows: &mut [Row]) {}
    /// Each VM's dynamic power in `d` (W), one per row, used as split
    /// weights. `None` for a domain the model never saw.
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()>;
    fn describe(&self) -> Vec<DomainFit>;
}

/// One domain's training data: the host's summed features and its power.
#[derive(Clone, Debug, Default)]
pub struct DomainData {
    pub x: Vec<Row>,
    pub y: Vec<f64>,
    /// Idle power known from elsewhere: every linear fit keeps it as its intercept.
    pub fixed_idle: Option<f64>,
    /// Per interval, the base features summed per workload cluster
    /// ([`TrainingSet::clusters`]); empty unless the window has two or more.
    /// Shared by the CPU-side domains of one interval.
    pub wide: Vec<std::sync::Arc<[f64]>>,
}

/// A non-negative linear fit of one domain, with its training error.
#[derive(Clone, Debug)]
pub struct LinearFit {
    pub model: nnls::NonNegLinear,
    pub rmse_w: f64,
    pub samples: usize,
}

impl DomainData {
    /// The non-negative linear fit of power on the first `p` feature columns.
    pub fn fit_linear(&self, p: usize, params: &nnls::NonNegLinearParams) -> Result<LinearFit> {
        let mut g = nnls::Gram::new(p);
        for (x, y) in self.x.iter().zip(&self.y) {
            g.add(&x[..p], *y);
        }
        let model = g.solve_with_intercept(params, self.fixed_idle)?;
        Ok(LinearFit { rmse_w: g.rmse(&model), samples: g.n(), model })
    }
}

/// Intervals of a window (evenly strided) whose counters make the VMs' signatures.
const SIGNATURE_INTERVALS: usize = 3600;

/// A window of intervals turned into model inputs.
#[derive(Clone, Debug)]
pub struct TrainingSet {
    pub mode: FeatureMode,
    pub impute: HwPerCpuSecond,
    pub domains: BTreeMap<Domain, DomainData>,
    pub first_seq: u64,
    pub last_seq: u64,
    pub intervals: usize,
    /// Estimated idle power per domain, W (see the module doc).
    pub idle_w: BTreeMap<Domain, f64>,
    /// The same, with where each estimate came from.
    pub idle: BTreeMap<Domain, IdleEstimate>,
    /// Workload clusters of the window's VMs by counter signature (hardware mode only).
    pub clusters: Option<Clusters>,
}

impl TrainingSet {
    /// `mode`: which CPU-side features to use; `None` picks hardware when
    /// nearly every busy interval has the counters. `known`: idle power
    /// configured or observed per domain (see [`crate::idle_power`]).
    pub fn build<'a>(
        window: impl IntoIterator<Item = &'a IntervalRecord> + Clone,
        mode: Option<FeatureMode>,
        known: &BTreeMap<Domain, IdleEstimate>,
    ) -> Result<TrainingSet> {
        let (mut hw, mut busy) = (0usize, 0usize);
        let (mut sums, mut cpu) = ([0.0f64; 4], 0.0f64);
        let mut per_vm: HashMap<&VmId, Row> = HashMap::new();
        // Signatures are ratios of window totals: every few intervals of a
        // long window give the same ratios at a fraction of the cost.
        let stride = (window.clone().into_iter().count() / SIGNATURE_INTERVALS).max(1);
        for (n, r) in window.clone().into_iter().enumerate() {
            if r.vms.iter().any(|v| v.features.cpu_time_us > 0) {
                busy += 1;
                hw += usize::from(FeatureMode::of(r) == FeatureMode::Hardware);
            }
            for v in &r.vms {
                let f = &v.features;
                if let (Some(c), Some(i), Some(rf), Some(m)) = (f.cycles, f.instructions, f.cache_references, f.cache_misses) {
                    sums[0] += c as f64 / 1e9;
                    sums[1] += i as f64 / 1e9;
                    sums[2] += rf as f64 / 1e6;
                    sums[3] += m as f64 / 1e6;
                    cpu += f.cpu_time_us as f64 / 1e6;
                    if n % stride != 0 {
                        continue;
                    }
                    let t = per_vm.entry(&v.vm).or_insert([0.0; features::MAX_FEATURES]);
                    let io = f.io_read_bytes.unwrap_or(0) + f.io_write_bytes.unwrap_or(0);
                    for (k, x) in [c as f64 / 1e9, i as f64 / 1e9, rf as f64 / 1e6, m as f64 / 1e6, io as f64 / 1e6].into_iter().enumerate() {
                        t[k] += x;
                    }
                    t[features::LOAD] += f.cpu_time_us as f64 / 1e6;
                }
            }
        }
        // Hardware only when nearly every busy interval has the counters.
        let mode = mode.unwrap_or(if busy > 0 && hw * 10 >= busy * 9 { FeatureMode::Hardware } else { FeatureMode::Software });
        let impute = if cpu > 0.0 { sums.map(|s| s / cpu) } else { [0.0; 4] };
        // Totals have the same ratios as rates, so a VM's window totals give its signature.
        let clusters = (mode == FeatureMode::Hardware)
            .then(|| {
                let pts: Vec<_> = per_vm.values().filter(|t| t[features::LOAD] >= signature::MIN_CPU_S).filter_map(|t| Some((signature::signature(t)?, t[features::LOAD]))).collect();
                Clusters::fit(&pts)
            })
            .filter(|c| c.len() >= 2);
        let mut ts = TrainingSet {
            mode,
            impute,
            domains: BTreeMap::new(),
            first_seq: u64::MAX,
            last_seq: 0,
            intervals: 0,
            idle_w: BTreeMap::new(),
            idle: BTreeMap::new(),
            clusters,
        };
        let (mut cpu, mut gpu, mut wide) = (Vec::new(), Vec::new(), Vec::new());
        for r in window {
            ts.first_seq = ts.first_seq.min(r.seq);
            ts.last_seq = ts.last_seq.max(r.seq);
            ts.intervals += 1;
            let dt = r.duration().as_secs_f64();
            if dt <= 0.0 {
                continue;
            }
            features::cpu_rows(r, mode, &impute, &mut cpu);
            let shared: Option<std::sync::Arc<[f64]>> = ts.clusters.as_ref().map(|c| {
                c.wide(&cpu, &mut wide);
                wide.as_slice().into()
            });
            // Every CPU-side domain reads the same rows: sum them once.
            let cpu_sum = features::sum_rows(&cpu);
            for (d, e) in &r.domains {
                let sum = if d.kind == DomainKind::Gpu { features::sum_rows(features::domain_rows(r, *d, mode, &impute, &cpu, &mut gpu)) } else { cpu_sum };
                let data = ts.domains.entry(*d).or_default();
                data.x.push(sum);
                data.y.push(e.energy_uj.as_uj() as f64 / 1e6 / dt);
                if let Some(w) = shared.as_ref().filter(|_| d.kind != DomainKind::Gpu) {
                    data.wide.push(w.clone());
                }
            }
        }
        if ts.intervals == 0 {
            return Err(Error::Fit { method: "any", msg: "the training window is empty".into() });
        }
        for (d, data) in ts.domains.iter_mut() {
            let est = match known.get(d) {
                Some(k) => *k,
                None => {
                    let fit = data.fit_linear(features::names(d.kind, mode).len(), &nnls::NonNegLinearParams::default())?;
                    // Idle cannot exceed the least power the host drew.
                    let floor = data.y.iter().copied().fold(f64::INFINITY, f64::min).max(0.0);
                    IdleEstimate { watts: fit.model.intercept.min(floor), source: IdleSource::Extrapolated, observations: 0 }
                }
            };
            data.fixed_idle = Some(est.watts);
            ts.idle_w.insert(*d, est.watts);
            ts.idle.insert(*d, est);
        }
        Ok(ts)
    }

    pub fn feature_count(&self, d: Domain) -> usize {
        features::names(d.kind, self.mode).len()
    }
}

/// Fits `method` on a training set.
pub fn fit(method: Method, ts: &TrainingSet, params: &ModelParams) -> Result<Box<dyn PowerModel>> {
    Ok(match method {
        Method::Ratio => Box::new(ratio::RatioModel::fit(ts)?),
        Method::Linear => Box::new(linear::LinearModel::fit(ts, &params.linear)?),
        Method::Forest => forest::ForestModel::fit(ts, params)?,
    })
}

/// Hyperparameters of every method.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelParams {
    pub linear: nnls::NonNegLinearParams,
    pub forest: forest::ForestParams,
}
