//! The online attributor for one host: keeps a sliding window of intervals,
//! fits the configured model on it, attributes each new interval exactly,
//! and re-fits when the model's error against the measured counters drifts
//! (SmartWatts' rule: median absolute error over the last 60 intervals above
//! 2 W). Every fit is a [`ModelVersion`] kept for audit; every result names
//! the version that produced it.
//!
//! Per interval and domain, with measured energy `M`:
//! 1. idle `I = min(M, idle_W · Δ)` (a note when `M` is below the estimate);
//! 2. dynamic `D = M − I`, split among the VMs by the model's per-VM dynamic
//!    power ([`crate::alloc::split`]); no active VM leaves `D` unattributed;
//! 3. `I` split by the idle policy;
//! 4. a GPU passed through to a VM is that VM's, `M` whole;
//! 5. whatever the splits cannot place (no weights, uneven rounding units)
//!    is the domain's `unattributed_uj`; `Σ shares + unattributed = M`.
//!
//! Intervals are held back until `min_fit` of them saw VM activity (or the
//! window is full), then the first model is fitted and they are attributed
//! with it: no interval is billed without an idle estimate. Idle power comes
//! from [`crate::idle_power`]: configured, else observed in quiet intervals
//! (tracked over the host's whole stream), else extrapolated; a model whose
//! idle was extrapolated is re-fitted as soon as enough quiet intervals have
//! been seen. A model with no weight for any active VM in a domain (fitted
//! before those VMs did anything) splits it by CPU time and says so. A stream that ends sooner is attributed by
//! [`Attributor::flush`] without a model (version 0): idle taken as 0 and
//! the whole of `M` split by CPU time (GPU: SM utilisation), as the ratio
//! baseline does.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use fairwatt_core::{Domain, DomainKind, Energy, HostId, IntervalRecord, Timestamp};

use crate::alloc::split;
use crate::error::{Error, Result};
use crate::features::{self, FeatureMode, Row};
use crate::idle::IdlePolicy;
use crate::idle_power::{IdleSource, IdleTracker};
use crate::model::{self, DomainFit, Method, ModelParams, PowerModel, TrainingSet};
use crate::result::{DomainAttribution, IntervalAttribution, VmShare};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AttributorConfig {
    pub method: Method,
    pub idle_policy: IdlePolicy,
    pub params: ModelParams,
    /// Intervals kept for fitting.
    pub window: usize,
    /// Intervals seen before the first fit.
    pub min_fit: usize,
    /// Intervals over which the median error is taken.
    pub error_window: usize,
    /// Re-fit when that median exceeds this many watts (or twice the
    /// model's own median error on its training window, if larger: a model
    /// cannot beat the noise it was trained on).
    pub threshold_w: f64,
    /// Idle power per domain measured by the operator (W); wins over any estimate.
    #[serde(default)]
    pub idle_watts: std::collections::BTreeMap<Domain, f64>,
    /// Quiet intervals (no VM ran) needed before their median is the idle power.
    #[serde(default = "default_min_quiet")]
    pub min_quiet: usize,
}

fn default_min_quiet() -> usize {
    30
}

impl AttributorConfig {
    pub fn new(method: Method, idle_policy: IdlePolicy) -> Self {
        AttributorConfig {
            method,
            idle_policy,
            params: ModelParams::default(),
            window: 1800,
            min_fit: 60,
            error_window: 60,
            threshold_w: 2.0,
            idle_watts: Default::default(),
            min_quiet: default_min_quiet(),
        }
    }
}

/// One fitted model, as kept for audit.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelVersion {
    pub version: u64,
    pub host: HostId,
    pub method: Method,
    pub mode: FeatureMode,
    /// Why it was fitted: `initial` or the recalibration trigger.
    pub reason: String,
    /// End of the last interval in the training window.
    pub fitted_at: Timestamp,
    pub window_first_seq: u64,
    pub window_last_seq: u64,
    pub window_intervals: usize,
    /// Median |predicted − measured| host power (top-level domains) over the training window.
    pub train_median_error_w: f64,
    pub domains: Vec<DomainFit>,
}

/// What one [`Attributor::push`] produced.
#[derive(Debug)]
pub struct Step {
    pub attribution: IntervalAttribution,
    /// Set when this interval triggered a (re)fit; the new version applies from the next interval.
    pub new_version: Option<ModelVersion>,
    /// |predicted − measured| host power in this interval, W (None without a model).
    pub error_w: Option<f64>,
}

pub struct Attributor {
    cfg: AttributorConfig,
    host: Option<HostId>,
    window: VecDeque<IntervalRecord>,
    model: Option<Box<dyn PowerModel>>,
    version: u64,
    threshold: f64,
    errors: VecDeque<f64>,
    since_fit: usize,
    last_seq: Option<u64>,
    /// Intervals at the back of `window` not yet attributed (before the first model).
    pending: usize,
    /// How many of those saw VM activity.
    busy_pending: usize,
    idle: IdleTracker,
    /// The current model extrapolated some domain's idle power.
    idle_extrapolated: bool,
    cpu_rows: Vec<Row>,
    rows: Vec<Row>,
    weights: Vec<f64>,
}

impl Attributor {
    pub fn new(cfg: AttributorConfig) -> Result<Self> {
        cfg.params.linear.check()?;
        if cfg.window < cfg.min_fit.max(2) || cfg.error_window == 0 {
            return Err(Error::Param(format!("window ({}) must hold at least min_fit ({}) and 2 intervals; error_window must be > 0", cfg.window, cfg.min_fit)));
        }
        if let Some((d, w)) = cfg.idle_watts.iter().find(|(_, w)| !(w.is_finite() && **w >= 0.0)) {
            return Err(Error::Param(format!("configured idle power of {d} must be finite and ≥ 0 W, got {w}")));
        }
        let threshold = cfg.threshold_w;
        Ok(Attributor {
            cfg,
            host: None,
            window: VecDeque::new(),
            model: None,
            version: 0,
            threshold,
            errors: VecDeque::new(),
            since_fit: 0,
            last_seq: None,
            pending: 0,
            busy_pending: 0,
            idle: IdleTracker::new(),
            idle_extrapolated: false,
            cpu_rows: Vec::new(),
            rows: Vec::new(),
            weights: Vec::new(),
        })
    }

    pub fn config(&self) -> &AttributorConfig {
        &self.cfg
    }

    /// The version results are currently produced with (0: no model yet).
    pub fn version(&self) -> u64 {
        self.version
    }

    pub fn model(&self) -> Option<&dyn PowerModel> {
        self.model.as_deref()
    }

    /// Takes one interval; returns the intervals attributed as a result, in
    /// order: none while the first model waits for `min_fit` intervals, all
    /// of those at once when it is fitted, then one per push.
    pub fn push(&mut self, rec: IntervalRecord) -> Result<Vec<Step>> {
        let bad = |msg: String| Error::BadRecord { host: rec.host.to_string(), seq: rec.seq, msg };
        rec.validate().map_err(|e| bad(e.to_string()))?;
        match &self.host {
            Some(h) if *h != rec.host => return Err(Error::WrongHost { host: rec.host.to_string(), seq: rec.seq, expected: h.to_string() }),
            _ => {}
        }
        if let Some(last) = self.last_seq
            && rec.seq <= last
        {
            return Err(Error::OutOfOrder { host: rec.host.to_string(), seq: rec.seq, last });
        }
        self.host = Some(rec.host.clone());
        self.last_seq = Some(rec.seq);
        let quiet = self.idle.observe(&rec);

        if self.model.is_none() {
            self.window.push_back(rec);
            if self.window.len() > self.cfg.window {
                self.window.pop_front();
            }
            self.pending += 1;
            self.busy_pending += usize::from(!quiet);
            // Fit once enough intervals show activity, or when holding more would overflow the window.
            if self.window.len() < self.cfg.min_fit || (self.busy_pending < self.cfg.min_fit && self.pending < self.cfg.window) {
                return Ok(Vec::new());
            }
            let v = match self.refit("initial".into()) {
                Ok(v) => v,
                // Cannot fit yet (degenerate data): keep waiting, bounded by the window.
                Err(_) if self.pending < self.cfg.window => return Ok(Vec::new()),
                Err(_) => return Ok(self.flush()),
            };
            let mut out = self.attribute_held();
            if let Some(first) = out.first_mut() {
                first.new_version = Some(v);
            }
            return Ok(out);
        }

        let (attribution, error_w) = self.attribute(&rec);
        if let Some(e) = error_w {
            self.errors.push_back(e);
            if self.errors.len() > self.cfg.error_window {
                self.errors.pop_front();
            }
        }
        self.window.push_back(rec);
        if self.window.len() > self.cfg.window {
            self.window.pop_front();
        }
        self.since_fit += 1;

        let reason = if self.idle_extrapolated && self.idle_now_known() {
            Some(format!("recalibration: idle power observed in {} quiet intervals replaces the extrapolated estimate", self.idle.quiet_intervals()))
        } else if self.since_fit >= self.cfg.error_window && self.errors.len() >= self.cfg.error_window {
            let med = median(self.errors.iter().copied());
            (med > self.threshold).then(|| format!("recalibration: median error {med:.2} W over the last {} intervals exceeds {:.2} W", self.errors.len(), self.threshold))
        } else {
            None
        };
        let new_version = match reason {
            Some(r) => match self.refit(r) {
                Ok(v) => Some(v),
                // Keep the current model; try again after another error window.
                Err(_) => {
                    self.since_fit = 0;
                    self.idle_extrapolated = false;
                    None
                }
            },
            None => None,
        };
        Ok(vec![Step { attribution, new_version, error_w }])
    }

    /// Attributes an interval that arrived after later ones were pushed
    /// (a late delivery), with the current model, leaving the window, the
    /// error tracking and the sequence as they are. Same checks and the
    /// same exact split as [`push`](Self::push); the result notes it.
    pub fn attribute_detached(&mut self, rec: &IntervalRecord) -> Result<IntervalAttribution> {
        rec.validate().map_err(|e| Error::BadRecord { host: rec.host.to_string(), seq: rec.seq, msg: e.to_string() })?;
        if let Some(h) = &self.host
            && *h != rec.host
        {
            return Err(Error::WrongHost { host: rec.host.to_string(), seq: rec.seq, expected: h.to_string() });
        }
        let (mut a, _) = self.attribute(rec);
        a.notes.push(format!("attributed out of order with model version {}", self.version));
        Ok(a)
    }

    /// Intervals pushed but not yet attributed (held for the first model).
    pub fn held(&self) -> usize {
        self.pending
    }

    /// Attributes the intervals still held for the first model, without
    /// one (version 0); for streams shorter than `min_fit`.
    pub fn flush(&mut self) -> Vec<Step> {
        self.attribute_held()
    }

    /// Attributes the `pending` intervals at the back of the window with
    /// the current model (none before the first fit).
    fn attribute_held(&mut self) -> Vec<Step> {
        let held: Vec<IntervalRecord> = self.window.iter().rev().take(self.pending).rev().cloned().collect();
        self.pending = 0;
        self.busy_pending = 0;
        held.iter()
            .map(|r| {
                let (attribution, error_w) = self.attribute(r);
                Step { attribution, new_version: None, error_w }
            })
            .collect()
    }

    /// Every domain the current model extrapolated now has a configured or observed idle power.
    fn idle_now_known(&self) -> bool {
        self.idle.quiet_intervals() >= self.cfg.min_quiet as u64
            && self.window.back().is_some_and(|r| r.domains.keys().all(|d| self.cfg.idle_watts.contains_key(d) || self.idle.observations(*d) >= self.cfg.min_quiet.max(1)))
    }

    fn refit(&mut self, reason: String) -> Result<ModelVersion> {
        let mode = (self.cfg.method == Method::Ratio).then_some(FeatureMode::Software);
        let known = self.idle.known(&self.cfg.idle_watts, self.cfg.min_quiet);
        let ts = TrainingSet::build(self.window.iter(), mode, &known)?;
        let m = model::fit(self.cfg.method, &ts, &self.cfg.params)?;
        let mut domains = m.describe();
        for f in &mut domains {
            f.idle = ts.idle.get(&f.domain).copied();
        }
        self.idle_extrapolated = ts.idle.values().any(|e| e.source == IdleSource::Extrapolated);
        let mut errs: Vec<f64> = self.window.iter().filter_map(|r| host_error(m.as_ref(), r, &mut self.cpu_rows, &mut self.rows)).collect();
        let train_med = median_vec(&mut errs);
        self.threshold = self.cfg.threshold_w.max(2.0 * train_med);
        self.version += 1;
        let last = self.window.back().expect("refit runs on a non-empty window");
        let v = ModelVersion {
            version: self.version,
            host: last.host.clone(),
            method: self.cfg.method,
            mode: ts.mode,
            reason,
            fitted_at: last.end,
            window_first_seq: ts.first_seq,
            window_last_seq: ts.last_seq,
            window_intervals: ts.intervals,
            train_median_error_w: train_med,
            domains,
        };
        self.model = Some(m);
        self.since_fit = 0;
        self.errors.clear();
        Ok(v)
    }

    fn attribute(&mut self, rec: &IntervalRecord) -> (IntervalAttribution, Option<f64>) {
        let dt = rec.duration();
        let dt_s = dt.as_secs_f64();
        let model = self.model.as_deref();
        let mode = model.map_or(FeatureMode::Software, |m| m.mode());
        let impute = model.map_or([0.0; 4], |m| m.impute());
        let mut notes = Vec::new();
        let imputed = features::cpu_rows(rec, mode, &impute, &mut self.cpu_rows);
        if let Some(m) = model {
            m.annotate(&mut self.cpu_rows);
        }
        if imputed > 0 {
            notes.push(format!("{imputed} VMs lack hardware counters: imputed from CPU time at the model's mean rates"));
        }
        let (mut pred_w, mut meas_w, mut predicted_all) = (0.0, 0.0, model.is_some());
        let mut domains = Vec::with_capacity(rec.domains.len());
        let mut dyn_shares: Vec<u64> = Vec::new();
        let mut idle_w_buf = Vec::new();
        let mut gpu_users = vec![false; rec.vms.len()];
        for (d, de) in &rec.domains {
            let measured = de.energy_uj.as_uj();
            let rows = features::domain_rows(rec, *d, mode, &impute, &self.cpu_rows, &mut self.rows);
            let mut da = DomainAttribution {
                domain: *d,
                measured_uj: de.energy_uj,
                status: de.status,
                idle_uj: Energy::ZERO,
                unattributed_uj: Energy::ZERO,
                vms: rec.vms.iter().map(|v| VmShare { vm: v.vm.clone(), tenant: v.tenant.clone(), dynamic_uj: Energy::ZERO, idle_uj: Energy::ZERO }).collect(),
            };
            let idle_w = model.and_then(|m| m.idle_watts(*d));
            let idle_est = idle_w.map_or(0, |w| (w.max(0.0) * dt_s * 1e6).round() as u64);
            if idle_est > measured {
                notes.push(format!("{d}: measured {measured} µJ is below the idle estimate {idle_est} µJ; all of it counted as idle"));
            }
            let idle = idle_est.min(measured);
            let dynamic = measured - idle;
            da.idle_uj = Energy::from_uj(idle);
            if d.is_top_level() {
                meas_w += measured as f64 / 1e6 / dt_s;
                match model.and_then(|m| m.predict_watts(*d, rows)) {
                    Some(p) => pred_w += p,
                    None => predicted_all = false,
                }
            }

            let owner = if d.kind == DomainKind::Gpu { features::passthrough_owner(rec, d.index) } else { None };
            if let Some(o) = owner {
                da.vms[o].dynamic_uj = Energy::from_uj(dynamic);
                da.vms[o].idle_uj = Energy::from_uj(idle);
                domains.push(da);
                continue;
            }
            if rec.vms.is_empty() {
                da.unattributed_uj = Energy::from_uj(measured);
                domains.push(da);
                continue;
            }
            let have = model.and_then(|m| m.vm_dynamic(*d, rows, &mut self.weights)).is_some();
            let weightless = have && dynamic > 0 && !self.weights.iter().any(|w| *w > 0.0);
            if !have || weightless {
                self.weights.clear();
                self.weights.extend(fallback_weights(rec, *d, rows, mode, dt_s));
                if model.is_some() && (!have || self.weights.iter().any(|w| *w > 0.0)) {
                    let why = if have { "gives no active VM a weight" } else { "does not cover it" };
                    notes.push(format!("{d}: model version {} {why}: split by CPU time (GPU: SM utilisation)", self.version));
                }
            }
            let ds = split(dynamic, &self.weights);
            dyn_shares.clear();
            dyn_shares.extend(&ds.shares);
            for (s, x) in da.vms.iter_mut().zip(&ds.shares) {
                s.dynamic_uj = Energy::from_uj(*x);
            }
            if d.kind == DomainKind::Gpu {
                for (i, v) in rec.vms.iter().enumerate() {
                    gpu_users[i] = v.features.gpus.iter().any(|g| g.gpu == d.index);
                }
            }
            self.cfg.idle_policy.weights(d.kind, &rec.vms, &dyn_shares, &gpu_users, &mut idle_w_buf);
            let is = split(idle, &idle_w_buf);
            for (s, x) in da.vms.iter_mut().zip(&is.shares) {
                s.idle_uj = Energy::from_uj(*x);
            }
            da.unattributed_uj = Energy::from_uj(ds.unsplit + is.unsplit);
            debug_assert!(da.is_conserved());
            domains.push(da);
        }
        let attribution = IntervalAttribution {
            host: rec.host.clone(),
            seq: rec.seq,
            start: rec.start,
            end: rec.end,
            method: self.cfg.method,
            model_version: self.version,
            idle_policy: self.cfg.idle_policy,
            domains,
            notes,
        };
        (attribution, predicted_all.then(|| (pred_w - meas_w).abs()))
    }
}

/// Without a model for the domain: CPU time (in hardware mode, cycles,
/// which follow it), GPU domains by SM utilisation.
fn fallback_weights<'a>(rec: &'a IntervalRecord, d: Domain, rows: &'a [Row], mode: FeatureMode, dt_s: f64) -> impl Iterator<Item = f64> + 'a {
    rec.vms.iter().zip(rows).map(move |(v, r)| match (d.kind, mode) {
        (DomainKind::Gpu, _) => r[0],
        (_, FeatureMode::Software) => r[0],
        (_, FeatureMode::Hardware) => v.features.cpu_time_us as f64 / 1e6 / dt_s,
    })
}

/// |predicted − measured| power over the record's top-level domains.
fn host_error(m: &dyn PowerModel, rec: &IntervalRecord, cpu_rows: &mut Vec<Row>, rows: &mut Vec<Row>) -> Option<f64> {
    let dt_s = rec.duration().as_secs_f64();
    if dt_s <= 0.0 {
        return None;
    }
    features::cpu_rows(rec, m.mode(), &m.impute(), cpu_rows);
    m.annotate(cpu_rows);
    let (mut p, mut y) = (0.0, 0.0);
    for (d, e) in rec.domains.iter().filter(|(d, _)| d.is_top_level()) {
        p += m.predict_watts(*d, features::domain_rows(rec, *d, m.mode(), &m.impute(), cpu_rows, rows))?;
        y += e.energy_uj.as_uj() as f64 / 1e6 / dt_s;
    }
    Some((p - y).abs())
}

fn median(it: impl Iterator<Item = f64>) -> f64 {
    let mut v: Vec<f64> = it.collect();
    median_vec(&mut v)
}

fn median_vec(v: &mut [f64]) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}
