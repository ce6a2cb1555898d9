//! The attribution invariants, as properties over random intervals:
//! exact conservation, symmetry, null player, determinism; and the defined
//! behaviour on bad input.

use std::collections::BTreeMap;

use fairwatt_attribution::idle_power::IdleSource;
use fairwatt_attribution::{Attributor, AttributorConfig, Error, IdlePolicy, IntervalAttribution, Method};
use fairwatt_core::{Domain, DomainEnergy, Energy, Flavor, GpuUse, HostId, IntervalRecord, Micros, PerfSource, TenantId, Timestamp, VmFeatures, VmId, VmRecord};
use proptest::prelude::*;

fn vm(i: usize, cpu_us: u64, io: u64, gpu: Option<u32>, vcpus: u32) -> VmRecord {
    VmRecord {
        vm: VmId::new(format!("vm-{i}")).unwrap(),
        name: format!("vm-{i}").into(),
        tenant: Some(TenantId::new(format!("t{}", i % 3)).unwrap()),
        flavor: Some(Flavor { vcpus, memory_mib: 1024 * vcpus as u64, gpus: u32::from(gpu.is_some()) }),
        perf: PerfSource::Software,
        features: VmFeatures {
            cpu_time_us: cpu_us,
            io_read_bytes: Some(io),
            io_write_bytes: Some(io / 2),
            gpus: gpu.map(|p| vec![GpuUse { gpu: 0, sm_util_pct: p, mem_util_pct: p / 2, ..Default::default() }]).unwrap_or_default(),
            ..Default::default()
        },
        truth: None,
    }
}

fn record(seq: u64, vms: Vec<VmRecord>, pkg: u64, dram: u64, gpu: u64) -> IntervalRecord {
    let start = Timestamp::from_micros(1_700_000_000_000_000 + seq as i64 * 1_000_000).unwrap();
    let mut domains = BTreeMap::new();
    domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(pkg)));
    domains.insert(Domain::dram(0), DomainEnergy::ok(Energy::from_uj(dram)));
    domains.insert(Domain::gpu(0), DomainEnergy::ok(Energy::from_uj(gpu)));
    IntervalRecord { host: HostId::new("h").unwrap(), seq, start, end: start.plus(Micros::from_secs(1)), domains, vms, truth: None }
}

fn cfg(method: Method, policy: IdlePolicy) -> AttributorConfig {
    let mut c = AttributorConfig::new(method, policy);
    c.min_fit = 4;
    c.window = 50;
    c.error_window = 5;
    c
}

fn run(method: Method, policy: IdlePolicy, recs: &[IntervalRecord]) -> Vec<IntervalAttribution> {
    let mut a = Attributor::new(cfg(method, policy)).unwrap();
    let mut out: Vec<IntervalAttribution> = Vec::new();
    for r in recs {
        out.extend(a.push(r.clone()).unwrap().into_iter().map(|s| s.attribution));
    }
    out.extend(a.flush().into_iter().map(|s| s.attribution));
    out
}

fn arb_vm(i: usize) -> impl Strategy<Value = VmRecord> {
    (0u64..4_000_000, 0u64..50_000_000, proptest::option::of(0u32..=100), 1u32..16).prop_map(move |(c, io, g, v)| vm(i, c, io, g, v))
}

fn arb_records() -> impl Strategy<Value = Vec<IntervalRecord>> {
    let one = (0usize..8).prop_flat_map(|n| {
        let vms: Vec<_> = (0..n).map(arb_vm).collect();
        (vms, 0u64..500_000_000, 0u64..50_000_000, 0u64..400_000_000)
    });
    proptest::collection::vec(one, 1..14)
        .prop_map(|xs| xs.into_iter().enumerate().map(|(i, (vms, p, d, g))| record(i as u64 * 2, vms, p, d, g)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn conserved_exactly_for_every_method_and_policy(recs in arb_records()) {
        for method in [Method::Ratio, Method::Linear] {
            for policy in IdlePolicy::ALL {
                let out = run(method, policy, &recs);
                prop_assert_eq!(out.len(), recs.len());
                for (a, r) in out.iter().zip(&recs) {
                    prop_assert_eq!(a.seq, r.seq);
                    for d in &a.domains {
                        prop_assert!(d.is_conserved(), "{method} {policy} seq {} {}: {} accounted of {}", a.seq, d.domain, d.accounted(), d.measured_uj);
                        prop_assert!(d.idle_uj <= d.measured_uj);
                        if policy == IdlePolicy::Unattributed {
                            prop_assert!(d.vms.iter().all(|v| v.idle_uj == Energy::ZERO));
                        }
                    }
                }
                prop_assert_eq!(&out, &run(method, policy, &recs), "not deterministic");
            }
        }
    }

    #[test]
    fn identical_vms_get_identical_shares_and_idle_vms_no_dynamic(recs in arb_records(), cpu in 1u64..4_000_000) {
        // Add a twin pair and a VM that did nothing to every interval.
        let recs: Vec<IntervalRecord> = recs.into_iter().map(|mut r| {
            let twin = vm(100, cpu, 1_000_000, Some(40), 4);
            let mut twin2 = twin.clone();
            twin2.vm = VmId::new("vm-101").unwrap();
            r.vms.push(twin);
            r.vms.push(twin2);
            r.vms.push(vm(102, 0, 0, None, 2));
            r
        }).collect();
        for method in [Method::Ratio, Method::Linear] {
            for policy in IdlePolicy::ALL {
                for a in run(method, policy, &recs) {
                    for d in &a.domains {
                        let n = d.vms.len();
                        let (x, y, idle) = (&d.vms[n - 3], &d.vms[n - 2], &d.vms[n - 1]);
                        prop_assert_eq!((x.dynamic_uj, x.idle_uj), (y.dynamic_uj, y.idle_uj), "{} {} {}", method, policy, d.domain);
                        prop_assert_eq!(idle.dynamic_uj, Energy::ZERO, "{} {} {}", method, policy, d.domain);
                        if policy == IdlePolicy::Dynamic {
                            prop_assert_eq!(idle.idle_uj, Energy::ZERO);
                        }
                    }
                }
            }
        }
    }
}

/// A host whose power is exactly 100 W idle + 50 W per busy CPU-second.
fn linear_host(seq: u64, cpus: &[u64]) -> IntervalRecord {
    let vms: Vec<VmRecord> = cpus.iter().enumerate().map(|(i, c)| vm(i, *c, 0, None, 2)).collect();
    let pkg = 100_000_000 + cpus.iter().map(|c| c * 50).sum::<u64>();
    record(seq, vms, pkg, 10_000_000, 0)
}

#[test]
fn learns_idle_and_splits_dynamic_by_activity() {
    let recs: Vec<_> = (0..20).map(|i| linear_host(i, &[200_000 + 30_000 * (i % 7), 500_000, 100_000 * (i % 3)])).collect();
    let out = run(Method::Linear, IdlePolicy::Unattributed, &recs);
    let last = out.last().unwrap().domain(Domain::package(0)).unwrap();
    // Idle 100 J; dynamic 50 J per CPU-second exactly.
    assert!((last.idle_uj.as_uj() as i64 - 100_000_000).abs() < 10, "{last:?}");
    let cpus = [200_000 + 30_000 * (19 % 7), 500_000, 100_000];
    for (s, c) in last.vms.iter().zip(cpus) {
        assert!((s.dynamic_uj.as_uj() as i64 - (c * 50) as i64).abs() < 10, "{s:?} vs {c}");
    }
}

#[test]
fn bad_input_has_defined_behaviour() {
    let mut a = Attributor::new(cfg(Method::Linear, IdlePolicy::Equal)).unwrap();
    let mut out = Vec::new();
    for i in 0..6 {
        out.extend(a.push(linear_host(i, &[300_000 + 10_000 * i, 100_000 * (i % 2)])).unwrap());
    }
    // A gap in the sequence is fine; going back or repeating is refused.
    out.extend(a.push(linear_host(10, &[300_000, 0])).unwrap());
    assert!(matches!(a.push(linear_host(10, &[1, 1])), Err(Error::OutOfOrder { .. })));
    assert!(matches!(a.push(linear_host(3, &[1, 1])), Err(Error::OutOfOrder { .. })));
    let mut other = linear_host(11, &[1]);
    other.host = HostId::new("elsewhere").unwrap();
    assert!(matches!(a.push(other), Err(Error::WrongHost { .. })));
    let mut empty = linear_host(11, &[]);
    empty.end = empty.start;
    assert!(matches!(a.push(empty), Err(Error::BadRecord { .. })));

    // No VMs: everything measured stays unattributed.
    let s = a.push(linear_host(12, &[])).unwrap().remove(0).attribution;
    for d in &s.domains {
        assert_eq!(d.unattributed_uj, d.measured_uj);
    }
    // Measured below the idle estimate: all idle, a note, nothing created.
    let mut low = linear_host(13, &[200_000, 0]);
    low.domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(40_000_000)));
    let s = a.push(low).unwrap().remove(0).attribution;
    let p = s.domain(Domain::package(0)).unwrap();
    assert_eq!(p.idle_uj, Energy::from_uj(40_000_000));
    assert!(p.vms.iter().all(|v| v.dynamic_uj == Energy::ZERO) && p.is_conserved());
    assert!(s.notes.iter().any(|n| n.contains("below the idle estimate")), "{:?}", s.notes);
    assert!(out.iter().all(|s| s.attribution.is_conserved()));
}

#[test]
fn short_streams_flush_without_a_model_and_drift_triggers_recalibration() {
    let mut a = Attributor::new(cfg(Method::Linear, IdlePolicy::Reservation)).unwrap();
    assert!(a.push(linear_host(0, &[100_000])).unwrap().is_empty());
    let f = a.flush();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].attribution.model_version, 0);
    // All of it split by CPU time: one VM takes everything.
    assert_eq!(f[0].attribution.domain(Domain::package(0)).unwrap().vms[0].dynamic_uj, Energy::from_uj(105_000_000));

    let mut a = Attributor::new(cfg(Method::Linear, IdlePolicy::Reservation)).unwrap();
    let mut versions = Vec::new();
    for i in 0..40u64 {
        let mut r = linear_host(i, &[100_000 * (i % 5), 300_000]);
        if i >= 20 {
            // The host now draws 30 W more at idle (a fan, a firmware change).
            let e = r.domains[&Domain::package(0)].energy_uj.as_uj() + 30_000_000;
            r.domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(e)));
        }
        for s in a.push(r).unwrap() {
            if let Some(v) = s.new_version {
                versions.push(v);
            }
        }
    }
    assert_eq!(versions[0].reason, "initial");
    assert!(versions.len() >= 2 && versions[1].reason.starts_with("recalibration"), "{versions:?}");
    assert!(versions[1].window_last_seq >= 20);
}

#[test]
fn configured_idle_wins_and_quiet_intervals_replace_an_extrapolated_one() {
    // Configured: used as given, recorded as such.
    let mut c = cfg(Method::Linear, IdlePolicy::Reservation);
    c.idle_watts = BTreeMap::from([(Domain::package(0), 90.0)]);
    let mut a = Attributor::new(c).unwrap();
    let mut versions = Vec::new();
    for i in 0..8u64 {
        versions.extend(a.push(linear_host(i, &[100_000 * (1 + i % 5), 300_000])).unwrap().into_iter().filter_map(|s| s.new_version));
    }
    let pkg = versions[0].domains.iter().find(|f| f.domain == Domain::package(0)).unwrap();
    assert_eq!((pkg.idle_w, pkg.idle.unwrap().source), (90.0, IdleSource::Configured));
    let dram = versions[0].domains.iter().find(|f| f.domain == Domain::dram(0)).unwrap();
    assert_eq!(dram.idle.unwrap().source, IdleSource::Extrapolated);
    let mut bad = cfg(Method::Linear, IdlePolicy::Reservation);
    bad.idle_watts = BTreeMap::from([(Domain::package(0), f64::NAN)]);
    assert!(matches!(Attributor::new(bad), Err(Error::Param(_))));

    // Busy from the start: extrapolated; then the host empties for a while.
    let mut c = cfg(Method::Linear, IdlePolicy::Reservation);
    c.min_quiet = 5;
    let mut a = Attributor::new(c).unwrap();
    let mut versions = Vec::new();
    for i in 0..30u64 {
        let cpus: &[u64] = if (10..16).contains(&i) { &[0, 0] } else { &[100_000 * (1 + i % 5), 300_000] };
        for s in a.push(linear_host(i, cpus)).unwrap() {
            assert!(s.attribution.is_conserved());
            versions.extend(s.new_version);
        }
    }
    let first = versions[0].domains.iter().find(|f| f.domain == Domain::package(0)).unwrap();
    assert_eq!(first.idle.unwrap().source, IdleSource::Extrapolated);
    let refit = versions.iter().find(|v| v.reason.contains("idle power observed")).expect("a refit once the host was seen idle");
    let pkg = refit.domains.iter().find(|f| f.domain == Domain::package(0)).unwrap();
    let idle = pkg.idle.unwrap();
    assert_eq!((idle.source, idle.observations), (IdleSource::Observed, 5));
    assert!((pkg.idle_w - 100.0).abs() < 1e-6, "{pkg:?}");
}

#[test]
fn the_first_fit_waits_for_activity_and_a_weightless_model_splits_by_cpu_time() {
    // Quiet intervals alone do not start the first fit: it waits for min_fit busy ones...
    let mut a = Attributor::new(cfg(Method::Linear, IdlePolicy::Reservation)).unwrap();
    for i in 0..10u64 {
        assert!(a.push(linear_host(i, &[0, 0])).unwrap().is_empty(), "interval {i}");
    }
    let mut out = Vec::new();
    for i in 10..14u64 {
        out.extend(a.push(linear_host(i, &[100_000 * (1 + i % 3), 200_000])).unwrap());
    }
    // ...then attributes everything held, in order, quiet intervals wholly unattributed.
    assert_eq!(out.iter().map(|s| s.attribution.seq).collect::<Vec<_>>(), (0..14).collect::<Vec<_>>());
    let quiet = out[0].attribution.domain(Domain::package(0)).unwrap();
    assert!(quiet.vms.iter().all(|v| v.dynamic_uj == Energy::ZERO) && quiet.is_conserved());
    let busy = out[13].attribution.domain(Domain::package(0)).unwrap();
    assert!((busy.idle_uj.as_uj() as i64 - 100_000_000).abs() < 10, "{busy:?}");

    // ...or for a full window: a model fitted on a host that never ran
    // anything has no weights, and then splits by CPU time, saying so.
    let mut c = cfg(Method::Linear, IdlePolicy::Unattributed);
    c.window = 8;
    let mut a = Attributor::new(c).unwrap();
    let mut out = Vec::new();
    for i in 0..8u64 {
        out.extend(a.push(linear_host(i, &[0, 0])).unwrap());
    }
    assert_eq!(out.len(), 8);
    assert_eq!(a.version(), 1);
    let s = a.push(linear_host(8, &[300_000, 100_000])).unwrap().remove(0).attribution;
    let p = s.domain(Domain::package(0)).unwrap();
    assert!(p.vms[1].dynamic_uj.as_uj() > 0);
    assert_eq!(p.vms[0].dynamic_uj.as_uj(), 3 * p.vms[1].dynamic_uj.as_uj(), "{p:?}");
    assert!(p.is_conserved());
    assert!(s.notes.iter().any(|n| n.contains("gives no active VM a weight")), "{:?}", s.notes);
}

/// A VM doing `cpu_us` of one of three kinds of work (IPC, refs per
/// kilo-instruction and miss ratio differ by kind), with hardware counters.
fn hw_vm(i: usize, kind: usize, cpu_us: u64) -> VmRecord {
    let (ipc, rpki, miss) = [(2.0, 4.0, 0.1), (0.5, 40.0, 0.5), (1.2, 12.0, 0.25)][kind];
    let cycles = cpu_us * 2_500; // 2.5 GHz
    let instructions = (cycles as f64 * ipc) as u64;
    let refs = (instructions as f64 * rpki / 1000.0) as u64;
    let mut v = vm(i, cpu_us, 0, None, 2);
    v.perf = PerfSource::Hardware;
    v.features.cycles = Some(cycles);
    v.features.instructions = Some(instructions);
    v.features.cache_references = Some(refs);
    v.features.cache_misses = Some((refs as f64 * miss) as u64);
    v
}

#[test]
fn kinds_of_work_get_their_own_cost_per_cycle() {
    // The third kind costs three times as much per cycle as the others,
    // though its IPC and cache behaviour lie between theirs: no single
    // cost per counter fits, one per kind of work does.
    let cost = [1.0, 1.0, 3.0]; // W per 10⁹ cycles per second
    let kinds = [0, 0, 1, 1, 2, 2];
    let rec = |seq: u64| {
        let cpus: Vec<u64> = (0..6).map(|i| 100_000 + 90_000 * ((seq * (i as u64 + 3) + i as u64 * 7) % 11)).collect();
        let vms: Vec<VmRecord> = cpus.iter().enumerate().map(|(i, c)| hw_vm(i, kinds[i], *c)).collect();
        let dynamic: f64 = cpus.iter().enumerate().map(|(i, c)| cost[kinds[i]] * *c as f64 * 2_500.0 / 1e9).sum();
        record(seq, vms, 40_000_000 + (dynamic * 1e6) as u64, 5_000_000, 0)
    };
    let mut c = cfg(Method::Linear, IdlePolicy::Unattributed);
    c.idle_watts = BTreeMap::from([(Domain::package(0), 40.0), (Domain::dram(0), 5.0), (Domain::gpu(0), 0.0)]);
    c.min_fit = 60;
    c.window = 200;
    let mut a = Attributor::new(c).unwrap();
    let mut out = Vec::new();
    let mut versions = Vec::new();
    for seq in 0..200 {
        for s in a.push(rec(seq)).unwrap() {
            versions.extend(s.new_version.clone());
            out.push(s.attribution);
        }
    }
    let pkg = versions[0].domains.iter().find(|f| f.domain == Domain::package(0)).unwrap();
    assert!(pkg.features.iter().any(|f| f.starts_with("w2.")), "a per-cluster model for the package: {pkg:?}");
    assert!(pkg.detail.as_deref().unwrap_or("").contains("workload cluster"), "{pkg:?}");
    let last = out.last().unwrap();
    let p = last.domain(Domain::package(0)).unwrap();
    let r = rec(last.seq);
    for (i, (s, v)) in p.vms.iter().zip(&r.vms).enumerate() {
        let truth = cost[kinds[i]] * v.features.cpu_time_us as f64 * 2_500.0 / 1e9 * 1e6;
        assert!((s.dynamic_uj.as_uj() as f64 - truth).abs() <= 0.01 * truth + 2.0, "VM {i}: {} µJ vs {truth}", s.dynamic_uj.as_uj());
    }
    assert!(out.iter().all(|a| a.is_conserved()));
}

#[test]
fn a_late_interval_is_attributed_on_its_own_and_leaves_the_stream_as_it_was() {
    let mut a = Attributor::new(cfg(Method::Linear, IdlePolicy::Reservation)).unwrap();
    for i in (0..12u64).filter(|i| *i != 5) {
        a.push(linear_host(i, &[100_000 * (1 + i % 3), 200_000])).unwrap();
    }
    let version = a.version();
    let late = a.attribute_detached(&linear_host(5, &[300_000, 100_000])).unwrap();
    assert!(late.is_conserved() && late.seq == 5 && late.model_version == version);
    assert!(late.notes.iter().any(|n| n.contains("out of order")), "{:?}", late.notes);
    let p = late.domain(Domain::package(0)).unwrap();
    assert_eq!(p.vms[0].dynamic_uj.as_uj(), 3 * p.vms[1].dynamic_uj.as_uj());
    // The stream goes on from where it was: 12 is next, 11 is still refused.
    assert!(matches!(a.push(linear_host(11, &[1, 1])), Err(Error::OutOfOrder { .. })));
    assert_eq!(a.push(linear_host(12, &[100_000, 100_000])).unwrap().len(), 1);
    let mut other = linear_host(6, &[1]);
    other.host = HostId::new("elsewhere").unwrap();
    assert!(matches!(a.attribute_detached(&other), Err(Error::WrongHost { .. })));
}
