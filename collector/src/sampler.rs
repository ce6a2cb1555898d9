//! Turns the sensors into one [`IntervalRecord`] per tick.
//!
//! [`HostSampler`] composes the real sources: the energy [`Meter`] over RAPL
//! and NVML, VM discovery, procfs and cgroup stats, perf counters and GPU
//! process utilisation. [`SimSource`] wraps the simulated host behind the
//! same [`IntervalSource`] trait, so the agent cannot tell them apart.
//!
//! Per-VM features are deltas of cumulative counters kept per VM. A VM seen
//! for the first time contributes from its second tick on; a VM whose process
//! vanished contributes nothing for its last partial interval (its process
//! can no longer be read) — its energy stays in the host's measured total and
//! becomes unattributed remainder, so nothing is lost or counted twice. A PID
//! reused by another process (different start time) starts a new baseline.

use std::collections::BTreeMap;
use std::path::PathBuf;

use fairwatt_core::trace::{TraceHeader, TraceSource};
use fairwatt_core::{GpuUse, HostId, IntervalRecord, Micros, PerfSource, SensorStatus, Timestamp, VmFeatures, VmId, VmRecord};
use serde::{Deserialize, Serialize};

use crate::discovery::{DiscoveredVm, Discovery, DiscoveryConfig};
use crate::energy::{Meter, MeterState};
use crate::error::{Error, Result};
use crate::gpu::GpuSource;
use crate::perf::{PerfBackend, PerfSampler, RealPerf};
use crate::proc::{CgroupReader, ProcReader};

/// One tick's outcome: a record (none on the priming tick) and what failed.
#[derive(Debug, Default)]
pub struct Sampled {
    pub record: Option<IntervalRecord>,
    pub errors: Vec<Error>,
}

/// Anything that produces interval records: the real host or the simulator.
pub trait IntervalSource: Send {
    fn header(&self) -> TraceHeader;
    fn status(&self) -> Vec<SensorStatus>;
    fn sample(&mut self, now: Timestamp) -> Sampled;
    /// Opaque state to persist so a restarted agent resumes its counters.
    fn snapshot(&self) -> Option<Vec<u8>>;
    fn restore(&mut self, state: &[u8]) -> Result<()>;
}

#[derive(Clone, Debug)]
pub struct SamplerConfig {
    pub host_id: HostId,
    pub interval: Micros,
    pub sysfs_root: PathBuf,
    pub procfs_root: PathBuf,
    pub dev_root: PathBuf,
    pub libvirt_dirs: Vec<PathBuf>,
    pub mapping: Option<PathBuf>,
    /// Try the NVIDIA library.
    pub nvml: bool,
    /// Open perf counters.
    pub perf: bool,
}

impl SamplerConfig {
    /// The real host: `/sys`, `/proc`, `/dev`, libvirt's usual directories,
    /// no mapping file, NVML and perf on.
    pub fn new(host_id: HostId, interval: Micros) -> Self {
        let d = DiscoveryConfig::default();
        SamplerConfig {
            host_id,
            interval,
            sysfs_root: "/sys".into(),
            procfs_root: d.procfs_root,
            dev_root: "/dev".into(),
            libvirt_dirs: d.libvirt_dirs,
            mapping: d.mapping_file,
            nvml: true,
            perf: true,
        }
    }
}

/// Cumulative per-VM counters at the previous tick.
///
/// Saved (every tick, for every VM) as a JSON array in field order rather
/// than an object: the field names were most of the state's bytes and of
/// its encoding time. The derived `Deserialize` reads both forms, so state
/// written by earlier agents still restores (and this form restores there).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
struct Baseline {
    pid: u32,
    start_time_ticks: u64,
    cpu_us: u64,
    vcpu_us: Option<u64>,
    cgroup_cpu_us: Option<u64>,
    io_read: Option<u64>,
    io_write: Option<u64>,
}

impl Serialize for Baseline {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeTuple;
        let mut t = s.serialize_tuple(7)?;
        t.serialize_element(&self.pid)?;
        t.serialize_element(&self.start_time_ticks)?;
        t.serialize_element(&self.cpu_us)?;
        t.serialize_element(&self.vcpu_us)?;
        t.serialize_element(&self.cgroup_cpu_us)?;
        t.serialize_element(&self.io_read)?;
        t.serialize_element(&self.io_write)?;
        t.end()
    }
}

fn delta(cur: Option<u64>, prev: Option<u64>) -> Option<u64> {
    // A counter that went backwards restarted: only what it counted since is known.
    Some(match (cur?, prev) {
        (c, Some(p)) if c >= p => c - p,
        (c, _) => c,
    })
}

#[derive(Serialize, Deserialize)]
struct SavedState {
    meter: MeterState,
    baselines: BTreeMap<VmId, Baseline>,
}

/// [`SavedState`] as written: the same JSON, borrowing the baselines
/// instead of copying them on every tick.
#[derive(Serialize)]
struct SavedStateRef<'a> {
    meter: MeterState,
    baselines: &'a BTreeMap<VmId, Baseline>,
}

pub struct HostSampler {
    cfg: SamplerConfig,
    meter: Meter,
    gpu: Option<GpuSource>,
    perf: Option<PerfSampler>,
    discovery: Discovery,
    procs: ProcReader,
    cgroups: CgroupReader,
    vms: BTreeMap<VmId, DiscoveredVm>,
    baselines: BTreeMap<VmId, Baseline>,
    statuses: Vec<SensorStatus>,
    ticks: u64,
    rescan_every: u64,
    online_cpus: Vec<u32>,
}

impl HostSampler {
    pub fn new(cfg: SamplerConfig) -> Result<Self> {
        let mut statuses = Vec::new();
        let mut sources: Vec<Box<dyn crate::energy::EnergySource>> = Vec::new();
        let (rapl, st) = crate::rapl::detect(&cfg.sysfs_root, &cfg.dev_root, &cfg.procfs_root);
        statuses.extend(st);
        sources.extend(rapl);
        let gpu = if cfg.nvml {
            let (g, st) = GpuSource::detect();
            statuses.extend(st);
            g
        } else {
            statuses.push(SensorStatus::missing("nvml", "disabled by configuration"));
            None
        };
        if let Some(g) = &gpu {
            sources.push(Box::new(g.clone()));
        }
        let backend: Option<Box<dyn PerfBackend>> = if cfg.perf { Some(Box::new(RealPerf::default())) } else { None };
        Self::with_parts(cfg, sources, gpu, backend, statuses)
    }

    /// Builds a sampler from explicit parts (fixture runs and tests pass fakes here).
    pub fn with_parts(
        cfg: SamplerConfig,
        sources: Vec<Box<dyn crate::energy::EnergySource>>,
        gpu: Option<GpuSource>,
        perf: Option<Box<dyn PerfBackend>>,
        mut statuses: Vec<SensorStatus>,
    ) -> Result<Self> {
        let discovery = Discovery::new(DiscoveryConfig {
            procfs_root: cfg.procfs_root.clone(),
            sysfs_root: cfg.sysfs_root.clone(),
            libvirt_dirs: cfg.libvirt_dirs.clone(),
            mapping_file: cfg.mapping.clone(),
        })?;
        if sources.is_empty() {
            statuses.push(SensorStatus::error("energy", "no energy sensor found: VM features are sampled but host energy is not"));
        }
        let rescan_every = (10_000_000 / cfg.interval.0.max(1)).max(1);
        Ok(HostSampler {
            procs: ProcReader::new(&cfg.procfs_root),
            cgroups: CgroupReader::new(&cfg.sysfs_root),
            online_cpus: online_cpus(&cfg.sysfs_root),
            meter: Meter::new(sources),
            perf: perf.map(PerfSampler::new),
            gpu,
            discovery,
            vms: BTreeMap::new(),
            baselines: BTreeMap::new(),
            statuses,
            ticks: 0,
            rescan_every,
            cfg,
        })
    }

    /// Whether procfs files stay open between ticks (the default on a real
    /// procfs). Off reopens every file each tick, as simpler agents do; the
    /// benchmark compares the two.
    pub fn with_held_files(mut self, hold: bool) -> Self {
        self.procs = ProcReader::new(&self.cfg.procfs_root).with_held_files(hold);
        self
    }

    fn rescan(&mut self, errors: &mut Vec<Error>) {
        // Baselines hold each VM's start time as read on the last tick.
        let verified: crate::proc::PidMap<u64> = self.baselines.values().map(|b| (b.pid, b.start_time_ticks)).collect();
        let scan = self.discovery.scan_with(&verified);
        errors.extend(scan.errors);
        self.vms = scan.vms.into_iter().map(|v| (v.info.id.clone(), v)).collect();
        self.baselines.retain(|id, _| self.vms.contains_key(id));
        // The readers hold files open between ticks: let go of stopped VMs'.
        self.procs.retain(&self.vms.values().map(|v| v.pid).collect());
        self.cgroups.retain(&self.vms.values().filter_map(|v| v.cgroup.clone()).collect());
        if let Some(p) = self.perf.as_mut() {
            let live: Vec<VmId> = self.vms.keys().cloned().collect();
            p.retain(&live);
        }
    }

    fn sample_vm(&mut self, vm: &DiscoveredVm, errors: &mut Vec<Error>) -> Option<(VmFeatures, PerfSource, bool)> {
        let stats = match self.procs.read(vm.pid) {
            Ok(s) => s,
            Err(e) => {
                if !e.is_not_found() {
                    errors.push(e);
                }
                return None;
            }
        };
        let cg = vm.cgroup.as_ref().map(|c| self.cgroups.read(c));
        let (cg_cpu, cg_mem) = match cg {
            Some(Ok(c)) => (c.cpu_usage_us, c.memory_bytes),
            Some(Err(e)) => {
                errors.push(e);
                (None, None)
            }
            None => (None, None),
        };
        let id = vm.info.id.clone();
        let (perf_src, perf) = match self.perf.as_mut() {
            Some(p) => {
                let dir = vm.cgroup.as_ref().and_then(|c| self.cgroups.v2_dir(c));
                p.read(&id, &stats.threads, dir.as_deref().map(|d| (d, self.online_cpus.as_slice())))
            }
            None => (PerfSource::None, Default::default()),
        };
        let now = Baseline {
            pid: vm.pid,
            start_time_ticks: stats.start_time_ticks,
            cpu_us: stats.cpu_time_us,
            vcpu_us: stats.vcpu_time_us,
            cgroup_cpu_us: cg_cpu,
            io_read: stats.io_read_bytes,
            io_write: stats.io_write_bytes,
        };
        // Replaced in place: a map insert per VM and tick was a visible cost.
        let prev = match self.baselines.get_mut(&id) {
            Some(b) => Some(std::mem::replace(b, now.clone())),
            None => {
                self.baselines.insert(id, now.clone());
                None
            }
        };
        let prev = match prev {
            Some(p) if p.pid == now.pid && p.start_time_ticks == now.start_time_ticks => p,
            // New VM, or the PID now belongs to another process: baseline only.
            _ => return Some((VmFeatures::default(), perf_src, false)),
        };
        let f = VmFeatures {
            // The same process (PID and start time): its CPU time cannot
            // restart, so a step back is a change of resolution (the CPU
            // clock's µs against stat's whole ticks, as when a VM's reader
            // changes source across a restart), not a reset to count whole.
            cpu_time_us: now.cpu_us.saturating_sub(prev.cpu_us),
            vcpu_time_us: delta(now.vcpu_us, prev.vcpu_us),
            cgroup_cpu_us: delta(now.cgroup_cpu_us, prev.cgroup_cpu_us),
            task_clock_ns: perf.task_clock_ns,
            cycles: perf.cycles,
            instructions: perf.instructions,
            cache_references: perf.cache_references,
            cache_misses: perf.cache_misses,
            rss_bytes: Some(stats.rss_bytes),
            cgroup_memory_bytes: cg_mem,
            io_read_bytes: delta(now.io_read, prev.io_read),
            io_write_bytes: delta(now.io_write, prev.io_write),
            gpus: Vec::new(),
        };
        Some((f, perf_src, true))
    }

    fn gpu_uses(&self, records: &mut [VmRecord], errors: &mut Vec<Error>) {
        let Some(gpu) = &self.gpu else { return };
        let (uses, errs) = gpu.usage();
        errors.extend(errs);
        let devices = gpu.devices();
        for rec in records.iter_mut() {
            let Some(vm) = self.vms.get(&rec.vm) else { continue };
            let mut by_gpu: BTreeMap<u32, GpuUse> = BTreeMap::new();
            for u in uses.iter().filter(|u| u.pid == vm.pid) {
                let e = by_gpu.entry(u.gpu).or_insert(GpuUse { gpu: u.gpu, ..Default::default() });
                e.sm_util_pct = (e.sm_util_pct + u.sm_util_pct).min(100);
                e.mem_util_pct = (e.mem_util_pct + u.mem_util_pct).min(100);
                e.memory_bytes += u.memory_bytes;
            }
            for addr in &vm.passthrough_gpus {
                if let Some(d) = devices.iter().find(|d| d.pci_bus_id == *addr) {
                    by_gpu.entry(d.index).or_insert(GpuUse { gpu: d.index, ..Default::default() }).passthrough = true;
                }
            }
            rec.features.gpus = by_gpu.into_values().collect();
        }
    }
}

/// CPUs listed in `devices/system/cpu/online` (e.g. `0-3,6`), for per-CPU cgroup counters.
fn online_cpus(sysfs_root: &std::path::Path) -> Vec<u32> {
    let text = std::fs::read_to_string(sysfs_root.join("devices/system/cpu/online")).unwrap_or_default();
    let mut out = Vec::new();
    for part in text.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.parse::<u32>(), b.parse::<u32>()) {
            out.extend(a..=b.min(a.saturating_add(4096)));
        }
    }
    out
}

impl IntervalSource for HostSampler {
    fn header(&self) -> TraceHeader {
        let mut h = TraceHeader::new(
            self.cfg.host_id.clone(),
            TraceSource::Agent,
            fairwatt_core::clock::Clock::now(&fairwatt_core::clock::SystemClock),
            self.cfg.interval,
        );
        h.sensors = self.status();
        h
    }

    fn status(&self) -> Vec<SensorStatus> {
        let mut s = self.statuses.clone();
        s.extend(self.discovery.status());
        if let Some(p) = &self.perf {
            s.extend(p.status());
        }
        s
    }

    fn sample(&mut self, now: Timestamp) -> Sampled {
        let start = self.meter.last_tick();
        let reading = self.meter.tick(now);
        let mut errors = reading.errors;
        if self.ticks.is_multiple_of(self.rescan_every) || self.vms.is_empty() {
            self.rescan(&mut errors);
        }
        self.ticks += 1;
        let mut records = Vec::with_capacity(self.vms.len());
        let mut vanished = Vec::new();
        // Taken out for the loop (sample_vm needs `&mut self`), put back after.
        let vms = std::mem::take(&mut self.vms);
        for vm in vms.values() {
            match self.sample_vm(vm, &mut errors) {
                Some((features, perf, true)) => records.push(VmRecord {
                    vm: vm.info.id.clone(),
                    name: vm.info.name.clone(),
                    tenant: vm.info.tenant.clone(),
                    flavor: vm.info.flavor,
                    perf,
                    features,
                    truth: None,
                }),
                Some((_, _, false)) => {}
                None => vanished.push(vm.info.id.clone()),
            }
        }
        self.vms = vms;
        if !vanished.is_empty() {
            for id in &vanished {
                self.vms.remove(id);
                self.baselines.remove(id);
            }
            // Something changed under us: look for newcomers on the next tick.
            self.ticks = 0;
        }
        if let Some(p) = self.perf.as_mut() {
            errors.extend(p.take_errors());
        }
        self.gpu_uses(&mut records, &mut errors);
        let record = start.filter(|s| *s < now).map(|start| IntervalRecord {
            host: self.cfg.host_id.clone(),
            seq: 0,
            start,
            end: now,
            domains: reading.domains,
            vms: records,
            truth: None,
        });
        Sampled { record, errors }
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        serde_json::to_vec(&SavedStateRef { meter: self.meter.snapshot(), baselines: &self.baselines }).ok()
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let s: SavedState = serde_json::from_slice(state)
            .map_err(|e| Error::Config { path: "state.json".into(), msg: format!("saved agent state unreadable: {e}") })?;
        self.meter.restore(&s.meter);
        self.baselines = s.baselines;
        Ok(())
    }
}

/// The simulated host behind the agent's interface (`fairwatt agent --simulate`).
///
/// Its snapshot is the number of steps taken: the simulator is deterministic
/// in its config and seed, so a restarted agent rebuilds the host and replays
/// that many steps, continuing where the killed one stopped instead of
/// measuring the same simulated hours again.
pub struct SimSource {
    cfg: crate::sim::SimHostConfig,
    seed: u64,
    host: crate::sim::SimHost,
    steps: u64,
}

/// The key of a [`SimSource`] snapshot, so another source's state is refused.
const SIM_STATE_KEY: &str = "sim_steps";

impl SimSource {
    /// Host 0 of `scenario`, renamed to `host_id`, stepping every `interval` from `start`.
    pub fn new(scenario: &str, host_id: &str, seed: u64, interval: Micros, start: Timestamp) -> Result<Self> {
        Self::nth(scenario, 0, host_id, seed, interval, start)
    }

    /// Host `index` of `scenario`'s fleet (as `fairwatt registry scenario`
    /// lists it), renamed to `host_id`.
    pub fn nth(scenario: &str, index: usize, host_id: &str, seed: u64, interval: Micros, start: Timestamp) -> Result<Self> {
        let sc = crate::sim::scenario(scenario, index + 1, seed, start)?;
        let mut cfg = sc.hosts.into_iter().nth(index).ok_or_else(|| Error::Config {
            path: scenario.into(),
            msg: format!("scenario has no host {index}"),
        })?;
        cfg.host = HostId::new(host_id).map_err(|e| Error::Config { path: "host-id".into(), msg: e.to_string() })?;
        cfg.interval = interval;
        let host = crate::sim::SimHost::new(cfg.clone(), seed);
        Ok(SimSource { cfg, seed, host, steps: 0 })
    }
}

impl IntervalSource for SimSource {
    fn header(&self) -> TraceHeader {
        self.host.header()
    }

    fn status(&self) -> Vec<SensorStatus> {
        self.host.header().sensors
    }

    fn sample(&mut self, _now: Timestamp) -> Sampled {
        self.steps += 1;
        Sampled { record: Some(self.host.step()), errors: Vec::new() }
    }

    fn snapshot(&self) -> Option<Vec<u8>> {
        // JSON, as the agent's state envelope embeds it.
        Some(format!("{{\"{SIM_STATE_KEY}\":{}}}", self.steps).into_bytes())
    }

    fn restore(&mut self, state: &[u8]) -> Result<()> {
        let bad = |msg: String| Error::Config { path: "simulator state".into(), msg };
        let v: serde_json::Value = serde_json::from_slice(state).map_err(|e| bad(format!("not JSON: {e}")))?;
        let steps = v.get(SIM_STATE_KEY).and_then(serde_json::Value::as_u64).ok_or_else(|| bad("not a simulated host's state".into()))?;
        let mut host = crate::sim::SimHost::new(self.cfg.clone(), self.seed);
        for _ in 0..steps {
            host.step();
        }
        (self.host, self.steps) = (host, steps);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restarted simulated agent continues the killed one's host: the
    /// interval after a restore is the one an uninterrupted run makes next.
    #[test]
    fn a_simulated_host_resumes_from_its_snapshot() {
        let start = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        let make = || SimSource::nth("demo", 2, "h2", 7, Micros::from_secs(300), start).unwrap();
        let mut a = make();
        let run: Vec<_> = (0..12).map(|_| a.sample(start).record.unwrap()).collect();
        let mut b = make();
        (0..5).for_each(|_| drop(b.sample(start)));
        let state = b.snapshot().unwrap();
        let mut c = make();
        c.restore(&state).unwrap();
        assert_eq!(c.sample(start).record.unwrap(), run[5]);
        assert!(make().restore(b"{\"sim_steps\": -1}").is_err());
        assert!(make().restore(b"{\"counters\": {}}").unwrap_err().to_string().contains("not a simulated host"));
        assert!(make().restore(b"\x00\x01").unwrap_err().to_string().contains("not JSON"));
        assert!(SimSource::nth("demo", 0, "bad id!", 7, Micros::from_secs(1), start).is_err());
    }

    fn vm(s: &str) -> VmId {
        VmId::new(s).unwrap()
    }

    /// A process's CPU time that steps back across a restart (another
    /// source, coarser) is a zero delta, not the whole counter again.
    #[test]
    fn cpu_time_stepping_back_for_the_same_process_is_no_reset() {
        use crate::fixture::proc::{FakeVm, ProcTree, stat_line};
        let dir = tempfile::tempdir().unwrap();
        let mut tree = ProcTree::new(&dir.path().join("proc"), &dir.path().join("sys")).unwrap();
        let vm = FakeVm { start_time_ticks: Some(5000), ..FakeVm::new(100, "a") };
        tree.add_vm(&vm).unwrap();
        tree.add_cpu_time(100, 0, 900).unwrap();
        let cfg = SamplerConfig {
            sysfs_root: dir.path().join("sys"),
            procfs_root: dir.path().join("proc"),
            dev_root: dir.path().join("dev"),
            libvirt_dirs: vec![],
            mapping: None,
            nvml: false,
            perf: false,
            ..SamplerConfig::new(HostId::new("h").unwrap(), Micros::from_secs(1))
        };
        let mut s = HostSampler::with_parts(cfg.clone(), Vec::new(), None, None, Vec::new()).unwrap();
        let t = |n: i64| Timestamp::from_micros(1_700_000_000_000_000 + n * 1_000_000).unwrap();
        s.sample(t(0));
        // A restarted agent: fresh readers, the saved baselines.
        let state = s.snapshot().unwrap();
        let mut s = HostSampler::with_parts(cfg, Vec::new(), None, None, Vec::new()).unwrap();
        s.restore(&state).unwrap();
        let line = |stime| stat_line(100, "qemu-system-x86", 0, stime, 5, 5000, 1024);
        tree.write_raw(100, "stat", line(899).as_bytes()).unwrap();
        let r = s.sample(t(1)).record.unwrap();
        assert_eq!(r.vms.len(), 1);
        assert_eq!(r.vms[0].features.cpu_time_us, 0);
        tree.write_raw(100, "stat", line(901).as_bytes()).unwrap();
        let r = s.sample(t(2)).record.unwrap();
        assert_eq!(r.vms[0].features.cpu_time_us, 2 * 1_000_000 / crate::proc::clock_ticks_per_sec());
    }

    #[test]
    fn baselines_save_as_arrays_and_restore_from_either_form() {
        let b = Baseline { pid: 7, start_time_ticks: 99, cpu_us: 5, vcpu_us: Some(4), cgroup_cpu_us: None, io_read: Some(1), io_write: None };
        let map = BTreeMap::from([(vm("a"), b.clone())]);
        let text = serde_json::to_string(&map).unwrap();
        assert_eq!(text, r#"{"a":[7,99,5,4,null,1,null]}"#);
        assert_eq!(serde_json::from_str::<BTreeMap<VmId, Baseline>>(&text).unwrap(), map);
        // As agents before the array form wrote it.
        let old = r#"{"a":{"pid":7,"start_time_ticks":99,"cpu_us":5,"vcpu_us":4,"cgroup_cpu_us":null,"io_read":1,"io_write":null}}"#;
        assert_eq!(serde_json::from_str::<BTreeMap<VmId, Baseline>>(old).unwrap(), map);
        assert!(serde_json::from_str::<BTreeMap<VmId, Baseline>>(r#"{"a":[7,99]}"#).is_err());
    }
}
