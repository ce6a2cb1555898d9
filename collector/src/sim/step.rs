//! One interval of a [`SimHost`]: demand, contention, features, truth,
//! noise, counters, record (the numbered steps of the parent module's doc).
//!
//! Scratch buffers live in the host and are reused; what `step` allocates is
//! what the returned record owns (ids, names, truth maps).

use std::collections::BTreeMap;

use fairwatt_core::{Domain, DomainMap, Energy, GpuUse, HostTruth, IntervalRecord, Micros, PerfSource, VmFeatures, VmRecord, VmTruth};

use super::counters::CounterKind;
use super::host::{HostPower, Scratch, SimHost};
use super::workload::{Counts, activity};

impl SimHost {
    /// Advances one interval and returns its record.
    pub fn step(&mut self) -> IntervalRecord {
        let dt = self.cfg.interval;
        let dt_s = dt.as_secs_f64();
        let now_us = self.seq.saturating_mul(dt.0);
        let start = self.cfg.start.plus(Micros(now_us));
        let end = start.plus(dt);
        self.ctx.hour = (start.as_micros() as f64 / 3.6e9).rem_euclid(24.0);
        self.lifecycle(now_us);

        // Demand, then CPU contention and GPU time-slicing.
        let server = &self.cfg.server;
        let threads = server.threads as f64;
        self.scratch.clear();
        self.gpu_sum.iter_mut().for_each(|s| *s = (0.0, 0.0));
        let mut wanted = 0.0;
        for (i, v) in self.vms.iter_mut().enumerate().filter(|(_, v)| v.active) {
            let demand = v.work.demand(&self.ctx);
            let vcpus = v.spec.info.flavor.map_or(1, |f| f.vcpus.max(1)) as f64;
            let want_s = demand.cpu * vcpus * dt_s;
            wanted += want_s;
            for &g in &v.gpus {
                self.gpu_sum[g as usize].0 += demand.gpu_sm;
                self.gpu_sum[g as usize].1 += demand.gpu_mem;
            }
            self.scratch.push(Scratch {
                slot: i,
                demand,
                want_s,
                busy_s: 0.0,
                cpu_s: 0.0,
                cgroup_s: 0.0,
                io: (0.0, 0.0),
                counts: Counts::default(),
                act: [0.0; 3],
            });
        }
        let share = if wanted > threads * dt_s { threads * dt_s / wanted } else { 1.0 };

        // Features and activity energy.
        let (mut cgroup_total, mut act_total) = (0.0, 0.0);
        for s in &mut self.scratch {
            let v = &mut self.vms[s.slot];
            s.busy_s = s.want_s * share;
            s.io = v.work.io(s.busy_s, &s.demand);
            let io = s.io.0 + s.io.1;
            s.cpu_s = 1.015 * s.busy_s + io / 4096.0 * 0.5e-6;
            s.cgroup_s = s.cpu_s + 0.002 * s.busy_s + io / 4096.0 * 0.3e-6;
            s.counts = v.work.counts(s.cpu_s, server.ghz);
            s.act = activity(v.spec.class, &s.counts, io);
            cgroup_total += s.cgroup_s;
            act_total += s.act.iter().sum::<f64>();
        }

        // Scale activity onto the server's curve (module doc, step 4).
        let util = (cgroup_total / (threads * dt_s)).clamp(0.0, 1.0);
        let u_e = util.max(0.01);
        let idle_w = server.idle_watts();
        let rapl = server.split.rapl_dyn.clamp(0.0, 1.0);
        let mut kappa = rapl * (server.power_at(u_e) - idle_w).max(0.0) / (u_e * threads * self.reference_w);
        let cap_j = rapl * (server.max_watts() - idle_w).max(0.0) * dt_s;
        if kappa * act_total > cap_j && act_total > 0.0 {
            kappa = cap_j / act_total;
        }
        if !kappa.is_finite() {
            kappa = 0.0;
        }
        let rapl_dyn_w = kappa * act_total / dt_s;

        // Per-VM truth, per-domain sums and the record's VM list.
        let sockets = server.sockets as u64;
        let base_gpu = 4 * server.sockets as usize;
        self.dyn_uj.iter_mut().for_each(|x| *x = 0);
        let mut gpu_dyn_w = 0.0;
        let mut vms = Vec::with_capacity(self.scratch.len());
        let mut truth = std::mem::take(&mut self.truth_buf);
        for s in &self.scratch {
            let v = &self.vms[s.slot];
            // Collected then built in one go: BTreeMap's bulk build from a
            // sorted run is several times cheaper than inserting one by one.
            truth.clear();
            let [core, uncore, dram] = s.act.map(|a| (kappa * a * 1e6).max(0.0) as u64);
            for k in 0..sockets {
                let part = |x: u64| x / sockets + if k == 0 { x % sockets } else { 0 };
                let (c, u, d) = (part(core), part(uncore), part(dram));
                let ch = 4 * k as usize;
                let k = k as u32;
                for (j, (dom, e)) in
                    [(Domain::package(k), c.saturating_add(u)), (Domain::core(k), c), (Domain::uncore(k), u), (Domain::dram(k), d)]
                        .into_iter()
                        .enumerate()
                {
                    self.dyn_uj[ch + j] = self.dyn_uj[ch + j].saturating_add(e);
                    truth.push((dom, Energy::from_uj(e)));
                }
            }
            let mut gpus = Vec::with_capacity(v.gpus.len());
            for &g in &v.gpus {
                let (sum_sm, sum_mem) = self.gpu_sum[g as usize];
                let sm = (100.0 * s.demand.gpu_sm / sum_sm.max(1.0)).floor().clamp(0.0, 100.0) as u32;
                let mem = (100.0 * s.demand.gpu_mem / sum_mem.max(1.0)).floor().clamp(0.0, 100.0) as u32;
                let model = &self.cfg.gpus[g as usize];
                let w = model.dynamic_watts(sm as f64 / 100.0, mem as f64 / 100.0);
                gpu_dyn_w += w;
                let e = (w * dt_s * 1e6) as u64;
                let slot = &mut self.dyn_uj[base_gpu + g as usize];
                *slot = slot.saturating_add(e);
                truth.push((Domain::gpu(g), Energy::from_uj(e)));
                let held = if sm + mem > 0 || v.passthrough { v.work.gpu_mem_frac } else { 0.0 };
                gpus.push(GpuUse {
                    gpu: g,
                    sm_util_pct: sm,
                    mem_util_pct: mem,
                    memory_bytes: (model.memory_bytes as f64 * held) as u64,
                    passthrough: v.passthrough,
                });
            }
            vms.push(self.vm_record(s, gpus, truth.iter().copied().collect(), now_us));
        }
        self.truth_buf = truth;

        // Idle + dynamic + noise into the counters, then read them like a real host.
        let sigma = self.cfg.noise;
        for ch in 0..self.domains.len() {
            let truth = self.idle_uj[ch].saturating_add(self.dyn_uj[ch]);
            let noise = if sigma > 0.0 {
                let eps = (sigma * self.noise_rng.normal()).clamp(-3.0 * sigma, 3.0 * sigma);
                (eps * truth as f64).round() as i64
            } else {
                0
            };
            self.given[ch] = truth.saturating_add_signed(noise);
        }
        self.counters.deposit(&self.given, dt, &mut self.shown);
        let reading = self.meter.tick(end);
        let mut idle = BTreeMap::new();
        for ch in 0..self.domains.len() {
            // Millijoule counters round; the idle truth takes the remainder (module doc).
            let adjust = match self.kinds[ch] {
                CounterKind::Millijoules => self.shown[ch] as i64 - self.given[ch] as i64,
                _ => 0,
            };
            idle.insert(self.domains[ch], Energy::from_uj(self.idle_uj[ch].saturating_add_signed(adjust)));
        }

        let rapl_idle: u64 = (0..base_gpu).filter(|c| c % 4 == 0 || c % 4 == 3).map(|c| self.idle_uj[c]).sum();
        let gpu_idle_w: f64 = self.cfg.gpus.iter().map(|g| g.idle_watts).sum();
        self.last = HostPower {
            utilisation: util,
            wall_watts: idle_w + if rapl > 0.0 { rapl_dyn_w / rapl } else { 0.0 },
            rapl_watts: rapl_idle as f64 / 1e6 / dt_s + rapl_dyn_w,
            gpu_watts: gpu_idle_w + gpu_dyn_w,
        };
        let rec = IntervalRecord {
            host: self.cfg.host.clone(),
            seq: self.seq,
            start,
            end,
            domains: reading.domains,
            vms,
            truth: Some(HostTruth { idle_uj: idle }),
        };
        self.seq += 1;
        rec
    }

    fn vm_record(&self, s: &Scratch, gpus: Vec<GpuUse>, truth: DomainMap<Energy>, now_us: u64) -> VmRecord {
        let v = &self.vms[s.slot];
        let info = &v.spec.info;
        let memory = info.flavor.map_or(1 << 30, |f| f.memory_mib << 20) as f64;
        let age_s = now_us as f64 / 1e6 - v.since_s;
        // Guests touch their memory gradually after boot.
        let rss = (memory * v.spec.class.profile().rss * (0.2 + 0.8 * age_s / 600.0).min(1.0)) as u64;
        let hw = self.cfg.hardware_perf;
        let hw_count = |x: f64| hw.then_some(x as u64);
        let features = VmFeatures {
            cpu_time_us: (s.cpu_s * 1e6) as u64,
            vcpu_time_us: Some((s.busy_s * 1e6) as u64),
            cgroup_cpu_us: Some((s.cgroup_s * 1e6) as u64),
            task_clock_ns: Some((s.cpu_s * 1e9) as u64),
            cycles: hw_count(s.counts.cycles),
            instructions: hw_count(s.counts.instructions),
            cache_references: hw_count(s.counts.refs),
            cache_misses: hw_count(s.counts.misses),
            rss_bytes: Some(rss),
            // QEMU's own footprint (device models, caches) on top of guest RSS.
            cgroup_memory_bytes: Some(rss + (200 << 20)),
            io_read_bytes: Some(s.io.0 as u64),
            io_write_bytes: Some(s.io.1 as u64),
            gpus,
        };
        VmRecord {
            vm: info.id.clone(),
            name: info.name.clone(),
            tenant: info.tenant.clone(),
            flavor: info.flavor,
            perf: if hw { PerfSource::Hardware } else { PerfSource::Software },
            features,
            truth: Some(VmTruth { class: std::borrow::Cow::Borrowed(v.spec.class.as_str()), energy_uj: truth }),
        }
    }
}
