//! The GPU placement policies on the real Alibaba GPU 2023 cluster
//! (../shared/data/alibaba-gpu-v2023): every policy on the same fleet, the
//! default pod list and resampled ones. Skipped, saying why, when the data is
//! absent. The default test samples (an eighth of the fleet and of each
//! list) so a debug build stays quick; `full_evaluation` is the run behind
//! docs/placement-gpu.md:
//!
//! cargo test -p fairwatt-placement --release --test alibaba_gpu -- --ignored --nocapture

use std::path::PathBuf;

use fairwatt_placement::gpu::load::{every_kth, load_pod_list, reduced_fleet};
use fairwatt_placement::gpu::{GpuConfig, GpuOutcome, GpuPolicy, Retry, Timing, evaluate, format_table};
use fairwatt_placement::trace::alibaba::load_nodes;
use fairwatt_placement::trace::{NodeSpec, PodRequest};

fn data() -> Option<PathBuf> {
    let root = std::env::var_os("FAIRWATT_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"));
    let dir = root.join("alibaba-gpu-v2023");
    if dir.exists() {
        Some(dir)
    } else {
        eprintln!("{} is absent: the Alibaba GPU evaluation is skipped", dir.display());
        None
    }
}

fn fleet(dir: &std::path::Path) -> Vec<NodeSpec> {
    load_nodes(&dir.join("openb_node_list_all_node.csv")).unwrap()
}

fn pods(dir: &std::path::Path, list: &str) -> Vec<PodRequest> {
    let (pods, skipped) = load_pod_list(&dir.join(format!("openb_pod_list_{list}.csv"))).unwrap();
    assert!(skipped.is_empty(), "{list}: {skipped:?}");
    pods
}

/// Every outcome ran, stayed within capacity (the replay checks it), and
/// counted every pod; all policies saw the same pods.
fn assert_feasible(label: &str, out: &[GpuOutcome]) {
    let mut arrived = None;
    for o in out {
        let m = o.result.as_ref().unwrap_or_else(|e| panic!("{label} {}: {e}", o.policy));
        assert_eq!(m.placed + m.failed, m.arrived, "{label} {}", o.policy);
        assert!(m.capacity_checks >= 1 && m.success_rate > 0.0 && m.gpu_alloc_peak <= 1.0, "{label} {}", o.policy);
        assert_eq!(*arrived.get_or_insert(m.arrived), m.arrived, "{label}: same pods for every policy");
    }
}

fn show(label: &str, out: &[GpuOutcome]) {
    let m = out[0].result.as_ref().unwrap();
    println!("\n#### {label} ({} nodes, {} pods, {} refused)\n\n{}", m.nodes, m.arrived, m.refused.len(), format_table(out));
    for (_, why) in m.refused.iter().take(3) {
        println!("refused: {why}");
    }
}

#[test]
fn sampled_lists_are_feasible_for_every_policy() {
    let Some(dir) = data() else { return };
    let nodes = reduced_fleet(&fleet(&dir), 1.0 / 8.0);
    assert!((185..=195).contains(&nodes.len()), "{}", nodes.len());
    let cfg = GpuConfig { timing: Timing::Fill, check_every: 200, ..GpuConfig::default() };
    for list in ["default", "gpushare40", "multigpu50", "cpu250", "gpuspec33"] {
        let pods = every_kth(&pods(&dir, list), 8);
        let out = evaluate(&nodes, &pods, &GpuPolicy::ALL, &cfg);
        assert_feasible(list, &out);
        show(&format!("fill, {list}, every 8th pod, 1/8 fleet"), &out);
        // An eighth of the pods on an eighth of the fleet asks about what the
        // fleet holds: the cluster fills up and someone fails.
        assert!(out.iter().any(|o| o.result.as_ref().unwrap().failed > 0), "{list}");
    }
    // Trace timing with the queue on the default list: pods leave again.
    let pods = every_kth(&pods(&dir, "default"), 8);
    let cfg = GpuConfig { timing: Timing::Trace, retry: Some(Retry { max_wait_s: 3600 }), check_every: 200, ..GpuConfig::default() };
    let out = evaluate(&nodes, &pods, &GpuPolicy::ALL, &cfg);
    assert_feasible("trace", &out);
    show("trace + queue (1 h), default, every 8th pod, 1/8 fleet", &out);
}

/// Mean over seeds of one figure, per policy and list, as a Markdown table.
fn summary(title: &str, lists: &[&str], runs: &[Vec<Vec<GpuOutcome>>], dp: usize, figure: impl Fn(&fairwatt_placement::gpu::GpuMetrics) -> f64) {
    println!("\n#### {title}\n\n| policy | {} |\n|---|{}", lists.join(" | "), "---:|".repeat(lists.len()));
    for (p, policy) in GpuPolicy::ALL.iter().enumerate() {
        let cells: Vec<String> = runs
            .iter()
            .map(|seeds| {
                let v: Vec<f64> = seeds.iter().map(|out| figure(out[p].result.as_ref().unwrap())).collect();
                let mean = v.iter().sum::<f64>() / v.len() as f64;
                let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(a, b), &x| (a.min(x), b.max(x)));
                format!("{mean:.dp$} ({lo:.dp$}–{hi:.dp$})")
            })
            .collect();
        println!("| {policy} | {} |", cells.join(" | "));
    }
}

/// The runs behind docs/placement-gpu.md (release: a few minutes on 2 vCPUs).
#[test]
#[ignore]
fn full_evaluation() {
    let Some(dir) = data() else { return };
    let all = fleet(&dir);
    let lists = ["default", "gpushare40", "gpushare100", "multigpu50", "cpu250", "gpuspec33"];
    let seeds = 1..=5u64;
    for (share, label) in [(1.0, "all 1523 nodes"), (0.5, "half fleet")] {
        let nodes = reduced_fleet(&all, share);
        let mut runs = Vec::new();
        for list in lists {
            let pods = pods(&dir, list);
            let per_seed: Vec<Vec<GpuOutcome>> = seeds
                .clone()
                .map(|seed| {
                    let cfg = GpuConfig { timing: Timing::Fill, shuffle: Some(seed), seed, ..GpuConfig::default() };
                    let out = evaluate(&nodes, &pods, &GpuPolicy::ALL, &cfg);
                    assert_feasible(list, &out);
                    out
                })
                .collect();
            show(&format!("fill, {list}, {label}, arrival order shuffled by seed 1"), &per_seed[0]);
            runs.push(per_seed);
        }
        let n = nodes.len();
        summary(&format!("fill, {label} ({n} nodes): GPU demand placed %, mean (min–max) over seeds 1–5"), &lists, &runs, 2, |m| 100.0 * m.gpu_demand_placed);
        summary(&format!("fill, {label} ({n} nodes): pods placed %, mean (min–max) over seeds 1–5"), &lists, &runs, 2, |m| 100.0 * m.success_rate);
        summary(&format!("fill, {label} ({n} nodes): pods placed before the first failure, mean (min–max)"), &lists, &runs, 0, |m| m.placed_before_first_failure as f64);
        summary(&format!("fill, {label} ({n} nodes): energy kWh (one arrival a minute), mean (min–max)"), &lists, &runs, 0, |m| m.energy_kwh);
        summary(&format!("fill, {label} ({n} nodes): Wh per allocated GPU-hour, mean (min–max)"), &lists, &runs, 1, |m| m.wh_per_gpu_hour);
        summary(&format!("fill, {label} ({n} nodes): fragmentation after the last arrival, % of free GPU, mean (min–max)"), &lists, &runs, 1, |m| 100.0 * m.frag_rate_final);
    }
    let trace = GpuConfig { timing: Timing::Trace, ..GpuConfig::default() };
    let queued = GpuConfig { retry: Some(Retry { max_wait_s: 3600 }), ..trace.clone() };
    for (share, label) in [(1.0, "all 1523 nodes"), (0.02, "2 % fleet"), (0.01, "1 % fleet")] {
        let nodes = reduced_fleet(&all, share);
        for (cfg, mode) in [(&trace, "trace"), (&queued, "trace + queue (1 h)")] {
            let out = evaluate(&nodes, &pods(&dir, "default"), &GpuPolicy::ALL, cfg);
            assert_feasible(mode, &out);
            show(&format!("{mode}, default, {label}"), &out);
        }
    }
}
