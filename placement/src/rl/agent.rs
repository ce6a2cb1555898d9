//! The part every agent shares: the [`Learner`] interface an algorithm
//! implements (pick a feasible slot, learn from an experience), ε-greedy
//! helpers, the two baselines that learn nothing, and [`Chooser`], which
//! plugs a learner into Beloglazov's loop as its [`HostChooser`]: it builds
//! the observation, maps the chosen slot to a host, records the decision
//! and feeds completed experiences back in training mode.

use std::time::Instant;

use super::config::{EnvConfig, Explore};
use super::env::{Env, F_RISE, Measures, Obs, slot_feature};
use super::replay::Experience;
use super::store::Array;
use super::tracker::{Score, Tracker};
use crate::dynamic::{Detector, HostChooser, Plan, State};
use crate::error::Result;
use crate::rng::SplitMix64;

/// One RL algorithm.
pub trait Learner {
    /// A slot with `obs.mask[a]` (called only when there is one). With
    /// `explore` the agent may try others; without it, it is greedy.
    fn act(&mut self, obs: &Obs, g: &Measures, explore: bool) -> usize;
    fn learn(&mut self, _e: Experience) {}
    fn begin_episode(&mut self, _training: bool) {}
    /// After each episode (ε decays here).
    fn end_episode(&mut self) {}
    /// The goal to act on after this update (fixed, except DQNVMP's).
    fn goal(&mut self, env: &Env, _training: bool) -> Measures {
        env.cfg.goal
    }
    fn arrays(&self) -> Vec<Array> {
        Vec::new()
    }
    fn load_arrays(&mut self, _arrays: &[Array]) -> Result<()> {
        Ok(())
    }
    fn epsilon(&self) -> f64 {
        0.0
    }
    fn train_steps(&self) -> usize {
        0
    }
}

/// A uniformly random feasible slot.
pub fn random_feasible(obs: &Obs, rng: &mut SplitMix64) -> usize {
    let f = obs.feasible();
    f[(rng.next_u64() % f.len() as u64) as usize]
}

/// The feasible slot with the highest score (the first of equals).
pub fn masked_argmax(scores: &[f32], mask: &[bool]) -> usize {
    (0..mask.len()).filter(|a| mask[*a]).fold(None::<usize>, |b, a| match b {
        Some(x) if scores[a] <= scores[x] => b,
        _ => Some(a),
    }).expect("a feasible slot")
}

/// ε of ε-greedy, decayed per episode.
#[derive(Clone, Debug)]
pub struct Epsilon {
    pub value: f64,
    cfg: Explore,
}

impl Epsilon {
    pub fn new(cfg: &Explore) -> Epsilon {
        Epsilon { value: cfg.start, cfg: cfg.clone() }
    }

    pub fn decay(&mut self) {
        self.value = (self.value * self.cfg.decay).max(self.cfg.min);
    }

    /// Whether to explore now.
    pub fn roll(&self, rng: &mut SplitMix64) -> bool {
        rng.unit() < self.value
    }

    /// The value as a model file stores it.
    pub fn array(&self) -> Array {
        Array::new("epsilon", vec![1], vec![self.value])
    }

    /// The value a model file stored.
    pub fn read(arrays: &[Array]) -> Result<f64> {
        Ok(super::store::find(arrays, "epsilon", &[1])?.data[0])
    }
}

/// Baseline: any feasible cluster, uniformly.
pub struct RandomAgent(pub SplitMix64);

impl Learner for RandomAgent {
    fn act(&mut self, obs: &Obs, _: &Measures, _: bool) -> usize {
        random_feasible(obs, &mut self.0)
    }
}

/// Baseline: the cluster whose candidate's power rises least, which is
/// fairwatt's PABFD with wake cost taken cluster by cluster.
pub struct GreedyAgent;

impl Learner for GreedyAgent {
    fn act(&mut self, obs: &Obs, _: &Measures, _: bool) -> usize {
        let neg: Vec<f32> = (0..obs.mask.len()).map(|a| -slot_feature(&obs.s, a, F_RISE)).collect();
        masked_argmax(&neg, &obs.mask)
    }
}

/// A learner in Beloglazov's loop.
pub struct Chooser {
    pub name: String,
    pub env: Env,
    pub learner: Box<dyn Learner>,
    pub tracker: Tracker,
    pub training: bool,
    pub goal: Measures,
    /// Wall time of each `choose`, ns.
    pub choose_ns: Vec<u64>,
}

impl Chooser {
    pub fn new(name: String, env: EnvConfig, learner: Box<dyn Learner>) -> Chooser {
        let goal = env.goal;
        Chooser { name, tracker: Tracker::new(goal), env: Env::new(env), learner, training: false, goal, choose_ns: Vec::new() }
    }

    /// Before a run: fresh pool state; the learner's episode begins.
    pub fn begin(&mut self, training: bool) {
        self.training = training;
        self.env.reset();
        self.tracker = Tracker::new(self.env.cfg.goal);
        self.goal = self.env.cfg.goal;
        self.learner.begin_episode(training);
        self.choose_ns.clear();
    }

    /// After a run: the last experiences; how the run's decisions scored.
    pub fn end(&mut self) -> Score {
        let last = self.tracker.finish();
        if self.training {
            for e in last {
                self.learner.learn(e);
            }
            self.learner.end_episode();
        }
        self.tracker.take_score()
    }
}

impl HostChooser for Chooser {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn choose(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize> {
        let started = Instant::now();
        let obs = self.env.decision(plan, v, excluded, detector, step_s);
        let pick = if obs.mask.iter().any(|m| *m) {
            let a = self.learner.act(&obs, &self.goal, self.training);
            debug_assert!(obs.mask[a], "{} chose masked slot {a}", self.name);
            let h = obs.hosts[a].expect("a feasible slot has a host");
            self.tracker.record(v, h, &obs, self.goal, a, !plan.st.vms[v].alive);
            Some(h)
        } else {
            None
        };
        self.choose_ns.push(started.elapsed().as_nanos() as u64);
        pick
    }

    fn observe(&mut self, st: &State, step_s: f64) {
        self.env.observe(st, step_s);
        let done = self.tracker.observe(st, &self.env, step_s);
        self.goal = self.learner.goal(&self.env, self.training);
        if self.training {
            for e in done {
                self.learner.learn(e);
            }
        }
    }
}
