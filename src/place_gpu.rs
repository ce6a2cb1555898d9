//! `fairwatt place eval --trace alibaba:DIR[:LIST]`: the Alibaba GPU 2023
//! pods replayed on the cluster's nodes with every GPU policy.

use std::path::Path;

use anyhow::{Context, bail};

use crate::place::EvalArgs;

/// `alibaba:DIR[:LIST]`: the GPU pods of LIST (default `default`, the file
/// `openb_pod_list_LIST.csv`) on every node of the cluster, replayed once as
/// the trace times them and once filling the cluster (the FGD paper's
/// experiment), every GPU policy on the same fleet.
pub fn eval(arg: &str, a: &EvalArgs) -> anyhow::Result<()> {
    use fairwatt_placement::gpu::{GpuConfig, GpuPolicy, Timing, evaluate, format_table, load::load_pod_list, load::reduced_fleet};
    let (dir, list) = match arg.rsplit_once(':') {
        Some((d, l)) if !l.contains('/') => (Path::new(d), l),
        _ => (Path::new(arg), "default"),
    };
    let nodes = fairwatt_placement::trace::alibaba::load_nodes(&dir.join("openb_node_list_all_node.csv")).with_context(|| format!("loading the Alibaba nodes from {}", dir.display()))?;
    let (pods, skipped) = load_pod_list(&dir.join(format!("openb_pod_list_{list}.csv"))).with_context(|| format!("loading pod list {list:?} from {}", dir.display()))?;
    for (what, why) in skipped.iter().take(5) {
        eprintln!("skipped {what}: {why}");
    }
    let policies: Vec<GpuPolicy> = if a.policy.iter().any(|p| p == "npa") {
        // The CPU twin's default list: run every GPU policy.
        GpuPolicy::ALL.to_vec()
    } else {
        a.policy.iter().map(|p| GpuPolicy::by_name(p)).collect::<Result<_, _>>()?
    };
    let fleet = match a.hosts {
        Some(0) => bail!("--hosts must be at least 1"),
        Some(n) if n < nodes.len() => reduced_fleet(&nodes, n as f64 / nodes.len() as f64),
        _ => nodes,
    };
    for (label, timing) in [("as the trace times them", Timing::Trace), ("filling the cluster, one a minute, none leaving", Timing::Fill)] {
        let cfg = GpuConfig { timing, seed: a.seed, ..GpuConfig::default() };
        println!("alibaba {list}: {} pods on {} nodes, {label}\n", pods.len(), fleet.len());
        println!("{}", format_table(&evaluate(&fleet, &pods, &policies, &cfg)));
    }
    Ok(())
}

