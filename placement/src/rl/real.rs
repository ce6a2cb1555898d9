//! The release evaluation on real PlanetLab days (ignored by default; it
//! needs `../shared/data/planetlab` and minutes of CPU):
//!
//! ```text
//! cargo test --release -p fairwatt-placement --lib rl::real -- --ignored --nocapture
//! ```
//!
//! Trains each agent on one day (`RL_TRAIN_DAY`, default 20110306) for
//! `RL_EPISODES` episodes (default 10) and evaluates it greedily on the
//! other days beside LR-MMT 1.2, fairwatt and the two untrained baselines,
//! printing a markdown table. `RL_AGENTS` picks agents (comma-separated),
//! `RL_SEED` their seed (default 1), `RL_DAYS` the evaluation days.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Instant;

use super::*;
use crate::dynamic::{self, Outcome, Plan};
use crate::trace::{planetlab, shared_data_dir};

/// The heuristics' host choice (PABFD; with `wake`, fairwatt's) behind
/// the chooser hook, so its per-call latency is measured like the agents'.
/// The decisions are the same as `policy_by_name`'s.
struct TimedPabfd {
    wake: bool,
    ns: Rc<RefCell<Vec<u64>>>,
}

impl HostChooser for TimedPabfd {
    fn name(&self) -> String {
        if self.wake { "pabfd-wake" } else { "pabfd" }.into()
    }

    fn choose(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize> {
        let t = Instant::now();
        let h = dynamic::beloglazov::pabfd_with(plan, v, excluded, detector, step_s, self.wake);
        self.ns.borrow_mut().push(t.elapsed().as_nanos() as u64);
        h
    }
}

/// A heuristic's run and its per-call latencies.
fn heuristic(sc: &Scenario, wake: bool) -> (Outcome, Vec<u64>) {
    let ns = Rc::new(RefCell::new(Vec::new()));
    let mut p = Beloglazov::with_chooser(Detector::Lr(1.2), crate::dynamic::Selector::Mmt, 1, Box::new(TimedPabfd { wake, ns: ns.clone() }));
    let o = dynamic::run(sc.hosts.clone(), sc.vms.clone(), &sc.traces, &sc.sim, &mut p).unwrap();
    drop(p);
    (o, Rc::try_unwrap(ns).expect("one owner").into_inner())
}

fn quantile_us(ns: &[u64], p: f64) -> f64 {
    Evaluation { outcome: Outcome::default(), choose_ns: ns.to_vec(), decisions: 0, mean_reward: 0.0, mean_dm: [0.0; 4] }.choose_us(p)
}

fn row(day: &str, name: &str, o: &Outcome, ns: &[u64], reward: Option<f64>) {
    let r = reward.map_or("-".into(), |r| format!("{r:.3}"));
    println!("| {day} | {name} | {:.1} | {:.2} | {:.3} | {:.2} | {} | {:.1} | {:.1} | {r} |", o.energy_kwh, o.slatah * 100.0, o.pdm * 100.0, o.slav() * 1e5, o.migrations, quantile_us(ns, 0.5), quantile_us(ns, 0.99));
}

#[test]
#[ignore]
fn real_planetlab_days() {
    let root = shared_data_dir().join("planetlab");
    if !root.exists() {
        eprintln!("skipping: {} not found", root.display());
        return;
    }
    let var = |k: &str, d: &str| std::env::var(k).unwrap_or_else(|_| d.to_string());
    let train_day = var("RL_TRAIN_DAY", "20110306");
    let episodes: usize = var("RL_EPISODES", "10").parse().expect("RL_EPISODES");
    let seed: u64 = var("RL_SEED", "1").parse().expect("RL_SEED");
    let agents = var("RL_AGENTS", "q-table,dqn,a2c,dqnvmp");
    let days = var("RL_DAYS", "20110303,20110309,20110322,20110325");
    let load = |day: &str| Scenario::cloudsim(day, planetlab::load_dir(&root.join(day)).expect("a PlanetLab day").vms, 800);
    let train = load(&train_day);
    let evals: Vec<Scenario> = days.split(',').map(load).collect();
    let mut trained = Vec::new();
    for kind in agents.split(',') {
        let mut cfg = AgentConfig::by_name(kind).expect("an agent kind");
        match &mut cfg {
            AgentConfig::QTable(c) => (c.episodes, c.seed) = (episodes, seed),
            AgentConfig::Dqn(c) => (c.episodes, c.seed) = (episodes, seed),
            AgentConfig::A2c(c) => (c.episodes, c.seed) = (episodes, seed),
            AgentConfig::Dqnvmp(c) => (c.episodes, c.seed) = (episodes, seed),
            _ => {}
        }
        let mut a = RlAgent::new(cfg);
        let report = a.train(std::slice::from_ref(&train), &mut |ep, s| eprintln!("{kind} episode {ep}: {:.1} kWh, SLATAH {:.2} %, {} migrations, reward {:.3} over {} decisions, ε {:.3}, {} steps, {:.1} s", s.energy_kwh, s.slatah * 100.0, s.migrations, s.mean_reward, s.decisions, s.epsilon, s.train_steps, s.wall_s)).unwrap();
        println!("{kind}: trained {} episodes on {train_day} in {:.0} s", report.episodes.len(), report.wall_s);
        let path = std::env::temp_dir().join(format!("fairwatt-rl-{kind}-{seed}.model"));
        a.save(&path).unwrap();
        trained.push((kind.to_string(), a));
    }
    println!("| day | policy | kWh | SLATAH % | PDM % | SLAV ×1e-5 | migrations | choose p50 µs | choose p99 µs | reward |");
    println!("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for sc in &evals {
        for (name, wake) in [("lr-mmt-1.2", false), ("fairwatt", true)] {
            let (o, ns) = heuristic(sc, wake);
            let mut check = dynamic::policy_by_name(name, 1).unwrap();
            let same = dynamic::run(sc.hosts.clone(), sc.vms.clone(), &sc.traces, &sc.sim, check.as_mut()).unwrap();
            assert_eq!((o.energy_kwh.to_bits(), o.migrations), (same.energy_kwh.to_bits(), same.migrations), "{name} behind the hook decides as itself");
            row(&sc.name, name, &o, &ns, None);
        }
        for base in ["random", "greedy"] {
            let e = RlAgent::new(AgentConfig::by_name(base).unwrap()).evaluate(sc).unwrap();
            row(&sc.name, base, &e.outcome, &e.choose_ns, Some(e.mean_reward));
        }
        for (kind, a) in trained.iter_mut() {
            let e = a.evaluate(sc).unwrap();
            row(&sc.name, kind, &e.outcome, &e.choose_ns, Some(e.mean_reward));
        }
    }
}
