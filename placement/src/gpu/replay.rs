//! The event-driven replay: pods arrive in creation order, each arrival
//! asks the policy for a node, placed pods leave at their deletion time
//! (trace timing) or never (fill timing, the FGD paper's experiment, with
//! arrivals evenly spaced), and every state is metered for as long as it lasts.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::cluster::Cluster;
use super::demand::{Demand, demand, model_names};
use super::frag::FragModel;
use super::metrics::{GpuMetrics, QueueStats, quantile};
use super::policy::{GpuPolicy, PolicyCtx, choose};
use super::{GpuConfig, Timing, refusals};
use crate::error::{PlaceError, Result};
use crate::rng::SplitMix64;
use crate::trace::{NodeSpec, PodRequest};

/// Time integrals of the cluster's state.
#[derive(Default)]
struct Meter {
    t: Option<i64>,
    joules: f64,
    alloc: f64,
    active: f64,
    frag: f64,
    ustd: f64,
}

fn frag_rate(c: &Cluster) -> f64 {
    let free = c.totals.gpu_cap - c.totals.gpu_used;
    if free == 0 { 0.0 } else { (c.totals.frag / free as f64).clamp(0.0, 1.0) }
}

fn alloc_ratio(c: &Cluster) -> f64 {
    if c.totals.gpu_cap == 0 { 0.0 } else { c.totals.gpu_used as f64 / c.totals.gpu_cap as f64 }
}

fn util_std(c: &Cluster) -> f64 {
    let n = c.nodes.len() as f64;
    let mean = c.totals.util / n;
    (c.totals.util_sq / n - mean * mean).max(0.0).sqrt()
}

impl Meter {
    /// Counts the state held since the last call up to `to`.
    fn advance(&mut self, to: i64, c: &Cluster) {
        let from = *self.t.get_or_insert(to);
        if to > from {
            let dt = (to - from) as f64;
            self.joules += c.totals.watts * dt;
            self.alloc += alloc_ratio(c) * dt;
            self.active += c.totals.active as f64 * dt;
            self.frag += frag_rate(c) * dt;
            self.ustd += util_std(c) * dt;
            self.t = Some(to);
        }
    }
}

struct Run<'a> {
    cfg: &'a GpuConfig,
    policy: GpuPolicy,
    pods: &'a [PodRequest],
    demands: Vec<Demand>,
    frag: &'a FragModel,
    cluster: Cluster,
    ctx: PolicyCtx<'a>,
    departures: BinaryHeap<Reverse<(i64, usize)>>,
    queue: VecDeque<(usize, i64)>,
    qstats: QueueStats,
    wait_sum: f64,
    gpu_after_wait: u64,
    was_placed: Vec<bool>,
    meter: Meter,
    series: Vec<(i64, f32)>,
    peak_alloc: f64,
    peak_active: usize,
    events: usize,
    checks: usize,
}

impl Run<'_> {
    fn after_event(&mut self, t: i64) -> Result<()> {
        let a = alloc_ratio(&self.cluster);
        self.series.push((t, a as f32));
        self.peak_alloc = self.peak_alloc.max(a);
        self.peak_active = self.peak_active.max(self.cluster.totals.active);
        self.events += 1;
        if self.cfg.check_every > 0 && self.events.is_multiple_of(self.cfg.check_every) {
            self.cluster.check()?;
            self.checks += 1;
        }
        Ok(())
    }

    /// Places pod `i` at time `t` if the policy finds a node; schedules its departure.
    fn try_place(&mut self, i: usize, t: i64) -> Result<bool> {
        let Some((n, take)) = choose(self.policy, &self.cluster, &self.demands[i], &mut self.ctx) else { return Ok(false) };
        self.cluster.place(i, n, take, &self.demands[i], self.frag)?;
        self.was_placed[i] = true;
        if self.cfg.timing == Timing::Trace {
            let p = &self.pods[i];
            // A pod placed late keeps its lifetime: it leaves that long after it started.
            if let Some(del) = p.deleted_s {
                self.departures.push(Reverse((t + (del - p.created_s), i)));
            }
        }
        Ok(true)
    }

    /// Releases every departure due by `t`, retrying the queue after each batch.
    fn depart_until(&mut self, t: i64) -> Result<()> {
        while let Some(&Reverse((when, _))) = self.departures.peek() {
            if when > t {
                break;
            }
            self.meter.advance(when, &self.cluster);
            while let Some(&Reverse((w, i))) = self.departures.peek() {
                if w != when {
                    break;
                }
                self.departures.pop();
                self.cluster.release(i, self.frag);
            }
            self.after_event(when)?;
            self.retry(when)?;
        }
        Ok(())
    }

    /// Queue-and-retry: pods that waited too long are given up, the rest
    /// try again in arrival order (a later one may pass an earlier one that
    /// still does not fit).
    fn retry(&mut self, t: i64) -> Result<()> {
        let Some(r) = self.cfg.retry else { return Ok(()) };
        let mut keep = VecDeque::with_capacity(self.queue.len());
        while let Some((i, since)) = self.queue.pop_front() {
            if t - since > r.max_wait_s {
                self.qstats.expired += 1;
            } else if self.try_place(i, t)? {
                self.qstats.placed_after_wait += 1;
                self.gpu_after_wait += self.demands[i].gpu_milli();
                self.wait_sum += (t - since) as f64;
                self.qstats.max_wait_s = self.qstats.max_wait_s.max(t - since);
                self.after_event(t)?;
            } else {
                keep.push_back((i, since));
            }
        }
        self.queue = keep;
        Ok(())
    }
}

/// One policy over the pod list on the fleet.
pub(crate) fn replay(nodes: &[NodeSpec], pods: &[PodRequest], policy: GpuPolicy, cfg: &GpuConfig) -> Result<GpuMetrics> {
    let start = Instant::now();
    if pods.is_empty() {
        return Err(PlaceError::Config("no pods to place".into()));
    }
    let refused = refusals(nodes, pods)?;
    let models = model_names(nodes)?;
    let demands: Vec<Demand> = pods.iter().map(|p| demand(p, &models)).collect();
    let mut admitted = vec![true; pods.len()];
    for (i, _) in &refused {
        admitted[*i] = false;
    }
    let frag = FragModel::from_demands(demands.iter().zip(&admitted).filter(|(_, a)| **a).map(|(d, _)| d));
    let cluster = Cluster::new(nodes, &models, &cfg.power, &frag, pods.len())?;
    let mut order: Vec<usize> = (0..pods.len()).filter(|&i| admitted[i]).collect();
    order.sort_by_key(|&i| (pods[i].created_s, i));
    // Arrival times in order. Fill timing spaces arrivals evenly: the trace's
    // creation times put 1 % of the pods in the first 116 of its 149 days,
    // which would make every time mean a mean over a nearly empty cluster.
    let times: Vec<i64> = match cfg.timing {
        Timing::Trace => order.iter().map(|&i| pods[i].created_s).collect(),
        Timing::Fill => (0..order.len() as i64).map(|k| k * cfg.fill_interval_s.max(1)).collect(),
    };
    if let Some(seed) = cfg.shuffle {
        if cfg.timing == Timing::Trace {
            return Err(PlaceError::Config("shuffled arrivals apply to fill timing only: trace timing keeps each pod's own lifetime".into()));
        }
        let mut r = SplitMix64::new(seed);
        for k in (1..order.len()).rev() {
            order.swap(k, (r.next_u64() % (k as u64 + 1)) as usize);
        }
    }

    let mut run = Run {
        cfg,
        policy,
        pods,
        demands,
        frag: &frag,
        cluster,
        ctx: PolicyCtx::new(cfg.seed, &frag),
        departures: BinaryHeap::new(),
        queue: VecDeque::new(),
        qstats: QueueStats::default(),
        wait_sum: 0.0,
        gpu_after_wait: 0,
        was_placed: vec![false; pods.len()],
        meter: Meter::default(),
        series: Vec::with_capacity(2 * order.len()),
        peak_alloc: 0.0,
        peak_active: 0,
        events: 0,
        checks: 0,
    };
    let (mut placed_now, mut first_failure) = (0usize, None);
    let mut latencies = Vec::with_capacity(order.len());
    let mut failed = Vec::new();
    let mut t = times.first().copied().unwrap_or(0);
    let t0 = t;
    let (mut gpu_asked, mut gpu_placed) = (0u64, 0u64);
    for (k, &i) in order.iter().enumerate() {
        t = times[k];
        gpu_asked += run.demands[i].gpu_milli();
        run.depart_until(t)?;
        run.meter.advance(t, &run.cluster);
        let began = Instant::now();
        let choice = choose(policy, &run.cluster, &run.demands[i], &mut run.ctx);
        latencies.push(began.elapsed().as_nanos() as u64);
        match choice {
            Some((n, take)) => {
                run.cluster.place(i, n, take, &run.demands[i], &frag)?;
                run.was_placed[i] = true;
                if cfg.timing == Timing::Trace
                    && let Some(del) = pods[i].deleted_s
                {
                    run.departures.push(Reverse((del, i)));
                }
                placed_now += 1;
                gpu_placed += run.demands[i].gpu_milli();
            }
            None => {
                first_failure.get_or_insert(k);
                failed.push(i);
                if cfg.retry.is_some() {
                    run.qstats.queued += 1;
                    run.queue.push_back((i, t));
                }
            }
        }
        run.after_event(t)?;
    }
    let gpu_alloc_final = alloc_ratio(&run.cluster);
    let frag_rate_final = frag_rate(&run.cluster);
    let watts_final = run.cluster.totals.watts;
    run.depart_until(i64::MAX)?;
    let end = run.meter.t.unwrap_or(t).max(t);
    run.meter.advance(end, &run.cluster);
    run.qstats.expired += run.queue.len();
    run.cluster.check()?;
    run.checks += 1;

    let arrived = order.len();
    let placed = placed_now + run.qstats.placed_after_wait;
    let span = (end - t0) as f64;
    // A zero-length timeline has no time to weigh by: the final state stands in.
    let mean = |integral: f64, now: f64| if span > 0.0 { integral / span } else { now };
    let q = &mut run.qstats;
    q.mean_wait_s = if q.placed_after_wait > 0 { run.wait_sum / q.placed_after_wait as f64 } else { 0.0 };
    Ok(GpuMetrics {
        nodes: nodes.len(),
        arrived,
        placed,
        failed: arrived - placed,
        failed_ids: failed.iter().filter(|&&i| !run.was_placed[i]).map(|&i| pods[i].id.clone()).collect(),
        refused: refused.into_iter().map(|(i, why)| (pods[i].id.clone(), why)).collect(),
        success_rate: if arrived == 0 { 0.0 } else { placed as f64 / arrived as f64 },
        placed_before_first_failure: first_failure.unwrap_or(arrived),
        gpu_demand_placed: if gpu_asked == 0 { 1.0 } else { (gpu_placed + run.gpu_after_wait) as f64 / gpu_asked as f64 },
        gpu_alloc_mean: mean(run.meter.alloc, gpu_alloc_final),
        gpu_alloc_peak: run.peak_alloc,
        gpu_alloc_final,
        alloc_series: run.series,
        frag_rate_mean: mean(run.meter.frag, frag_rate_final),
        frag_rate_final,
        active_nodes_mean: mean(run.meter.active, run.cluster.totals.active as f64),
        active_nodes_peak: run.peak_active,
        energy_kwh: run.meter.joules / 3.6e6,
        power_final_kw: watts_final / 1000.0,
        // meter.alloc is ∫ (allocated / total) dt: × total GPUs = GPU-seconds.
        wh_per_gpu_hour: {
            let gpu_s = run.meter.alloc * run.cluster.totals.gpu_cap as f64 / 1000.0;
            if gpu_s > 0.0 { run.meter.joules / gpu_s } else { 0.0 }
        },
        util_std_mean: mean(run.meter.ustd, util_std(&run.cluster)),
        latency_p50_ns: quantile(&mut latencies, 0.5),
        latency_p99_ns: quantile(&mut latencies, 0.99),
        horizon_s: end - t0,
        wall: start.elapsed(),
        capacity_checks: run.checks,
        queue: cfg.retry.map(|_| run.qstats.clone()),
    })
}
