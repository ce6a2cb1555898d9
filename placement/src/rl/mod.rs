//! Learned placement: RL agents that pick the host for every admission and
//! every migration inside Beloglazov's consolidation loop (its detector and
//! selector decide *which* VMs move; the agent decides *where*).
//!
//! Hosts are grouped by KDQNVMP's improved K-means ([`cluster`]); an
//! action is a cluster, placed on that cluster's best candidate host
//! ([`env`]). Agents: tabular Q-learning ([`qtable`]), DQN ([`dqn`]),
//! advantage actor-critic ([`a2c`]) and the paper's multi-objective
//! dueling DQNVMP ([`dqnvmp`]), plus two baselines that learn nothing (a
//! random cluster; the cluster with the least power rise). Rewards are
//! g·Δm over (VM performance, utilisation, load balance, attributed
//! energy), read at the update after each decision ([`tracker`]).
//!
//! ```no_run
//! use fairwatt_placement::rl::{AgentConfig, RlAgent, Scenario};
//! let train = Scenario::synthetic(20, 40, 48, 1);
//! let mut agent = RlAgent::new(AgentConfig::by_name("dqn").unwrap());
//! let report = agent.train(&[train.clone()], &mut |ep, s| eprintln!("{ep}: {:.3}", s.mean_reward))?;
//! agent.save("dqn.model".as_ref())?;
//! let mut again = RlAgent::load("dqn.model".as_ref())?;
//! let eval = again.evaluate(&train)?;
//! println!("{} kWh, choose p99 {:.1} µs", eval.outcome.energy_kwh, eval.choose_us(0.99));
//! # Ok::<(), fairwatt_placement::PlaceError>(())
//! ```

pub mod a2c;
pub mod agent;
pub mod cluster;
pub mod config;
pub mod dqn;
pub mod dqnvmp;
pub mod env;
pub mod live;
pub mod nn;
pub mod qtable;
#[cfg(test)]
mod real;
pub mod replay;
pub mod store;
pub mod tracker;
pub mod train;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;

pub use config::{A2cConfig, AgentConfig, BaselineConfig, ClusterConfig, DqnConfig, DqnvmpConfig, EnvConfig, Explore, Feedback, QTableConfig, Replay};
pub use train::{EpisodeStats, Evaluation, Scenario, TrainReport};

use agent::{Chooser, GreedyAgent, Learner, RandomAgent};
use crate::dynamic::{Beloglazov, Detector, HostChooser, Plan, State};
use crate::error::{PlaceError, Result};
use crate::rng::SplitMix64;

/// An agent of any kind, ready to train, evaluate, save or plug into
/// Beloglazov's loop.
pub struct RlAgent {
    cfg: AgentConfig,
    chooser: Rc<RefCell<Chooser>>,
}

/// The agent as the loop's chooser; the agent keeps a handle so it can
/// learn across runs.
struct Handle(Rc<RefCell<Chooser>>);

impl HostChooser for Handle {
    fn name(&self) -> String {
        self.0.borrow().name()
    }

    fn choose(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize> {
        self.0.borrow_mut().choose(plan, v, excluded, detector, step_s)
    }

    fn observe(&mut self, st: &State, step_s: f64) {
        self.0.borrow_mut().observe(st, step_s)
    }
}

fn learner(cfg: &AgentConfig) -> Box<dyn Learner> {
    match cfg {
        AgentConfig::QTable(c) => Box::new(qtable::QTable::new(c)),
        AgentConfig::Dqn(c) => Box::new(dqn::Dqn::new(c)),
        AgentConfig::A2c(c) => Box::new(a2c::A2c::new(c)),
        AgentConfig::Dqnvmp(c) => Box::new(dqnvmp::Dqnvmp::new(c)),
        AgentConfig::Random(c) => Box::new(RandomAgent(SplitMix64::new(c.seed))),
        AgentConfig::Greedy(_) => Box::new(GreedyAgent),
    }
}

impl RlAgent {
    /// A fresh (untrained) agent; same config, same seed → same agent.
    pub fn new(cfg: AgentConfig) -> RlAgent {
        let chooser = Chooser::new(format!("rl-{}", cfg.kind()), cfg.env().clone(), learner(&cfg));
        RlAgent { cfg, chooser: Rc::new(RefCell::new(chooser)) }
    }

    pub fn config(&self) -> &AgentConfig {
        &self.cfg
    }

    pub fn kind(&self) -> &'static str {
        self.cfg.kind()
    }

    /// Beloglazov's loop (the config's detector and selector) with this
    /// agent choosing every host. Runs through it train the agent when
    /// [`RlAgent::set_training`] is on.
    pub fn policy(&self) -> Beloglazov {
        let env = self.cfg.env();
        Beloglazov::with_chooser(env.detector, env.selector, self.cfg.seed(), Box::new(Handle(self.chooser.clone())))
    }

    /// Explore and learn (true) or act greedily (false) from the next run.
    pub fn set_training(&self, on: bool) {
        self.chooser.borrow_mut().begin(on);
    }

    pub fn epsilon(&self) -> f64 {
        self.chooser.borrow().learner.epsilon()
    }

    /// Gradient steps (table updates for the Q-table) so far.
    pub fn train_steps(&self) -> usize {
        self.chooser.borrow().learner.train_steps()
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        store::write(path, &self.cfg, &self.chooser.borrow().learner.arrays())
    }

    /// An agent from a model file, with the configuration it was saved with.
    pub fn load(path: &Path) -> Result<RlAgent> {
        let (h, arrays) = store::read(path)?;
        RlAgent::from_arrays(path, h.config, &arrays)
    }

    /// An agent from a model file that must be of `want`'s kind and shape;
    /// `want`'s configuration is used.
    pub fn load_as(path: &Path, want: &AgentConfig) -> Result<RlAgent> {
        let (h, arrays) = store::read(path)?;
        store::check_against(path, &h, want)?;
        RlAgent::from_arrays(path, want.clone(), &arrays)
    }

    /// A greedy decision for VM `v` on `st`, learning and recording
    /// nothing (live serving). `fresh` re-reads the fleet (its size, its
    /// normalisation and clusters) first.
    pub fn act_once(&self, st: &State, v: usize, excluded: &[bool], detector: Detector, step_s: f64, fresh: bool) -> Option<usize> {
        let mut c = self.chooser.borrow_mut();
        if fresh {
            // Clusters the new fleet on first use below.
            c.env.reset();
        }
        c.env.read(st, step_s, false);
        let plan = Plan::new(st);
        let obs = c.env.decision(&plan, v, excluded, detector, step_s);
        if !obs.mask.iter().any(|m| *m) {
            return None;
        }
        let goal = c.goal;
        let a = c.learner.act(&obs, &goal, false);
        obs.hosts[a]
    }

    fn from_arrays(path: &Path, cfg: AgentConfig, arrays: &[store::Array]) -> Result<RlAgent> {
        let a = RlAgent::new(cfg);
        a.chooser.borrow_mut().learner.load_arrays(arrays).map_err(|e| PlaceError::Model(format!("model file {}: {}", path.display(), e.to_string().trim_start_matches("model: "))))?;
        Ok(a)
    }
}
