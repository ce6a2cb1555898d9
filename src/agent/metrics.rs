//! The agent's Prometheus metrics. Names follow the convention: counters end
//! in `_total` (prometheus-client appends it), energy in joules, power in
//! watts, memory in bytes. Series of a VM that vanished are removed so
//! dashboards do not show ghosts.

use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::AtomicU64;

use fairwatt_collector::Error;
use fairwatt_collector::spool::SpoolStats;
use fairwatt_core::{IntervalRecord, SensorState, SensorStatus};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;
type FCounter = Family<Labels, Counter<f64, AtomicU64>>;
type FGauge = Family<Labels, Gauge<f64, AtomicU64>>;

pub struct Metrics {
    registry: Registry,
    host_energy: FCounter,
    host_power: FGauge,
    host_readings: Family<Labels, Counter>,
    vm_cpu: FCounter,
    vm_task_clock: FCounter,
    vm_cycles: FCounter,
    vm_instructions: FCounter,
    vm_cache_misses: FCounter,
    vm_io_read: FCounter,
    vm_io_write: FCounter,
    vm_rss: FGauge,
    vm_gpu_util: FGauge,
    vms: Gauge,
    sensor_up: FGauge,
    sensor_errors: Family<Labels, Counter>,
    agent_cpu: Counter<f64, AtomicU64>,
    agent_rss: Gauge,
    agent_intervals: Counter,
    agent_tick: Gauge<f64, AtomicU64>,
    spool_bytes: Gauge,
    spool_pending: Gauge,
    spool_dropped: Counter<f64, AtomicU64>,
    spool_compactions: Gauge,
    state: Mutex<State>,
}

/// One VM's series, looked up once and then updated with plain atomics:
/// a family lookup hashes and clones the label set, which at hundreds of
/// VMs per tick is most of the metrics cost.
struct VmSeries {
    labels: Labels,
    cpu: Counter<f64, AtomicU64>,
    task_clock: Counter<f64, AtomicU64>,
    cycles: Counter<f64, AtomicU64>,
    instructions: Counter<f64, AtomicU64>,
    cache_misses: Counter<f64, AtomicU64>,
    io_read: Counter<f64, AtomicU64>,
    io_write: Counter<f64, AtomicU64>,
    rss: Gauge<f64, AtomicU64>,
    seen: bool,
}

#[derive(Default)]
struct State {
    vms: std::collections::HashMap<String, VmSeries>,
    gpu_labels: BTreeSet<Labels>,
    agent_cpu_s: f64,
    dropped_j: f64,
}

fn l(pairs: &[(&str, &str)]) -> Labels {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::default();
        macro_rules! reg {
            ($name:literal, $help:literal, $m:expr) => {{
                let m = $m;
                r.register($name, $help, m.clone());
                m
            }};
        }
        Metrics {
            host_energy: reg!("fairwatt_host_energy_joules", "Measured host energy per domain", FCounter::default()),
            host_power: reg!("fairwatt_host_power_watts", "Average host power per domain over the last interval", FGauge::default()),
            host_readings: reg!("fairwatt_host_counter_events", "Counter wraps, resets and power integrations per domain", Family::default()),
            vm_cpu: reg!("fairwatt_vm_cpu_seconds", "CPU time of the VM's QEMU process", FCounter::default()),
            vm_task_clock: reg!("fairwatt_vm_task_clock_seconds", "perf task-clock of the VM", FCounter::default()),
            vm_cycles: reg!("fairwatt_vm_cycles", "CPU cycles of the VM (hardware perf)", FCounter::default()),
            vm_instructions: reg!("fairwatt_vm_instructions", "Instructions retired by the VM (hardware perf)", FCounter::default()),
            vm_cache_misses: reg!("fairwatt_vm_cache_misses", "Last-level cache misses of the VM (hardware perf)", FCounter::default()),
            vm_io_read: reg!("fairwatt_vm_io_read_bytes", "Bytes the VM's process read from storage", FCounter::default()),
            vm_io_write: reg!("fairwatt_vm_io_write_bytes", "Bytes the VM's process wrote to storage", FCounter::default()),
            vm_rss: reg!("fairwatt_vm_memory_rss_bytes", "Resident memory of the VM's QEMU process", FGauge::default()),
            vm_gpu_util: reg!("fairwatt_vm_gpu_utilization_ratio", "Mean SM utilisation of a GPU by the VM, 0-1", FGauge::default()),
            vms: reg!("fairwatt_vms", "VMs seen in the last interval", Gauge::default()),
            sensor_up: reg!("fairwatt_sensor_up", "1 when the sensor reads (possibly degraded), 0 when missing or failing", FGauge::default()),
            sensor_errors: reg!("fairwatt_sensor_errors", "Read errors per sensor", Family::default()),
            agent_cpu: reg!("fairwatt_agent_cpu_seconds", "CPU time used by the agent itself", Counter::default()),
            agent_rss: reg!("fairwatt_agent_resident_memory_bytes", "Resident memory of the agent itself", Gauge::default()),
            agent_intervals: reg!("fairwatt_agent_intervals", "Intervals sampled", Counter::default()),
            agent_tick: reg!("fairwatt_agent_tick_seconds", "Wall time of the last sampling tick", Gauge::default()),
            spool_bytes: reg!("fairwatt_spool_bytes", "Bytes held in the spool", Gauge::default()),
            spool_pending: reg!("fairwatt_spool_pending_records", "Intervals in the spool not yet acknowledged", Gauge::default()),
            spool_dropped: reg!("fairwatt_spool_dropped_energy_joules", "Energy of intervals dropped because the spool was full", Counter::default()),
            spool_compactions: reg!("fairwatt_spool_compactions", "Times old intervals were merged because the spool was full", Gauge::default()),
            state: Mutex::new(State::default()),
            registry: r,
        }
    }

    pub fn set_sensors(&self, statuses: &[SensorStatus]) {
        for s in statuses {
            let up = matches!(s.state, SensorState::Ok | SensorState::Degraded);
            self.sensor_up.get_or_create(&l(&[("sensor", &s.sensor), ("state", s.state.as_str())])).set(up as u8 as f64);
        }
    }

    pub fn observe(&self, rec: &IntervalRecord, errors: &[Error], tick_s: f64, spool: Option<&SpoolStats>) {
        let dt = rec.duration().as_secs_f64();
        for (d, e) in &rec.domains {
            let labels = l(&[("domain", &d.to_string())]);
            self.host_energy.get_or_create(&labels).inc_by(e.energy_uj.as_joules());
            if dt > 0.0 {
                self.host_power.get_or_create(&labels).set(e.energy_uj.as_joules() / dt);
            }
            if e.status != fairwatt_core::ReadingStatus::Ok {
                let status = serde_json::to_value(e.status).ok().and_then(|v| v.as_str().map(String::from)).unwrap_or_default();
                self.host_readings.get_or_create(&l(&[("domain", &d.to_string()), ("event", &status)])).inc();
            }
        }
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut live_gpu = BTreeSet::new();
        for v in st.vms.values_mut() {
            v.seen = false;
        }
        for vm in &rec.vms {
            let tenant = vm.tenant.as_ref().map(|t| t.as_str()).unwrap_or("");
            // One lookup for a VM already known under the same labels (every
            // tick but its first); the second only when its series are (re)made.
            if let Some(s) = st.vms.get_mut(vm.vm.as_str())
                && *s.labels[1].1 == *vm.name
                && s.labels[2].1 == tenant
            {
                self.update_vm(s, &vm.features, &mut live_gpu);
                continue;
            }
            if let Some(old) = st.vms.remove(vm.vm.as_str()) {
                self.forget(&old.labels);
            }
            let labels = l(&[("vm", vm.vm.as_str()), ("name", &vm.name), ("tenant", tenant)]);
            let series = VmSeries {
                cpu: self.vm_cpu.get_or_create(&labels).clone(),
                task_clock: self.vm_task_clock.get_or_create(&labels).clone(),
                cycles: self.vm_cycles.get_or_create(&labels).clone(),
                instructions: self.vm_instructions.get_or_create(&labels).clone(),
                cache_misses: self.vm_cache_misses.get_or_create(&labels).clone(),
                io_read: self.vm_io_read.get_or_create(&labels).clone(),
                io_write: self.vm_io_write.get_or_create(&labels).clone(),
                rss: self.vm_rss.get_or_create(&labels).clone(),
                labels,
                seen: false,
            };
            st.vms.insert(vm.vm.as_str().to_string(), series);
            let Some(s) = st.vms.get_mut(vm.vm.as_str()) else { continue };
            self.update_vm(s, &vm.features, &mut live_gpu);
        }
        let gone: Vec<String> = st.vms.iter().filter(|(_, s)| !s.seen).map(|(k, _)| k.clone()).collect();
        for k in gone {
            if let Some(old) = st.vms.remove(&k) {
                self.forget(&old.labels);
            }
        }
        for gone in st.gpu_labels.difference(&live_gpu) {
            self.vm_gpu_util.remove(gone);
        }
        st.gpu_labels = live_gpu;
        self.vms.set(rec.vms.len() as i64);
        for e in errors {
            self.sensor_errors.get_or_create(&l(&[("sensor", e.sensor())])).inc();
        }
        self.agent_intervals.inc();
        self.agent_tick.set(tick_s);
        let (cpu_s, rss) = self_usage();
        if cpu_s > st.agent_cpu_s {
            self.agent_cpu.inc_by(cpu_s - st.agent_cpu_s);
            st.agent_cpu_s = cpu_s;
        }
        self.agent_rss.set(rss as i64);
        if let Some(s) = spool {
            self.spool_bytes.set(s.bytes as i64);
            self.spool_pending.set(s.pending_records as i64);
            self.spool_compactions.set(s.compactions as i64);
            let dropped = s.dropped_energy.as_joules();
            if dropped > st.dropped_j {
                self.spool_dropped.inc_by(dropped - st.dropped_j);
                st.dropped_j = dropped;
            }
        }
    }

    fn update_vm(&self, s: &mut VmSeries, f: &fairwatt_core::VmFeatures, live_gpu: &mut BTreeSet<Labels>) {
        s.seen = true;
        s.cpu.inc_by(f.cpu_time_us as f64 / 1e6);
        for (c, v, scale) in [
            (&s.task_clock, f.task_clock_ns, 1e-9),
            (&s.cycles, f.cycles, 1.0),
            (&s.instructions, f.instructions, 1.0),
            (&s.cache_misses, f.cache_misses, 1.0),
            (&s.io_read, f.io_read_bytes, 1.0),
            (&s.io_write, f.io_write_bytes, 1.0),
        ] {
            if let Some(v) = v {
                c.inc_by(v as f64 * scale);
            }
        }
        if let Some(rss) = f.rss_bytes {
            s.rss.set(rss as f64);
        }
        for g in &f.gpus {
            let mut gl = s.labels.clone();
            gl.push(("gpu".into(), g.gpu.to_string()));
            self.vm_gpu_util.get_or_create(&gl).set(g.sm_util_pct as f64 / 100.0);
            live_gpu.insert(gl);
        }
    }

    /// Removes a vanished VM's series so dashboards do not show ghosts.
    fn forget(&self, labels: &Labels) {
        for fam in [&self.vm_cpu, &self.vm_task_clock, &self.vm_cycles, &self.vm_instructions, &self.vm_cache_misses, &self.vm_io_read, &self.vm_io_write] {
            fam.remove(labels);
        }
        self.vm_rss.remove(labels);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

fn rusage_self() -> Option<libc::rusage> {
    // SAFETY: getrusage writes into the struct we pass and has no other effects.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        (libc::getrusage(libc::RUSAGE_SELF, &mut ru) == 0).then_some(ru)
    }
}

/// CPU seconds and resident bytes of this process (the real /proc, not a fixture root).
pub fn self_usage() -> (f64, u64) {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    let cpu = rusage_self().map_or(0.0, |ru| tv(ru.ru_utime) + tv(ru.ru_stime));
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    let rss = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1).and_then(|v| v.parse::<u64>().ok()))
        .map_or(0, |pages| pages * page);
    (cpu, rss)
}

/// Peak resident memory of this process in bytes.
pub fn peak_rss() -> u64 {
    rusage_self().map_or(0, |ru| ru.ru_maxrss as u64 * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fairwatt_core::{Domain, DomainEnergy, Energy, HostId, Micros, Timestamp, VmFeatures, VmId, VmRecord};

    fn rec(vms: &[(&str, &str)]) -> IntervalRecord {
        let start = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        IntervalRecord {
            host: HostId::new("h").unwrap(),
            seq: 0,
            start,
            end: start.plus(Micros::from_secs(2)),
            domains: [(Domain::package(0), DomainEnergy::ok(Energy::from_uj(200_000_000)))].into(),
            vms: vms
                .iter()
                .map(|(id, name)| VmRecord {
                    vm: VmId::new(*id).unwrap(),
                    name: (*name).into(),
                    tenant: None,
                    flavor: None,
                    perf: Default::default(),
                    features: VmFeatures { cpu_time_us: 1_500_000, rss_bytes: Some(4096), ..Default::default() },
                    truth: None,
                })
                .collect(),
            truth: None,
        }
    }

    #[test]
    fn counts_and_forgets_vanished_or_renamed_vms() {
        let m = Metrics::new();
        m.observe(&rec(&[("a", "web"), ("b", "db")]), &[], 0.001, None);
        m.observe(&rec(&[("a", "web"), ("b", "db")]), &[], 0.001, None);
        let text = m.encode();
        assert!(text.contains("fairwatt_host_energy_joules_total{domain=\"package-0\"} 400.0"), "{text}");
        assert!(text.contains("fairwatt_host_power_watts{domain=\"package-0\"} 100.0"), "{text}");
        assert!(text.contains("fairwatt_vm_cpu_seconds_total{vm=\"a\",name=\"web\",tenant=\"\"} 3.0"), "{text}");
        m.observe(&rec(&[("a", "web-renamed")]), &[], 0.001, None);
        let text = m.encode();
        assert!(!text.contains("vm=\"b\""), "vanished VM still exported:\n{text}");
        assert!(!text.contains("name=\"web\""), "old name still exported:\n{text}");
        assert!(text.contains("fairwatt_vm_cpu_seconds_total{vm=\"a\",name=\"web-renamed\",tenant=\"\"} 1.5"), "{text}");
        assert!(text.contains("fairwatt_vms 1"));
    }
}
