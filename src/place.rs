//! `fairwatt place eval`: runs placement policies over a real or synthetic
//! trace in the dynamic datacenter and prints CloudSim's metrics beside the
//! energy lower bound (and CloudSim's own figure when a reference file has
//! the day), writing per-step series and plots. `fairwatt bench placement`
//! times the same runs.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use fairwatt_placement::dynamic::{self, Outcome, SimConfig, cloudsim_hosts, cloudsim_vms, policy_by_name};
use fairwatt_placement::model::{HostType, VmSpec};
use fairwatt_placement::dynamic::PowerMode;
use fairwatt_placement::rl::RlAgent;
use fairwatt_placement::trace::{VmTrace, bitbrains, planetlab, synthetic};
use plotters::prelude::*;

#[derive(Subcommand, Debug)]
pub enum PlaceCommand {
    /// Run policies over a trace and print the metrics table; writes series and plots.
    Eval(EvalArgs),
    /// Train an RL agent on traces and save its model (`place eval --policy rl:FILE` runs it).
    Train(TrainArgs),
    /// The packing heuristics' optimality gap per instance family on the vector bin packing benchmark.
    Vbp {
        /// The folder with {New,Panigrahy,Triplet}_instances.tar.gz and their *_summary_known.csv.
        #[arg(long)]
        dir: PathBuf,
    },
}

#[derive(Args, Debug, Clone)]
pub struct TrainArgs {
    /// q-table, dqn, a2c or dqnvmp.
    #[arg(long, default_value = "dqnvmp")]
    pub agent: String,
    /// Comma-separated traces to train on, as for `eval` (planetlab:DIR, bitbrains:DIR, synthetic:VMS[:STEPS]).
    #[arg(long, value_delimiter = ',')]
    pub trace: Vec<String>,
    #[arg(long, default_value_t = 800)]
    pub hosts: usize,
    /// Training episodes (default: the agent's config).
    #[arg(long)]
    pub episodes: Option<usize>,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Where the model goes.
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Args, Debug, Clone)]
pub struct EvalArgs {
    /// planetlab:DIR, bitbrains:DIR or synthetic:VMS[:STEPS].
    #[arg(long)]
    pub trace: String,
    /// Comma-separated policies: npa, dvfs, thr-mmt-0.8, iqr-mmt-1.5, mad-mmt-2.5, lr-mmt-1.2, lrr-mmt-1.2, lr-mc-1.2, fairwatt, …
    #[arg(long, value_delimiter = ',', default_value = "npa,dvfs,thr-mmt-0.8,iqr-mmt-1.5,mad-mmt-2.5,lr-mmt-1.2,lrr-mmt-1.2,fairwatt")]
    pub policy: Vec<String>,
    /// cloudsim: CloudSim 3.0.3's semantics (its completion rule, first interval unmeasured); fairwatt: VMs run until their trace ends.
    #[arg(long, default_value = "cloudsim")]
    pub config: String,
    /// Hosts (alternating HP ML110 G4 and G5; default 800). For alibaba: that many of the cluster's nodes, in proportion to its node types (default all).
    #[arg(long)]
    pub hosts: Option<usize>,
    /// Hold every VM's RAM on its host, migrations included (CloudSim's PlanetLab VMs do not).
    #[arg(long)]
    pub enforce_ram: bool,
    /// Seed for random VM selection.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// CloudSim's reference results (per-day energy printed beside ours).
    #[arg(long)]
    pub reference: Option<PathBuf>,
    /// Where series.csv and the plots go.
    #[arg(long, default_value = "place-eval")]
    pub out: PathBuf,
}

pub fn run(cmd: PlaceCommand) -> anyhow::Result<()> {
    match cmd {
        PlaceCommand::Eval(a) => eval(&a),
        PlaceCommand::Train(a) => crate::place_train::train(&a),
        PlaceCommand::Vbp { dir } => vbp(&dir),
    }
}

/// A loaded experiment: hosts, VM requests and their traces, and its name.
pub struct Experiment {
    pub name: String,
    pub hosts: Vec<HostType>,
    pub vms: Vec<VmSpec>,
    pub traces: Vec<VmTrace>,
    pub steps: usize,
}

pub fn load(spec: &str, hosts: usize) -> anyhow::Result<Experiment> {
    let (kind, arg) = spec.split_once(':').with_context(|| format!("--trace {spec:?}: expected KIND:ARG (planetlab:DIR, bitbrains:DIR, synthetic:VMS[:STEPS])"))?;
    if hosts == 0 {
        bail!("--hosts must be at least 1");
    }
    let (name, traces) = match kind {
        "planetlab" | "bitbrains" => {
            let dir = Path::new(arg);
            let w = if kind == "planetlab" { planetlab::load_dir(dir) } else { bitbrains::load_dir(dir) }.with_context(|| format!("loading {kind} traces from {}", dir.display()))?;
            for (what, why) in w.skipped.iter().take(5) {
                eprintln!("skipped {what}: {why}");
            }
            if w.skipped.len() > 5 {
                eprintln!("… and {} more skipped", w.skipped.len() - 5);
            }
            let day = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let mut vms = w.vms;
            if kind == "bitbrains" {
                // The rnd day-1 files hold each VM's own first day, and
                // those start up to weeks apart: overlay them on one day.
                for t in &mut vms {
                    t.end_step = t.end_step.map(|e| e - t.start_step);
                    t.start_step = 0;
                }
            }
            (format!("{kind}:{day}"), vms)
        }
        "synthetic" => {
            let mut it = arg.split(':');
            let vms: usize = it.next().unwrap_or("").parse().with_context(|| format!("synthetic:{arg}: VMS must be a number"))?;
            let steps: usize = it.next().map(str::parse).transpose().with_context(|| format!("synthetic:{arg}: STEPS must be a number"))?.unwrap_or(288);
            (format!("synthetic:{vms}x{steps}"), synthetic::generate(vms, steps, 1).vms)
        }
        "alibaba" => bail!("alibaba traces are GPU pods: run them with `fairwatt place eval --trace alibaba:DIR[:LIST]` (the GPU cluster replay), not the CPU twin"),
        _ => bail!("--trace kind {kind:?}: expected planetlab, bitbrains or synthetic"),
    };
    if traces.is_empty() {
        bail!("{spec}: no VM traces");
    }
    let steps = traces.iter().map(|t| t.end() as usize).max().unwrap_or(0);
    Ok(Experiment { name, hosts: cloudsim_hosts(hosts), vms: cloudsim_vms(&traces), traces, steps })
}

pub fn config(name: &str, steps: usize, enforce_ram: bool) -> anyhow::Result<SimConfig> {
    let cloudsim = match name {
        "cloudsim" => true,
        "fairwatt" => false,
        _ => bail!("--config {name:?}: expected cloudsim or fairwatt"),
    };
    Ok(SimConfig { step_s: 300.0, steps, power: PowerMode::Dvfs, cloudsim, enforce_ram })
}

/// Runs one named policy (`npa` is first fit with every host at full
/// power; `rl:FILE` a trained agent, acting greedily).
pub fn run_policy(e: &Experiment, cfg: &SimConfig, name: &str, seed: u64) -> anyhow::Result<Outcome> {
    if let Some(path) = name.strip_prefix("rl:") {
        let agent = RlAgent::load(Path::new(path))?;
        agent.set_training(false);
        let mut p = agent.policy();
        let mut o = dynamic::run(e.hosts.clone(), e.vms.clone(), &e.traces, cfg, &mut p)?;
        o.policy = format!("rl-{}", agent.kind());
        return Ok(o);
    }
    let (mut cfg, policy) = (cfg.clone(), if name == "npa" { "dvfs" } else { name });
    if name == "npa" {
        cfg.power = PowerMode::NonPowerAware;
    }
    let mut p = policy_by_name(policy, seed)?;
    let mut o = dynamic::run(e.hosts.clone(), e.vms.clone(), &e.traces, &cfg, p.as_mut())?;
    if name == "npa" {
        o.policy = "npa".into();
    }
    Ok(o)
}

pub fn percentile_us(ns: &[u64], p: f64) -> f64 {
    if ns.is_empty() {
        return 0.0;
    }
    let mut v = ns.to_vec();
    v.sort_unstable();
    v[((v.len() as f64 - 1.0) * p).round() as usize] as f64 / 1000.0
}

/// CloudSim's per-day energy from the reference file: policy → (MMDD → kWh).
fn reference_energy(path: &Path) -> anyhow::Result<Vec<(String, String, f64)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let mut out = Vec::new();
    let mut on = false;
    for line in text.lines() {
        if line.starts_with("per-day energy kWh") {
            on = true;
            continue;
        }
        if on && line.trim().is_empty() {
            break;
        }
        if on {
            let mut it = line.split_whitespace();
            let Some(policy) = it.next() else { continue };
            for cell in it {
                if let Some((day, kwh)) = cell.split_once(':')
                    && let Ok(v) = kwh.parse()
                {
                    out.push((policy.replace('_', "-"), day.to_string(), v));
                }
            }
        }
    }
    Ok(out)
}

fn eval(a: &EvalArgs) -> anyhow::Result<()> {
    if let Some(rest) = a.trace.strip_prefix("alibaba:") {
        return crate::place_gpu::eval(rest, a);
    }
    let e = load(&a.trace, a.hosts.unwrap_or(800))?;
    let cfg = config(&a.config, e.steps, a.enforce_ram)?;
    let reference = a.reference.as_deref().map(reference_energy).transpose()?.unwrap_or_default();
    let day = e.name.rsplit(':').next().unwrap_or("").get(4..).unwrap_or("").to_string();
    println!("{}: {} hosts, {} VMs, {} steps of 300 s, config {}{}", e.name, e.hosts.len(), e.vms.len(), e.steps, a.config, if a.enforce_ram { ", RAM enforced" } else { "" });
    println!("{:<16} {:>9} {:>7} {:>7} {:>8} {:>7} {:>9} {:>8} {:>7} {:>6} {:>6} {:>6} {:>6} {:>9} {:>9} {:>10}", "policy", "kWh", "vs LB", "migr", "SLATAH%", "PDM%", "SLAV e-5", "ESV e-3", "perf", "hosts", "util", "imbal", "shutd", "p50 µs", "p99 µs", "CloudSim");
    let mut outcomes = Vec::new();
    for name in &a.policy {
        let o = run_policy(&e, &cfg, name, a.seed)?;
        let cs = reference.iter().find(|(p, d, _)| p == name && *d == day).map(|r| format!("{:.1}", r.2)).unwrap_or_else(|| "-".into());
        println!(
            "{:<16} {:>9.1} {:>7.2} {:>7} {:>8.2} {:>7.3} {:>9.2} {:>8.3} {:>7.4} {:>6.1} {:>6.3} {:>6.3} {:>6} {:>9.1} {:>9.1} {:>10}",
            name,
            o.energy_kwh,
            o.energy_kwh / o.lower_bound_kwh.max(1e-9),
            o.migrations,
            o.slatah * 100.0,
            o.pdm * 100.0,
            o.slav() * 1e5,
            o.esv() * 1e3,
            o.vm_performance,
            o.mean_active_hosts,
            o.mean_utilisation,
            o.load_imbalance,
            o.host_shutdowns,
            percentile_us(&o.decision_ns, 0.5),
            percentile_us(&o.decision_ns, 0.99),
            cs
        );
        if !o.refused.is_empty() {
            println!("  {} of {} VMs refused (success {:.1} %, {} deployed before the first refusal), e.g. {}", o.refused.len(), o.refused.len() + o.admitted, o.success_rate() * 100.0, o.deployable, o.refused[0].1);
        }
        outcomes.push((name.clone(), o));
    }
    if let Some(o) = outcomes.first() {
        println!("energy lower bound: {:.1} kWh (demand on the most efficient hosts at full load, each interval)", o.1.lower_bound_kwh);
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    write_series(&a.out.join("series.csv"), &outcomes)?;
    plot(&a.out.join("energy.svg"), &outcomes, "Energy per interval, kWh", |s| s.energy_kwh)?;
    plot(&a.out.join("active-hosts.svg"), &outcomes, "Active hosts", |s| s.active_hosts as f64)?;
    plot(&a.out.join("sla.svg"), &outcomes, "Share of active hosts short of demand", |s| s.violating_share)?;
    println!("wrote {}/series.csv, energy.svg, active-hosts.svg, sla.svg", a.out.display());
    Ok(())
}

fn write_series(path: &Path, outcomes: &[(String, Outcome)]) -> anyhow::Result<()> {
    let mut s = String::from("policy,step,energy_kwh,active_hosts,migrations,violating_share,lower_bound_kwh\n");
    for (name, o) in outcomes {
        for r in &o.series {
            s.push_str(&format!("{name},{},{:.6},{},{},{:.6},{:.6}\n", r.step, r.energy_kwh, r.active_hosts, r.migrations, r.violating_share, r.lower_bound_kwh));
        }
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

fn plot(path: &Path, outcomes: &[(String, Outcome)], title: &str, y: impl Fn(&dynamic::StepRecord) -> f64) -> anyhow::Result<()> {
    let xmax = outcomes.iter().flat_map(|(_, o)| o.series.last().map(|s| s.step)).max().unwrap_or(1).max(1) as f64;
    let ymax = outcomes.iter().flat_map(|(_, o)| o.series.iter().map(&y)).fold(0.0f64, f64::max).max(1e-9) * 1.05;
    let root = SVGBackend::new(path, (1000, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root).caption(title, ("sans-serif", 20)).margin(12).x_label_area_size(40).y_label_area_size(64).build_cartesian_2d(0f64..xmax, 0f64..ymax)?;
    chart.configure_mesh().x_desc("step (300 s)").draw()?;
    for (i, (name, o)) in outcomes.iter().enumerate() {
        let c = Palette99::pick(i).to_rgba();
        let pts: Vec<(f64, f64)> = o.series.iter().map(|s| (s.step as f64, y(s))).collect();
        chart.draw_series(LineSeries::new(pts, c.stroke_width(2)))?.label(name.as_str()).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], c.stroke_width(2)));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

/// Every set found in `dir`: each instance packed by every heuristic and
/// checked, gaps to the known optimum and lower bound per family.
fn vbp(dir: &Path) -> anyhow::Result<()> {
    use fairwatt_placement::vbp;
    let mut results = Vec::new();
    for set in ["New", "Panigrahy", "Triplet"] {
        let tgz = dir.join(format!("{set}_instances.tar.gz"));
        if !tgz.exists() {
            eprintln!("{} is absent: set {set} skipped", tgz.display());
            continue;
        }
        let instances = vbp::load_tarball(&tgz)?;
        let known = vbp::known(&dir.join(format!("{set}_summary_known.csv")))?;
        for inst in &instances {
            let r = vbp::solve(inst, known.get(&inst.name), &vbp::Heuristic::ALL)?;
            results.push(r);
        }
        eprintln!("{set}: {} instances", instances.len());
    }
    if results.is_empty() {
        bail!("{}: no benchmark set found (expected New/Panigrahy/Triplet_instances.tar.gz)", dir.display());
    }
    println!("Per set:\n\n{}", vbp::markdown_table(&vbp::summarise(&results, false)));
    println!("Per family:\n\n{}", vbp::markdown_table(&vbp::summarise(&results, true)));
    Ok(())
}
