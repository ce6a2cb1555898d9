//! Discovery and per-process sampling against real QEMU processes.
//!
//! Starts three small TCG guests with no boot disk (the firmware keeps the
//! vCPU busy looking for one), finds them through [`Discovery`] on the real
//! `/proc` and samples their CPU time. Skipped, with a message, where
//! `qemu-system-x86_64` is not installed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fairwatt_collector::discovery::{DiscoveredVm, Discovery, DiscoveryConfig};
use fairwatt_collector::proc::ProcReader;

const QEMU: &str = "qemu-system-x86_64";

fn find_on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(bin)).find(|p| p.is_file()))
}

/// Kills the guests when the test ends, passing or panicking.
struct Guests(Vec<Child>);

impl Drop for Guests {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

#[test]
fn discovers_and_samples_real_qemu() {
    let Some(qemu) = find_on_path(QEMU) else {
        eprintln!("skipping: {QEMU} not found on PATH (install the qemu-system-x86 package to run this test)");
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    // Unique per run, so guests of a concurrent run or other QEMUs on the host are not confused with ours.
    let uuid = |i: u32| format!("fa1e7e57-0000-4000-8000-{:04x}{:08x}", i, std::process::id());
    let mut guests = Guests(Vec::new());
    for i in 0..3 {
        let log = std::fs::File::create(logs.path().join(format!("qemu-{i}.log"))).unwrap();
        let child = Command::new(&qemu)
            .args(["-name", &format!("guest=fw-test-{i},debug-threads=on"), "-uuid", &uuid(i)])
            .args(["-m", "64", "-smp", "1", "-machine", "pc", "-accel", "tcg"])
            .args(["-nographic", "-display", "none", "-nodefaults", "-no-user-config", "-serial", "none", "-monitor", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        guests.0.push(child);
    }

    let cfg = DiscoveryConfig { procfs_root: "/proc".into(), sysfs_root: "/sys".into(), libvirt_dirs: vec![], mapping_file: None };
    let mut discovery = Discovery::new(cfg).unwrap();
    let ours = |vms: Vec<DiscoveredVm>| -> Vec<DiscoveredVm> { vms.into_iter().filter(|v| (0..3).any(|i| v.info.id.as_str() == uuid(i))).collect() };
    let deadline = Instant::now() + Duration::from_secs(20);
    let found = loop {
        for (i, c) in guests.0.iter_mut().enumerate() {
            if let Ok(Some(status)) = c.try_wait() {
                let log = std::fs::read_to_string(logs.path().join(format!("qemu-{i}.log"))).unwrap_or_default();
                panic!("QEMU {i} exited early with {status}: {log}");
            }
        }
        let found = ours(discovery.scan().vms);
        if found.len() == 3 || Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(found.len(), 3, "found {found:#?}");
    for i in 0..3u32 {
        let vm = found.iter().find(|v| v.info.id.as_str() == uuid(i)).unwrap();
        assert_eq!(&*vm.info.name, format!("fw-test-{i}"));
        assert_eq!(vm.pid, guests.0[i as usize].id());
        let f = vm.info.flavor.unwrap();
        assert_eq!((f.vcpus, f.memory_mib, f.gpus), (1, 64, 0));
        assert!(vm.passthrough_gpus.is_empty());
    }

    let reader = ProcReader::new(std::path::Path::new("/proc"));
    let first: Vec<_> = found.iter().map(|v| reader.read(v.pid).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(1500));
    let second: Vec<_> = found.iter().map(|v| reader.read(v.pid).unwrap()).collect();
    for ((vm, a), b) in found.iter().zip(&first).zip(&second) {
        assert_eq!(a.start_time_ticks, vm.start_time_ticks);
        assert!(b.cpu_time_us >= a.cpu_time_us, "{}: CPU time went backwards: {a:?} then {b:?}", vm.info.name);
        assert!(b.vcpu_time_us.is_some(), "{}: no `CPU 0/TCG` thread found in {:?}", vm.info.name, b.threads);
        assert!(b.vcpu_time_us >= a.vcpu_time_us);
        assert!(b.rss_bytes > 0 && b.threads.len() >= 2, "{b:?}");
        assert!(discovery.is_alive(vm.pid, vm.start_time_ticks));
    }
    assert!(second.iter().any(|s| s.cpu_time_us > 0), "{second:?}");
    eprintln!("real QEMU samples: {:?}", second.iter().map(|s| (s.cpu_time_us, s.vcpu_time_us)).collect::<Vec<_>>());

    let gone = found[0].clone();
    guests.0[0].kill().unwrap();
    guests.0[0].wait().unwrap();
    assert!(reader.read(gone.pid).unwrap_err().is_not_found());
    assert!(!discovery.is_alive(gone.pid, gone.start_time_ticks));
    let left = ours(discovery.scan().vms);
    assert_eq!(left.len(), 2);
    assert!(left.iter().all(|v| v.pid != gone.pid));
}

/// The cgroup reader on this host's real cgroup filesystem, with the files
/// held open between reads: this test process's own cgroup.
#[test]
fn reads_the_real_cgroup_of_this_process() {
    use fairwatt_collector::proc::{CgroupReader, CgroupRef, CgroupVersion};
    let Ok(text) = std::fs::read_to_string("/proc/self/cgroup") else {
        eprintln!("skipping: no /proc/self/cgroup");
        return;
    };
    let mut refs = Vec::new();
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        if let (Some(id), Some(ctrl), Some(path)) = (parts.next(), parts.next(), parts.next()) {
            if id == "0" && ctrl.is_empty() {
                refs.push(CgroupRef { version: CgroupVersion::V2, path: path.to_string() });
            } else if ctrl.split(',').any(|c| c == "cpuacct") {
                refs.push(CgroupRef { version: CgroupVersion::V1, path: path.to_string() });
            }
        }
    }
    let reader = CgroupReader::new(std::path::Path::new("/sys"));
    eprintln!("{}", reader.status());
    let mut read_any = false;
    for cg in &refs {
        let Ok(a) = reader.read(cg) else { continue };
        let Some(before) = a.cpu_usage_us else { continue };
        let t = std::time::Instant::now();
        while t.elapsed() < Duration::from_millis(30) {
            std::hint::black_box(0u64);
        }
        let after = reader.read(cg).unwrap().cpu_usage_us.unwrap();
        assert!(after >= before, "{cg:?}: {before} then {after}");
        eprintln!("{cg:?}: cpu {before} -> {after} us, memory {:?}", a.memory_bytes);
        read_any = true;
    }
    if !read_any {
        eprintln!("skipping: none of this process's cgroups ({refs:?}) has CPU accounting here");
    }
}
