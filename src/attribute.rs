//! `fairwatt attribute`: reads traces (files or a directory of per-host
//! files), attributes every interval with one method and idle policy, and
//! writes per-VM, per-interval, per-domain energy with the model version
//! that produced it (JSON Lines, or CSV when the output ends in `.csv`).
//!
//! Bad lines: a VM feature that is not a non-negative integer is dropped
//! (noted; the interval is kept); a line that cannot be read at all is
//! reported and skipped, and so is its energy, since nothing of it is
//! known; gaps in the sequence are counted and reported.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde::Serialize;

use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, IntervalAttribution, Method, ModelVersion, Step};

#[derive(Args, Debug)]
pub struct AttributeArgs {
    /// A trace file, or a directory of `*.jsonl` trace files (one per host).
    #[arg(long)]
    input: PathBuf,
    /// ratio (CPU time, the Kepler/Scaphandre baseline), linear or forest.
    #[arg(long, default_value = "linear")]
    method: String,
    /// Who carries idle power: reservation, equal, dynamic or unattributed.
    #[arg(long, default_value = "reservation")]
    idle_policy: String,
    /// Output file: `.csv` for CSV, anything else JSON Lines.
    #[arg(long)]
    out: PathBuf,
    /// Intervals kept for fitting.
    #[arg(long, default_value_t = 1800)]
    window: usize,
    /// Intervals before the first fit.
    #[arg(long, default_value_t = 60)]
    min_fit: usize,
    /// Re-fit when the median error over 60 intervals exceeds this many watts.
    #[arg(long, default_value_t = 2.0)]
    threshold_w: f64,
    /// Idle power measured with nothing running, per domain, e.g.
    /// `package-0=55.2,dram-0=4.1`; wins over the idle the trace shows.
    #[arg(long, value_delimiter = ',', value_parser = parse_idle)]
    idle_watts: Vec<(fairwatt_core::Domain, f64)>,
    /// Quiet intervals (no VM ran) needed before their median is taken as idle power.
    #[arg(long, default_value_t = 30)]
    min_quiet: usize,
}

fn parse_idle(s: &str) -> Result<(fairwatt_core::Domain, f64), String> {
    let (d, w) = s.split_once('=').ok_or_else(|| format!("{s:?}: expected DOMAIN=WATTS, e.g. package-0=55.2"))?;
    let d = d.trim().parse().map_err(|e| format!("{e}"))?;
    let w: f64 = w.trim().parse().map_err(|_| format!("{s:?}: {w:?} is not a number of watts"))?;
    if !(w.is_finite() && w >= 0.0) {
        return Err(format!("{s:?}: idle power must be finite and ≥ 0 W"));
    }
    Ok((d, w))
}

#[derive(Serialize)]
struct Header<'a> {
    format: &'static str,
    version: u32,
    method: Method,
    idle_policy: IdlePolicy,
    inputs: Vec<String>,
    config: &'a AttributorConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "snake_case")]
enum Line<'a> {
    Model(&'a ModelVersion),
    Interval(&'a IntervalAttribution),
}

enum Out {
    Jsonl(BufWriter<File>),
    Csv(BufWriter<File>),
}

impl Out {
    fn model(&mut self, v: &ModelVersion) -> anyhow::Result<()> {
        if let Out::Jsonl(w) = self {
            serde_json::to_writer(&mut *w, &Line::Model(v))?;
            w.write_all(b"\n")?;
        }
        Ok(())
    }

    fn interval(&mut self, a: &IntervalAttribution) -> anyhow::Result<()> {
        match self {
            Out::Jsonl(w) => {
                serde_json::to_writer(&mut *w, &Line::Interval(a))?;
                w.write_all(b"\n")?;
            }
            Out::Csv(w) => {
                for d in &a.domains {
                    let pre = format!("{},{},{},{},{},{},{}", a.host, a.seq, a.start, a.end, d.domain, d.measured_uj.as_uj(), a.model_version);
                    for v in &d.vms {
                        let tenant = v.tenant.as_ref().map(|t| t.as_str()).unwrap_or("");
                        writeln!(w, "{pre},vm,{},{tenant},{},{}", v.vm, v.dynamic_uj.as_uj(), v.idle_uj.as_uj())?;
                    }
                    writeln!(w, "{pre},unattributed,,,{},0", d.unattributed_uj.as_uj())?;
                }
            }
        }
        Ok(())
    }
}

pub fn run(a: AttributeArgs) -> anyhow::Result<()> {
    let method: Method = a.method.parse()?;
    let policy: IdlePolicy = a.idle_policy.parse()?;
    let mut cfg = AttributorConfig::new(method, policy);
    cfg.window = a.window;
    cfg.min_fit = a.min_fit;
    cfg.threshold_w = a.threshold_w;
    cfg.idle_watts = a.idle_watts.iter().copied().collect();
    cfg.min_quiet = a.min_quiet;
    // Refuse a bad configuration before creating the output file.
    Attributor::new(cfg.clone())?;
    let files = fairwatt_collector::trace_io::files(&a.input)?;
    let file = File::create(&a.out).with_context(|| format!("cannot create {}", a.out.display()))?;
    let csv = a.out.extension().is_some_and(|e| e == "csv");
    let mut out = if csv { Out::Csv(BufWriter::new(file)) } else { Out::Jsonl(BufWriter::new(file)) };
    match &mut out {
        Out::Csv(w) => writeln!(w, "host,seq,start,end,domain,measured_uj,model_version,kind,vm,tenant,energy_uj,idle_uj")?,
        Out::Jsonl(w) => {
            let h = Header { format: "fairwatt-attribution", version: 1, method, idle_policy: policy, inputs: files.iter().map(|f| f.display().to_string()).collect(), config: &cfg };
            serde_json::to_writer(&mut *w, &h)?;
            w.write_all(b"\n")?;
        }
    }

    let (mut intervals, mut measured, mut accounted, mut versions, mut conserved) = (0u64, 0u128, 0u128, 0usize, true);
    for path in &files {
        let mut reader = fairwatt_collector::trace_io::open(path)?.with_repair();
        let mut att = Attributor::new(cfg.clone())?;
        let (mut bad, mut gaps, mut last_seq) = (0usize, 0u64, None::<u64>);
        let mut emit = |steps: Vec<Step>, out: &mut Out| -> anyhow::Result<()> {
            for s in steps {
                if let Some(v) = &s.new_version {
                    versions += 1;
                    eprintln!("{}: model version {} ({}, {:?} features): {}", v.host, v.version, v.method, v.mode, v.reason);
                    out.model(v)?;
                }
                let a = &s.attribution;
                if !a.is_conserved() {
                    bail!("internal error: interval {} of {} is not conserved", a.seq, a.host);
                }
                intervals += 1;
                for d in &a.domains {
                    conserved &= d.is_conserved();
                    if d.domain.is_top_level() {
                        measured += d.measured_uj.as_uj() as u128;
                        accounted += d.accounted();
                    }
                }
                out.interval(a)?;
            }
            Ok(())
        };
        while let Some(item) = reader.next() {
            for r in reader.take_repairs() {
                eprintln!("{}: {r}", path.display());
            }
            let rec = match item {
                Ok(r) => r,
                Err(e) => {
                    bad += 1;
                    eprintln!("{}: {e}; that interval is skipped", path.display());
                    continue;
                }
            };
            if let Some(l) = last_seq
                && rec.seq > l + 1
            {
                gaps += rec.seq - l - 1;
            }
            last_seq = Some(rec.seq);
            match att.push(rec) {
                Ok(steps) => emit(steps, &mut out)?,
                Err(e) => {
                    bad += 1;
                    eprintln!("{}: {e}; skipped", path.display());
                }
            }
        }
        emit(att.flush(), &mut out)?;
        if bad > 0 || gaps > 0 {
            eprintln!("{}: {bad} intervals unreadable or refused, {gaps} missing from the sequence", path.display());
        }
    }
    match &mut out {
        Out::Csv(w) | Out::Jsonl(w) => w.flush()?,
    }
    eprintln!(
        "attributed {intervals} intervals from {} trace files with {method} / {policy} idle: {versions} model versions; {:.6} kWh measured in top-level domains, {:.6} kWh accounted (VM shares + unattributed); written to {}",
        files.len(),
        measured as f64 / 3.6e12,
        accounted as f64 / 3.6e12,
        a.out.display()
    );
    if measured != accounted || !conserved {
        bail!("conservation failed: {measured} µJ measured, {accounted} µJ accounted");
    }
    Ok(())
}
