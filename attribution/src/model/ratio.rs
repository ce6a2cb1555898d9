//! The baseline every tool ships: a domain's dynamic energy split by CPU
//! time (GPU domains by SM utilisation), as Kepler and Scaphandre do.

use std::collections::BTreeMap;

use fairwatt_core::{Domain, DomainKind};

use super::nnls::{Gram, NonNegLinearParams};
use super::{DomainFit, Method, PowerModel, TrainingSet};
use crate::error::Result;
use crate::features::{FeatureMode, HwPerCpuSecond, Row};

#[derive(Debug, Clone)]
pub struct RatioModel {
    /// Per domain: idle W, W per unit of the ratio feature and the line's
    /// own intercept (for error tracking), RMSE, samples.
    fits: BTreeMap<Domain, (f64, f64, f64, usize, f64)>,
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
            let mut g = Gram::new(1);
            for (x, y) in data.x.iter().zip(&data.y) {
                g.add(&[x[0]], *y);
            }
            let m = g.solve(&NonNegLinearParams::default())?;
            let idle = ts.idle_w.get(d).copied().unwrap_or(m.intercept);
            fits.insert(*d, (idle, m.coef[0], g.rmse(&m), g.n(), m.intercept));
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
        self.fits.get(&d).map(|f| f.0)
    }
    fn predict_watts(&self, d: Domain, rows: &[Row]) -> Option<f64> {
        let f = self.fits.get(&d)?;
        Some(f.4 + f.1 * rows.iter().map(|r| r[0]).sum::<f64>())
    }
    fn vm_dynamic(&self, d: Domain, rows: &[Row], out: &mut Vec<f64>) -> Option<()> {
        let f = self.fits.get(&d)?;
        out.clear();
        out.extend(rows.iter().map(|r| r[0] * f.1.max(1e-9)));
        Some(())
    }
    fn describe(&self) -> Vec<DomainFit> {
        self.fits
            .iter()
            .map(|(d, f)| DomainFit {
                domain: *d,
                features: vec![if d.kind == DomainKind::Gpu { "sm" } else { "cpu_s" }.to_string()],
                coefficients: vec![f.1],
                idle_w: f.0,
                rmse_w: f.2,
                samples: f.3,
                detail: None,
            })
            .collect()
    }
}
