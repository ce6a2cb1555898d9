//! What the end-to-end tests share: the `fairwatt` binary, a generated
//! fixture host (a powercap tree and a procfs with three libvirt VMs of
//! three tenants), the spool's contents, and waiting with a deadline.
#![allow(dead_code)] // each test binary uses its own part

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fairwatt_collector::fixture::proc::{FakeVm, LibvirtDomain, ProcTree, libvirt_scope};
use fairwatt_collector::fixture::rapl::{PowercapFixture, PowercapTree};
use fairwatt_collector::spool::{Spool, SpoolConfig};
use fairwatt_core::{Domain, IntervalRecord};

pub const MAX_RANGE: u64 = 999_999_999;

pub struct Host {
    pub dir: tempfile::TempDir,
    pub rapl: PowercapFixture,
    pub procs: ProcTree,
}

impl Host {
    pub fn new() -> Host {
        let dir = tempfile::tempdir().unwrap();
        let sys = dir.path().join("sys");
        let rapl = PowercapTree::new(&sys)
            .max_energy_range_uj(MAX_RANGE)
            .package(0, 900_000_000, &[("core", 1_000), ("dram", 2_000)])
            .write()
            .unwrap();
        let mut procs = ProcTree::new(&dir.path().join("proc"), &sys).unwrap();
        let libvirt = dir.path().join("libvirt");
        std::fs::create_dir_all(&libvirt).unwrap();
        for (i, name) in ["web-1", "db-1", "batch-1"].iter().enumerate() {
            let mut vm = FakeVm::new(4000 + 16 * i as u32, name);
            vm.scope = Some(libvirt_scope(i as u32 + 1, name));
            procs.add_vm(&vm).unwrap();
            let mut dom = LibvirtDomain::from_vm(&vm);
            dom.tenant = Some(format!("tenant-{i}"));
            dom.write(&libvirt).unwrap();
        }
        procs.add_process(1, &["/sbin/init"]).unwrap();
        Host { dir, rapl, procs }
    }

    pub fn args(&self) -> Vec<String> {
        let p = |s: &str| self.dir.path().join(s).display().to_string();
        vec![
            "agent".into(),
            "--host-id".into(),
            "fixture-host".into(),
            "--sysfs-root".into(),
            p("sys"),
            "--procfs-root".into(),
            p("proc"),
            "--dev-root".into(),
            p("dev"),
            "--libvirt-dir".into(),
            p("libvirt"),
        ]
    }

    pub fn spool(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    pub fn set_energy(&self, uj: u64) {
        self.rapl.set_energy("intel-rapl:0", uj).unwrap();
    }

    /// The VMs' ids as the agent reports them, with their tenants.
    pub fn vms(&self) -> Vec<(String, String)> {
        self.procs.vms().enumerate().map(|(i, v)| (v.uuid.clone().unwrap_or_default(), format!("tenant-{i}"))).collect()
    }

    pub fn burn(&mut self, ticks: u64) {
        let pids: Vec<u32> = self.procs.vms().map(|v| v.pid).collect();
        for p in pids {
            self.procs.add_cpu_time(p, ticks, 0).unwrap();
        }
    }
}

/// `fairwatt serve` (killed when dropped) and the address it listens on.
pub struct Server {
    child: Child,
    pub addr: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `fairwatt serve --database DB --listen LISTEN EXTRA…`, once it listens.
pub fn serve(db: &str, listen: &str, extra: &[&str]) -> Server {
    let mut child = fairwatt().args(["serve", "--database", db, "--listen", listen]).args(extra).stderr(Stdio::piped()).spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    let addr = line.split("http://").nth(1).and_then(|r| r.split_whitespace().next()).unwrap_or_else(|| panic!("serve did not start: {line:?}")).to_string();
    // Keep reading so a chatty server never blocks on a full pipe.
    std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
    Server { child, addr }
}

pub fn fairwatt() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_fairwatt"));
    c.env_remove("FAIRWATT_CONFIG").env("FAIRWATT_LOG", "warn");
    c
}

/// Every record still in the spool at `dir`.
pub fn spooled(dir: &Path) -> Vec<IntervalRecord> {
    let s = Spool::open(SpoolConfig { fsync: false, ..SpoolConfig::new(dir) }).unwrap();
    s.pending(usize::MAX).unwrap()
}

pub fn package_energy(recs: &[IntervalRecord]) -> u64 {
    recs.iter().filter_map(|r| r.energy(Domain::package(0))).map(|e| e.as_uj()).sum()
}

pub fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let t0 = Instant::now();
    while !cond() {
        assert!(t0.elapsed() < Duration::from_secs(60), "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
