//! `fairwatt attribution eval`: every attribution method on a grid of
//! simulated hosts, scored against the simulator's ground truth.
//!
//! The grid: every host template of five workload mixes (`mixed`,
//! `ai-heavy`, `database`, `web-farm`, `batch`) at 0.5 % sensor noise; a
//! noise sweep (0, 2 %, 5 %) and a VM-count sweep (2 to 60) on chosen
//! hosts; and the `mixed` hosts once more without a quiet start, where idle
//! power can only be extrapolated. Hosts boot empty: quiet for `boot_s`,
//! then their VMs arrive one by one over the next `boot_s`, so the agent
//! sees the host's idle power as it would after a reboot or an evacuation.
//!
//! Score per case ([`fairwatt_attribution::eval::Scorer`]): mean absolute
//! percentage error of each VM's dynamic energy per VM-hour, and the worst
//! VM over the whole run. Writes `eval.md` (the table), `eval.json` and two
//! SVG plots to `--out`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use plotters::prelude::*;
use serde::Serialize;

use fairwatt_attribution::eval::{Score, Scorer};
use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, Method};
use fairwatt_collector::sim::{SimHost, SimHostConfig, scenario};
use fairwatt_core::Timestamp;

#[derive(Args, Debug)]
pub struct EvalArgs {
    /// Simulated hours per case (1 s intervals).
    #[arg(long, default_value_t = 2.0)]
    hours: f64,
    /// Methods to score, comma-separated.
    #[arg(long, default_value = "ratio,linear,forest")]
    methods: String,
    /// Forest + Shapley is slow: it runs on the `mix` cases with at most
    /// this many VMs, for `forest_hours`, beside the other methods on the
    /// same shorter runs (a table of its own).
    #[arg(long, default_value_t = 40)]
    forest_max_vms: usize,
    #[arg(long, default_value_t = 0.25)]
    forest_hours: f64,
    /// Seconds a host stays empty at boot (its VMs then arrive over as many again).
    #[arg(long, default_value_t = 120)]
    boot_s: u64,
    #[arg(long, default_value_t = 11)]
    seed: u64,
    /// Directory for eval.md, eval.json and the plots.
    #[arg(long, default_value = "docs/attribution-eval")]
    out: PathBuf,
    /// A small grid (one host per mix, short runs) for a quick look.
    #[arg(long)]
    quick: bool,
    /// Only the cases whose label contains this text.
    #[arg(long)]
    only: Option<String>,
    /// Elastic-net penalty of the linear fits (0: non-negative least squares).
    #[arg(long, default_value_t = 0.0)]
    alpha: f64,
    /// L1 share of that penalty.
    #[arg(long, default_value_t = 0.5)]
    l1_ratio: f64,
}

/// One simulated host to score.
struct Case {
    group: &'static str,
    label: String,
    cfg: SimHostConfig,
    boot: bool,
}

#[derive(Serialize)]
struct CaseResult {
    group: &'static str,
    case: String,
    server: String,
    vms: usize,
    noise_pct: f64,
    idle: &'static str,
    scores: Vec<(Method, Score)>,
    /// Every method on the shorter forest runs (empty where the forest did not run).
    short: Vec<(Method, Score)>,
}

fn start() -> Timestamp {
    // 2023-11-14 22:13 UTC: runs cross the diurnal low (03:00) within hours.
    Timestamp::from_micros(1_700_000_000_000_000).expect("a valid timestamp")
}

fn cases(seed: u64, quick: bool) -> anyhow::Result<Vec<Case>> {
    let mut out = Vec::new();
    let mixes: &[(&str, usize)] = &[("mixed", 5), ("ai-heavy", 3), ("database", 5), ("web-farm", 4), ("batch", 4)];
    for &(mix, n) in mixes {
        let sc = scenario(mix, if quick { 1 } else { n }, seed, start())?;
        for cfg in sc.hosts {
            out.push(Case { group: "mix", label: format!("{mix} {}", cfg.host), cfg, boot: true });
        }
    }
    if quick {
        return Ok(out);
    }
    let mixed = scenario("mixed", 5, seed, start())?;
    for &h in &[0usize, 3] {
        for noise in [0.0, 0.02, 0.05] {
            let mut cfg = mixed.hosts[h].clone();
            cfg.noise = noise;
            out.push(Case { group: "noise", label: format!("mixed {} noise {:.1} %", cfg.host, noise * 100.0), cfg, boot: true });
        }
    }
    let farm = scenario("web-farm", 2, seed, start())?;
    for &(src, cfg0) in &[("mixed", &mixed.hosts[0]), ("web-farm", &farm.hosts[1])] {
        for n in [2usize, 5, 10, 30, 60] {
            if n > cfg0.vms.len() {
                continue;
            }
            let mut cfg = cfg0.clone();
            cfg.vms.truncate(n);
            out.push(Case { group: "vm-count", label: format!("{src} {} first {n} VMs", cfg.host), cfg, boot: true });
        }
    }
    for cfg in mixed.hosts {
        out.push(Case { group: "no-quiet-start", label: format!("mixed {} (VMs from t=0)", cfg.host), cfg, boot: false });
    }
    Ok(out)
}

fn score(case: &Case, method: Method, a: &EvalArgs, secs: u64) -> anyhow::Result<Score> {
    let (seed, boot_s) = (a.seed, a.boot_s);
    let mut cfg = case.cfg.clone();
    if case.boot {
        let n = cfg.vms.len().max(1) as u64;
        for (k, v) in cfg.vms.iter_mut().enumerate() {
            v.arrive_at_s = v.arrive_at_s.max(boot_s + k as u64 * boot_s / n);
        }
    }
    let mut host = SimHost::try_new(cfg, seed)?;
    let mut cfg = AttributorConfig::new(method, IdlePolicy::Reservation);
    cfg.params.linear.alpha = a.alpha;
    cfg.params.linear.l1_ratio = a.l1_ratio;
    let mut att = Attributor::new(cfg)?;
    let mut scorer = Scorer::new();
    let mut held = std::collections::VecDeque::new();
    let mut run = |steps: Vec<fairwatt_attribution::Step>, held: &mut std::collections::VecDeque<fairwatt_core::IntervalRecord>| -> anyhow::Result<()> {
        for s in steps {
            let rec = held.pop_front().context("an attribution for an interval never pushed")?;
            if rec.seq != s.attribution.seq {
                bail!("attribution of interval {} came back for {}", rec.seq, s.attribution.seq);
            }
            if !s.attribution.is_conserved() {
                bail!("interval {} is not conserved", rec.seq);
            }
            scorer.add(&rec, &s.attribution);
        }
        Ok(())
    };
    for _ in 0..secs {
        let rec = host.step();
        held.push_back(rec.clone());
        let steps = att.push(rec)?;
        run(steps, &mut held)?;
    }
    let rest = att.flush();
    run(rest, &mut held)?;
    Ok(scorer.score())
}

pub fn run(a: EvalArgs) -> anyhow::Result<()> {
    let methods: Vec<Method> = a.methods.split(',').map(|m| m.trim().parse()).collect::<Result<_, _>>()?;
    if !(a.hours > 0.0 && a.forest_hours > 0.0) {
        bail!("--hours and --forest-hours must be positive");
    }
    let hours = if a.quick { a.hours.min(0.5) } else { a.hours };
    let mut cases = cases(a.seed, a.quick)?;
    if let Some(only) = &a.only {
        cases.retain(|c| c.label.contains(only.as_str()));
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let main_methods: Vec<Method> = methods.iter().copied().filter(|m| *m != Method::Forest).collect();
    let with_forest = methods.contains(&Method::Forest);
    let forest_case = |c: &Case| with_forest && c.group == "mix" && c.cfg.vms.len() <= a.forest_max_vms;
    let jobs = cases.len() * main_methods.len() + cases.iter().filter(|c| forest_case(c)).count() * methods.len();
    let bar = ProgressBar::new(jobs as u64);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} {msg}").unwrap_or_else(|_| ProgressStyle::default_bar()));
    let t0 = Instant::now();
    let mut results = Vec::new();
    for c in &cases {
        let mut scores = Vec::new();
        for &m in &main_methods {
            bar.set_message(format!("{} {m}", c.label));
            scores.push((m, score(c, m, &a, (hours * 3600.0) as u64).with_context(|| format!("{} with {m}", c.label))?));
            bar.inc(1);
        }
        let mut short = Vec::new();
        if forest_case(c) {
            for &m in &methods {
                bar.set_message(format!("{} {m} (short)", c.label));
                short.push((m, score(c, m, &a, (a.forest_hours.min(hours) * 3600.0) as u64).with_context(|| format!("{} with {m}", c.label))?));
                bar.inc(1);
            }
        }
        results.push(CaseResult {
            group: c.group,
            case: c.label.clone(),
            server: c.cfg.server.name.split(" (").next().unwrap_or(c.cfg.server.name).to_string(),
            vms: c.cfg.vms.len(),
            noise_pct: c.cfg.noise * 100.0,
            idle: if c.boot { "observed" } else { "extrapolated" },
            scores,
            short,
        });
    }
    bar.finish_and_clear();
    let mut md = format!(
        "Per-VM error of dynamic energy per VM-hour (MAPE) and the worst VM over its whole run; {hours} h of 1 s intervals per case; seed {}; idle policy reservation.\n\n",
        a.seed
    );
    md += &table(&results.iter().collect::<Vec<_>>(), &main_methods, |r| &r.scores);
    if with_forest {
        md += &format!(
            "\n### Forest beside the others\n\nThe `mix` cases with at most {} VMs, {} h each (forest + Shapley costs milliseconds per interval), every method on the same runs:\n\n",
            a.forest_max_vms,
            a.forest_hours.min(hours)
        );
        let short: Vec<&CaseResult> = results.iter().filter(|r| !r.short.is_empty()).collect();
        md += &table(&short, &methods, |r| &r.short);
    }
    print!("{md}");
    println!("({} cases in {:.0} s)", results.len(), t0.elapsed().as_secs_f64());
    std::fs::write(a.out.join("eval.md"), &md)?;
    std::fs::write(a.out.join("eval.json"), serde_json::to_string_pretty(&results)?)?;
    plot_cases(&results, &main_methods, &a.out.join("mape-by-case.svg"))?;
    plot_vm_count(&results, &a.out.join("mape-by-vm-count.svg"))?;
    println!("wrote {}/eval.md, eval.json, mape-by-case.svg, mape-by-vm-count.svg", a.out.display());
    Ok(())
}

fn get(r: &CaseResult, m: Method) -> Option<&Score> {
    r.scores.iter().find(|(x, _)| *x == m).map(|(_, s)| s)
}

type Pick = fn(&CaseResult) -> &Vec<(Method, Score)>;

fn table(results: &[&CaseResult], methods: &[Method], pick: Pick) -> String {
    fn get_in(list: &[(Method, Score)], m: Method) -> Option<&Score> {
        list.iter().find(|(x, _)| *x == m).map(|(_, s)| s)
    }
    let get = |r: &CaseResult, m: Method| get_in(pick(r), m).cloned();
    let f = |x: Option<Score>, worst: bool| match x {
        Some(s) if s.vm_hours > 0 => format!("{:.2} %", if worst { s.worst_pct } else { s.mape_pct }),
        Some(_) => "n/s".to_string(),
        None => "—".to_string(),
    };
    let mut s = String::new();
    s.push_str("| group | case | server | VMs | VM-hours | noise | idle |");
    for m in methods {
        s.push_str(&format!(" {m} MAPE | {m} worst |"));
    }
    s.push_str(" ratio / linear |\n|---|---|---|---:|---:|---:|---|");
    for _ in methods {
        s.push_str("---:|---:|");
    }
    s.push_str("---:|\n");
    for r in results {
        let vm_hours = pick(r).first().map_or(0, |(_, s)| s.vm_hours);
        s.push_str(&format!("| {} | {} | {} | {} | {vm_hours} | {:.1} % | {} |", r.group, r.case, r.server, r.vms, r.noise_pct, r.idle));
        for m in methods {
            s.push_str(&format!(" {} | {} |", f(get(r, *m), false), f(get(r, *m), true)));
        }
        let ratio = match (get(r, Method::Ratio), get(r, Method::Linear)) {
            (Some(a), Some(b)) if b.mape_pct * 1000.0 < a.mape_pct => "> 1000×".into(),
            (Some(a), Some(b)) if b.mape_pct > 0.0 => format!("{:.1}×", a.mape_pct / b.mape_pct),
            _ => "—".into(),
        };
        s.push_str(&format!(" {ratio} |\n"));
    }
    s.push_str("\nSummary over the cases each method ran (mean of per-case MAPE; cases meeting ≤ 3 %):\n\n| method | cases | mean MAPE | median MAPE | cases ≤ 3 % | cases ≥ 5× better than ratio |\n|---|---:|---:|---:|---:|---:|\n");
    for &m in methods {
        let mut v: Vec<(f64, Option<f64>)> =
            results.iter().filter_map(|r| get(r, m).filter(|s| s.vm_hours > 0).map(|s| (s.mape_pct, get(r, Method::Ratio).map(|x| x.mape_pct)))).collect();
        if v.is_empty() {
            continue;
        }
        let n = v.len();
        let mean = v.iter().map(|x| x.0).sum::<f64>() / n as f64;
        let ok = v.iter().filter(|x| x.0 <= 3.0).count();
        let five = v.iter().filter(|x| x.1.is_some_and(|r| r >= 5.0 * x.0)).count();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let med = v[n / 2].0;
        s.push_str(&format!("| {m} | {n} | {mean:.2} % | {med:.2} % | {ok} | {} |\n", if m == Method::Ratio { "—".into() } else { five.to_string() }));
    }
    s
}

fn plot_cases(results: &[CaseResult], methods: &[Method], path: &std::path::Path) -> anyhow::Result<()> {
    let n = results.len().max(1);
    let ymax = results.iter().flat_map(|r| r.scores.iter().map(|(_, s)| s.mape_pct)).fold(1.0f64, f64::max) * 1.1;
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("Per-VM energy error by case (MAPE over VM-hours)", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..n as f64, 0f64..ymax)?;
    chart.configure_mesh().x_desc("case (order of eval.md)").y_desc("MAPE, %").disable_x_mesh().draw()?;
    let colors = [RGBColor(200, 80, 60), RGBColor(50, 110, 200), RGBColor(60, 160, 90)];
    let w = 0.8 / methods.len() as f64;
    for (k, &m) in methods.iter().enumerate() {
        let c = colors[k % colors.len()];
        let bars = results.iter().enumerate().filter_map(|(i, r)| {
            let v = get(r, m)?.mape_pct;
            let x0 = i as f64 + 0.1 + k as f64 * w;
            Some(Rectangle::new([(x0, 0.0), (x0 + w, v)], c.filled()))
        });
        chart.draw_series(bars)?.label(m.as_str()).legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, 3.0), (n as f64, 3.0)], BLACK.stroke_width(1))))?.label("3 % goal").legend(|(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], BLACK));
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}

fn plot_vm_count(results: &[CaseResult], path: &std::path::Path) -> anyhow::Result<()> {
    let rows: Vec<&CaseResult> = results.iter().filter(|r| r.group == "vm-count").collect();
    let root = SVGBackend::new(path, (800, 480)).into_drawing_area();
    root.fill(&WHITE)?;
    let ymax = rows.iter().flat_map(|r| r.scores.iter().map(|(_, s)| s.mape_pct)).fold(1.0f64, f64::max) * 1.1;
    let mut chart = ChartBuilder::on(&root)
        .caption("Per-VM energy error against VM count", ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..62f64, 0f64..ymax)?;
    chart.configure_mesh().x_desc("VMs on the host").y_desc("MAPE, %").draw()?;
    let styles = [(Method::Ratio, RGBColor(200, 80, 60)), (Method::Linear, RGBColor(50, 110, 200)), (Method::Forest, RGBColor(60, 160, 90))];
    for src in ["mixed", "web-farm"] {
        for &(m, c) in &styles {
            let pts: Vec<(f64, f64)> = rows.iter().filter(|r| r.case.starts_with(src)).filter_map(|r| Some((r.vms as f64, get(r, m)?.mape_pct))).collect();
            if pts.is_empty() {
                continue;
            }
            let dashed = src == "web-farm";
            let style = if dashed { c.stroke_width(1) } else { c.stroke_width(2) };
            chart.draw_series(LineSeries::new(pts.clone(), style))?.label(format!("{m} ({src})")).legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 12, y)], style));
            chart.draw_series(pts.into_iter().map(|p| Circle::new(p, 3, c.filled())))?;
        }
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw()?;
    root.present()?;
    Ok(())
}
