//! [`SimHost`]: its state, construction, trace header and VM lifecycle
//! (arrivals, departures, GPU assignment); the interval itself is in `step`.

use fairwatt_core::trace::{TraceHeader, TraceSource};
use fairwatt_core::{Domain, Energy, SensorStatus};

use super::counters::{CounterKind, POWERCAP_RANGE_UJ, SimCounters, SimEnergySource};
use super::rng::{Rng, derive, tag_of};
use super::workload::{Counts, Demand, StepCtx, VmWorkload, WorkloadClass, reference_watts};
use super::{SimHostConfig, SimVmSpec};
use crate::energy::Meter;
use crate::error::Result;

/// The twin's view of the last interval's power, for plots and checks.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct HostPower {
    /// Busy share of the logical CPUs, cgroup CPU time based.
    pub utilisation: f64,
    /// Server wall power without GPUs: idle + RAPL dynamic + platform dynamic.
    pub wall_watts: f64,
    /// True package + DRAM power (what RAPL would show without noise).
    pub rapl_watts: f64,
    /// True power of all GPUs.
    pub gpu_watts: f64,
}

pub(super) struct VmSlot {
    pub(super) spec: SimVmSpec,
    pub(super) work: VmWorkload,
    pub(super) active: bool,
    pub(super) since_s: f64,
    pub(super) gpus: Vec<u32>,
    pub(super) passthrough: bool,
}

#[derive(Clone, Copy, Default)]
pub(super) struct GpuSlot {
    pub(super) owner: Option<usize>,
    pub(super) sharers: u32,
}

/// One active VM's interval, between the demand and the record.
pub(super) struct Scratch {
    pub(super) slot: usize,
    pub(super) demand: Demand,
    pub(super) want_s: f64,
    pub(super) busy_s: f64,
    pub(super) cpu_s: f64,
    pub(super) cgroup_s: f64,
    pub(super) io: (f64, f64),
    pub(super) counts: Counts,
    pub(super) act: [f64; 3],
}

pub struct SimHost {
    pub(super) cfg: SimHostConfig,
    pub(super) seed: u64,
    pub(super) seq: u64,
    pub(super) vms: Vec<VmSlot>,
    pub(super) gpus: Vec<GpuSlot>,
    pub(super) meter: Meter,
    pub(super) counters: SimCounters,
    /// Channel order: per socket package, core, uncore, DRAM; then GPUs.
    pub(super) domains: Vec<Domain>,
    pub(super) kinds: Vec<CounterKind>,
    pub(super) idle_uj: Vec<u64>,
    pub(super) noise_rng: Rng,
    pub(super) ctx: StepCtx,
    pub(super) reference_w: f64,
    pub(super) scratch: Vec<Scratch>,
    pub(super) gpu_sum: Vec<(f64, f64)>,
    pub(super) dyn_uj: Vec<u64>,
    /// Reused per VM while its ground-truth map is assembled.
    pub(super) truth_buf: Vec<(Domain, Energy)>,
    pub(super) given: Vec<u64>,
    pub(super) shown: Vec<u64>,
    pub(super) last: HostPower,
}

impl std::fmt::Debug for SimHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHost").field("host", &self.cfg.host).field("seed", &self.seed).field("seq", &self.seq).finish_non_exhaustive()
    }
}

impl SimHost {
    /// Builds the host; a config that [`SimHostConfig::validate`] would reject
    /// is repaired (interval, noise and modulus raised or clamped, duplicate VMs dropped).
    pub fn new(cfg: SimHostConfig, seed: u64) -> Self {
        Self::build(cfg.sanitized(), seed)
    }

    /// Like [`new`](Self::new) but rejects an invalid config instead of repairing it.
    pub fn try_new(cfg: SimHostConfig, seed: u64) -> Result<Self> {
        cfg.validate()?;
        Ok(Self::build(cfg, seed))
    }

    fn build(cfg: SimHostConfig, seed: u64) -> Self {
        let host_seed = derive(seed, tag_of(cfg.host.as_str()));
        let mut rng = Rng::new(host_seed);
        let dt_s = cfg.interval.as_secs_f64();
        let uj = |watts: f64| (watts * dt_s * 1e6).max(0.0) as u64;
        let modulus = cfg.counter_modulus_uj.unwrap_or(POWERCAP_RANGE_UJ).max(1);
        let (core_w, uncore_w, dram_w) = cfg.server.idle_per_socket();
        let mut channels = Vec::new();
        let mut idle_uj = Vec::new();
        for s in 0..cfg.server.sockets {
            let (c, u) = (uj(core_w), uj(uncore_w));
            for (d, idle) in [(Domain::package(s), c.saturating_add(u)), (Domain::core(s), c), (Domain::uncore(s), u), (Domain::dram(s), uj(dram_w))] {
                // Counters have run since boot: start anywhere in their range.
                channels.push((d, CounterKind::Microjoules { modulus }, rng.below(modulus)));
                idle_uj.push(idle);
            }
        }
        for (g, model) in cfg.gpus.iter().enumerate() {
            let d = Domain::gpu(g as u32);
            if model.energy_counter {
                channels.push((d, CounterKind::Millijoules, rng.below(1 << 40)));
            } else {
                channels.push((d, CounterKind::Power, (model.idle_watts * 1e6) as u64));
            }
            idle_uj.push(uj(model.idle_watts));
        }
        let (source, counters) = SimEnergySource::new(&channels);
        let mut meter = Meter::new(vec![Box::new(source)]);
        meter.tick(cfg.start);
        let vms = cfg
            .vms
            .iter()
            .map(|spec| VmSlot {
                spec: spec.clone(),
                work: VmWorkload::new(spec.class, derive(host_seed, tag_of(spec.info.id.as_str()))),
                active: false,
                since_s: 0.0,
                gpus: Vec::new(),
                passthrough: false,
            })
            .collect();
        let n = channels.len();
        SimHost {
            seed,
            seq: 0,
            vms,
            gpus: vec![GpuSlot::default(); cfg.gpus.len()],
            meter,
            counters,
            domains: channels.iter().map(|c| c.0).collect(),
            kinds: channels.iter().map(|c| c.1).collect(),
            idle_uj,
            noise_rng: Rng::new(derive(host_seed, 0)),
            ctx: StepCtx::new(dt_s),
            reference_w: reference_watts(cfg.server.ghz),
            scratch: Vec::new(),
            gpu_sum: vec![(0.0, 0.0); cfg.gpus.len()],
            dyn_uj: vec![0; n],
            truth_buf: Vec::new(),
            given: vec![0; n],
            shown: vec![0; n],
            last: HostPower::default(),
            cfg,
        }
    }

    pub fn config(&self) -> &SimHostConfig {
        &self.cfg
    }

    /// The sequence number the next [`step`](Self::step) will carry.
    pub fn next_seq(&self) -> u64 {
        self.seq
    }

    pub fn last_power(&self) -> HostPower {
        self.last
    }

    /// Server, sockets, threads and GPUs in one line.
    pub fn machine(&self) -> String {
        let s = &self.cfg.server;
        let mut m = format!("{} [{} sockets, {} threads; {}]", s.name, s.sockets, s.threads, s.source);
        for (i, g) in self.cfg.gpus.iter().enumerate() {
            m.push_str(&format!("; gpu-{i}: {}{}", g.name, if g.energy_counter { "" } else { " (power readings only)" }));
        }
        m
    }

    pub fn header(&self) -> TraceHeader {
        let mut h = TraceHeader::new(self.cfg.host.clone(), TraceSource::Simulator, self.cfg.start, self.cfg.interval);
        h.scenario = self.cfg.scenario.clone();
        h.seed = Some(self.seed);
        h.machine = Some(self.machine());
        h.sensors = self.meter.status();
        h.sensors.push(if self.cfg.hardware_perf {
            SensorStatus::ok("simulator", "perf: hardware counters (cycles, instructions, LLC references and misses)")
        } else {
            SensorStatus::degraded("simulator", "perf: hardware counters off, software task-clock only")
        });
        h
    }

    /// Starts and stops VMs at their times. A starting VM that reserved GPUs
    /// takes whole free devices as passthrough when there are enough, else
    /// (and for AI VMs without a reservation) a time-slice of the least-shared
    /// device that nobody owns; a stopping VM gives its devices back.
    pub(super) fn lifecycle(&mut self, now_us: u64) {
        let live = |v: &VmSlot| {
            v.spec.arrive_at_s.saturating_mul(1_000_000) <= now_us
                && v.spec.depart_at_s.is_none_or(|d| d.saturating_mul(1_000_000) > now_us)
        };
        for i in 0..self.vms.len() {
            if self.vms[i].active && !live(&self.vms[i]) {
                for &g in &self.vms[i].gpus {
                    let slot = &mut self.gpus[g as usize];
                    if slot.owner == Some(i) {
                        slot.owner = None;
                    }
                    slot.sharers = slot.sharers.saturating_sub(1);
                }
                let v = &mut self.vms[i];
                v.gpus.clear();
                v.active = false;
            }
        }
        // Whole-GPU reservations first, so time-slices do not take their devices.
        for whole_pass in [true, false] {
            for i in 0..self.vms.len() {
                let v = &self.vms[i];
                let want = v.spec.info.flavor.map_or(0, |f| f.gpus) as usize;
                if v.active || !live(v) || (want > 0) != whole_pass {
                    continue;
                }
                let free: Vec<u32> = (0..self.gpus.len() as u32).filter(|&g| self.gpus[g as usize].sharers == 0).collect();
                // An AI VM that reserved no whole GPU gets a vGPU time-slice.
                let (gpus, passthrough) = if want == 0 && v.spec.class != WorkloadClass::Ai {
                    (Vec::new(), false)
                } else if want > 0 && free.len() >= want {
                    (free[..want].to_vec(), true)
                } else {
                    let shared = (0..self.gpus.len() as u32)
                        .filter(|&g| self.gpus[g as usize].owner.is_none())
                        .min_by_key(|&g| self.gpus[g as usize].sharers);
                    (shared.into_iter().collect(), false)
                };
                for &g in &gpus {
                    let slot = &mut self.gpus[g as usize];
                    slot.sharers += 1;
                    if passthrough {
                        slot.owner = Some(i);
                    }
                }
                let v = &mut self.vms[i];
                v.gpus = gpus;
                v.passthrough = passthrough;
                v.active = true;
                v.since_s = now_us as f64 / 1e6;
            }
        }
    }
}
