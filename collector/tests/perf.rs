//! Per-VM perf counters through a scripted backend, plus the real
//! perf_event_open counting this test's own thread.

use std::path::Path;

use fairwatt_collector::perf::{FakePerf, PerfDelta, PerfEvent, PerfSampler, PerfTarget, RealPerf};
use fairwatt_core::{PerfSource, SensorState, VmId};

fn vm(s: &str) -> VmId {
    VmId::new(s).unwrap()
}

fn sampler(fake: &FakePerf) -> PerfSampler {
    PerfSampler::new(Box::new(fake.clone()))
}

#[test]
fn deltas_per_vm_with_hardware_counters() {
    let fake = FakePerf::new();
    let mut s = sampler(&fake);
    assert_eq!(s.status()[0].state, SensorState::Ok);
    assert_eq!(fake.open_counters(), 0, "the probe closes what it opened");
    let a = vm("vm-a");
    let (src, d) = s.read(&a, &[10, 11], None);
    assert_eq!((src, d), (PerfSource::Hardware, PerfDelta::default()), "first read only opens");
    assert_eq!(fake.open_counters(), 10);
    for (tid, k) in [(10, 1), (11, 2)] {
        fake.add_thread(tid, PerfEvent::Cycles, 1000 * k);
        fake.add_thread(tid, PerfEvent::Instructions, 500 * k);
        fake.add_thread(tid, PerfEvent::CacheReferences, 30 * k);
        fake.add_thread(tid, PerfEvent::CacheMisses, 3 * k);
        fake.add_thread(tid, PerfEvent::TaskClock, 1_000_000 * k);
    }
    let (src, d) = s.read(&a, &[10, 11], None);
    assert_eq!(src, PerfSource::Hardware);
    assert_eq!(d, PerfDelta {
        cycles: Some(3000),
        instructions: Some(1500),
        cache_references: Some(90),
        cache_misses: Some(9),
        task_clock_ns: Some(3_000_000),
    });
    // Nothing happened: zero, not None.
    let (_, d) = s.read(&a, &[10, 11], None);
    assert_eq!(d.cycles, Some(0));
    assert!(s.take_errors().is_empty());
}

#[test]
fn thread_churn_counts_exited_threads_once_more_and_new_ones_from_next_read() {
    let fake = FakePerf::new();
    fake.fail_hardware(Some(libc::ENOENT));
    let mut s = sampler(&fake);
    let a = vm("vm-a");
    s.read(&a, &[10, 11], None);
    fake.add_thread(10, PerfEvent::TaskClock, 100);
    fake.add_thread(11, PerfEvent::TaskClock, 200);
    fake.exit_thread(11);
    fake.add_thread(12, PerfEvent::TaskClock, 999); // before the sampler sees it: lost
    // 11 exited, 12 appeared.
    let (_, d) = s.read(&a, &[10, 12], None);
    assert_eq!(d.task_clock_ns, Some(300));
    assert_eq!(fake.open_counters(), 2);
    fake.add_thread(10, PerfEvent::TaskClock, 1);
    fake.add_thread(12, PerfEvent::TaskClock, 20);
    let (_, d) = s.read(&a, &[10, 12], None);
    assert_eq!(d.task_clock_ns, Some(21));
    // A thread listed but gone before it could be opened is skipped quietly.
    fake.exit_thread(13);
    let (src, _) = s.read(&a, &[10, 12, 13], None);
    assert_eq!(src, PerfSource::Software);
    assert!(s.take_errors().is_empty());
    assert_eq!(fake.open_counters(), 2);
}

#[test]
fn missing_hardware_falls_back_to_task_clock_once() {
    let fake = FakePerf::new();
    fake.fail_hardware(Some(libc::ENOENT));
    let mut s = sampler(&fake);
    let st = &s.status()[0];
    assert_eq!((st.sensor.as_str(), st.state), ("perf", SensorState::Degraded));
    assert_eq!(st.detail, "hardware counters unsupported, using software task-clock");
    let a = vm("vm-a");
    let opens_after_probe = fake.opens();
    for i in 0..5 {
        fake.add_thread(10, PerfEvent::TaskClock, 7);
        let (src, d) = s.read(&a, &[10], None);
        assert_eq!(src, PerfSource::Software);
        assert_eq!(d.cycles, None);
        assert_eq!(d.task_clock_ns, if i == 0 { None } else { Some(7) });
    }
    // One task-clock counter opened; hardware never tried again.
    assert_eq!(fake.opens(), opens_after_probe + 1);
    assert!(s.take_errors().is_empty());
}

#[test]
fn partially_missing_hardware_is_reported() {
    let fake = FakePerf::new();
    fake.fail_event(PerfEvent::CacheReferences, Some(libc::ENOENT));
    fake.fail_event(PerfEvent::CacheMisses, Some(libc::ENOENT));
    let mut s = sampler(&fake);
    let st = &s.status()[0];
    assert_eq!(st.state, SensorState::Degraded);
    assert_eq!(st.detail, "hardware events cache-references, cache-misses unsupported; counting the others");
    let a = vm("vm-a");
    s.read(&a, &[10], None);
    fake.add_thread(10, PerfEvent::Cycles, 9);
    let (src, d) = s.read(&a, &[10], None);
    assert_eq!(src, PerfSource::Hardware);
    assert_eq!((d.cycles, d.instructions, d.cache_misses, d.task_clock_ns), (Some(9), Some(0), None, Some(0)));
}

#[test]
fn denied_perf_is_none_with_a_paranoid_hint() {
    let fake = FakePerf::new();
    fake.fail_all(Some(libc::EACCES));
    let mut s = sampler(&fake);
    let st = &s.status()[0];
    assert_eq!(st.state, SensorState::Error);
    assert!(st.detail.contains("/proc/sys/kernel/perf_event_paranoid"), "{}", st.detail);
    let (src, d) = s.read(&vm("vm-a"), &[10], None);
    assert_eq!((src, d), (PerfSource::None, PerfDelta::default()));
    assert_eq!(fake.opens(), 0);
    assert_eq!(s.open_counters(), 0);
}

#[test]
fn vanished_vms_are_closed() {
    let fake = FakePerf::new();
    let mut s = sampler(&fake);
    let (a, b) = (vm("vm-a"), vm("vm-b"));
    s.read(&a, &[10], None);
    s.read(&b, &[20, 21], None);
    assert_eq!(fake.open_counters(), 15);
    s.retain(std::slice::from_ref(&b));
    assert_eq!(fake.open_counters(), 10);
    assert_eq!(s.open_counters(), 10);
    s.retain(&[]);
    assert_eq!(fake.open_counters(), 0);
    // Coming back means starting over.
    assert_eq!(s.read(&a, &[10], None).1, PerfDelta::default());
}

#[test]
fn cgroup_mode_counts_per_cpu_and_ignores_threads() {
    let fake = FakePerf::new();
    fake.fail_hardware(Some(libc::EOPNOTSUPP));
    let mut s = sampler(&fake);
    let dir = Path::new("/sys/fs/cgroup/machine.slice/machine-qemu-1-a.scope");
    let cpus = [0, 1, 2];
    let a = vm("vm-a");
    assert_eq!(s.read(&a, &[10], Some((dir, &cpus))).0, PerfSource::Software);
    assert_eq!(fake.open_counters(), 3);
    for cpu in cpus {
        fake.add(&PerfTarget::Cgroup { dir: dir.into(), cpu }, PerfEvent::TaskClock, 1000 + u64::from(cpu));
    }
    let (_, d) = s.read(&a, &[10, 11, 12], Some((dir, &cpus)));
    assert_eq!(d.task_clock_ns, Some(3003));
    assert_eq!(fake.open_counters(), 3, "no thread counters in cgroup mode");
    // A CPU that went offline fails on its own; task-clock stays in use elsewhere.
    let cpus4 = [0, 1, 2, 3];
    fake.fail_target(&PerfTarget::Cgroup { dir: dir.into(), cpu: 3 }, Some(libc::ENODEV));
    let (src, d) = s.read(&a, &[10], Some((dir, &cpus4)));
    assert_eq!((src, d.task_clock_ns), (PerfSource::Software, Some(0)));
    assert_eq!(s.take_errors().len(), 1);
    assert_eq!(s.status()[0].state, SensorState::Degraded);
}

#[test]
fn a_cgroup_that_cannot_be_counted_falls_back_to_threads() {
    let fake = FakePerf::new();
    fake.fail_hardware(Some(libc::ENOENT));
    let mut s = sampler(&fake);
    let dir = Path::new("/sys/fs/cgroup/cpu/machine.slice"); // a v1 hierarchy
    fake.fail_target(&PerfTarget::Cgroup { dir: dir.into(), cpu: 0 }, Some(libc::EBADF));
    let a = vm("vm-a");
    assert_eq!(s.read(&a, &[10, 11], Some((dir, &[0, 1]))).0, PerfSource::Software);
    let errors = s.take_errors();
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("counting its threads instead"), "{}", errors[0]);
    assert_eq!(fake.open_counters(), 2);
    fake.add_thread(10, PerfEvent::TaskClock, 5);
    // Not retried on later reads.
    let (_, d) = s.read(&a, &[10, 11], Some((dir, &[0, 1])));
    assert_eq!(d.task_clock_ns, Some(5));
    assert!(s.take_errors().is_empty());
}

fn own_tid() -> u32 {
    let link = std::fs::read_link("/proc/thread-self").expect("/proc/thread-self");
    link.file_name().and_then(|n| n.to_str()).and_then(|n| n.parse().ok()).expect("tid")
}

fn spin(ms: u64) -> u64 {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(ms);
    let mut x = 0u64;
    while std::time::Instant::now() < end {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
    }
    x
}

#[test]
fn real_perf_counts_this_thread() {
    let mut s = PerfSampler::new(Box::new(RealPerf::new()));
    println!("{}", s.status()[0]);
    let me = vm("self");
    let tid = own_tid();
    let (src, first) = s.read(&me, &[tid], None);
    if src == PerfSource::None {
        println!("skipped: perf_event_open is not usable here: {:?} {:?}", s.status(), s.take_errors());
        return;
    }
    assert_eq!(first.task_clock_ns, None);
    std::hint::black_box(spin(50));
    let (_, d) = s.read(&me, &[tid], None);
    let ns = d.task_clock_ns.expect("task-clock delta");
    println!("source {src:?}, task-clock {ns} ns over a 50 ms spin, delta {d:?}");
    assert!(ns > 0);
    assert!(ns < 10_000_000_000, "{ns}");
}

/// The cgroup v2 directory of this process, if it is in one on a mounted cgroup2 hierarchy.
fn own_cgroup_v2() -> Option<std::path::PathBuf> {
    let rel = std::fs::read_to_string("/proc/self/cgroup").ok()?.lines().find_map(|l| l.strip_prefix("0::").map(str::to_string))?;
    let mounts = std::fs::read_to_string("/proc/self/mounts").ok()?;
    let mnt = mounts.lines().map(|l| l.split(' ').collect::<Vec<_>>()).find(|f| f.len() > 2 && f[2] == "cgroup2")?[1].to_string();
    Some(Path::new(&mnt).join(rel.trim_start_matches('/')))
}

#[test]
fn real_perf_counts_this_cgroup() {
    let Some(dir) = own_cgroup_v2() else {
        println!("skipped: this process is not in a cgroup v2 hierarchy");
        return;
    };
    let n = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let cpus: Vec<u32> = (0..n).collect();
    let mut s = PerfSampler::new(Box::new(RealPerf::new()));
    let me = vm("self-cgroup");
    let (src, _) = s.read(&me, &[], Some((&dir, &cpus)));
    if src == PerfSource::None {
        println!("skipped: cannot count cgroup {}: {:?} {:?}", dir.display(), s.status(), s.take_errors());
        return;
    }
    std::hint::black_box(spin(50));
    let (_, d) = s.read(&me, &[], Some((&dir, &cpus)));
    println!("cgroup {}: {d:?}", dir.display());
    assert!(d.task_clock_ns.unwrap_or(0) > 0, "{d:?}");
}
