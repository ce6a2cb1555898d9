//! Hyperparameters, one struct per agent, with the KDQNVMP paper's values
//! as defaults where it gives them (hidden layer 400, γ 0.9, ε from 1
//! falling ×0.95 per episode, batch 150, target copied every 10 training
//! steps); the rest are ours and say so. Every config is serialised into
//! the model file, so a loaded agent decides exactly as the saved one.

use serde::{Deserialize, Serialize};

use crate::dynamic::{Detector, Selector};

/// Measurements per decision: VM performance, utilisation, load balance,
/// attributed energy (see [`super::env`]).
pub const MEASURES: usize = 4;

/// The improved K-means of KDQNVMP (see [`super::cluster`]).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterConfig {
    /// Lloyd iterations (the paper stops after a fixed count, not on a
    /// tolerance, so a host going down mid-run cannot keep it iterating).
    pub iterations: usize,
    /// Fitness = Dis_out / (a·Dis_in + b·r), r the mean pairwise distance.
    /// a = 1 keeps the ratio's meaning; b·r > 0 is the paper's linear
    /// transform: without it the ratio grows as clusters shrink to points
    /// and the largest k always wins. b = 0.1 was the smallest value that
    /// picked the true k on the blob tests; scaling by r makes it unit-free.
    pub fit_a: f64,
    pub fit_b: f64,
    /// A point is an outlier when its density is below this share of the
    /// mean density; outliers count `outlier_weight` in centre updates.
    pub outlier_density: f64,
    pub outlier_weight: f64,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig { iterations: 10, fit_a: 1.0, fit_b: 0.1, outlier_density: 0.5, outlier_weight: 0.2 }
    }
}

/// What every agent sees and how its decisions are scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvConfig {
    /// Action slots (clusters at most); the fitness picks k in k_min..=k_max
    /// at each re-clustering and the unused slots are masked.
    pub k_min: usize,
    pub k_max: usize,
    /// Re-cluster every this many updates (12 × 300 s = hourly).
    pub recluster_every: usize,
    /// Goal g: weights of (performance, utilisation, balance, energy) in
    /// the scalar reward r = g·Δm. SLA shortfall weighs most because a
    /// shortfall of a few percent is already a violation interval.
    pub goal: [f64; MEASURES],
    pub cluster: ClusterConfig,
    /// Beloglazov's loop around the agent (fairwatt's best: LR 1.2 + MMT).
    #[serde(with = "super::store::detector_name")]
    pub detector: Detector,
    #[serde(with = "super::store::selector_name")]
    pub selector: Selector,
}

impl Default for EnvConfig {
    fn default() -> Self {
        EnvConfig { k_min: 2, k_max: 8, recluster_every: 12, goal: [5.0, 0.5, 0.5, 1.0], cluster: ClusterConfig::default(), detector: Detector::Lr(1.2), selector: Selector::Mmt }
    }
}

/// ε-greedy exploration: ε starts at `start` and is multiplied by `decay`
/// after each episode, never below `min`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Explore {
    pub start: f64,
    pub decay: f64,
    pub min: f64,
}

impl Default for Explore {
    fn default() -> Self {
        Explore { start: 1.0, decay: 0.95, min: 0.0 }
    }
}

/// Tabular Q-learning on discretised (state, action) features.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct QTableConfig {
    pub env: EnvConfig,
    pub explore: Explore,
    pub gamma: f64,
    /// Step size of the update (ours: a tabular agent sees few visits).
    pub alpha: f64,
    /// Bins per discretised feature.
    pub bins: usize,
    pub episodes: usize,
    pub seed: u64,
}

impl Default for QTableConfig {
    fn default() -> Self {
        QTableConfig { env: EnvConfig::default(), explore: Explore::default(), gamma: 0.9, alpha: 0.1, bins: 4, episodes: 30, seed: 1 }
    }
}

/// Replay-based value learning shared by DQN and DQNVMP.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Replay {
    pub capacity: usize,
    pub batch: usize,
    /// One gradient step per this many new experiences (ours: 1 = every one).
    pub train_every: usize,
    /// Target network copied every this many gradient steps.
    pub copy_every: usize,
}

impl Default for Replay {
    fn default() -> Self {
        Replay { capacity: 20_000, batch: 150, train_every: 1, copy_every: 10 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DqnConfig {
    pub env: EnvConfig,
    pub explore: Explore,
    pub replay: Replay,
    pub hidden: usize,
    pub gamma: f64,
    pub learning_rate: f64,
    pub episodes: usize,
    pub seed: u64,
}

impl Default for DqnConfig {
    fn default() -> Self {
        DqnConfig { env: EnvConfig::default(), explore: Explore::default(), replay: Replay::default(), hidden: 400, gamma: 0.9, learning_rate: 1e-3, episodes: 30, seed: 1 }
    }
}

/// Advantage actor-critic: separate actor and critic MLPs, updated on
/// each `rollout` of fresh experiences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct A2cConfig {
    pub env: EnvConfig,
    pub hidden: usize,
    pub gamma: f64,
    pub learning_rate: f64,
    /// Experiences per update (the paper's batch size, reused).
    pub rollout: usize,
    /// Weight of the policy's entropy in the actor's loss.
    pub entropy: f64,
    pub episodes: usize,
    pub seed: u64,
}

impl Default for A2cConfig {
    fn default() -> Self {
        A2cConfig { env: EnvConfig::default(), hidden: 400, gamma: 0.9, learning_rate: 1e-3, rollout: 150, entropy: 0.01, episodes: 30, seed: 1 }
    }
}

/// How DQNVMP moves its goal with the pool's state: each weight is the
/// default times (1 + `step`) while its condition holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Feedback {
    /// Performance up when the active hosts' mean given share is below 1 − this.
    pub shortfall: f64,
    /// Balance up when the utilisation spread (std) of active hosts exceeds this.
    pub spread: f64,
    /// Energy and utilisation up when more than `low_share` of active
    /// hosts run below `low_load`.
    pub low_load: f64,
    pub low_share: f64,
    pub step: f64,
}

impl Default for Feedback {
    fn default() -> Self {
        Feedback { shortfall: 0.001, spread: 0.25, low_load: 0.3, low_share: 0.3, step: 1.0 }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DqnvmpConfig {
    pub env: EnvConfig,
    pub explore: Explore,
    pub replay: Replay,
    pub hidden: usize,
    pub gamma: f64,
    pub learning_rate: f64,
    pub feedback: Feedback,
    /// Train on goals drawn around the default (each weight × U(0.5, 1.5)
    /// per episode) so the predictor generalises over g; else fixed.
    pub random_goals: bool,
    pub episodes: usize,
    pub seed: u64,
}

impl Default for DqnvmpConfig {
    fn default() -> Self {
        DqnvmpConfig { env: EnvConfig::default(), explore: Explore::default(), replay: Replay::default(), hidden: 400, gamma: 0.9, learning_rate: 1e-3, feedback: Feedback::default(), random_goals: true, episodes: 30, seed: 1 }
    }
}

/// Baselines that learn nothing: a random feasible cluster, or the cluster
/// whose best host's power rises least (PABFD with wake cost, by cluster).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BaselineConfig {
    pub env: EnvConfig,
    pub seed: u64,
}

/// Any agent's configuration; its variant is the agent's kind.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "config", rename_all = "kebab-case")]
pub enum AgentConfig {
    QTable(QTableConfig),
    Dqn(DqnConfig),
    A2c(A2cConfig),
    Dqnvmp(DqnvmpConfig),
    Random(BaselineConfig),
    Greedy(BaselineConfig),
}

impl AgentConfig {
    /// By kind name, with defaults: q-table, dqn, a2c, dqnvmp, random, greedy.
    pub fn by_name(name: &str) -> Option<AgentConfig> {
        Some(match name {
            "q-table" | "qtable" => AgentConfig::QTable(QTableConfig::default()),
            "dqn" => AgentConfig::Dqn(DqnConfig::default()),
            "a2c" => AgentConfig::A2c(A2cConfig::default()),
            "dqnvmp" => AgentConfig::Dqnvmp(DqnvmpConfig::default()),
            "random" => AgentConfig::Random(BaselineConfig::default()),
            "greedy" => AgentConfig::Greedy(BaselineConfig::default()),
            _ => return None,
        })
    }

    pub fn kind(&self) -> &'static str {
        match self {
            AgentConfig::QTable(_) => "q-table",
            AgentConfig::Dqn(_) => "dqn",
            AgentConfig::A2c(_) => "a2c",
            AgentConfig::Dqnvmp(_) => "dqnvmp",
            AgentConfig::Random(_) => "random",
            AgentConfig::Greedy(_) => "greedy",
        }
    }

    pub fn env(&self) -> &EnvConfig {
        match self {
            AgentConfig::QTable(c) => &c.env,
            AgentConfig::Dqn(c) => &c.env,
            AgentConfig::A2c(c) => &c.env,
            AgentConfig::Dqnvmp(c) => &c.env,
            AgentConfig::Random(c) | AgentConfig::Greedy(c) => &c.env,
        }
    }

    pub fn seed(&self) -> u64 {
        match self {
            AgentConfig::QTable(c) => c.seed,
            AgentConfig::Dqn(c) => c.seed,
            AgentConfig::A2c(c) => c.seed,
            AgentConfig::Dqnvmp(c) => c.seed,
            AgentConfig::Random(c) | AgentConfig::Greedy(c) => c.seed,
        }
    }

    /// Training episodes (none for the baselines).
    pub fn episodes(&self) -> usize {
        match self {
            AgentConfig::QTable(c) => c.episodes,
            AgentConfig::Dqn(c) => c.episodes,
            AgentConfig::A2c(c) => c.episodes,
            AgentConfig::Dqnvmp(c) => c.episodes,
            AgentConfig::Random(_) | AgentConfig::Greedy(_) => 0,
        }
    }
}
