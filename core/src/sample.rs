//! One interval of one host: measured energy per domain and each VM's features.
//!
//! Counters are reported as deltas over the interval (already corrected for
//! wraparound and resets); gauges (RSS, cgroup memory) as the value at the
//! end of the interval. A feature a host cannot measure is `None`, never a
//! made-up zero, so models can tell "idle" from "unknown".

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::domain::Domain;
use crate::ids::{HostId, TenantId, VmId};
use crate::units::{Energy, Micros, Timestamp};

/// What a VM reserved.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Flavor {
    pub vcpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub gpus: u32,
}

/// A VM as discovery knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmInfo {
    pub id: VmId,
    pub name: std::sync::Arc<str>,
    pub tenant: Option<TenantId>,
    pub flavor: Option<Flavor>,
}

/// How a measured domain's energy for one interval came about.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReadingStatus {
    /// A plain counter delta.
    #[default]
    Ok,
    /// The counter wrapped during the interval; the delta is corrected.
    Wrapped,
    /// The counter went backwards implausibly (driver reload, resume):
    /// only the energy counted since the reset is included.
    Reset,
    /// No energy counter: average power integrated over the interval.
    Integrated,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainEnergy {
    pub energy_uj: Energy,
    #[serde(default, skip_serializing_if = "is_ok")]
    pub status: ReadingStatus,
}

fn is_ok(s: &ReadingStatus) -> bool {
    *s == ReadingStatus::Ok
}

impl DomainEnergy {
    pub fn ok(e: Energy) -> Self {
        DomainEnergy { energy_uj: e, status: ReadingStatus::Ok }
    }
}

/// Where a VM's perf counters came from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PerfSource {
    /// Hardware PMU: cycles, instructions, cache misses.
    Hardware,
    /// Hardware counters unsupported: software task-clock only.
    Software,
    /// No perf counters at all.
    #[default]
    None,
}

/// A VM's use of one GPU during the interval.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuUse {
    pub gpu: u32,
    /// Mean SM utilisation over the interval attributable to this VM, percent 0–100.
    pub sm_util_pct: u32,
    /// Mean memory-controller utilisation, percent 0–100.
    #[serde(default)]
    pub mem_util_pct: u32,
    /// Device memory held by the VM's processes at the end of the interval.
    #[serde(default)]
    pub memory_bytes: u64,
    /// The whole device is passed through to this VM.
    #[serde(default)]
    pub passthrough: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmFeatures {
    /// CPU time of the VM's QEMU process, all threads, user + system, µs.
    pub cpu_time_us: u64,
    /// CPU time of the vCPU threads only, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vcpu_time_us: Option<u64>,
    /// CPU usage of the VM's cgroup scope, µs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_cpu_us: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_clock_ns: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycles: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instructions: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_references: Option<u64>,
    /// Last-level cache misses (the PMU's generic cache-misses event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cache_misses: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rss_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_memory_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_read_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub io_write_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<GpuUse>,
}

/// Ground truth for one VM, written only by the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmTruth {
    /// Workload class: `ai`, `database`, `web` or `batch`. A `Cow` so the
    /// simulator hands out its static names without allocating per record.
    pub class: std::borrow::Cow<'static, str>,
    /// The VM's true dynamic energy per domain (above the host's idle power).
    pub energy_uj: crate::DomainMap<Energy>,
}

/// Ground truth for the host, written only by the simulator.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostTruth {
    /// The host's true idle (static) energy per domain.
    pub idle_uj: BTreeMap<Domain, Energy>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmRecord {
    pub vm: VmId,
    /// Shared, since every interval repeats it (the simulator clones it per record).
    pub name: std::sync::Arc<str>,
    pub tenant: Option<TenantId>,
    pub flavor: Option<Flavor>,
    #[serde(default)]
    pub perf: PerfSource,
    pub features: VmFeatures,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<VmTruth>,
}

/// One host over one interval `[start, end)`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalRecord {
    pub host: HostId,
    /// Per host, strictly increasing; gaps mean intervals the recorder lost.
    pub seq: u64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub domains: BTreeMap<Domain, DomainEnergy>,
    pub vms: Vec<VmRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub truth: Option<HostTruth>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("interval {seq} of host {host}: end {end} is not after start {start}")]
    EmptyInterval { host: String, seq: u64, start: String, end: String },
    #[error("interval {seq} of host {host}: VM {vm} appears twice")]
    DuplicateVm { host: String, seq: u64, vm: String },
    #[error("interval {seq} of host {host}: VM {vm} reports {pct}% utilisation of GPU {gpu}; at most 100 is possible")]
    GpuUtil { host: String, seq: u64, vm: String, gpu: u32, pct: u32 },
    #[error("cannot merge interval {next_seq} of host {next_host} into interval {seq} of host {host}: merges need the same host and a later, non-overlapping interval")]
    NotMergeable { host: String, seq: u64, next_host: String, next_seq: u64 },
}

impl IntervalRecord {
    pub fn duration(&self) -> Micros {
        self.end.since(self.start).unwrap_or_default()
    }

    /// Measured energy of the host: the sum of its disjoint top-level domains.
    pub fn measured_total(&self) -> Energy {
        self.domains.iter().filter(|(d, _)| d.is_top_level()).map(|(_, e)| e.energy_uj).sum()
    }

    pub fn energy(&self, d: Domain) -> Option<Energy> {
        self.domains.get(&d).map(|e| e.energy_uj)
    }

    /// Checks what the type system cannot.
    pub fn validate(&self) -> Result<(), RecordError> {
        let host = self.host.to_string();
        if self.end <= self.start {
            return Err(RecordError::EmptyInterval {
                host,
                seq: self.seq,
                start: self.start.to_string(),
                end: self.end.to_string(),
            });
        }
        let mut seen = BTreeSet::new();
        for vm in &self.vms {
            if !seen.insert(&vm.vm) {
                return Err(RecordError::DuplicateVm { host, seq: self.seq, vm: vm.vm.to_string() });
            }
            for g in &vm.features.gpus {
                let pct = g.sm_util_pct.max(g.mem_util_pct);
                if pct > 100 {
                    return Err(RecordError::GpuUtil { host, seq: self.seq, vm: vm.vm.to_string(), gpu: g.gpu, pct });
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub fn record(seq: u64) -> IntervalRecord {
        let start = Timestamp::from_micros(1_700_000_000_000_000 + seq as i64 * 1_000_000).unwrap();
        let mut domains = BTreeMap::new();
        domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(90_000_000)));
        domains.insert(Domain::core(0), DomainEnergy::ok(Energy::from_uj(60_000_000)));
        domains.insert(Domain::dram(0), DomainEnergy { energy_uj: Energy::from_uj(9_000_000), status: ReadingStatus::Wrapped });
        domains.insert(Domain::gpu(0), DomainEnergy { energy_uj: Energy::from_uj(250_000_000), status: ReadingStatus::Integrated });
        IntervalRecord {
            host: HostId::new("hv-01").unwrap(),
            seq,
            start,
            end: start.plus(Micros::from_secs(1)),
            domains,
            vms: vec![VmRecord {
                vm: VmId::new("6f1c2c1e-0000-4000-8000-000000000001").unwrap(),
                name: "db-1".into(),
                tenant: Some(TenantId::new("acme").unwrap()),
                flavor: Some(Flavor { vcpus: 4, memory_mib: 8192, gpus: 1 }),
                perf: PerfSource::Software,
                features: VmFeatures {
                    cpu_time_us: 1_500_000,
                    task_clock_ns: Some(1_500_000_000),
                    rss_bytes: Some(1 << 30),
                    gpus: vec![GpuUse { gpu: 0, sm_util_pct: 80, ..Default::default() }],
                    ..Default::default()
                },
                truth: None,
            }],
            truth: None,
        }
    }

    #[test]
    fn total_counts_only_disjoint_domains() {
        let r = record(0);
        assert_eq!(r.measured_total(), Energy::from_uj(349_000_000));
        assert_eq!(r.duration(), Micros::from_secs(1));
        r.validate().unwrap();
    }

    #[test]
    fn validate_rejects_bad_records() {
        let mut r = record(0);
        r.end = r.start;
        assert!(matches!(r.validate(), Err(RecordError::EmptyInterval { .. })));
        let mut r = record(0);
        r.vms.push(r.vms[0].clone());
        assert!(matches!(r.validate(), Err(RecordError::DuplicateVm { .. })));
        let mut r = record(0);
        r.vms[0].features.gpus[0].sm_util_pct = 101;
        assert!(r.validate().unwrap_err().to_string().contains("101%"));
    }

    #[test]
    fn json_omits_unknown_features() {
        let json = serde_json::to_string(&record(3)).unwrap();
        assert!(json.contains("\"package-0\":{\"energy_uj\":90000000}"));
        assert!(json.contains("\"status\":\"wrapped\""));
        assert!(!json.contains("cycles"));
        let back: IntervalRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record(3));
    }
}
