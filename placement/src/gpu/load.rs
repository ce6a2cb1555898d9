//! Inputs for the GPU evaluation: pod lists, including the resampled ones
//! that carry no time columns, and proportionally reduced fleets.
//!
//! The `openb_pod_list_multigpu*.csv` lists have only `name, cpu_milli,
//! memory_mib, num_gpu, gpu_milli`; the trace loader rightly refuses them
//! (no `creation_time`). Here such a list gets arrivals one second apart in
//! file order and no departures, which is all the fill experiment needs
//! (its energy then sits on that made-up timeline, which we say where we
//! report it).

use std::path::Path;

use crate::trace::alibaba::{self, SkippedLines};
use crate::trace::{NodeSpec, PodRequest, TraceError};

/// A pod list: the full trace format through [`alibaba::load_pods`], or,
/// when its time columns are missing, the five request columns alone.
pub fn load_pod_list(path: &Path) -> Result<(Vec<PodRequest>, SkippedLines), TraceError> {
    match alibaba::load_pods(path) {
        Err(TraceError::MissingColumn { column, .. }) if !REQUEST_COLS.contains(&column.as_str()) => load_requests_only(path),
        other => other,
    }
}

const REQUEST_COLS: [&str; 5] = ["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli"];

fn load_requests_only(path: &Path) -> Result<(Vec<PodRequest>, SkippedLines), TraceError> {
    let file = std::fs::File::open(path).map_err(|e| TraceError::Io { path: path.to_path_buf(), source: e })?;
    let mut rdr = csv::ReaderBuilder::new().trim(csv::Trim::All).flexible(true).from_reader(file);
    let parse_err = |line: usize, message: String| TraceError::Parse { path: path.to_path_buf(), line, message };
    let headers = rdr.headers().map_err(|e| parse_err(1, e.to_string()))?.clone();
    let mut idx = [0usize; 5];
    for (slot, col) in idx.iter_mut().zip(REQUEST_COLS) {
        *slot = headers.iter().position(|h| h == col).ok_or_else(|| TraceError::MissingColumn { path: path.to_path_buf(), column: col.to_string() })?;
    }
    let (mut pods, mut skipped) = (Vec::new(), Vec::new());
    for rec in rdr.records() {
        let rec = match rec {
            Ok(r) => r,
            Err(e) => {
                skipped.push((e.position().map_or(0, |p| p.line() as usize), e.to_string()));
                continue;
            }
        };
        let line = rec.position().map_or(0, |p| p.line() as usize);
        let num = |k: usize| -> Result<u64, String> {
            let s = rec.get(idx[k]).unwrap_or("");
            s.parse().map_err(|_| format!("bad `{}`: {s:?}", REQUEST_COLS[k]))
        };
        let pod = (|| {
            let gpu_milli = num(4)? as u32;
            if gpu_milli > 1000 {
                return Err(format!("gpu_milli {gpu_milli} above one GPU"));
            }
            Ok(PodRequest {
                id: rec.get(idx[0]).unwrap_or("").to_string(),
                cpu_milli: num(1)?,
                memory_mib: num(2)?,
                gpus: num(3)? as u32,
                gpu_milli,
                gpu_model: None,
                // File order, one second apart: the list has no times.
                created_s: pods.len() as i64,
                deleted_s: None,
                scheduled_s: None,
                qos: String::new(),
                phase: String::new(),
            })
        })();
        match pod {
            Ok(p) => pods.push(p),
            Err(why) => skipped.push((line, why)),
        }
    }
    if pods.is_empty() {
        return Err(TraceError::Empty { path: path.to_path_buf() });
    }
    Ok((pods, skipped))
}

/// About `share` (0..=1) of the fleet, taken evenly from every node shape
/// (GPU model, GPU count, CPU, memory) so the mix stays the same: within a
/// shape, node i is kept when round((i+1)·share) passes round(i·share).
/// Deterministic; node order is kept.
pub fn reduced_fleet(nodes: &[NodeSpec], share: f64) -> Vec<NodeSpec> {
    let share = share.clamp(0.0, 1.0);
    let mut seen: std::collections::HashMap<(Option<&str>, u32, u64, u64), usize> = std::collections::HashMap::new();
    nodes
        .iter()
        .filter(|n| {
            let i = seen.entry((n.gpu_model.as_deref(), n.gpus, n.cpu_milli, n.memory_mib)).or_default();
            let keep = ((*i + 1) as f64 * share).round() > (*i as f64 * share).round();
            *i += 1;
            keep
        })
        .cloned()
        .collect()
}

/// Every `k`-th pod (k ≥ 1), for quick runs that keep the list's mix and order.
pub fn every_kth(pods: &[PodRequest], k: usize) -> Vec<PodRequest> {
    pods.iter().step_by(k.max(1)).cloned().collect()
}
