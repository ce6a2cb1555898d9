//! What each policy is for, on fleets small enough to check by hand: FGD
//! keeps whole GPUs free, power-aware packs onto fewer nodes, dot product
//! aligns, random is reproducible by seed; and every policy stays within
//! capacity on a random workload.

use super::demand::GpuTake;
use super::tests::{cfg, node, place_all, pod, run1, setup};
use super::*;
use crate::rng::SplitMix64;

#[test]
fn names_aliases_and_the_unknown_name_error() {
    for p in GpuPolicy::ALL {
        assert_eq!(GpuPolicy::by_name(p.name()).unwrap(), p);
        assert_eq!(GpuPolicy::by_name(&p.name().to_uppercase().replace('-', "_")).unwrap(), p);
    }
    assert_eq!(GpuPolicy::by_name("tetris").unwrap(), GpuPolicy::DotProduct);
    assert_eq!(GpuPolicy::by_name("load-balance").unwrap(), GpuPolicy::WorstFit);
    let e = GpuPolicy::by_name("magic").unwrap_err().to_string();
    assert!(e.contains("unknown GPU placement policy `magic`; known: first-fit, best-fit, worst-fit, dot-product, random, power-aware, fgd"), "{e}");
}

#[test]
fn fgd_fills_the_partly_used_gpu_and_keeps_whole_gpus_free() {
    // n0: little CPU, two whole GPUs; n1: much CPU, one GPU half used.
    let nodes = [node("n0", 2000, 8192, 2, Some("T4")), node("n1", 16000, 8192, 2, Some("T4"))];
    // The target workload: mostly whole-GPU tasks, some half-GPU ones.
    let mut workload: Vec<PodRequest> = (0..3).map(|i| pod(&format!("w{i}"), 1000, 0, 1, 1000, 0, None)).collect();
    workload.push(pod("h", 1000, 0, 1, 500, 0, None));
    let first = pod("first", 1000, 0, 1, 500, 0, None);
    let next = pod("next", 1000, 0, 1, 500, 1, None);
    let mut picks = Vec::new();
    for policy in [GpuPolicy::Fgd, GpuPolicy::BestFit, GpuPolicy::FirstFit, GpuPolicy::WorstFit] {
        let (mut c, models, frag) = setup(&nodes, &workload);
        // Pre-load n1's GPU 0 with half a GPU.
        let d = super::demand::demand(&first, &models);
        c.place(0, 1, GpuTake::Share { gpu: 0, milli: 500 }, &d, &frag).unwrap();
        let got = place_all(&mut c, &models, &frag, std::slice::from_ref(&next), 1, policy, 1);
        picks.push((policy, got[0].unwrap()));
        if policy == GpuPolicy::Fgd {
            // ΔF on n1 GPU 0 is −375 (it removes the half GPU whole tasks cannot use); +375 elsewhere.
            assert_eq!(c.nodes[0].gpu_free, [1000, 1000], "both of n0's GPUs stay whole");
            assert_eq!(c.nodes[1].gpu_free, [0, 1000]);
            assert_eq!(c.totals.frag, 0.0);
        }
    }
    assert_eq!(picks[0].1, (1, GpuTake::Share { gpu: 0, milli: 500 }), "FGD");
    // Best fit counts n0's tight CPU and breaks one of its whole GPUs; first and worst fit too.
    assert_eq!(picks[1].1.0, 0, "best fit");
    assert_eq!(picks[2].1.0, 0, "first fit");
    assert_eq!(picks[3].1.0, 1, "worst fit: most left on n1, but on its whole GPU");
    assert_eq!(picks[3].1.1, GpuTake::Share { gpu: 1, milli: 500 });
}

#[test]
fn power_aware_packs_onto_fewer_nodes() {
    let nodes: Vec<NodeSpec> = (0..4).map(|i| node(&format!("n{i}"), 32000, 131072, 4, Some("V100M16"))).collect();
    let pods: Vec<PodRequest> = (0..8).map(|i| pod(&format!("p{i}"), 2000, 8192, 1, 250, i, Some(100))).collect();
    let pa = run1(&nodes, &pods, GpuPolicy::PowerAware, &cfg(Timing::Trace));
    let wf = run1(&nodes, &pods, GpuPolicy::WorstFit, &cfg(Timing::Trace));
    assert_eq!((pa.placed, wf.placed), (8, 8));
    assert_eq!((pa.active_nodes_peak, wf.active_nodes_peak), (1, 4));
    assert!(pa.energy_kwh < wf.energy_kwh, "{} vs {}", pa.energy_kwh, wf.energy_kwh);
    // The same allocated GPU, three fewer idle nodes: 3 × idle over most of the run.
    let idle = PowerTable::default().node(32000, 4, Some("V100M16")).idle_w;
    assert!(wf.energy_kwh - pa.energy_kwh > 3.0 * idle * 90.0 / 3.6e6);
}

#[test]
fn dot_product_picks_the_aligned_node() {
    let nodes = [node("a", 10000, 10000, 0, None), node("b", 10000, 10000, 0, None)];
    let pre = [pod("mem", 0, 8000, 0, 0, 0, None), pod("cpu", 5000, 0, 0, 0, 0, None)];
    let want = pod("x", 4000, 1000, 0, 0, 1, None);
    let (mut c, models, frag) = setup(&nodes, &[]);
    for (i, (p, n)) in pre.iter().zip([0, 1]).enumerate() {
        c.place(i, n, GpuTake::None, &super::demand::demand(p, &models), &frag).unwrap();
    }
    // a's free vector (1.0, 0.2) · (0.4, 0.1) = 0.42 beats b's (0.5, 1.0) · (0.4, 0.1) = 0.30.
    let got = place_all(&mut c.clone(), &models, &frag, std::slice::from_ref(&want), 2, GpuPolicy::DotProduct, 1);
    assert_eq!(got[0], Some((0, GpuTake::None)));
    let got = place_all(&mut c, &models, &frag, std::slice::from_ref(&want), 2, GpuPolicy::WorstFit, 1);
    assert_eq!(got[0], Some((1, GpuTake::None)));
}

/// A random heterogeneous fleet and workload (sharing, whole, multi-GPU, CPU-only pods).
fn random_case(seed: u64) -> (Vec<NodeSpec>, Vec<PodRequest>) {
    let mut r = SplitMix64::new(seed);
    let shapes = [(96000, 393216, 8, Some("G2")), (104000, 524288, 2, Some("T4")), (32000, 262144, 0, None), (16000, 122880, 2, Some("P100"))];
    let nodes = (0..12).map(|i| {
        let s = shapes[i % shapes.len()];
        node(&format!("n{i}"), s.0, s.1, s.2, s.3)
    });
    let pods = (0..150)
        .map(|i| {
            let kind = r.next_u64() % 4;
            let (gpus, milli) = match kind {
                0 => (0, 0),
                1 => (1, 100 + (r.next_u64() % 9) as u32 * 100),
                2 => (1, 1000),
                _ => ([2, 4, 8][(r.next_u64() % 3) as usize], 1000),
            };
            let t0 = i as i64 * 10;
            let life = 50 + (r.next_u64() % 2000) as i64;
            pod(&format!("p{i}"), 1000 + (r.next_u64() % 16) * 1000, 1024 * (1 + r.next_u64() % 64), gpus, milli, t0, Some(t0 + life))
        })
        .collect();
    (nodes.collect(), pods)
}

#[test]
fn every_policy_stays_within_capacity() {
    let (nodes, pods) = random_case(7);
    for timing in [Timing::Trace, Timing::Fill] {
        let mut c = cfg(timing);
        c.retry = (timing == Timing::Trace).then_some(Retry { max_wait_s: 300 });
        for o in evaluate(&nodes, &pods, &GpuPolicy::ALL, &c) {
            let m = o.result.unwrap_or_else(|e| panic!("{} {timing:?}: {e}", o.policy));
            assert_eq!(m.placed + m.failed, m.arrived, "{}", o.policy);
            assert!(m.capacity_checks > m.arrived, "checked after every event");
            assert!(m.gpu_alloc_peak <= 1.0 && m.frag_rate_final <= 1.0 && m.energy_kwh > 0.0);
            if timing == Timing::Fill {
                assert!(m.failed > 0, "{}: the fleet is too small for all 150 pods", o.policy);
            }
        }
    }
}

#[test]
fn random_is_reproducible_by_seed() {
    let (nodes, pods) = random_case(3);
    let run = |seed: u64| {
        let (mut c, models, frag) = setup(&nodes, &pods);
        let mut pods = pods.clone();
        pods.truncate(60);
        place_all(&mut c, &models, &frag, &pods, 0, GpuPolicy::Random, seed)
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    let mut c = cfg(Timing::Fill);
    c.seed = 9;
    let (a, b) = (run1(&nodes, &pods, GpuPolicy::Random, &c), run1(&nodes, &pods, GpuPolicy::Random, &c));
    assert_eq!((a.placed, &a.alloc_series, a.energy_kwh), (b.placed, &b.alloc_series, b.energy_kwh));
}

#[test]
fn shuffled_fill_is_reproducible_and_refused_for_trace_timing() {
    let (nodes, pods) = random_case(5);
    let mut c = cfg(Timing::Fill);
    c.shuffle = Some(11);
    let a = run1(&nodes, &pods, GpuPolicy::Fgd, &c);
    assert_eq!(a, GpuMetrics { wall: a.wall, latency_p50_ns: a.latency_p50_ns, latency_p99_ns: a.latency_p99_ns, ..run1(&nodes, &pods, GpuPolicy::Fgd, &c) });
    let plain = run1(&nodes, &pods, GpuPolicy::Fgd, &cfg(Timing::Fill));
    assert_eq!((a.arrived, a.horizon_s), (plain.arrived, plain.horizon_s), "same pods over the same times");
    assert_ne!(a.alloc_series, plain.alloc_series, "in another order");
    c.timing = Timing::Trace;
    let e = evaluate(&nodes, &pods, &[GpuPolicy::Fgd], &c).remove(0).result.unwrap_err();
    assert!(e.to_string().contains("fill timing only"), "{e}");
}
