//! Tabular Q-learning. A table over the whole observation would never see
//! the same row twice, so Q is kept per (state, action) on a few
//! discretised features: the VM's size and whether it is being created,
//! the pool's load, and the chosen slot's active share, mean utilisation,
//! its candidate's power rise and utilisation after, and whether its hosts
//! are the efficient kind. Keying on the slot's features rather than its
//! index also survives re-clustering, which reorders slots.

use std::collections::BTreeMap;

use super::agent::{Epsilon, Learner, random_feasible};
use super::config::QTableConfig;
use super::env::{F_ACTIVE, F_AFTER, F_RISE, F_UTIL, F_WPM, Measures, Obs, VM_FEATURES, slot_feature};
use super::replay::Experience;
use super::store::{self, Array};
use crate::error::Result;
use crate::rng::SplitMix64;

pub struct QTable {
    cfg: QTableConfig,
    q: BTreeMap<u64, f64>,
    eps: Epsilon,
    rng: SplitMix64,
    updates: usize,
}

impl QTable {
    pub fn new(cfg: &QTableConfig) -> QTable {
        QTable { cfg: cfg.clone(), q: BTreeMap::new(), eps: Epsilon::new(&cfg.explore), rng: SplitMix64::new(cfg.seed), updates: 0 }
    }

    /// Mixed-radix key of (state, action).
    fn key(&self, s: &[f32], a: usize) -> u64 {
        let b = self.cfg.bins.max(1) as u64;
        let bin = |x: f32| ((x.clamp(0.0, 1.0) as f64 * b as f64) as u64).min(b - 1);
        let load = s[s.len() - 3];
        let parts = [
            (bin(s[0]), b),
            (u64::from(s[3] > 0.5), 2),
            (bin(load), b),
            (bin(slot_feature(s, a, F_ACTIVE)), b),
            (bin(slot_feature(s, a, F_UTIL)), b),
            (bin(slot_feature(s, a, F_RISE)), b),
            (bin(slot_feature(s, a, F_AFTER)), b),
            (u64::from(slot_feature(s, a, F_WPM) < 0.9), 2),
        ];
        parts.iter().fold(0, |acc, (x, r)| acc * r + x)
    }

    fn value(&self, s: &[f32], a: usize) -> f64 {
        self.q.get(&self.key(s, a)).copied().unwrap_or(0.0)
    }

    fn best(&self, s: &[f32], mask: &[bool]) -> Option<(usize, f64)> {
        (0..mask.len()).filter(|a| mask[*a]).map(|a| (a, self.value(s, a))).fold(None, |b, (a, q)| match b {
            Some((_, bq)) if q <= bq => b,
            _ => Some((a, q)),
        })
    }

    pub fn entries(&self) -> usize {
        self.q.len()
    }
}

impl Learner for QTable {
    fn act(&mut self, obs: &Obs, _: &Measures, explore: bool) -> usize {
        debug_assert!(obs.s.len() > VM_FEATURES);
        if explore && self.eps.roll(&mut self.rng) {
            return random_feasible(obs, &mut self.rng);
        }
        self.best(&obs.s, &obs.mask).expect("a feasible slot").0
    }

    fn learn(&mut self, e: Experience) {
        let r = e.reward(&self.cfg.env.goal);
        let future = e.next.as_ref().and_then(|n| self.best(&n.s, &n.mask)).map_or(0.0, |(_, q)| q);
        let key = self.key(&e.s, e.action);
        let q = self.q.entry(key).or_insert(0.0);
        *q += self.cfg.alpha * (r + self.cfg.gamma * future - *q);
        self.updates += 1;
    }

    fn end_episode(&mut self) {
        self.eps.decay();
    }

    fn arrays(&self) -> Vec<Array> {
        let n = self.q.len();
        vec![Array::new("keys", vec![n], self.q.keys().map(|k| *k as f64).collect()), Array::new("values", vec![n], self.q.values().copied().collect()), self.eps.array()]
    }

    fn load_arrays(&mut self, arrays: &[Array]) -> Result<()> {
        let n = arrays.iter().find(|a| a.name == "keys").map_or(0, |a| a.data.len());
        let keys = store::find(arrays, "keys", &[n])?;
        let values = store::find(arrays, "values", &[n])?;
        self.q = keys.data.iter().zip(&values.data).map(|(k, v)| (*k as u64, *v)).collect();
        self.eps.value = Epsilon::read(arrays)?;
        Ok(())
    }

    fn epsilon(&self) -> f64 {
        self.eps.value
    }

    fn train_steps(&self) -> usize {
        self.updates
    }
}
