//! Which VM leaves an overloaded host (Beloglazov & Buyya 2012): the one
//! that migrates fastest (MMT: least RAM), the one whose load moves most
//! with the others' (MC: highest R² regressed on them), the least loaded
//! (MU), or one at random (RS, seeded).

use super::plan::Plan;
use super::stats;
use crate::rng::SplitMix64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Selector {
    Mmt,
    Mc,
    Mu,
    Rs,
}

impl Selector {
    pub fn name(&self) -> &'static str {
        match self {
            Selector::Mmt => "mmt",
            Selector::Mc => "mc",
            Selector::Mu => "mu",
            Selector::Rs => "rs",
        }
    }

    /// The VM to take off host `h` next, if any may move.
    pub fn pick(&self, plan: &Plan, h: usize, rng: &mut SplitMix64) -> Option<usize> {
        let vms = plan.migratable(h);
        if vms.is_empty() {
            return None;
        }
        let st = plan.st;
        // First of the minima, as CloudSim scans with a strict `<`.
        let first_min = |key: &dyn Fn(usize) -> f64| vms.iter().copied().fold(None::<(usize, f64)>, |best, v| match best {
            Some((_, k)) if key(v) >= k => best,
            _ => Some((v, key(v))),
        });
        match self {
            Selector::Mmt => first_min(&|v| st.vms[v].spec.ram_mb as f64).map(|b| b.0),
            Selector::Mu => first_min(&|v| st.vms[v].request()).map(|b| b.0),
            Selector::Rs => Some(vms[(rng.next_u64() % vms.len() as u64) as usize]),
            Selector::Mc => max_correlation(plan, &vms).or_else(|| Selector::Mmt.pick(plan, h, rng)),
        }
    }
}

/// The VM whose utilisation history the others explain best; `None` when
/// the histories are too short for the regression (CloudSim then falls back
/// to MMT).
fn max_correlation(plan: &Plan, vms: &[usize]) -> Option<usize> {
    if vms.len() < 2 {
        return None;
    }
    let hist: Vec<Vec<f64>> = vms.iter().map(|v| plan.st.vms[*v].history.iter().copied().collect()).collect();
    let m = hist.iter().map(Vec::len).min()?;
    let rows: Vec<&[f64]> = hist.iter().map(|h| &h[..m]).collect();
    let mut best: Option<(usize, f64)> = None;
    for i in 0..rows.len() {
        let others: Vec<&[f64]> = rows.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, r)| *r).collect();
        let r2 = stats::r_squared(rows[i], &others)?;
        if best.is_none_or(|(_, b)| r2 > b) {
            best = Some((vms[i], r2));
        }
    }
    best.map(|b| b.0)
}
