//! DQN (Mnih et al. 2015) as KDQNVMP configures it: an MLP from the
//! observation to one Q-value per cluster slot (hidden 400, ReLU), replay,
//! a target network copied every 10 gradient steps, ε-greedy from 1
//! decaying ×0.95 per episode, γ 0.9, batch 150, Adam. Infeasible slots are
//! masked both when acting and in the bootstrap max.

use burn::module::Module;
use burn::prelude::*;

use super::agent::{Epsilon, Learner, masked_argmax, random_feasible};
use super::config::DqnConfig;
use super::env::{Measures, Obs, feature_len};
use super::nn::{self, Adam, Mlp};
use super::replay::{Experience, ReplayBuffer};
use super::store::Array;
use crate::error::Result;
use crate::rng::SplitMix64;

pub struct Dqn {
    cfg: DqnConfig,
    device: Device,
    online: Mlp,
    /// Non-autodiff copies: the bootstrap target, and the current weights
    /// for acting (no graph is recorded for a decision).
    target: Mlp,
    infer: Mlp,
    adam: Adam,
    replay: ReplayBuffer,
    eps: Epsilon,
    rng: SplitMix64,
    seen: usize,
    steps: usize,
}

impl Dqn {
    pub fn new(cfg: &DqnConfig) -> Dqn {
        let device = nn::train_device();
        device.seed(cfg.seed);
        let mut init = SplitMix64::new(cfg.seed);
        let online = Mlp::new(feature_len(cfg.env.k_max), cfg.hidden, cfg.env.k_max, &mut init, &device);
        Dqn::with(cfg, device, online)
    }

    fn with(cfg: &DqnConfig, device: Device, online: Mlp) -> Dqn {
        let (target, infer) = (online.valid(), online.valid());
        Dqn { cfg: cfg.clone(), device, online, target, infer, adam: Adam::new(cfg.learning_rate), replay: ReplayBuffer::new(cfg.replay.capacity, cfg.seed ^ 0x5EED), eps: Epsilon::new(&cfg.explore), rng: SplitMix64::new(cfg.seed.wrapping_add(1)), seen: 0, steps: 0 }
    }

    fn shape(&self) -> (usize, usize, usize) {
        (feature_len(self.cfg.env.k_max), self.cfg.hidden, self.cfg.env.k_max)
    }

    fn train_step(&mut self) {
        let (f, _, k) = self.shape();
        let b = self.replay.batch(self.cfg.replay.batch);
        let plain = self.device.clone().without_autodiff();
        let next_q = nn::values(self.target.forward(nn::batch(&b.next, f, &plain)));
        let y: Vec<f32> = (0..b.n)
            .map(|i| {
                let r = Experience::reward_of(&self.cfg.env.goal, &b.dm[i]);
                let mask = &b.next_mask[i];
                let future = if b.done[i] || !mask.iter().any(|m| *m) { 0.0 } else { next_q[i * k + masked_argmax(&next_q[i * k..(i + 1) * k], mask)] as f64 };
                (r + self.cfg.gamma * future) as f32
            })
            .collect();
        let q = self.online.forward(nn::batch(&b.s, f, &self.device));
        let chosen = (q * nn::batch(&b.one_hot(k), k, &self.device)).sum_dim(1);
        let loss = (chosen - nn::batch(&y, 1, &self.device)).square().mean();
        self.online = self.adam.step(self.online.clone(), loss);
        self.steps += 1;
        if self.steps.is_multiple_of(self.cfg.replay.copy_every.max(1)) {
            self.target = self.online.valid();
        }
        self.infer = self.online.valid();
    }
}

impl Learner for Dqn {
    fn act(&mut self, obs: &Obs, _: &Measures, explore: bool) -> usize {
        if explore && self.eps.roll(&mut self.rng) {
            return random_feasible(obs, &mut self.rng);
        }
        let plain = self.device.clone().without_autodiff();
        let q = nn::values(self.infer.forward(nn::batch(&obs.s, obs.s.len(), &plain)));
        masked_argmax(&q, &obs.mask)
    }

    fn learn(&mut self, e: Experience) {
        self.replay.push(e);
        self.seen += 1;
        if self.replay.len() >= self.cfg.replay.batch && self.seen.is_multiple_of(self.cfg.replay.train_every.max(1)) {
            self.train_step();
        }
    }

    fn end_episode(&mut self) {
        self.eps.decay();
    }

    fn arrays(&self) -> Vec<Array> {
        [self.online.arrays("q"), vec![self.eps.array()]].concat()
    }

    fn load_arrays(&mut self, arrays: &[Array]) -> Result<()> {
        let online = Mlp::load(arrays, "q", self.shape(), &self.device)?;
        let eps = Epsilon::read(arrays)?;
        *self = Dqn::with(&self.cfg, self.device.clone(), online);
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
