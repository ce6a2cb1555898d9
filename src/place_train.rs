//! `fairwatt place train`: trains an RL agent on traces in the datacenter
//! twin, with a progress bar, and saves its model.

use anyhow::{Context, bail};
use fairwatt_placement::rl::{AgentConfig, RlAgent, Scenario};

use crate::place::{TrainArgs, config, load};

pub fn train(a: &TrainArgs) -> anyhow::Result<()> {
    let mut cfg = AgentConfig::by_name(&a.agent).with_context(|| format!("--agent {:?}: expected q-table, dqn, a2c or dqnvmp", a.agent))?;
    if a.trace.is_empty() {
        bail!("--trace: name at least one trace to train on");
    }
    let mut scenarios = Vec::new();
    for t in &a.trace {
        let e = load(t, a.hosts)?;
        let sim = config("cloudsim", e.steps, false)?;
        scenarios.push(Scenario { name: e.name, hosts: e.hosts, vms: e.vms, traces: e.traces, sim });
    }
    set_episodes_and_seed(&mut cfg, a.episodes, a.seed);
    let episodes = cfg.episodes();
    if episodes == 0 {
        bail!("{} learns nothing: train q-table, dqn, a2c or dqnvmp", cfg.kind());
    }
    let bar = indicatif::ProgressBar::new(episodes as u64);
    bar.set_style(indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} episodes, {elapsed} {msg}").expect("a valid template"));
    let mut agent = RlAgent::new(cfg);
    let report = agent.train(&scenarios, &mut |_, s| {
        bar.set_message(format!("{}: {:.1} kWh, {} migrations, reward {:.4}, ε {:.3}", s.scenario, s.energy_kwh, s.migrations, s.mean_reward, s.epsilon));
        bar.inc(1);
    })?;
    bar.finish();
    agent.save(&a.model)?;
    let last = report.episodes.last().context("training ran no episode")?;
    println!("trained {} for {} episodes in {:.1} s ({} training steps); last episode: {:.1} kWh, SLATAH {:.2} %, PDM {:.3} %; model in {}", report.agent, report.episodes.len(), report.wall_s, agent.train_steps(), last.energy_kwh, last.slatah * 100.0, last.pdm * 100.0, a.model.display());
    Ok(())
}

fn set_episodes_and_seed(cfg: &mut AgentConfig, episodes: Option<usize>, seed: u64) {
    macro_rules! set {
        ($c:expr) => {{
            if let Some(n) = episodes {
                $c.episodes = n;
            }
            $c.seed = seed;
        }};
    }
    match cfg {
        AgentConfig::QTable(c) => set!(c),
        AgentConfig::Dqn(c) => set!(c),
        AgentConfig::A2c(c) => set!(c),
        AgentConfig::Dqnvmp(c) => set!(c),
        AgentConfig::Random(c) | AgentConfig::Greedy(c) => c.seed = seed,
    }
}
