//! KDQNVMP's DQNVMP, after Dosovitskiy & Koltun's "learning to act by
//! predicting the future": a predictor F(s, m, g) gives, for every slot,
//! the change of the measurement vector m (performance, utilisation,
//! balance, −energy) that placing there brings, and the agent takes
//! argmax_a gᵀF(s, m, g)[a]. F has the paper's dueling head: an expectation
//! stream E(s, m, g) plus an advantage stream A(s, m, g)[a] minus its mean
//! over slots. It is trained by regression on the observed changes; as in
//! the paper a target predictor, copied every T steps, supplies the future
//! part: the target for the slot taken is Δm + γ·F_target(s′, m′, g)[a*],
//! a* the greedy slot at s′ under g (so F predicts discounted future
//! change, a vector-valued Bellman target).
//!
//! Measurements are divided by [`SCALE`] inside the predictor so each
//! contributes alike to the regression (an SLA shortfall is a few hundredths,
//! a utilisation change tenths).
//!
//! The goal: during training each episode draws one around the default
//! (or keeps it fixed); otherwise it follows the pool (see [`Feedback`]).
//!
//! [`Feedback`]: super::config::Feedback

use burn::module::Module;
use burn::prelude::*;

use super::agent::{Epsilon, Learner, masked_argmax, random_feasible};
use super::config::{DqnvmpConfig, MEASURES};
use super::env::{Env, Measures, Obs, feature_len};
use super::nn::{self, Adam, Dueling};
use super::replay::{Experience, ReplayBuffer};
use super::store::Array;
use crate::error::Result;
use crate::rng::SplitMix64;

/// Typical size of each measurement's change.
pub const SCALE: Measures = [0.05, 0.25, 0.05, 0.25];

pub struct Dqnvmp {
    cfg: DqnvmpConfig,
    device: Device,
    online: Dueling,
    target: Dueling,
    infer: Dueling,
    adam: Adam,
    replay: ReplayBuffer,
    eps: Epsilon,
    rng: SplitMix64,
    /// This episode's training goal.
    episode_goal: Measures,
    seen: usize,
    steps: usize,
}

/// The predictor's input row: s, m, g.
fn input(s: &[f32], m: &Measures, g: &Measures) -> Vec<f32> {
    s.iter().copied().chain(m.iter().map(|x| *x as f32)).chain(g.iter().map(|x| *x as f32)).collect()
}

/// gᵀ(SCALE ⊙ F[a]) for each slot of one row of predictions.
fn scores(f: &[f32], g: &Measures, k: usize) -> Vec<f32> {
    (0..k).map(|a| (0..MEASURES).map(|j| g[j] * SCALE[j] * f[a * MEASURES + j] as f64).sum::<f64>() as f32).collect()
}

impl Dqnvmp {
    pub fn new(cfg: &DqnvmpConfig) -> Dqnvmp {
        let device = nn::train_device();
        device.seed(cfg.seed);
        let mut init = SplitMix64::new(cfg.seed);
        let (d, h, k, m) = Dqnvmp::shape_of(cfg);
        let online = Dueling::new(d, h, k, m, &mut init, &device);
        Dqnvmp::with(cfg, device, online)
    }

    fn shape_of(cfg: &DqnvmpConfig) -> (usize, usize, usize, usize) {
        (feature_len(cfg.env.k_max) + 2 * MEASURES, cfg.hidden, cfg.env.k_max, MEASURES)
    }

    fn with(cfg: &DqnvmpConfig, device: Device, online: Dueling) -> Dqnvmp {
        let (target, infer) = (online.valid(), online.valid());
        let replay = ReplayBuffer::new(cfg.replay.capacity, cfg.seed ^ 0x5EED);
        Dqnvmp { cfg: cfg.clone(), device, online, target, infer, adam: Adam::new(cfg.learning_rate), replay, eps: Epsilon::new(&cfg.explore), rng: SplitMix64::new(cfg.seed.wrapping_add(1)), episode_goal: cfg.env.goal, seen: 0, steps: 0 }
    }

    fn train_step(&mut self) {
        let (d, _, k, _) = Dqnvmp::shape_of(&self.cfg);
        let b = self.replay.batch(self.cfg.replay.batch);
        let f = feature_len(k);
        let rows = |s: &[f32], m: &[Measures]| -> Vec<f32> { (0..b.n).flat_map(|i| input(&s[i * f..(i + 1) * f], &m[i], &b.g[i])).collect() };
        let plain = self.device.clone().without_autodiff();
        let next_f = nn::values(self.target.forward(nn::batch(&rows(&b.next, &b.next_m), d, &plain)));
        let mut y = Vec::with_capacity(b.n * MEASURES);
        for i in 0..b.n {
            let row = &next_f[i * k * MEASURES..(i + 1) * k * MEASURES];
            let mask = &b.next_mask[i];
            let best = (!b.done[i] && mask.iter().any(|m| *m)).then(|| masked_argmax(&scores(row, &b.g[i], k), mask));
            for j in 0..MEASURES {
                let future = best.map_or(0.0, |a| row[a * MEASURES + j] as f64);
                y.push((b.dm[i][j] / SCALE[j] + self.cfg.gamma * future) as f32);
            }
        }
        let pred = self.online.forward(nn::batch(&rows(&b.s, &b.m), d, &self.device));
        let hot = Tensor::<3>::from_data(TensorData::new(b.one_hot(k), [b.n, k, 1]), &self.device);
        let chosen = (pred * hot).sum_dim(1);
        let want = Tensor::<3>::from_data(TensorData::new(y, [b.n, 1, MEASURES]), &self.device);
        let loss = (chosen - want).square().mean();
        self.online = self.adam.step(self.online.clone(), loss);
        self.steps += 1;
        if self.steps.is_multiple_of(self.cfg.replay.copy_every.max(1)) {
            self.target = self.online.valid();
        }
        self.infer = self.online.valid();
    }

    /// The default goal with each weight raised while the pool calls for it.
    pub fn feedback_goal(&self, env: &Env) -> Measures {
        let (fb, pool, base) = (&self.cfg.feedback, env.pool(), self.cfg.env.goal);
        let low = env.low_load_share(fb.low_load) > fb.low_share;
        let raise = [pool[0] < 1.0 - fb.shortfall, low, -pool[2] > fb.spread, low];
        std::array::from_fn(|j| base[j] * if raise[j] { 1.0 + fb.step } else { 1.0 })
    }
}

impl Learner for Dqnvmp {
    fn act(&mut self, obs: &Obs, g: &Measures, explore: bool) -> usize {
        if explore && self.eps.roll(&mut self.rng) {
            return random_feasible(obs, &mut self.rng);
        }
        let plain = self.device.clone().without_autodiff();
        let x = input(&obs.s, &obs.m, g);
        let f = nn::values(self.infer.forward(nn::batch(&x, x.len(), &plain)));
        masked_argmax(&scores(&f, g, obs.mask.len()), &obs.mask)
    }

    fn learn(&mut self, e: Experience) {
        self.replay.push(e);
        self.seen += 1;
        if self.replay.len() >= self.cfg.replay.batch && self.seen.is_multiple_of(self.cfg.replay.train_every.max(1)) {
            self.train_step();
        }
    }

    fn begin_episode(&mut self, training: bool) {
        let base = self.cfg.env.goal;
        self.episode_goal = if training && self.cfg.random_goals { std::array::from_fn(|j| base[j] * self.rng.range(0.5, 1.5)) } else { base };
    }

    fn end_episode(&mut self) {
        self.eps.decay();
    }

    fn goal(&mut self, env: &Env, training: bool) -> Measures {
        if training { self.episode_goal } else { self.feedback_goal(env) }
    }

    fn arrays(&self) -> Vec<Array> {
        [self.online.arrays(), vec![self.eps.array()]].concat()
    }

    fn load_arrays(&mut self, arrays: &[Array]) -> Result<()> {
        let online = Dueling::load(arrays, Dqnvmp::shape_of(&self.cfg), &self.device)?;
        let eps = Epsilon::read(arrays)?;
        *self = Dqnvmp::with(&self.cfg, self.device.clone(), online);
        self.eps.value = eps;
        Ok(())
    }

    fn epsilon(&self) -> f64 {
        self.eps.value
    }

    fn train_steps(&self) -> usize {
        self.steps
    }
}
