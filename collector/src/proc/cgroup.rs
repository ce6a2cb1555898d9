//! A VM's cgroup: which one it is (from `/proc/PID/cgroup`) and its CPU and
//! memory usage (from the cgroup filesystem, v1, v2 or the hybrid layout).
//!
//! libvirt puts each VM in a systemd machine scope and then moves the QEMU
//! main thread into `libvirt/emulator` and vCPU threads into `libvirt/vcpuN`
//! below it; the scope counts them all, so that is the cgroup we keep.

use std::path::{Path, PathBuf};

use fairwatt_core::SensorStatus;

use crate::error::{Error, Result};
use crate::fsutil::{parse_u64, truncate};

const SENSOR: &str = "cgroup";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// A cgroup, by hierarchy and path relative to that hierarchy's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CgroupRef {
    pub version: CgroupVersion,
    /// As in `/proc/PID/cgroup`, starting with `/`, systemd escapes kept
    /// (`/machine.slice/machine-qemu\x2d1\x2dweb.scope`): they are part of the directory name.
    pub path: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CgroupStats {
    /// Cumulative CPU usage of all tasks in the cgroup, µs.
    pub cpu_usage_us: Option<u64>,
    pub memory_bytes: Option<u64>,
}

/// Picks the VM's cgroup from the text of `/proc/PID/cgroup`.
///
/// A v1 `cpuacct` line wins over the v2 line: on a hybrid host the v2
/// hierarchy carries no controllers. The path is cut after the VM's machine
/// scope (`machine-*.scope` under systemd, `*.libvirt-qemu` without it);
/// a process in no machine scope gets `None`, because its cgroup (a login
/// session, a container) holds other processes and would overstate the VM.
pub fn parse_proc_cgroup(text: &str) -> Option<CgroupRef> {
    let mut v1 = None;
    let mut v2 = None;
    for line in text.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next()) else { continue };
        if id == "0" && controllers.is_empty() {
            v2 = Some(path);
        } else if controllers.split(',').any(|c| c == "cpuacct") {
            v1 = Some(path);
        }
    }
    let (version, path) = match (v1, v2) {
        (Some(p), _) => (CgroupVersion::V1, p),
        (None, Some(p)) => (CgroupVersion::V2, p),
        (None, None) => return None,
    };
    machine_scope(path).map(|path| CgroupRef { version, path })
}

/// `path` cut after its machine-scope component, or `None` if it has none
/// or tries to climb out of the hierarchy.
pub fn machine_scope(path: &str) -> Option<String> {
    if !path.starts_with('/') {
        return None;
    }
    let mut end = 0;
    for comp in path.split('/').skip(1) {
        if comp == ".." || comp == "." {
            return None;
        }
        end += 1 + comp.len();
        let is_scope = comp.starts_with("machine-") && comp.ends_with(".scope");
        if is_scope || comp.ends_with(".libvirt-qemu") {
            return Some(path[..end].to_string());
        }
    }
    None
}

/// Reads cgroup statistics under a sysfs root (`/sys` on a host).
pub struct CgroupReader {
    cgroup_root: PathBuf,
    v2_base: PathBuf,
    cpuacct_base: PathBuf,
    memory_base: PathBuf,
}

impl CgroupReader {
    /// Looks at the layout once: the v2 hierarchy is `fs/cgroup/unified` on a
    /// hybrid host and `fs/cgroup` otherwise; v1 cpuacct may be mounted
    /// jointly with cpu (`cpu,cpuacct`).
    pub fn new(sysfs_root: &Path) -> Self {
        let cg = sysfs_root.join("fs/cgroup");
        let unified = cg.join("unified");
        let v2_base = if unified.is_dir() { unified } else { cg.clone() };
        let cpuacct_base = ["cpuacct", "cpu,cpuacct", "cpuacct,cpu"]
            .iter()
            .map(|d| cg.join(d))
            .find(|p| p.is_dir())
            .unwrap_or_else(|| cg.join("cpuacct"));
        CgroupReader { memory_base: cg.join("memory"), cgroup_root: cg, v2_base, cpuacct_base }
    }

    /// Which hierarchies exist, for the agent's start-up report.
    pub fn status(&self) -> SensorStatus {
        let v2 = self.v2_base.join("cgroup.controllers").is_file();
        let v1 = self.cpuacct_base.is_dir();
        match (v1, v2) {
            (true, true) => SensorStatus::ok(SENSOR, format!("hybrid: v1 cpuacct at {}, v2 at {}", self.cpuacct_base.display(), self.v2_base.display())),
            (false, true) => SensorStatus::ok(SENSOR, format!("v2 at {}", self.v2_base.display())),
            (true, false) => SensorStatus::ok(SENSOR, format!("v1 cpuacct at {}", self.cpuacct_base.display())),
            (false, false) => SensorStatus::missing(SENSOR, format!("no cgroup hierarchy under {}; per-VM cgroup CPU and memory are not reported", self.cgroup_root.display())),
        }
    }

    /// The cgroup's directory in the v2 hierarchy (what perf's cgroup mode
    /// opens); `None` for a v1 cgroup or one whose directory does not exist.
    pub fn v2_dir(&self, cg: &CgroupRef) -> Option<PathBuf> {
        if cg.version != CgroupVersion::V2 {
            return None;
        }
        let dir = join_rel(&self.v2_base, &cg.path)?;
        dir.is_dir().then_some(dir)
    }

    /// A missing statistics file is `None`; a missing cgroup (the VM
    /// stopped) is an error whose [`Error::is_not_found`] is true.
    pub fn read(&self, cg: &CgroupRef) -> Result<CgroupStats> {
        let bad_path = || Error::parse(SENSOR, &self.cgroup_root, format!("cgroup path {:?} is not an absolute path inside the hierarchy", truncate(&cg.path, 80)));
        match cg.version {
            CgroupVersion::V2 => {
                let dir = join_rel(&self.v2_base, &cg.path).ok_or_else(bad_path)?;
                let cpu = optional(&dir, &dir.join("cpu.stat"), |s| usage_usec(s))?;
                let mem = optional(&dir, &dir.join("memory.current"), |s| parse_u64(s.trim()).ok_or("expected an unsigned integer"))?;
                Ok(CgroupStats { cpu_usage_us: cpu, memory_bytes: mem })
            }
            CgroupVersion::V1 => {
                let cpu_dir = join_rel(&self.cpuacct_base, &cg.path).ok_or_else(bad_path)?;
                let cpu_ns = optional(&cpu_dir, &cpu_dir.join("cpuacct.usage"), |s| parse_u64(s.trim()).ok_or("expected an unsigned integer"))?;
                let mem_dir = join_rel(&self.memory_base, &cg.path).ok_or_else(bad_path)?;
                // The memory controller may be unmounted while cpuacct is there.
                let mem = if mem_dir.is_dir() {
                    optional(&mem_dir, &mem_dir.join("memory.usage_in_bytes"), |s| parse_u64(s.trim()).ok_or("expected an unsigned integer"))?
                } else {
                    None
                };
                Ok(CgroupStats { cpu_usage_us: cpu_ns.map(|ns| ns / 1000), memory_bytes: mem })
            }
        }
    }
}

fn join_rel(base: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.strip_prefix('/')?;
    if rel.split('/').any(|c| c == ".." || c == ".") {
        return None;
    }
    Some(if rel.is_empty() { base.to_path_buf() } else { base.join(rel) })
}

/// `usage_usec` from a v2 `cpu.stat`.
pub fn usage_usec(s: &str) -> Result<u64, &'static str> {
    for line in s.lines() {
        if let Some(v) = line.strip_prefix("usage_usec ") {
            return parse_u64(v.trim()).ok_or("usage_usec is not an unsigned integer");
        }
    }
    Err("no usage_usec line")
}

/// Reads and parses a statistics file: `None` if the file is missing but
/// the cgroup directory exists, not-found if the directory is gone too.
fn optional<T>(dir: &Path, file: &Path, parse: impl Fn(&str) -> Result<T, &'static str>) -> Result<Option<T>> {
    match std::fs::read_to_string(file) {
        Ok(s) => parse(&s).map(Some).map_err(|m| Error::parse(SENSOR, file, format!("{m}: {:?}", truncate(s.trim(), 40)))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dir.is_dir() {
                Ok(None)
            } else {
                Err(Error::io(SENSOR, dir, e))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => Err(Error::parse(SENSOR, file, "not valid UTF-8")),
        Err(e) => Err(Error::io(SENSOR, file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn picks_the_machine_scope() {
        let v2 = "0::/machine.slice/machine-qemu\\x2d1\\x2dweb.scope/libvirt/emulator\n";
        let r = parse_proc_cgroup(v2).unwrap();
        assert_eq!(r, CgroupRef { version: CgroupVersion::V2, path: "/machine.slice/machine-qemu\\x2d1\\x2dweb.scope".into() });
        let hybrid = "12:memory:/machine.slice/machine-qemu\\x2d2\\x2ddb.scope/libvirt/emulator\n4:cpu,cpuacct:/machine.slice/machine-qemu\\x2d2\\x2ddb.scope/libvirt/emulator\n1:name=systemd:/machine.slice/machine-qemu\\x2d2\\x2ddb.scope\n0::/machine.slice/machine-qemu\\x2d2\\x2ddb.scope/libvirt/emulator\n";
        let r = parse_proc_cgroup(hybrid).unwrap();
        assert_eq!(r.version, CgroupVersion::V1);
        assert_eq!(r.path, "/machine.slice/machine-qemu\\x2d2\\x2ddb.scope");
        let nosystemd = "3:cpuacct:/machine/qemu-3-batch.libvirt-qemu/emulator\n";
        assert_eq!(parse_proc_cgroup(nosystemd).unwrap().path, "/machine/qemu-3-batch.libvirt-qemu");
        assert_eq!(parse_proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n"), None);
        assert_eq!(parse_proc_cgroup("0::/../machine-x.scope\n"), None);
        assert_eq!(parse_proc_cgroup("garbage"), None);
    }

    #[test]
    fn cpu_stat() {
        assert_eq!(usage_usec("usage_usec 123\nuser_usec 100\nsystem_usec 23\n"), Ok(123));
        assert!(usage_usec("user_usec 100\n").is_err());
        assert!(usage_usec("usage_usec -1\n").is_err());
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = parse_proc_cgroup(&s);
            let _ = usage_usec(&s);
            let _ = machine_scope(&s);
        }
    }
}
