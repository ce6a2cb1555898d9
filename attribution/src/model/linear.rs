//! Per domain, a non-negative linear power model on the VMs' summed
//! features: `P_d = idle_d + Σ_k β_dk · Σ_vm x_vm,k`. Additive, so a VM's
//! dynamic power is its own term `Σ_k β_dk · x_vm,k`.

use std::collections::BTreeMap;

use fairwatt_core::Domain;

use super::nnls::{NonNegLinear, NonNegLinearParams};
use super::{DomainFit, LinearFit, Method, PowerModel, TrainingSet};
use crate::error::Result;
use crate::features::{self, FeatureMode, HwPerCpuSecond, Row};

#[derive(Debug, Clone)]
pub struct LinearModel {
    mode: FeatureMode,
    impute: HwPerCpuSecond,
    fits: BTreeMap<Domain, LinearFit>,
    idle_w: BTreeMap<Domain, f64>,
}

impl LinearModel {
    pub fn fit(ts: &TrainingSet, params: &NonNegLinearParams) -> Result<LinearModel> {
        let mut fits = BTreeMap::new();
        for (d, data) in &ts.domains {
            fits.insert(*d, data.fit_linear(ts.feature_count(*d), params)?);
        }
        Ok(LinearModel { mode: ts.mode, impute: ts.impute, fits, idle_w: ts.idle_w.clone() })
    }

    pub fn domain(&self, d: Domain) -> Option<&NonNegLinear> {
        self.fits.get(&d).map(|f| &f.model)
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
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64> {
        let m = &self.fits.get(&d)?.model;
        Some(m.predict_row(&features::sum_rows(rows)))
    }
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()> {
        let m = &self.fits.get(&d)?.model;
        out.clear();
        out.extend(rows.iter().map(|r| m.coef.iter().zip(r).map(|(b, x)| b * x).sum::<f64>()));
        Some(())
    }
    fn describe(&self) -> Vec<DomainFit> {
        self.fits
            .iter()
            .map(|(d, f)| DomainFit {
                domain: *d,
                features: features::names(d.kind, self.mode).iter().map(|s| s.to_string()).collect(),
                coefficients: f.model.coef.clone(),
                idle_w: self.idle_w.get(d).copied().unwrap_or(f.model.intercept),
                rmse_w: f.rmse_w,
                samples: f.samples,
                detail: None,
                idle: None,
            })
            .collect()
    }
}
