//! The agents on small synthetic fleets (20 hosts, 40 VMs, 48 intervals),
//! fast in debug builds: feasibility, reproducibility, learning, the model
//! file. `real_planetlab_days` (ignored) is the release evaluation.

use super::*;
use crate::dynamic::{self, Plan};
use crate::model::HostType;

const KINDS: [&str; 6] = ["random", "greedy", "q-table", "dqn", "a2c", "dqnvmp"];

/// `kind` with small networks and batches so debug tests stay quick.
fn small(kind: &str, episodes: usize, seed: u64) -> AgentConfig {
    let mut c = AgentConfig::by_name(kind).expect("a kind");
    let replay = Replay { capacity: 4000, batch: 32, train_every: 1, copy_every: 10 };
    let explore = Explore { start: 1.0, decay: 0.9, min: 0.05 };
    match &mut c {
        AgentConfig::QTable(q) => (q.episodes, q.seed, q.explore, q.alpha) = (episodes, seed, explore, 0.2),
        AgentConfig::Dqn(d) => (d.episodes, d.seed, d.hidden, d.replay, d.explore) = (episodes, seed, 32, replay, explore),
        AgentConfig::A2c(a) => (a.episodes, a.seed, a.hidden, a.rollout, a.learning_rate) = (episodes, seed, 32, 32, 3e-3),
        AgentConfig::Dqnvmp(d) => (d.episodes, d.seed, d.hidden, d.replay, d.explore) = (episodes, seed, 32, replay, explore),
        AgentConfig::Random(b) | AgentConfig::Greedy(b) => b.seed = seed,
    }
    c
}

fn fleet() -> Scenario {
    Scenario::synthetic(20, 40, 48, 5)
}

/// Every other host is a power-hungry G4 (twice its watts): picking the
/// right cluster matters.
fn mixed(mut sc: Scenario) -> Scenario {
    const HUNGRY: HostType = HostType { name: "hungry G4", watts: [172.0, 178.8, 185.2, 192.0, 199.0, 204.0, 212.0, 216.0, 224.0, 228.0, 234.0], ..HostType::ML110_G4 };
    for (i, h) in sc.hosts.iter_mut().enumerate() {
        *h = if i % 2 == 0 { HUNGRY } else { HostType::ML110_G5 };
    }
    sc
}

/// Checks every host the agent picks against the plan, then passes it on.
struct Checked(Handle);

impl HostChooser for Checked {
    fn name(&self) -> String {
        self.0.name()
    }

    fn choose(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize> {
        let pick = self.0.choose(plan, v, excluded, detector, step_s);
        if let Some(h) = pick {
            assert!(!excluded[h], "{}: excluded host {h}", self.name());
            assert!(plan.suitable(h, v), "{}: VM {v} does not fit host {h}", self.name());
            assert!(plan.used_mips(h) == 0.0 || !detector.overloaded_with(plan, h, v, step_s), "{}: host {h} would be overloaded", self.name());
        }
        pick
    }

    fn observe(&mut self, st: &State, step_s: f64) {
        self.0.observe(st, step_s)
    }
}

#[test]
fn every_agent_places_only_where_the_vm_fits_in_training_and_evaluation() {
    let sc = fleet();
    for kind in KINDS {
        let agent = RlAgent::new(small(kind, 1, 1));
        for training in [true, false] {
            agent.set_training(training);
            let env = agent.config().env();
            let mut p = Beloglazov::with_chooser(env.detector, env.selector, 1, Box::new(Checked(Handle(agent.chooser.clone()))));
            let o = dynamic::run(sc.hosts.clone(), sc.vms.clone(), &sc.traces, &sc.sim, &mut p).expect("the engine accepts every move");
            drop(p);
            let scored = agent.chooser.borrow_mut().end().decisions;
            assert_eq!(o.admitted, 40, "{kind}");
            assert!(o.migrations > 0, "{kind}: the loop consolidates");
            assert!(scored > 0 && scored as u64 <= o.migrations + o.admitted as u64, "{kind}: only committed decisions are scored ({scored})");
            assert_eq!(o.attributed_uj + o.unattributed_uj, o.measured_uj);
        }
    }
}

#[test]
fn the_least_rise_baseline_is_fairwatts_heuristic_by_cluster() {
    let sc = fleet();
    let ours = RlAgent::new(small("greedy", 0, 1)).evaluate(&sc).unwrap();
    // fairwatt's placement rule, VM by VM (the agents admit one at a time).
    let mut fw = Beloglazov::fairwatt(crate::dynamic::Detector::Lr(1.2), crate::dynamic::Selector::Mmt, 1);
    fw.batch = None;
    let base = dynamic::run(sc.hosts.clone(), sc.vms.clone(), &sc.traces, &sc.sim, &mut fw).unwrap();
    let rel = (ours.outcome.energy_kwh - base.energy_kwh).abs() / base.energy_kwh;
    assert!(rel < 0.03, "{} vs fairwatt {}", ours.outcome.energy_kwh, base.energy_kwh);
    assert!(ours.choose_ns.len() >= ours.decisions && ours.choose_us(0.99) >= ours.choose_us(0.5));
}

#[test]
fn the_same_seed_trains_the_same_agent() {
    let sc = fleet();
    for kind in ["q-table", "dqn", "a2c", "dqnvmp"] {
        let go = |seed| {
            let mut a = RlAgent::new(small(kind, 2, seed));
            let r = a.train(std::slice::from_ref(&sc), &mut |_, _| {}).unwrap();
            let e = a.evaluate(&sc).unwrap();
            let arrays = a.chooser.borrow().learner.arrays();
            (r.episodes.iter().map(|s| (s.energy_kwh.to_bits(), s.migrations, s.mean_reward.to_bits(), s.train_steps)).collect::<Vec<_>>(), e.outcome.energy_kwh.to_bits(), e.outcome.migrations, arrays)
        };
        let (a, b) = (go(3), go(3));
        assert_eq!(a, b, "{kind}: same seed, same episodes, same model");
        assert_ne!(a.3, go(4).3, "{kind}: another seed, another model");
    }
}

/// On a fleet where half the hosts burn twice the watts, a random cluster
/// is often the wrong one; 30 short episodes teach every learner to avoid
/// it. Random scores about −0.54 here and the learners −0.04 to −0.27
/// (seeds 1 and 2), so the margin asked for is well clear of luck.
#[test]
fn training_beats_random_clusters_by_a_clear_margin() {
    let sc = mixed(fleet());
    let random = RlAgent::new(small("random", 0, 1)).evaluate(&sc).unwrap();
    for kind in ["q-table", "dqn", "a2c", "dqnvmp"] {
        let mut a = RlAgent::new(small(kind, 30, 1));
        let report = a.train(std::slice::from_ref(&sc), &mut |_, _| {}).unwrap();
        assert_eq!(report.episodes.len(), 30);
        let e = a.evaluate(&sc).unwrap();
        assert!(e.mean_reward > random.mean_reward + 0.15, "{kind}: reward {:.4} vs random {:.4}", e.mean_reward, random.mean_reward);
        assert!(e.outcome.energy_kwh < 0.9 * random.outcome.energy_kwh, "{kind}: {:.3} kWh vs random {:.3}", e.outcome.energy_kwh, random.outcome.energy_kwh);
    }
}

#[test]
fn a_saved_agent_loads_and_decides_the_same() {
    let sc = fleet();
    let dir = std::env::temp_dir().join(format!("fairwatt-rl-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for kind in KINDS {
        let mut a = RlAgent::new(small(kind, 1, 2));
        a.train(std::slice::from_ref(&sc), &mut |_, _| {}).unwrap();
        let path = dir.join(format!("{kind}.model"));
        a.save(&path).unwrap();
        let mut b = RlAgent::load(&path).unwrap();
        assert_eq!(b.config(), a.config());
        let (x, y) = (a.evaluate(&sc).unwrap(), b.evaluate(&sc).unwrap());
        assert_eq!((x.outcome.energy_kwh.to_bits(), x.outcome.migrations), (y.outcome.energy_kwh.to_bits(), y.outcome.migrations), "{kind}");
        assert_eq!(x.outcome.series, y.outcome.series, "{kind}");
        if kind != "random" {
            let mut c = RlAgent::load_as(&path, &small(kind, 5, 9)).unwrap();
            assert_eq!(c.evaluate(&sc).unwrap().outcome.migrations, x.outcome.migrations, "{kind}: same shape, another seed: the weights decide");
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn model_files_of_another_version_kind_or_shape_are_refused_by_name() {
    let dir = std::env::temp_dir().join(format!("fairwatt-rl-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("dqn.model");
    RlAgent::new(small("dqn", 0, 1)).save(&path).unwrap();
    let err = |r: Result<RlAgent>| r.err().expect("refused").to_string();
    assert!(err(RlAgent::load_as(&path, &small("dqnvmp", 0, 1))).contains("agent kind dqn, expected dqnvmp"));
    let mut six = small("dqn", 0, 1);
    if let AgentConfig::Dqn(d) = &mut six {
        d.env.k_max = 6;
    }
    assert!(err(RlAgent::load_as(&path, &six)).contains("k = 8 actions, this configuration has k = 6"));
    let mut wide = small("dqn", 0, 1);
    if let AgentConfig::Dqn(d) = &mut wide {
        d.hidden = 64;
    }
    let e = err(RlAgent::load_as(&path, &wide));
    assert!(e.contains("\"q.hidden.weight\" has shape [79, 32], this agent needs [79, 64]"), "{e}");
    let text = std::fs::read(&path).unwrap();
    let rewrite = |from: &str, to: &str| {
        let s = String::from_utf8_lossy(&text).replacen(from, to, 1);
        let p = dir.join("edited.model");
        std::fs::write(&p, s.as_bytes()).unwrap();
        p
    };
    assert!(err(RlAgent::load(&rewrite("\"version\":1", "\"version\":2"))).contains("format version 2, this build reads version 1"));
    assert!(err(RlAgent::load(&rewrite("\"kind\":\"dqn\"", "\"kind\":\"sarsa\""))).contains("unknown agent kind \"sarsa\""));
    assert!(err(RlAgent::load(&rewrite("\"features\":79", "\"features\":80"))).contains("features 80"));
    std::fs::write(dir.join("junk.model"), b"hello\n").unwrap();
    assert!(err(RlAgent::load(&dir.join("junk.model"))).contains("not a fairwatt RL model"));
    let cut = dir.join("cut.model");
    std::fs::write(&cut, &text[..text.len() - 8]).unwrap();
    assert!(err(RlAgent::load(&cut)).contains("cut short"));
    std::fs::remove_dir_all(&dir).unwrap();
}
