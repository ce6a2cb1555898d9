//! Discovery and per-process/cgroup sampling against generated procfs and
//! sysfs trees: what is found, what precedence wins, and how malformed or
//! vanishing inputs are reported.

use std::collections::HashSet;
use std::path::PathBuf;

use fairwatt_collector::Error;
use fairwatt_collector::discovery::{DiscoveredVm, Discovery, DiscoveryConfig};
use fairwatt_collector::fixture::proc::{CgroupLayout, FakeVm, LibvirtDomain, ProcTree, fake_uuid, generate, libvirt_scope};
use fairwatt_collector::proc::{CgroupReader, CgroupRef, CgroupVersion, ProcReader, clock_ticks_per_sec};
use fairwatt_core::SensorState;

struct Host {
    dir: tempfile::TempDir,
    tree: ProcTree,
}

impl Host {
    fn new(layout: CgroupLayout) -> Host {
        let dir = tempfile::tempdir().unwrap();
        let tree = ProcTree::with_layout(&dir.path().join("proc"), &dir.path().join("sys"), layout).unwrap();
        std::fs::create_dir_all(dir.path().join("run")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc")).unwrap();
        Host { dir, tree }
    }

    fn run_dir(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn etc_dir(&self) -> PathBuf {
        self.dir.path().join("etc")
    }

    fn sys_dir(&self) -> PathBuf {
        self.dir.path().join("sys")
    }

    /// A PCI device in the fake sysfs with its class code (e.g. 0x030200 for a 3D controller).
    fn pci_device(&self, addr: &str, class: u32) {
        let d = self.sys_dir().join("bus/pci/devices").join(addr);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("class"), format!("{class:#08x}\n")).unwrap();
    }

    fn config(&self, mapping: Option<&str>) -> DiscoveryConfig {
        let mapping_file = mapping.map(|text| {
            let p = self.dir.path().join("mapping.toml");
            std::fs::write(&p, text).unwrap();
            p
        });
        DiscoveryConfig { procfs_root: self.tree.proc_root().into(), sysfs_root: self.sys_dir(), libvirt_dirs: vec![self.run_dir(), self.etc_dir()], mapping_file }
    }

    fn discovery(&self, mapping: Option<&str>) -> Discovery {
        Discovery::new(self.config(mapping)).unwrap()
    }
}

fn by_name<'a>(vms: &'a [DiscoveredVm], name: &str) -> &'a DiscoveredVm {
    vms.iter().find(|v| &*v.info.name == name).unwrap_or_else(|| panic!("{name} not found in {vms:#?}"))
}

fn ticks_us(t: u64) -> u64 {
    t * 1_000_000 / clock_ticks_per_sec()
}

#[test]
fn proc_reader_reads_a_vm_process_and_sees_progress() {
    let mut h = Host::new(CgroupLayout::V2);
    let vm = FakeVm::new(4242, "web-1");
    h.tree.add_vm(&vm).unwrap();
    h.tree.add_cpu_time(4242, 50, 7).unwrap();
    let r = ProcReader::new(h.tree.proc_root());
    let a = r.read(4242).unwrap();
    assert_eq!(a.cpu_time_us, ticks_us(2 * 50 + 7));
    assert_eq!(a.vcpu_time_us, Some(ticks_us(100)));
    assert_eq!(a.rss_bytes, 1024 << 20);
    assert_eq!((a.io_read_bytes, a.io_write_bytes), (Some(4096 * 50), Some(512 * 7)));
    assert_eq!(*a.threads, [4242, 4243, 4244, 4245, 4246]);
    assert!(r.is_alive(4242, a.start_time_ticks));

    // Many reads, so the cached thread classification is exercised and re-checked.
    for _ in 0..40 {
        h.tree.add_cpu_time(4242, 1, 1).unwrap();
        let b = r.read(4242).unwrap();
        assert!(b.cpu_time_us >= a.cpu_time_us && b.vcpu_time_us >= a.vcpu_time_us);
    }
    let b = r.read(4242).unwrap();
    assert_eq!(b.cpu_time_us, ticks_us(2 * 90 + 47));
    assert_eq!(b.vcpu_time_us, Some(ticks_us(180)));
}

#[test]
fn held_files_see_progress_and_new_threads() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(4242, "web-1")).unwrap();
    let r = ProcReader::new(h.tree.proc_root()).with_held_files(true);
    assert!(!ProcReader::new(h.tree.proc_root()).holds_files(), "a fixture tree is not procfs");
    assert_eq!(r.read(4242).unwrap().vcpu_time_us, Some(0));
    h.tree.add_cpu_time(4242, 10, 3).unwrap();
    let s = r.read(4242).unwrap();
    assert_eq!((s.cpu_time_us, s.vcpu_time_us), (ticks_us(23), Some(ticks_us(20))));
    // A vCPU hot-plugged: the thread count in stat changes, so threads are listed again.
    h.tree.add_thread(4242, 4300, "CPU 2/KVM").unwrap();
    h.tree.add_cpu_time(4242, 5, 0).unwrap();
    let s = r.read(4242).unwrap();
    assert_eq!(*s.threads, [4242, 4243, 4244, 4245, 4246, 4300]);
    assert_eq!(s.vcpu_time_us, Some(ticks_us(30 + 5)));
    // And unplugged: its time is no longer a vCPU's.
    h.tree.remove_thread(4242, 4244).unwrap();
    let s = r.read(4242).unwrap();
    assert_eq!(*s.threads, [4242, 4243, 4245, 4246, 4300]);
    assert_eq!(s.vcpu_time_us, Some(ticks_us(15 + 5)));
    assert_eq!(s.cpu_time_us, ticks_us(35 + 3));
}

#[test]
fn vcpu_time_falls_back_to_stat_without_schedstat() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(500, "old-kernel")).unwrap();
    h.tree.add_cpu_time(500, 7, 0).unwrap();
    for tid in [502, 503] {
        std::fs::remove_file(h.tree.proc_root().join(format!("500/task/{tid}/schedstat"))).unwrap();
    }
    let r = ProcReader::new(h.tree.proc_root());
    assert_eq!(r.read(500).unwrap().vcpu_time_us, Some(ticks_us(14)));
    h.tree.add_cpu_time(500, 1, 0).unwrap();
    assert_eq!(r.read(500).unwrap().vcpu_time_us, Some(ticks_us(16)));
}

#[test]
fn proc_reader_without_debug_threads_or_io() {
    let mut h = Host::new(CgroupLayout::V2);
    let mut vm = FakeVm::new(100, "plain");
    vm.debug_threads = false;
    h.tree.add_vm(&vm).unwrap();
    std::fs::remove_file(h.tree.proc_root().join("100/io")).unwrap();
    let s = ProcReader::new(h.tree.proc_root()).read(100).unwrap();
    assert_eq!((s.vcpu_time_us, s.io_read_bytes, s.io_write_bytes), (None, None, None));
}

#[test]
fn vanished_and_reused_pids() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(300, "a")).unwrap();
    let r = ProcReader::new(h.tree.proc_root());
    let before = r.read(300).unwrap();
    h.tree.remove(300).unwrap();
    let e = r.read(300).unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert!(!r.is_alive(300, before.start_time_ticks));
    h.tree.add_process(300, &["/bin/sleep", "100"]).unwrap();
    assert!(!r.is_alive(300, before.start_time_ticks), "a reused PID has a later start time");
    assert!(r.read(300).unwrap().start_time_ticks > before.start_time_ticks);
}

#[test]
fn malformed_proc_files_name_the_file() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(700, "bad")).unwrap();
    let r = ProcReader::new(h.tree.proc_root());
    let cases: [(&str, &[u8], &str); 7] = [
        ("stat", b"700 (qemu-system-x86) S 1 700 700 0 -1 4194560 1000 0 0 0 12", "field 15"),
        ("stat", b"\xff\xfe garbage", "UTF-8"),
        ("stat", b"", "'('"),
        ("io", b"rchar: 1\nread_bytes: lots\nwrite_bytes: 1\n", "read_bytes"),
        ("io", b"read_bytes: \xff\xfe\nwrite_bytes: 1\n", "read_bytes"),
        ("io", b"rchar: 1\nread_bytes: 5\n", "truncated"),
        ("task/702/stat", b"702 (CPU 0/KVM) S 1", "field 14"),
    ];
    for (file, bytes, what) in cases {
        h.tree.add_vm(&FakeVm::new(700, "bad")).unwrap();
        h.tree.write_raw(700, file, bytes).unwrap();
        let e = r.read(700).unwrap_err();
        assert!(matches!(e, Error::Parse { .. }) && e.sensor() == "procfs", "{file}: {e:?}");
        let msg = e.to_string();
        assert!(msg.contains(&format!("700/{file}")) && msg.contains(what), "{file}: {msg}");
    }
}

#[test]
fn cgroup_reads_in_every_layout() {
    for layout in [CgroupLayout::V2, CgroupLayout::V1, CgroupLayout::Hybrid] {
        let mut h = Host::new(layout);
        let vm = FakeVm::new(4242, "web-1");
        h.tree.add_vm(&vm).unwrap();
        h.tree.add_cpu_time(4242, 30, 0).unwrap();
        let mut d = h.discovery(None);
        let scan = d.scan();
        assert!(scan.errors.is_empty(), "{:?}", scan.errors);
        let cg = scan.vms[0].cgroup.clone().expect("a machine scope");
        assert_eq!(cg.path, libvirt_scope(242, "web-1"));
        assert_eq!(cg.path, "/machine.slice/machine-qemu\\x2d242\\x2dweb\\x2d1.scope");
        let expect_version = if layout == CgroupLayout::V2 { CgroupVersion::V2 } else { CgroupVersion::V1 };
        assert_eq!(cg.version, expect_version, "{layout:?}");

        let reader = CgroupReader::new(h.tree.sys_root());
        assert_eq!(reader.status().state, SensorState::Ok);
        let s = reader.read(&cg).unwrap();
        assert_eq!(s.cpu_usage_us, Some(ticks_us(60)), "{layout:?}");
        assert_eq!(s.memory_bytes, Some((1024 << 20) + (8 << 20)), "{layout:?}");
        assert_eq!(reader.v2_dir(&cg).is_some(), layout == CgroupLayout::V2, "{layout:?}");

        if layout == CgroupLayout::Hybrid {
            // The v2 view of a hybrid host lives under fs/cgroup/unified and has no memory controller.
            let v2 = CgroupRef { version: CgroupVersion::V2, path: cg.path.clone() };
            let dir = reader.v2_dir(&v2).unwrap();
            assert!(dir.starts_with(h.tree.sys_root().join("fs/cgroup/unified")));
            assert_eq!(reader.read(&v2).unwrap(), fairwatt_collector::proc::CgroupStats { cpu_usage_us: Some(ticks_us(60)), memory_bytes: None });
        }
        h.tree.remove(4242).unwrap();
        assert!(reader.read(&cg).unwrap_err().is_not_found(), "{layout:?}");
    }
}

#[test]
fn cgroup_garbage_and_escape_attempts() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(10, "g")).unwrap();
    let scope = libvirt_scope(10, "g");
    let dir = h.tree.cgroup_dirs(&scope).remove(0);
    std::fs::write(dir.join("cpu.stat"), "usage_usec twelve\n").unwrap();
    let reader = CgroupReader::new(h.tree.sys_root());
    let e = reader.read(&CgroupRef { version: CgroupVersion::V2, path: scope.clone() }).unwrap_err();
    assert_eq!(e.sensor(), "cgroup");
    assert!(e.to_string().contains("cpu.stat") && e.to_string().contains("twelve"), "{e}");
    let e = reader.read(&CgroupRef { version: CgroupVersion::V2, path: "/../../etc".into() }).unwrap_err();
    assert!(matches!(e, Error::Parse { .. }), "{e}");
    assert_eq!(CgroupReader::new(&h.dir.path().join("nowhere")).status().state, SensorState::Missing);
}

#[test]
fn finds_qemu_processes_and_ignores_the_rest() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_process(1, &["/sbin/init"]).unwrap();
    h.tree.add_process(2, &[]).unwrap();
    h.tree.add_process(3, &["/usr/bin/qemu-img", "convert", "a", "b"]).unwrap();
    h.tree.add_vm(&FakeVm::new(1000, "web-1")).unwrap();
    let mut noname = FakeVm::new(2000, "x");
    noname.uuid = None;
    noname.scope = None;
    h.tree.add_vm(&noname).unwrap();
    h.tree.add_process(3000, &["/usr/libexec/qemu-kvm", "-name", "legacy", "-m", "1G", "-smp", "4", "-device", "vfio-pci,host=5e:00.0"]).unwrap();

    let mut d = h.discovery(None);
    let scan = d.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(scan.vms.len(), 3, "{:#?}", scan.vms);
    let web = by_name(&scan.vms, "web-1");
    assert_eq!(web.info.id.as_str(), fake_uuid(1000));
    assert_eq!(web.pid, 1000);
    let f = web.info.flavor.unwrap();
    assert_eq!((f.vcpus, f.memory_mib, f.gpus), (2, 2048, 0));
    assert_eq!(web.info.tenant, None);
    let x = by_name(&scan.vms, "x");
    assert_eq!(x.info.id.as_str(), "name-x");
    assert_eq!(x.cgroup, None, "a login session is not the VM's own cgroup");
    let legacy = by_name(&scan.vms, "legacy");
    assert_eq!(legacy.passthrough_gpus, vec!["0000:5e:00.0".to_string()]);
    let f = legacy.info.flavor.unwrap();
    assert_eq!((f.vcpus, f.memory_mib, f.gpus), (4, 1024, 1));
    assert!(d.is_alive(1000, web.start_time_ticks));
    let st = d.status();
    assert_eq!(st[0].sensor, "discovery");
    assert_eq!(st[0].state, SensorState::Ok, "{}", st[0]);
    assert!(st[0].detail.contains("3 QEMU/KVM VMs"), "{}", st[0]);
}

#[test]
fn libvirt_xml_metadata_hostdev_and_staleness() {
    let mut h = Host::new(CgroupLayout::V2);
    let vm = FakeVm::new(1000, "train-7");
    h.tree.add_vm(&vm).unwrap();
    let mut live = LibvirtDomain::from_vm(&vm);
    live.vcpus = 8;
    live.memory_mib = 65536;
    live.tenant = Some("acme".into());
    live.hostdevs = vec!["0000:3B:00.0".into(), "0000:af:00.0".into()];
    live.live = true;
    live.write(&h.run_dir()).unwrap();
    // The persistent definition says otherwise; the live state wins.
    let mut persistent = LibvirtDomain::from_vm(&vm);
    persistent.tenant = Some("someone-else".into());
    persistent.write(&h.etc_dir()).unwrap();

    let mut d = h.discovery(None);
    let scan = d.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let t = by_name(&scan.vms, "train-7");
    assert_eq!(t.info.tenant.as_ref().unwrap().as_str(), "acme");
    let f = t.info.flavor.unwrap();
    assert_eq!((f.vcpus, f.memory_mib, f.gpus), (8, 65536, 2));
    assert_eq!(t.passthrough_gpus, vec!["0000:3b:00.0".to_string(), "0000:af:00.0".to_string()]);

    // Explicit metadata GPU count wins over the device count.
    live.gpus = Some(1);
    live.write(&h.run_dir()).unwrap();
    // A /run file of another domain with the same name (stale) is skipped for /etc.
    let mut stale = live.clone();
    stale.uuid = Some(fake_uuid(999_999));
    stale.write(&h.run_dir()).unwrap();
    let scan = d.scan();
    assert_eq!(by_name(&scan.vms, "train-7").info.tenant.as_ref().unwrap().as_str(), "someone-else");
    live.uuid = vm.uuid.clone();
    live.write(&h.run_dir()).unwrap();
    let scan = d.scan();
    assert_eq!(by_name(&scan.vms, "train-7").info.flavor.unwrap().gpus, 1);

    // Malformed XML: reported, and the VM is still found from its command line.
    std::fs::write(h.run_dir().join("train-7.xml"), "<domain><vcpu>many</vcpu></domain>").unwrap();
    std::fs::remove_file(h.etc_dir().join("train-7.xml")).unwrap();
    let scan = d.scan();
    assert_eq!(scan.errors.len(), 1);
    let msg = scan.errors[0].to_string();
    assert!(msg.contains("discovery") && msg.contains("train-7.xml") && msg.contains("vcpu"), "{msg}");
    assert_eq!(by_name(&scan.vms, "train-7").info.flavor.unwrap().vcpus, 2);
    assert_eq!(d.status()[0].state, SensorState::Degraded);
}

const MAPPING: &str = r#"
[[vm]]
match = "web-1"
tenant = "mapped"
vcpus = 16
memory_mib = 99
gpus = 3

[[vm]]
match = "FA1E0000-0000-4000-8000-0000000007D0"  # pid 2000's UUID, upper case
tenant = "by-uuid"
"#;

#[test]
fn mapping_file_fills_only_what_libvirt_lacks() {
    let mut h = Host::new(CgroupLayout::V2);
    let web = FakeVm::new(1000, "web-1");
    h.tree.add_vm(&web).unwrap();
    let db = FakeVm::new(2000, "db");
    h.tree.add_vm(&db).unwrap();
    let mut bare = FakeVm::new(3000, "web-1-clone");
    bare.uuid = None;
    h.tree.add_vm(&bare).unwrap();
    h.tree.add_process(4000, &["qemu-system-x86_64", "-name", "guest=web-1"]).unwrap();

    // db has metadata with a tenant: the mapping's tenant is ignored.
    let mut x = LibvirtDomain::from_vm(&db);
    x.tenant = Some("meta".into());
    x.write(&h.etc_dir()).unwrap();
    let mut d = h.discovery(Some(MAPPING));
    let scan = d.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(by_name(&scan.vms, "db").info.tenant.as_ref().unwrap().as_str(), "meta");
    // web-1 has no XML: tenant and GPUs from the mapping, vCPUs and memory from the command line.
    let w = scan.vms.iter().find(|v| v.pid == 1000).unwrap();
    assert_eq!(w.info.tenant.as_ref().unwrap().as_str(), "mapped");
    let f = w.info.flavor.unwrap();
    assert_eq!((f.vcpus, f.memory_mib, f.gpus), (2, 2048, 3));
    // No -smp/-m on the command line: the mapping's flavor applies.
    let bare_found = scan.vms.iter().find(|v| v.pid == 4000).unwrap();
    let f = bare_found.info.flavor.unwrap();
    assert_eq!((f.vcpus, f.memory_mib), (16, 99));
    assert_eq!(by_name(&scan.vms, "web-1-clone").info.tenant, None);

    // Without metadata, db's tenant comes from the UUID entry.
    std::fs::remove_file(h.etc_dir().join("db.xml")).unwrap();
    let scan = d.scan();
    assert_eq!(by_name(&scan.vms, "db").info.tenant.as_ref().unwrap().as_str(), "by-uuid");
}

#[test]
fn malformed_mapping_file_names_file_and_line() {
    let h = Host::new(CgroupLayout::V2);
    let e = Discovery::new(h.config(Some("[[vm]]\nmatch = \"a\"\nvcpus = -2\n"))).err().unwrap();
    assert!(matches!(e, Error::Config { .. }));
    let msg = e.to_string();
    assert!(msg.contains("mapping.toml") && msg.contains("line 3"), "{msg}");
    let mut cfg = h.config(None);
    cfg.mapping_file = Some(h.dir.path().join("absent.toml"));
    assert!(Discovery::new(cfg).err().unwrap().to_string().contains("absent.toml"));
}

/// Rescans reuse a VM assembled earlier only while its XML is unchanged:
/// a same-size rewrite, an XML that appears and one that goes all show on
/// the next scan, and a bad tenant is reported on every scan.
#[test]
fn rescans_follow_every_xml_change() {
    let mut h = Host::new(CgroupLayout::V2);
    let vm = FakeVm::new(1000, "db-1");
    h.tree.add_vm(&vm).unwrap();
    let mut d = h.discovery(None);
    let tenant = |d: &mut Discovery| by_name(&d.scan().vms, "db-1").info.tenant.as_ref().map(|t| t.as_str().to_string());
    assert_eq!(tenant(&mut d), None);
    assert_eq!(tenant(&mut d), None);
    let mut x = LibvirtDomain::from_vm(&vm);
    x.tenant = Some("acme".into());
    x.write(&h.run_dir()).unwrap();
    assert_eq!(tenant(&mut d).as_deref(), Some("acme"));
    x.tenant = Some("acmf".into());
    x.write(&h.run_dir()).unwrap();
    assert_eq!(tenant(&mut d).as_deref(), Some("acmf"));
    assert_eq!(tenant(&mut d).as_deref(), Some("acmf"));
    x.vcpus = 6;
    x.write(&h.run_dir()).unwrap();
    assert_eq!(by_name(&d.scan().vms, "db-1").info.flavor.unwrap().vcpus, 6);
    x.tenant = Some("not/a/tenant".into());
    x.write(&h.run_dir()).unwrap();
    for _ in 0..2 {
        let scan = d.scan();
        assert!(scan.errors.iter().any(|e| e.to_string().contains("fairwatt:tenant")), "{:?}", scan.errors);
        assert_eq!(by_name(&scan.vms, "db-1").info.tenant, None);
    }
    std::fs::remove_file(h.run_dir().join("db-1.xml")).unwrap();
    let scan = d.scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    assert_eq!(by_name(&scan.vms, "db-1").info.flavor.unwrap().vcpus, vm.vcpus);
}

#[test]
fn vms_appear_and_vanish_between_scans() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(1000, "a")).unwrap();
    let mut d = h.discovery(None);
    let names = |d: &mut Discovery| d.scan().vms.into_iter().map(|v| v.info.name.to_string()).collect::<Vec<_>>();
    assert_eq!(names(&mut d), ["a"]);
    h.tree.add_vm(&FakeVm::new(2000, "b")).unwrap();
    let mut got = names(&mut d);
    got.sort();
    assert_eq!(got, ["a", "b"]);
    h.tree.remove(1000).unwrap();
    assert_eq!(names(&mut d), ["b"]);
    // PID 2000 reused by another VM: a new identity, a new start time.
    let first = d.scan().vms.remove(0);
    h.tree.remove(2000).unwrap();
    h.tree.add_vm(&FakeVm { uuid: Some(fake_uuid(77)), ..FakeVm::new(2000, "c") }).unwrap();
    let again = d.scan().vms.remove(0);
    assert_eq!(again.pid, 2000);
    assert_ne!(again.info.id, first.info.id);
    assert!(!d.is_alive(2000, first.start_time_ticks) && d.is_alive(2000, again.start_time_ticks));
}

#[test]
fn a_process_half_gone_is_skipped_and_unreadable_files_are_errors() {
    let mut h = Host::new(CgroupLayout::V2);
    h.tree.add_vm(&FakeVm::new(1000, "ok")).unwrap();
    h.tree.add_vm(&FakeVm::new(2000, "exiting")).unwrap();
    h.tree.add_vm(&FakeVm::new(3000, "garbled")).unwrap();
    // Exiting: cmdline still there, stat gone.
    std::fs::remove_file(h.tree.proc_root().join("2000/stat")).unwrap();
    h.tree.write_raw(3000, "stat", b"3000 (qemu").unwrap();
    let mut d = h.discovery(None);
    let scan = d.scan();
    assert_eq!(scan.vms.iter().map(|v| &*v.info.name).collect::<Vec<_>>(), ["ok"]);
    assert_eq!(scan.errors.len(), 1, "{:?}", scan.errors);
    assert!(scan.errors[0].to_string().contains("3000/stat"), "{}", scan.errors[0]);
}

#[test]
fn missing_procfs_is_an_error_status() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = DiscoveryConfig { procfs_root: dir.path().join("none"), sysfs_root: dir.path().join("none"), libvirt_dirs: vec![], mapping_file: None };
    let mut d = Discovery::new(cfg).unwrap();
    assert_eq!(d.status()[0].state, SensorState::Error);
    let scan = d.scan();
    assert!(scan.vms.is_empty() && scan.errors.len() == 1);
    assert_eq!(d.status()[0].state, SensorState::Error);
}

/// The per-tick cost the agent pays: one `ProcReader::read` per VM.
/// Prints the time; asserts only a bound loose enough for a slow CI disk.
#[test]
fn generated_host_is_discovered_and_read_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let tree = generate(&dir.path().join("proc"), &dir.path().join("sys"), 100).unwrap();
    let cfg = DiscoveryConfig { procfs_root: tree.proc_root().into(), sysfs_root: "/nonexistent".into(), libvirt_dirs: vec![], mapping_file: None };
    let mut d = Discovery::new(cfg).unwrap();
    let scan = d.scan();
    assert_eq!(scan.vms.len(), 100);
    assert!(scan.errors.is_empty());
    let r = ProcReader::new(tree.proc_root());
    let cg = CgroupReader::new(tree.sys_root());
    let pids: HashSet<u32> = scan.vms.iter().map(|v| v.pid).collect();
    let tick = |n: usize| {
        let t = std::time::Instant::now();
        for _ in 0..n {
            for v in &scan.vms {
                r.read(v.pid).unwrap();
                cg.read(v.cgroup.as_ref().unwrap()).unwrap();
            }
        }
        t.elapsed() / n as u32
    };
    tick(1);
    let per_tick = tick(10);
    r.retain(&pids);
    eprintln!("100 VMs (fixture tree, debug build, files opened by path): {per_tick:?} per tick");
    assert!(per_tick.as_millis() < 500, "{per_tick:?}");
}

#[test]
fn passed_through_nics_and_drives_are_not_gpus() {
    let mut h = Host::new(CgroupLayout::V2);
    let vm = FakeVm::new(1000, "mixed-devices");
    h.tree.add_vm(&vm).unwrap();
    let mut live = LibvirtDomain::from_vm(&vm);
    live.hostdevs = vec!["0000:3b:00.0".into(), "0000:af:00.0".into(), "0000:d8:00.0".into(), "0000:5e:00.0".into(), "0000:86:00.0".into()];
    live.live = true;
    live.write(&h.run_dir()).unwrap();
    h.pci_device("0000:3b:00.0", 0x030200); // 3D controller (a data-centre GPU)
    h.pci_device("0000:af:00.0", 0x020000); // Ethernet controller
    h.pci_device("0000:d8:00.0", 0x010802); // NVMe drive
    h.pci_device("0000:86:00.0", 0x120000); // processing accelerator
    // 0000:5e:00.0 has no sysfs entry: its class is unknown, so it counts.
    let scan = h.discovery(None).scan();
    assert!(scan.errors.is_empty(), "{:?}", scan.errors);
    let v = by_name(&scan.vms, "mixed-devices");
    assert_eq!(v.passthrough_gpus, vec!["0000:3b:00.0".to_string(), "0000:5e:00.0".to_string(), "0000:86:00.0".to_string()]);
    assert_eq!(v.info.flavor.unwrap().gpus, 3);
    assert_eq!(fairwatt_collector::discovery::pci_is_gpu(&h.sys_dir(), "0000:af:00.0"), Some(false));
    h.pci_device("0000:00:02.0", 0x030000);
    assert_eq!(fairwatt_collector::discovery::pci_is_gpu(&h.sys_dir(), "0000:00:02.0"), Some(true));
    std::fs::write(h.sys_dir().join("bus/pci/devices/0000:00:02.0/class"), "garbage").unwrap();
    assert_eq!(fairwatt_collector::discovery::pci_is_gpu(&h.sys_dir(), "0000:00:02.0"), None);
}

proptest::proptest! {
    #[test]
    fn pci_class_files_of_any_content_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40), class in 0u32..0x100_0000) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("bus/pci/devices/0000:01:00.0");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("class"), &bytes).unwrap();
        let _ = fairwatt_collector::discovery::pci_is_gpu(dir.path(), "0000:01:00.0");
        std::fs::write(d.join("class"), format!("{class:#08x}\n")).unwrap();
        let gpu = fairwatt_collector::discovery::pci_is_gpu(dir.path(), "0000:01:00.0");
        proptest::prop_assert_eq!(gpu, Some(matches!(class >> 16, 0x03 | 0x12)));
    }
}
