//! Host overload detection (Beloglazov & Buyya, CCPE 2012): a static
//! threshold (THR), adaptive thresholds from the spread of the host's recent
//! utilisation (IQR, MAD), and prediction of the next interval by a line
//! through the last ten samples (LR, and its outlier-robust form LRR).
//! Thresholds, history lengths and fallbacks are CloudSim 3.0.3's: IQR and
//! MAD need 12 leading non-zero samples, LR 10, else a 0.7 threshold.

use super::plan::Plan;
use super::stats;

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Detector {
    /// Overloaded when the requested share exceeds the threshold.
    Thr(f64),
    /// Threshold 1 − s·IQR(history).
    Iqr(f64),
    /// Threshold 1 − s·MAD(history).
    Mad(f64),
    /// s × the utilisation predicted one migration horizon ahead ≥ 1.
    Lr(f64),
    /// As LR, with the line fitted robustly (bisquare reweighting).
    Lrr(f64),
}

/// CloudSim's fallback when a host has too little history.
const FALLBACK_THRESHOLD: f64 = 0.7;

impl Detector {
    pub fn name(&self) -> String {
        match self {
            Detector::Thr(p) => format!("thr-{p}"),
            Detector::Iqr(p) => format!("iqr-{p}"),
            Detector::Mad(p) => format!("mad-{p}"),
            Detector::Lr(p) => format!("lr-{p}"),
            Detector::Lrr(p) => format!("lrr-{p}"),
        }
    }

    /// Whether host `h` is overloaded as the plan stands.
    pub fn overloaded(&self, plan: &Plan, h: usize, step_s: f64) -> bool {
        self.judge(&plan.history(h), plan.requested_share(h), plan.max_ram(h), plan, step_s)
    }

    /// Whether host `h` would be overloaded with VM `v` added.
    pub fn overloaded_with(&self, plan: &Plan, h: usize, v: usize, step_s: f64) -> bool {
        let vm = &plan.st.vms[v];
        let extra = if vm.alive { vm.request() } else { vm.spec.mips };
        let share = plan.requested_share(h) + extra / plan.st.hosts[h].mips();
        self.judge(&plan.history_with(h, v), share, plan.max_ram(h).max(vm.spec.ram_mb), plan, step_s)
    }

    fn judge(&self, history: &[f64], share: f64, max_ram: u64, plan: &Plan, step_s: f64) -> bool {
        match *self {
            Detector::Thr(t) => share > t,
            Detector::Iqr(s) | Detector::Mad(s) => {
                if stats::count_non_zero_beginning(history) < 12 {
                    return share > FALLBACK_THRESHOLD;
                }
                let spread = if matches!(self, Detector::Iqr(_)) { stats::iqr(history) } else { stats::mad(history) };
                share > 1.0 - s * spread
            }
            Detector::Lr(s) | Detector::Lrr(s) => {
                const N: usize = 10;
                if history.len() < N {
                    return share > FALLBACK_THRESHOLD;
                }
                // Oldest to newest of the last ten, x = 1..=10.
                let y: Vec<f64> = history[..N].iter().rev().copied().collect();
                let fit = if matches!(self, Detector::Lrr(_)) { stats::robust_linear_fit(&y) } else { stats::linear_fit(&y) };
                let Some((a, b)) = fit else { return share > FALLBACK_THRESHOLD };
                let horizon = (max_ram as f64 / plan.st.migration_mb_s / step_s).ceil();
                (a + b * (N as f64 + horizon)) * s >= 1.0
            }
        }
    }
}
