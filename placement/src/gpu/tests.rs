//! Hand-checked small fleets: success counts, capacity, GPU sharing,
//! departures and the retry queue, power and energy, fragmentation, bad
//! input, and the loaders. Shared helpers for `tests_policy`.

use super::cluster::Cluster;
use super::demand::{Demand, GpuNeed, GpuTake, demand, model_names};
use super::frag::FragModel;
use super::load::{every_kth, load_pod_list, reduced_fleet};
use super::metrics::quantile;
use super::policy::{PolicyCtx, choose};
use super::*;

pub(super) fn node(id: &str, cpu: u64, mem: u64, gpus: u32, model: Option<&str>) -> NodeSpec {
    NodeSpec { id: id.into(), cpu_milli: cpu, memory_mib: mem, gpus, gpu_model: model.map(str::to_string) }
}

/// A pod asking `gpus` GPUs (`milli` of one when sharing), alive `[t0, t1)`.
pub(super) fn pod(id: &str, cpu: u64, mem: u64, gpus: u32, milli: u32, t0: i64, t1: Option<i64>) -> PodRequest {
    PodRequest {
        id: id.into(),
        cpu_milli: cpu,
        memory_mib: mem,
        gpus,
        gpu_milli: milli,
        gpu_model: None,
        created_s: t0,
        deleted_s: t1,
        scheduled_s: Some(t0),
        qos: "LS".into(),
        phase: "Running".into(),
    }
}

/// The cluster, its model names and the fragmentation model of `workload`.
pub(super) fn setup(nodes: &[NodeSpec], workload: &[PodRequest]) -> (Cluster, Vec<String>, FragModel) {
    let models = model_names(nodes).unwrap();
    let ds: Vec<Demand> = workload.iter().map(|p| demand(p, &models)).collect();
    let frag = FragModel::from_demands(&ds);
    let c = Cluster::new(nodes, &models, &PowerTable::default(), &frag, 64).unwrap();
    (c, models, frag)
}

/// Places `pods` in order (as pod indices `first..`) with `policy`; the choices.
pub(super) fn place_all(c: &mut Cluster, models: &[String], frag: &FragModel, pods: &[PodRequest], first: usize, policy: GpuPolicy, seed: u64) -> Vec<Option<(usize, GpuTake)>> {
    let mut ctx = PolicyCtx::new(seed, frag);
    pods.iter()
        .enumerate()
        .map(|(k, p)| {
            let d = demand(p, models);
            let choice = choose(policy, c, &d, &mut ctx)?;
            c.place(first + k, choice.0, choice.1, &d, frag).unwrap();
            c.check().unwrap();
            Some(choice)
        })
        .collect()
}

pub(super) fn cfg(timing: Timing) -> GpuConfig {
    GpuConfig { timing, check_every: 1, ..GpuConfig::default() }
}

pub(super) fn run1(nodes: &[NodeSpec], pods: &[PodRequest], p: GpuPolicy, cfg: &GpuConfig) -> GpuMetrics {
    evaluate(nodes, pods, &[p], cfg).remove(0).result.unwrap()
}

#[test]
fn first_fit_success_count_and_first_failure_by_hand() {
    let nodes = [node("a", 4000, 8192, 1, Some("T4")), node("b", 4000, 8192, 1, Some("T4"))];
    let pods = [
        pod("whole", 2000, 1024, 1, 1000, 0, None), // a: GPU full
        pod("s1", 1000, 1024, 1, 500, 1, None),     // b: half its GPU
        pod("s2", 1000, 1024, 1, 500, 2, None),     // b: the other half
        pod("whole2", 1000, 1024, 1, 1000, 3, None), // no whole GPU left: the first failure
        pod("cpu", 1000, 1024, 0, 0, 4, None),      // a has CPU left
    ];
    let m = run1(&nodes, &pods, GpuPolicy::FirstFit, &cfg(Timing::Fill));
    assert_eq!((m.arrived, m.placed, m.failed, m.placed_before_first_failure), (5, 4, 1, 3));
    assert_eq!(m.failed_ids, ["whole2"]);
    assert_eq!(m.horizon_s, 4 * 60, "fill timing: one arrival a minute");
    assert!((m.success_rate - 0.8).abs() < 1e-12);
    assert!((m.gpu_demand_placed - 2.0 / 3.0).abs() < 1e-12, "2000 of 3000 thousandths asked");
    assert!((m.gpu_alloc_final - 1.0).abs() < 1e-12 && m.frag_rate_final == 0.0);
    assert_eq!(m.active_nodes_peak, 2);
    assert!(m.capacity_checks >= 5, "the checker ran after every event");
}

#[test]
fn sharing_pods_take_fractions_of_one_gpu() {
    let nodes = [node("n", 8000, 8192, 2, Some("V100M32"))];
    let pods = [pod("a", 100, 1, 1, 600, 0, None), pod("b", 100, 1, 1, 300, 1, None), pod("c", 100, 1, 1, 500, 2, None), pod("w", 100, 1, 1, 1000, 3, None)];
    let (mut c, models, frag) = setup(&nodes, &pods);
    let got = place_all(&mut c, &models, &frag, &pods, 0, GpuPolicy::BestFit, 1);
    // 600 on GPU 0; 300 into the tighter GPU 0 (400 free); 500 needs GPU 1;
    // the whole-GPU pod finds no GPU entirely free.
    assert_eq!(got[0], Some((0, GpuTake::Share { gpu: 0, milli: 600 })));
    assert_eq!(got[1], Some((0, GpuTake::Share { gpu: 0, milli: 300 })));
    assert_eq!(got[2], Some((0, GpuTake::Share { gpu: 1, milli: 500 })));
    assert_eq!(got[3], None);
    assert_eq!(c.nodes[0].gpu_free, [100, 500]);
    assert!(c.release(1, &frag));
    assert_eq!(c.nodes[0].gpu_free, [400, 500]);
    assert!(!c.release(1, &frag), "a pod is released once");
    c.check().unwrap();
    let m = run1(&nodes, &pods, GpuPolicy::BestFit, &cfg(Timing::Fill));
    assert!((m.gpu_alloc_final - 0.7).abs() < 1e-12, "1400 of 2000 thousandths");
}

#[test]
fn multi_gpu_pods_take_whole_gpus_only() {
    let nodes = [node("n", 32000, 65536, 4, Some("V100M16"))];
    let pods = [pod("s", 1000, 1, 1, 500, 0, None), pod("four", 1000, 1, 4, 1000, 1, None), pod("three", 1000, 1, 3, 1000, 2, None)];
    let (mut c, models, frag) = setup(&nodes, &pods);
    let got = place_all(&mut c, &models, &frag, &pods, 0, GpuPolicy::FirstFit, 1);
    assert_eq!(got[1], None, "one GPU is half used: four whole ones are not there");
    let Some((0, GpuTake::Whole(mask))) = got[2] else { panic!("{:?}", got[2]) };
    assert_eq!(mask, 0b1110, "the three entirely free GPUs");
    assert_eq!(c.nodes[0].gpu_free, [500, 0, 0, 0]);
}

#[test]
fn gpu_model_constraints_are_kept() {
    let nodes = [node("v", 96000, 786432, 8, Some("V100M32")), node("t", 104000, 524288, 2, Some("T4"))];
    let mut t4 = pod("t4", 1000, 1, 1, 500, 0, None);
    t4.gpu_model = Some("T4".into());
    let mut either = pod("either", 1000, 1, 1, 1000, 1, None);
    either.gpu_model = Some("P100|V100M32".into());
    let pods = [t4, either];
    let (mut c, models, frag) = setup(&nodes, &pods);
    let got = place_all(&mut c, &models, &frag, &pods, 0, GpuPolicy::FirstFit, 1);
    assert_eq!(got[0].map(|g| g.0), Some(1), "T4 only, though the V100 node comes first");
    assert_eq!(got[1].map(|g| g.0), Some(0));
}

#[test]
fn departures_free_capacity_and_energy_is_integrated() {
    let nodes = [node("n", 4000, 8192, 1, Some("T4"))];
    let pods = [pod("a", 1000, 1, 1, 1000, 0, Some(10)), pod("b", 1000, 1, 1, 1000, 5, Some(15)), pod("c", 1000, 1, 1, 1000, 10, Some(20))];
    let m = run1(&nodes, &pods, GpuPolicy::FirstFit, &cfg(Timing::Trace));
    // a leaves at 10 before c arrives at 10; b found the GPU taken.
    assert_eq!((m.placed, m.failed, m.placed_before_first_failure, m.horizon_s), (2, 1, 1, 20));
    // 4 vCPU × 0.6389 + T4 idle 10 W + a quarter of the CPU's range + a whole T4's range.
    let watts = 4.0 * 0.6389 + 10.0 + 0.25 * 4.0 * (3.9673 - 0.6389) + 60.0;
    assert!((m.energy_kwh - watts * 20.0 / 3.6e6).abs() < 1e-12, "{}", m.energy_kwh);
    assert!((m.power_final_kw - watts / 1000.0).abs() < 1e-12, "c runs after the last arrival");
    assert!((m.wh_per_gpu_hour - watts).abs() < 1e-9, "one GPU busy all along: W = Wh per GPU-hour");
    assert!((m.gpu_alloc_mean - 1.0).abs() < 1e-12 && (m.active_nodes_mean - 1.0).abs() < 1e-12);
    assert!(m.queue.is_none());
}

#[test]
fn retry_queue_waits_within_its_bound() {
    let nodes = [node("n", 4000, 8192, 1, Some("T4"))];
    let pods = [pod("a", 1000, 1, 1, 1000, 0, Some(10)), pod("b", 1000, 1, 1, 1000, 5, Some(15)), pod("c", 1000, 1, 1, 1000, 10, Some(20))];
    let mut c = cfg(Timing::Trace);
    c.retry = Some(Retry { max_wait_s: 10 });
    let m = run1(&nodes, &pods, GpuPolicy::FirstFit, &c);
    // b waits 5 s and runs 10..20 (its 10 s lifetime); c waits 10..20 and runs 20..30.
    assert_eq!((m.placed, m.failed, m.horizon_s), (3, 0, 30));
    assert!(m.failed_ids.is_empty(), "placed after waiting");
    let q = m.queue.unwrap();
    assert_eq!((q.queued, q.placed_after_wait, q.expired, q.max_wait_s), (2, 2, 0, 10));
    assert!((q.mean_wait_s - 7.5).abs() < 1e-12);
    c.retry = Some(Retry { max_wait_s: 4 });
    let m = run1(&nodes, &pods, GpuPolicy::FirstFit, &c);
    let q = m.queue.unwrap();
    assert_eq!((m.placed, q.queued, q.placed_after_wait, q.expired), (2, 1, 0, 1), "b gave up at 10, c took the GPU");
}

#[test]
fn power_formula_and_empty_nodes_off() {
    let t = PowerTable::default();
    assert_eq!((t.gpu(Some("V100M32")).max_w, t.gpu(Some("T4")).max_w, t.gpu(Some("P100")).max_w, t.gpu(Some("A10")).max_w), (300.0, 70.0, 250.0, 150.0));
    assert_eq!(t.gpu(Some("nope")).model, "unknown");
    let p = t.node(96000, 8, Some("V100M32"));
    assert_eq!(p.watts(false, 0.7, 3000), 0.0, "an empty node is off");
    let want = 96.0 * 0.6389 + 8.0 * 40.0 + 0.5 * 96.0 * (3.9673 - 0.6389) + 2.5 * 260.0;
    assert!((p.watts(true, 0.5, 2500) - want).abs() < 1e-9);
    assert!((p.idle_w - (96.0 * 0.6389 + 320.0)).abs() < 1e-9);
}

#[test]
fn fragmentation_by_hand() {
    let nodes = [node("n", 8000, 8192, 2, Some("T4"))];
    let share = pod("s", 1000, 1, 1, 500, 0, None);
    let whole = pod("w", 1000, 1, 1, 1000, 0, None);
    let (_, models, f) = setup(&nodes, std::slice::from_ref(&share));
    // GPUs with less free than the 500 asked are fragments; too little CPU makes all of it one.
    assert_eq!(f.node_frag(Some(0), 8000, &[1000, 300]), 300.0);
    assert_eq!(f.node_frag(Some(0), 500, &[1000, 300]), 1300.0);
    assert_eq!(f.node_frag(Some(0), 8000, &[400, 300]), 700.0, "no GPU has 500 free");
    assert_eq!(f.node_frag(None, 8000, &[]), 0.0);
    let mut t4 = share.clone();
    t4.gpu_model = Some("P100".into());
    let fm = FragModel::from_demands(&[demand(&t4, &models)]);
    assert_eq!(fm.node_frag(Some(0), 8000, &[1000, 300]), 1300.0, "a model the task refuses: all fragment");
    let half = FragModel::from_demands(&[demand(&share, &models), demand(&whole, &models)]);
    // share: 300; whole: the partly used GPU, 300 → 0.5·300 + 0.5·300.
    assert_eq!(half.node_frag(Some(0), 8000, &[1000, 300]), 300.0);
    // No whole GPU free: the whole-GPU type cannot run, all 600 is fragment.
    assert_eq!(half.node_frag(Some(0), 8000, &[300, 300]), 0.5 * 600.0 + 0.5 * 600.0);
    let d = demand(&whole, &models);
    assert_eq!((d.need, d.allowed), (GpuNeed::Whole(1), u64::MAX));
}

#[test]
fn capacity_checker_catches_a_corrupt_node() {
    let nodes = [node("n", 4000, 8192, 1, Some("T4"))];
    let (mut c, _, _) = setup(&nodes, &[]);
    c.check().unwrap();
    c.corrupt(0);
    let e = c.check().unwrap_err().to_string();
    assert!(e.contains("capacity check: node #0 CPU"), "{e}");
}

#[test]
fn bad_input_is_refused_with_the_reason() {
    let pods = [pod("ok", 1000, 1, 0, 0, 0, None)];
    for o in evaluate(&[], &pods, &GpuPolicy::ALL, &GpuConfig::default()) {
        let e = o.result.unwrap_err().to_string();
        assert!(e.contains("no nodes"), "{e}");
    }
    let nodes = [node("n", 4000, 8192, 2, Some("T4"))];
    let e = evaluate(&nodes, &[], &[GpuPolicy::Fgd], &GpuConfig::default()).remove(0).result.unwrap_err();
    assert!(e.to_string().contains("no pods"), "{e}");
    let mut a10 = pod("a10", 1000, 1, 1, 500, 3, None);
    a10.gpu_model = Some("A10".into());
    let pods = [pod("cpu", 5000, 1, 0, 0, 0, None), pod("gpus", 1000, 1, 3, 1000, 1, None), pod("fine", 1000, 1, 1, 500, 2, None), a10, pod("mem", 1, 9000, 0, 0, 4, None)];
    let m = run1(&nodes, &pods, GpuPolicy::BestFit, &cfg(Timing::Fill));
    assert_eq!((m.arrived, m.placed), (1, 1), "refused pods are left out of the replay");
    let why: Vec<&str> = m.refused.iter().map(|r| r.1.as_str()).collect();
    assert_eq!(m.refused.iter().map(|r| r.0.as_str()).collect::<Vec<_>>(), ["cpu", "gpus", "a10", "mem"]);
    assert!(why[0].contains("pod cpu is larger than any node: asks 5000 mCPU; the largest node has 4000"), "{}", why[0]);
    assert!(why[1].contains("asks 3 GPUs; the largest node has 2"), "{}", why[1]);
    assert!(why[2].contains("asks GPU model A10, which no node has"), "{}", why[2]);
    assert!(why[3].contains("9000 MiB"), "{}", why[3]);
    // Each part fits somewhere, the whole nowhere: the message names the combination.
    let nodes = [node("big", 8000, 1024, 2, Some("T4")), node("cpu", 64000, 65536, 0, None)];
    let mut both = pod("both", 16000, 1, 1, 500, 0, None);
    both.gpu_model = Some("T4".into());
    let r = refusals(&nodes, &[both]).unwrap();
    assert_eq!(r[0].1, "pod both is larger than any node: no single node has 16000 mCPU, 1 MiB and 1 GPUs (T4) together");
}

#[test]
fn loaders_take_lists_without_times_and_reduce_fleets() {
    let d = crate::trace::scratch_dir("gpu-requests");
    let p = d.join("multigpu.csv");
    std::fs::write(&p, "name,cpu_milli,memory_mib,num_gpu,gpu_milli\np0,12000,16384,1,1000\np1,6000,12288,1,460\np2,x,1,0,0\np3,88000,327680,8,1000\n").unwrap();
    let (pods, skipped) = load_pod_list(&p).unwrap();
    assert_eq!(pods.iter().map(|p| (p.id.as_str(), p.created_s, p.deleted_s)).collect::<Vec<_>>(), [("p0", 0, None), ("p1", 1, None), ("p3", 2, None)]);
    assert_eq!((pods[1].gpus, pods[1].gpu_milli, pods[2].gpus), (1, 460, 8));
    assert_eq!(skipped.len(), 1);
    assert_eq!(skipped[0].0, 4);
    std::fs::write(&p, "name,cpu_milli,memory_mib,num_gpu\np0,1,1,0\n").unwrap();
    assert!(matches!(load_pod_list(&p), Err(crate::trace::TraceError::MissingColumn { .. })));
    std::fs::remove_dir_all(&d).unwrap();

    let mut fleet: Vec<NodeSpec> = (0..10).map(|i| node(&format!("g{i}"), 96000, 393216, 8, Some("G2"))).collect();
    fleet.extend((0..4).map(|i| node(&format!("c{i}"), 32000, 262144, 0, None)));
    fleet.push(node("a10", 128000, 1048576, 1, Some("A10")));
    let half = reduced_fleet(&fleet, 0.5);
    assert_eq!(half.iter().filter(|n| n.gpu_model.as_deref() == Some("G2")).count(), 5);
    assert_eq!(half.iter().filter(|n| n.gpus == 0).count(), 2);
    assert_eq!(half.iter().filter(|n| n.id == "a10").count(), 1, "a lone node of its shape is kept at one half");
    assert_eq!(half, reduced_fleet(&fleet, 0.5));
    assert_eq!(reduced_fleet(&fleet, 1.0), fleet);
    assert_eq!(every_kth(&pods, 2).len(), 2);
}

#[test]
fn table_and_quantiles() {
    let nodes = [node("n", 4000, 8192, 1, Some("T4"))];
    let pods = [pod("a", 1000, 1, 1, 500, 0, Some(10))];
    let mut out = evaluate(&nodes, &pods, &GpuPolicy::ALL, &GpuConfig::default());
    out.push(GpuOutcome { policy: GpuPolicy::Fgd, result: Err(PlaceError::Config("broken input".into())) });
    let t = format_table(&out);
    assert!(t.starts_with("| policy | placed / arrived | success % |"), "{t}");
    for p in GpuPolicy::ALL {
        assert!(t.contains(&format!("| {} | 1 / 1 | 100.00 |", p.name())), "{t}");
    }
    assert!(t.contains("| fgd | error: configuration: broken input |"), "{t}");
    let mut v = vec![5, 1, 4, 2, 3];
    assert_eq!((quantile(&mut v, 0.5), quantile(&mut v, 0.99), quantile(&mut [], 0.5)), (3, 5, 0));
}
