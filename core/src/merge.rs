//! Merging consecutive intervals of one host into one coarser interval.
//!
//! Used where resolution may be given up but energy may not: a full agent
//! spool compacts old intervals this way. Counters (energy, CPU time, perf
//! counts, IO bytes, ground truth) add up exactly; gauges (RSS, cgroup
//! memory) keep the later value; GPU utilisation is averaged weighted by
//! interval length. A VM present in only some of the intervals keeps what it
//! reported.

use std::collections::BTreeMap;

use crate::sample::{GpuUse, IntervalRecord, ReadingStatus, RecordError, VmFeatures, VmRecord};

fn add(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.saturating_add(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The status that says most about what happened: a reset outranks a wrap.
fn worse(a: ReadingStatus, b: ReadingStatus) -> ReadingStatus {
    let rank = |s| match s {
        ReadingStatus::Ok => 0,
        ReadingStatus::Integrated => 1,
        ReadingStatus::Wrapped => 2,
        ReadingStatus::Reset => 3,
    };
    if rank(b) > rank(a) { b } else { a }
}

fn merge_gpus(a: &[GpuUse], wa: u64, b: &[GpuUse], wb: u64) -> Vec<GpuUse> {
    let mut by_gpu: BTreeMap<u32, (u128, u128, GpuUse)> = BTreeMap::new();
    for (list, w) in [(a, wa), (b, wb)] {
        for g in list {
            let e = by_gpu.entry(g.gpu).or_insert((0, 0, *g));
            e.0 += g.sm_util_pct as u128 * w as u128;
            e.1 += g.mem_util_pct as u128 * w as u128;
            e.2.memory_bytes = g.memory_bytes;
            e.2.passthrough |= g.passthrough;
        }
    }
    let total = (wa as u128 + wb as u128).max(1);
    by_gpu
        .into_values()
        .map(|(sm, mem, mut g)| {
            g.sm_util_pct = ((sm + total / 2) / total) as u32;
            g.mem_util_pct = ((mem + total / 2) / total) as u32;
            g
        })
        .collect()
}

fn merge_features(a: &VmFeatures, wa: u64, b: &VmFeatures, wb: u64) -> VmFeatures {
    VmFeatures {
        cpu_time_us: a.cpu_time_us.saturating_add(b.cpu_time_us),
        vcpu_time_us: add(a.vcpu_time_us, b.vcpu_time_us),
        cgroup_cpu_us: add(a.cgroup_cpu_us, b.cgroup_cpu_us),
        task_clock_ns: add(a.task_clock_ns, b.task_clock_ns),
        cycles: add(a.cycles, b.cycles),
        instructions: add(a.instructions, b.instructions),
        cache_references: add(a.cache_references, b.cache_references),
        cache_misses: add(a.cache_misses, b.cache_misses),
        rss_bytes: b.rss_bytes.or(a.rss_bytes),
        cgroup_memory_bytes: b.cgroup_memory_bytes.or(a.cgroup_memory_bytes),
        io_read_bytes: add(a.io_read_bytes, b.io_read_bytes),
        io_write_bytes: add(a.io_write_bytes, b.io_write_bytes),
        gpus: merge_gpus(&a.gpus, wa, &b.gpus, wb),
    }
}

impl IntervalRecord {
    /// Folds `next` (a later interval of the same host) into `self`. The merged
    /// record spans `self.start..next.end` and carries `next.seq`, so an
    /// acknowledgement up to that seq covers everything merged into it.
    pub fn merge(&mut self, next: &IntervalRecord) -> Result<(), RecordError> {
        if next.host != self.host || next.seq <= self.seq || next.start < self.end {
            return Err(RecordError::NotMergeable {
                host: self.host.to_string(),
                seq: self.seq,
                next_host: next.host.to_string(),
                next_seq: next.seq,
            });
        }
        let (wa, wb) = (self.duration().0, next.duration().0);
        for (d, e) in &next.domains {
            let mine = self.domains.entry(*d).or_default();
            mine.energy_uj += e.energy_uj;
            mine.status = worse(mine.status, e.status);
        }
        for vm in &next.vms {
            match self.vms.iter_mut().find(|v| v.vm == vm.vm) {
                Some(v) => merge_vm(v, wa, vm, wb),
                None => self.vms.push(vm.clone()),
            }
        }
        match (&mut self.truth, &next.truth) {
            (Some(a), Some(b)) => {
                for (d, e) in &b.idle_uj {
                    *a.idle_uj.entry(*d).or_default() += *e;
                }
            }
            (None, Some(b)) => self.truth = Some(b.clone()),
            _ => {}
        }
        self.seq = next.seq;
        self.end = next.end;
        Ok(())
    }
}

fn merge_vm(v: &mut VmRecord, wa: u64, next: &VmRecord, wb: u64) {
    v.features = merge_features(&v.features, wa, &next.features, wb);
    v.name.clone_from(&next.name);
    v.tenant = next.tenant.clone().or(v.tenant.take());
    v.flavor = next.flavor.or(v.flavor);
    match (&mut v.truth, &next.truth) {
        (Some(a), Some(b)) => {
            for (d, e) in b.energy_uj.iter() {
                *a.energy_uj.entry(*d) += *e;
            }
        }
        (None, Some(b)) => v.truth = Some(b.clone()),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use crate::sample::tests::record;
    use crate::{Domain, Energy, ReadingStatus, VmId};
    use proptest::prelude::*;

    #[test]
    fn merge_conserves_energy_and_counters() {
        let mut a = record(1);
        let mut b = record(2);
        b.domains.get_mut(&Domain::package(0)).unwrap().status = ReadingStatus::Reset;
        b.vms[0].features.gpus[0].sm_util_pct = 40;
        b.vms[0].features.rss_bytes = Some(7);
        let mut other = b.vms[0].clone();
        other.vm = VmId::new("other").unwrap();
        b.vms.push(other);
        let total = a.measured_total() + b.measured_total();
        a.merge(&b).unwrap();
        assert_eq!(a.measured_total(), total);
        assert_eq!(a.seq, 2);
        assert_eq!(a.duration().0, 2_000_000);
        assert_eq!(a.domains[&Domain::package(0)].status, ReadingStatus::Reset);
        assert_eq!(a.vms.len(), 2);
        assert_eq!(a.vms[0].features.cpu_time_us, 3_000_000);
        assert_eq!(a.vms[0].features.gpus[0].sm_util_pct, 60);
        assert_eq!(a.vms[0].features.rss_bytes, Some(7));
        a.validate().unwrap();
    }

    #[test]
    fn refuses_out_of_order_or_other_host() {
        let mut a = record(2);
        assert!(a.merge(&record(1)).is_err());
        let mut b = record(3);
        b.host = crate::HostId::new("x").unwrap();
        assert!(a.merge(&b).unwrap_err().to_string().contains("cannot merge"));
    }

    proptest! {
        #[test]
        fn merged_total_is_the_sum(energies in proptest::collection::vec(0u64..1 << 36, 1..50)) {
            let mut recs: Vec<_> = energies.iter().enumerate().map(|(i, e)| {
                let mut r = record(i as u64);
                r.domains.get_mut(&Domain::dram(0)).unwrap().energy_uj = Energy::from_uj(*e);
                r
            }).collect();
            let total: Energy = recs.iter().map(|r| r.measured_total()).sum();
            let mut acc = recs.remove(0);
            for r in &recs { acc.merge(r).unwrap(); }
            prop_assert_eq!(acc.measured_total(), total);
        }
    }
}
