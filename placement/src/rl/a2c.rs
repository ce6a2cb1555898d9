//! Advantage actor-critic (synchronous, one worker): an actor MLP giving
//! a softmax over the feasible slots and a separate critic MLP giving the
//! state's value. Every `rollout` fresh experiences (and at each episode's
//! end), the critic regresses on r + γV(s′) and the actor climbs
//! log π(a|s)·(r + γV(s′) − V(s)) plus an entropy bonus that keeps it from
//! collapsing onto one slot early. Separate networks: the value's scale
//! (rewards summed over ~10 decisions) and the policy's logits would fight
//! over a shared layer. In training it samples from π; in evaluation it
//! takes π's most likely slot.

use burn::module::Module;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use super::agent::{Learner, masked_argmax};
use super::config::A2cConfig;
use super::env::{Measures, Obs, feature_len};
use super::nn::{self, Adam, Mlp};
use super::replay::{Batch, Experience};
use super::store::Array;
use crate::error::Result;
use crate::rng::SplitMix64;

/// Logit added to masked slots: exp of it is exactly zero in f32.
const MASKED: f32 = -1e4;

pub struct A2c {
    cfg: A2cConfig,
    device: Device,
    actor: Mlp,
    critic: Mlp,
    actor_infer: Mlp,
    actor_adam: Adam,
    critic_adam: Adam,
    rollout: Vec<Experience>,
    rng: SplitMix64,
    steps: usize,
}

impl A2c {
    pub fn new(cfg: &A2cConfig) -> A2c {
        let device = nn::train_device();
        device.seed(cfg.seed);
        let mut init = SplitMix64::new(cfg.seed);
        let f = feature_len(cfg.env.k_max);
        let actor = Mlp::new(f, cfg.hidden, cfg.env.k_max, &mut init, &device);
        let critic = Mlp::new(f, cfg.hidden, 1, &mut init, &device);
        A2c::with(cfg, device, actor, critic)
    }

    fn with(cfg: &A2cConfig, device: Device, actor: Mlp, critic: Mlp) -> A2c {
        let actor_infer = actor.valid();
        A2c { cfg: cfg.clone(), device, actor, critic, actor_infer, actor_adam: Adam::new(cfg.learning_rate), critic_adam: Adam::new(cfg.learning_rate), rollout: Vec::new(), rng: SplitMix64::new(cfg.seed.wrapping_add(1)), steps: 0 }
    }

    fn mask_bias(masks: &[Vec<bool>]) -> Vec<f32> {
        masks.iter().flat_map(|m| m.iter().map(|ok| if *ok { 0.0 } else { MASKED })).collect()
    }

    fn update(&mut self) {
        let (f, k) = (feature_len(self.cfg.env.k_max), self.cfg.env.k_max);
        let items: Vec<&Experience> = self.rollout.iter().collect();
        let b = Batch::of(&items);
        let masks: Vec<Vec<bool>> = self.rollout.iter().map(|e| e.mask.clone()).collect();
        self.rollout.clear();
        let plain = self.device.clone().without_autodiff();
        let v_next = nn::values(self.critic.valid().forward(nn::batch(&b.next, f, &plain)));
        let target: Vec<f32> = (0..b.n).map(|i| (Experience::reward_of(&self.cfg.env.goal, &b.dm[i]) + if b.done[i] { 0.0 } else { self.cfg.gamma * v_next[i] as f64 }) as f32).collect();
        let v = self.critic.forward(nn::batch(&b.s, f, &self.device));
        let adv: Vec<f32> = nn::values(v.clone()).iter().zip(&target).map(|(v, t)| t - v).collect();
        let critic_loss = (v - nn::batch(&target, 1, &self.device)).square().mean();
        self.critic = self.critic_adam.step(self.critic.clone(), critic_loss);
        let logits = self.actor.forward(nn::batch(&b.s, f, &self.device)) + nn::batch(&A2c::mask_bias(&masks), k, &self.device);
        let logp = log_softmax(logits, 1);
        let entropy = -(logp.clone().exp() * logp.clone()).sum_dim(1).mean();
        let chosen = (logp * nn::batch(&b.one_hot(k), k, &self.device)).sum_dim(1);
        let actor_loss = -(chosen * nn::batch(&adv, 1, &self.device)).mean() - entropy.mul_scalar(self.cfg.entropy);
        self.actor = self.actor_adam.step(self.actor.clone(), actor_loss);
        self.actor_infer = self.actor.valid();
        self.steps += 1;
    }

    fn probabilities(&self, obs: &Obs) -> Vec<f64> {
        let plain = self.device.clone().without_autodiff();
        let logits = nn::values(self.actor_infer.forward(nn::batch(&obs.s, obs.s.len(), &plain)));
        let top = (0..logits.len()).filter(|a| obs.mask[*a]).map(|a| logits[a]).fold(f32::NEG_INFINITY, f32::max);
        let e: Vec<f64> = (0..logits.len()).map(|a| if obs.mask[a] { ((logits[a] - top) as f64).exp() } else { 0.0 }).collect();
        let z: f64 = e.iter().sum();
        e.into_iter().map(|x| x / z).collect()
    }
}

impl Learner for A2c {
    fn act(&mut self, obs: &Obs, _: &Measures, explore: bool) -> usize {
        let p = self.probabilities(obs);
        if !explore {
            let p32: Vec<f32> = p.iter().map(|x| *x as f32).collect();
            return masked_argmax(&p32, &obs.mask);
        }
        let mut u = self.rng.unit();
        for a in obs.feasible() {
            u -= p[a];
            if u < 0.0 {
                return a;
            }
        }
        *obs.feasible().last().expect("a feasible slot")
    }

    fn learn(&mut self, e: Experience) {
        self.rollout.push(e);
        if self.rollout.len() >= self.cfg.rollout.max(1) {
            self.update();
        }
    }

    fn end_episode(&mut self) {
        if !self.rollout.is_empty() {
            self.update();
        }
    }

    fn arrays(&self) -> Vec<Array> {
        [self.actor.arrays("actor"), self.critic.arrays("critic")].concat()
    }

    fn load_arrays(&mut self, arrays: &[Array]) -> Result<()> {
        let (f, h, k) = (feature_len(self.cfg.env.k_max), self.cfg.hidden, self.cfg.env.k_max);
        let actor = Mlp::load(arrays, "actor", (f, h, k), &self.device)?;
        let critic = Mlp::load(arrays, "critic", (f, h, 1), &self.device)?;
        *self = A2c::with(&self.cfg, self.device.clone(), actor, critic);
        Ok(())
    }

    fn train_steps(&self) -> usize {
        self.steps
    }
}
