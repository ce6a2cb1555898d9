//! What one replay measured, and the table the CLI and the docs print.
//!
//! Time means are weighted by how long each state lasted on the replay's
//! timeline (creation and deletion times; in fill timing, evenly spaced
//! arrivals, so a time mean there is a mean over arrivals).

use std::fmt::Write as _;
use std::time::Duration;

use super::GpuOutcome;

/// The queue-and-retry mode's own figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueStats {
    /// Pods that found no node on arrival and waited.
    pub queued: usize,
    /// Of those, placed later (within the bound).
    pub placed_after_wait: usize,
    /// Of those, given up when their wait passed the bound (or the run ended).
    pub expired: usize,
    /// Mean and longest wait of the pods placed after waiting, seconds.
    pub mean_wait_s: f64,
    pub max_wait_s: i64,
}

/// The figures of one replay of one policy.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuMetrics {
    pub nodes: usize,
    /// Pods replayed (the list less the refused ones).
    pub arrived: usize,
    /// Placed on arrival, or later from the queue.
    pub placed: usize,
    /// Never placed.
    pub failed: usize,
    /// Ids of the pods never placed, in arrival order.
    pub failed_ids: Vec<String>,
    /// Pods no node of the fleet could hold even empty: (pod id, reason).
    /// They are left out of the replay (every policy would fail them alike).
    pub refused: Vec<(String, String)>,
    /// placed / arrived.
    pub success_rate: f64,
    /// Pods placed before the first one that found no node on arrival
    /// (all of them when none failed).
    pub placed_before_first_failure: usize,
    /// GPU asked by the pods placed / GPU asked by all pods (thousandths
    /// summed): how much of the GPU demand found room (the FGD paper's
    /// measure; success rate counts pods, this counts GPUs).
    pub gpu_demand_placed: f64,
    /// Allocated GPU / total GPU: time mean, highest, and after the last
    /// arrival (in fill mode, the FGD paper's end state).
    pub gpu_alloc_mean: f64,
    pub gpu_alloc_peak: f64,
    pub gpu_alloc_final: f64,
    /// (time s, allocated GPU / total) after every event.
    pub alloc_series: Vec<(i64, f32)>,
    /// Fragmented free GPU / free GPU (F(M) over the free capacity): time
    /// mean and after the last arrival.
    pub frag_rate_mean: f64,
    pub frag_rate_final: f64,
    /// Nodes holding at least one pod: time mean and highest.
    pub active_nodes_mean: f64,
    pub active_nodes_peak: usize,
    pub energy_kwh: f64,
    /// Energy per allocated GPU-hour, Wh (energy / ∫ allocated GPU dt): the
    /// cost of the GPU work actually hosted, comparable across policies
    /// that host different amounts; 0 when no GPU was ever allocated.
    pub wh_per_gpu_hour: f64,
    /// Cluster power after the last arrival, kW (in fill timing: the packed cluster's power).
    pub power_final_kw: f64,
    /// Standard deviation across nodes of node utilisation (mean allocated
    /// share of the node's CPU, memory and GPU), time mean.
    pub util_std_mean: f64,
    /// Decision time per arrival, nanoseconds.
    pub latency_p50_ns: u64,
    pub latency_p99_ns: u64,
    /// Seconds from the first arrival to the last event.
    pub horizon_s: i64,
    pub wall: Duration,
    /// Capacity checks run (each recomputes every node from its pods).
    pub capacity_checks: usize,
    /// Present in queue-and-retry mode.
    pub queue: Option<QueueStats>,
}

/// The `q`-quantile (0..=1) of `v`, nearest rank; 0 for an empty list.
pub(crate) fn quantile(v: &mut [u64], q: f64) -> u64 {
    if v.is_empty() {
        return 0;
    }
    let k = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    *v.select_nth_unstable(k).1
}

/// A Markdown table, one row per outcome; an outcome that failed prints
/// its error in place of figures.
pub fn format_table(outcomes: &[GpuOutcome]) -> String {
    let queue = outcomes.iter().any(|o| o.result.as_ref().is_ok_and(|m| m.queue.is_some()));
    let mut s = String::from(
        "| policy | placed / arrived | success % | placed before 1st failure | GPU demand placed % | GPU alloc mean % | GPU alloc final % | frag final % | frag mean % | active nodes mean | energy kWh | Wh per GPU-h | power final kW | util std | p50 ns | p99 ns | wall ms |",
    );
    if queue {
        s.push_str(" queued | placed after wait | expired | mean wait s |");
    }
    s.push('\n');
    let cols = 17 + if queue { 4 } else { 0 };
    s.push('|');
    for i in 0..cols {
        s.push_str(if i == 0 { "---|" } else { "---:|" });
    }
    s.push('\n');
    for o in outcomes {
        let m = match &o.result {
            Ok(m) => m,
            Err(e) => {
                let _ = writeln!(s, "| {} | error: {e} |", o.policy);
                continue;
            }
        };
        let _ = write!(
            s,
            "| {} | {} / {} | {:.2} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.1} | {:.1} | {:.0} | {:.1} | {:.3} | {} | {} | {} |",
            o.policy,
            m.placed,
            m.arrived,
            100.0 * m.success_rate,
            m.placed_before_first_failure,
            100.0 * m.gpu_demand_placed,
            100.0 * m.gpu_alloc_mean,
            100.0 * m.gpu_alloc_final,
            100.0 * m.frag_rate_final,
            100.0 * m.frag_rate_mean,
            m.active_nodes_mean,
            m.energy_kwh,
            m.wh_per_gpu_hour,
            m.power_final_kw,
            m.util_std_mean,
            m.latency_p50_ns,
            m.latency_p99_ns,
            m.wall.as_millis(),
        );
        if queue {
            let q = m.queue.clone().unwrap_or_default();
            let _ = write!(s, " {} | {} | {} | {:.0} |", q.queued, q.placed_after_wait, q.expired, q.mean_wait_s);
        }
        s.push('\n');
    }
    s
}
