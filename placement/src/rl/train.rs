//! The training loop and evaluation: episodes of `dynamic::run` over
//! scenarios (a fleet, its VMs, their traces and the simulation settings),
//! with statistics per episode and per-`choose` latency.

use std::time::Instant;

use super::RlAgent;
use super::env::Measures;
use super::tracker::Score;
use crate::dynamic::{self, Outcome, SimConfig, cloudsim_hosts, cloudsim_vms};
use crate::error::{PlaceError, Result};
use crate::model::{HostType, VmSpec};
use crate::dynamic::PowerMode;
use crate::trace::{VmTrace, synthetic};

/// One workload to run: a fleet, VM requests, traces and settings.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub hosts: Vec<HostType>,
    pub vms: Vec<VmSpec>,
    pub traces: Vec<VmTrace>,
    pub sim: SimConfig,
}

impl Scenario {
    /// `hosts` alternating G4/G5 and `vms` synthetic VMs (CloudSim's four
    /// types by quarter) over `steps` intervals. A quarter of the VMs
    /// arrive at the start, the others in three waves over the first half,
    /// so admissions also meet a loaded pool.
    pub fn synthetic(hosts: usize, vms: usize, steps: usize, seed: u64) -> Scenario {
        let mut traces = synthetic::generate(vms, steps, seed).vms;
        for (i, t) in traces.iter_mut().enumerate() {
            let start = (i % 4) * steps / 8;
            t.cpu.truncate(steps - start);
            t.start_step = start as u32;
        }
        Scenario { name: format!("synthetic:{hosts}x{vms}x{steps}:{seed}"), hosts: cloudsim_hosts(hosts), vms: cloudsim_vms(&traces), traces, sim: SimConfig { step_s: 300.0, steps, power: PowerMode::Dvfs, cloudsim: true, enforce_ram: false } }
    }

    /// CloudSim's PlanetLab experiment over `traces` (e.g. one day's
    /// folder): `hosts` G4/G5 hosts, its VM types, its day settings.
    pub fn cloudsim(name: &str, traces: Vec<VmTrace>, hosts: usize) -> Scenario {
        let steps = traces.iter().map(|t| t.end() as usize).max().unwrap_or(0);
        Scenario { name: name.into(), hosts: cloudsim_hosts(hosts), vms: cloudsim_vms(&traces), traces, sim: SimConfig { steps, ..SimConfig::cloudsim_day() } }
    }
}

/// What one training episode did.
#[derive(Clone, Debug, PartialEq)]
pub struct EpisodeStats {
    pub episode: usize,
    pub scenario: String,
    pub energy_kwh: f64,
    pub slatah: f64,
    pub pdm: f64,
    pub migrations: u64,
    /// Decisions scored, and their mean g·Δm under the default goal.
    pub decisions: usize,
    pub mean_reward: f64,
    pub mean_dm: Measures,
    /// ε after the episode's decay (0 for A2C, which samples its policy).
    pub epsilon: f64,
    pub train_steps: usize,
    pub wall_s: f64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TrainReport {
    pub agent: String,
    pub episodes: Vec<EpisodeStats>,
    pub wall_s: f64,
}

/// A greedy run and how the agent decided.
#[derive(Clone, Debug)]
pub struct Evaluation {
    pub outcome: Outcome,
    /// Wall time of each `choose` call, ns.
    pub choose_ns: Vec<u64>,
    pub decisions: usize,
    /// Mean g·Δm under the default goal, and mean Δm.
    pub mean_reward: f64,
    pub mean_dm: Measures,
}

impl Evaluation {
    /// The `p` quantile (0..=1) of `choose` latency, µs.
    pub fn choose_us(&self, p: f64) -> f64 {
        if self.choose_ns.is_empty() {
            return 0.0;
        }
        let mut v = self.choose_ns.clone();
        v.sort_unstable();
        v[((v.len() - 1) as f64 * p.clamp(0.0, 1.0)).round() as usize] as f64 / 1000.0
    }
}

impl RlAgent {
    /// One run over `sc`, learning when `training`: the outcome and how its
    /// decisions scored.
    pub fn run(&mut self, sc: &Scenario, training: bool) -> Result<(Outcome, Score)> {
        self.set_training(training);
        let mut policy = self.policy();
        let outcome = dynamic::run(sc.hosts.clone(), sc.vms.clone(), &sc.traces, &sc.sim, &mut policy)?;
        drop(policy);
        let score = self.chooser.borrow_mut().end();
        Ok((outcome, score))
    }

    /// The configured number of episodes, cycling through `scenarios`;
    /// `progress` sees each episode as it ends.
    pub fn train(&mut self, scenarios: &[Scenario], progress: &mut dyn FnMut(usize, &EpisodeStats)) -> Result<TrainReport> {
        if scenarios.is_empty() {
            return Err(PlaceError::Config("training needs at least one scenario".into()));
        }
        let started = Instant::now();
        let mut episodes = Vec::new();
        for ep in 0..self.cfg.episodes() {
            let sc = &scenarios[ep % scenarios.len()];
            let t = Instant::now();
            let (o, score) = self.run(sc, true)?;
            let stats = EpisodeStats { episode: ep, scenario: sc.name.clone(), energy_kwh: o.energy_kwh, slatah: o.slatah, pdm: o.pdm, migrations: o.migrations, decisions: score.decisions, mean_reward: score.reward, mean_dm: score.dm, epsilon: self.epsilon(), train_steps: self.train_steps(), wall_s: t.elapsed().as_secs_f64() };
            progress(ep, &stats);
            episodes.push(stats);
        }
        Ok(TrainReport { agent: self.kind().into(), episodes, wall_s: started.elapsed().as_secs_f64() })
    }

    /// A greedy run over `sc` that learns nothing.
    pub fn evaluate(&mut self, sc: &Scenario) -> Result<Evaluation> {
        let (outcome, score) = self.run(sc, false)?;
        let choose_ns = std::mem::take(&mut self.chooser.borrow_mut().choose_ns);
        Ok(Evaluation { outcome, choose_ns, decisions: score.decisions, mean_reward: score.reward, mean_dm: score.dm })
    }
}
