//! The baseline every tool ships: a domain's dynamic energy split by CPU
//! time (GPU domains by SM utilisation), as Kepler and Scaphandre do.

use std::collections::BTreeMap;

use fairwatt_core::{Domain, DomainKind};

use super::nnls::NonNegLinearParams;
use super::{DomainFit, LinearFit, Method, PowerModel, TrainingSet};
use crate::error::Result;
use crate::features::{FeatureMode, HwPerCpuSecond, Row};

#[derive(Debug, Clone)]
pub struct RatioModel {
    fits: BTreeMap<Domain, RatioFit>,
}

#[derive(Debug, Clone)]
struct RatioFit {
    /// The shared idle estimate (see [`super`]).
    idle_w: f64,
    /// Power on the ratio feature alone: its slope for error tracking.
    line: LinearFit,
}

impl RatioModel {
    /// Reads CPU time (column 0 of software-mode rows), so it needs a
    /// software-mode training set; GPU rows lead with SM utilisation.
    pub fn fit(ts: &TrainingSet) -> Result<RatioModel> {
        if ts.mode != FeatureMode::Software {
            return Err(crate::Error::Fit { method: "ratio", msg: "needs software-mode features (CPU time)".into() });
        }
        let mut fits = BTreeMap::new();
        for (d, data) in &ts.domains {
            let line = data.fit_linear(1, &NonNegLinearParams::default())?;
            let idle_w = ts.idle_w.get(d).copied().unwrap_or(line.model.intercept);
            fits.insert(*d, RatioFit { idle_w, line });
        }
        Ok(RatioModel { fits })
    }
}


impl PowerModel for RatioModel {
    fn method(&self) -> Method {
        Method::Ratio
    }
    fn mode(&self) -> FeatureMode {
        FeatureMode::Software
    }
    fn impute(&self) -> HwPerCpuSecond {
        [0.0; 4]
    }
    fn idle_watts(&self, d: Domain) -> Option<f64> {
        self.fits.get(&d).map(|f| f.idle_w)
    }
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64> {
        let f = self.fits.get(&d)?;
        Some(f.line.model.predict_row(&[rows.iter().map(|r| r[0]).sum::<f64>()]))
    }
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()> {
        let f = self.fits.get(&d)?;
        out.clear();
        let slope = f.line.model.coef[0].max(1e-9);
        out.extend(rows.iter().map(|r| r[0] * slope));
        Some(())
    }
    fn describe(&self) -> Vec<DomainFit> {
        self.fits
            .iter()
            .map(|(d, f)| DomainFit {
                domain: *d,
                features: vec![if d.kind == DomainKind::Gpu { "sm" } else { "cpu_s" }.to_string()],
                coefficients: f.line.model.coef.clone(),
                idle_w: f.idle_w,
                rmse_w: f.line.rmse_w,
                samples: f.line.samples,
                detail: None,
                idle: None,
            })
            .collect()
    }
}
