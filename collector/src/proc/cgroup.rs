//! A VM's cgroup: which one it is (from `/proc/PID/cgroup`) and its CPU and
//! memory usage (from the cgroup filesystem, v1, v2 or the hybrid layout).
//!
//! libvirt puts each VM in a systemd machine scope and then moves the QEMU
//! main thread into `libvirt/emulator` and vCPU threads into `libvirt/vcpuN`
//! below it; the scope counts them all, so that is the cgroup we keep.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use fairwatt_core::SensorStatus;

use super::handle::Src;

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
///
/// On a real cgroup filesystem the statistics files stay open between
/// reads (a `pread` instead of open+read+close; a removed cgroup's files
/// then fail with ENODEV); call [`CgroupReader::retain`] after discovery.
pub struct CgroupReader {
    cgroup_root: PathBuf,
    v2_base: PathBuf,
    cpuacct_base: PathBuf,
    memory_base: PathBuf,
    hold_v2: bool,
    hold_v1: bool,
    max_held_fds: usize,
    cache: Mutex<(HashMap<CgroupRef, Files>, usize)>,
}

/// One statistics file of a cgroup.
struct StatFile {
    dir: PathBuf,
    /// `None`: the file does not exist (controller not enabled).
    src: Option<Src>,
    /// A missing `dir` means the cgroup is gone (rather than a controller unmounted).
    primary: bool,
}

struct Files {
    cpu: StatFile,
    mem: StatFile,
    buf: Vec<u8>,
}

impl Files {
    fn fds(&self) -> usize {
        [&self.cpu, &self.mem].iter().filter(|f| f.src.as_ref().is_some_and(Src::is_held)).count()
    }
}

const MAX_CACHED: usize = 16_384;

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
        const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
        const CGROUP_SUPER_MAGIC: i64 = 0x0027_e0eb;
        CgroupReader {
            hold_v2: super::fs_magic(&v2_base) == Some(CGROUP2_SUPER_MAGIC),
            hold_v1: super::fs_magic(&cpuacct_base) == Some(CGROUP_SUPER_MAGIC),
            memory_base: cg.join("memory"),
            cgroup_root: cg,
            v2_base,
            cpuacct_base,
            max_held_fds: super::fd_budget() / 2,
            cache: Mutex::new((HashMap::new(), 0)),
        }
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
        let taken = {
            let mut c = self.lock();
            let f = c.0.remove(cg);
            c.1 = c.1.saturating_sub(f.as_ref().map_or(0, Files::fds));
            f
        };
        let mut files = match taken {
            Some(f) => f,
            None => self.open(cg)?,
        };
        let mut buf = std::mem::take(&mut files.buf);
        let cpu = read_stat(&mut files.cpu, &mut buf, |s| match cg.version {
            CgroupVersion::V2 => usage_usec(s),
            CgroupVersion::V1 => parse_u64(s.trim()).map(|ns| ns / 1000).ok_or("expected an unsigned integer"),
        })?;
        let mem = read_stat(&mut files.mem, &mut buf, |s| parse_u64(s.trim()).ok_or("expected an unsigned integer"))?;
        files.buf = buf;
        let mut c = self.lock();
        if c.0.len() >= MAX_CACHED {
            c.0.clear();
            c.1 = 0;
        }
        if c.1 + files.fds() > self.max_held_fds {
            for f in [&mut files.cpu, &mut files.mem] {
                if let Some(s) = &mut f.src {
                    s.unhold();
                }
            }
        }
        c.1 += files.fds();
        c.0.insert(cg.clone(), files);
        Ok(CgroupStats { cpu_usage_us: cpu, memory_bytes: mem })
    }

    /// Forgets (and closes the files of) cgroups not in `live`.
    pub fn retain(&self, live: &HashSet<CgroupRef>) {
        let mut c = self.lock();
        c.0.retain(|cg, _| live.contains(cg));
        c.1 = c.0.values().map(Files::fds).sum();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (HashMap<CgroupRef, Files>, usize)> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self, cg: &CgroupRef) -> Result<Files> {
        let bad_path = || Error::parse(SENSOR, &self.cgroup_root, format!("cgroup path {:?} is not an absolute path inside the hierarchy", truncate(&cg.path, 80)));
        let (cpu_dir, cpu_file, mem_dir, mem_file, hold) = match cg.version {
            CgroupVersion::V2 => {
                let dir = join_rel(&self.v2_base, &cg.path).ok_or_else(bad_path)?;
                (dir.clone(), "cpu.stat", dir, "memory.current", self.hold_v2)
            }
            CgroupVersion::V1 => {
                let cpu = join_rel(&self.cpuacct_base, &cg.path).ok_or_else(bad_path)?;
                let mem = join_rel(&self.memory_base, &cg.path).ok_or_else(bad_path)?;
                (cpu, "cpuacct.usage", mem, "memory.usage_in_bytes", self.hold_v1)
            }
        };
        let open = |dir: PathBuf, file: &str, primary: bool| -> Result<StatFile> {
            let path = dir.join(file);
            match Src::open(path.clone(), hold) {
                Ok(src) => Ok(StatFile { dir, src: Some(src), primary }),
                Err(e) => {
                    absent_or_gone(&dir, &path, primary, e)?;
                    Ok(StatFile { dir, src: None, primary })
                }
            }
        };
        Ok(Files { cpu: open(cpu_dir, cpu_file, true)?, mem: open(mem_dir, mem_file, false)?, buf: Vec::new() })
    }
}

/// Reads and parses one statistics file; see [`CgroupReader::read`].
fn read_stat(f: &mut StatFile, buf: &mut Vec<u8>, parse: impl Fn(&str) -> Result<u64, &'static str>) -> Result<Option<u64>> {
    let Some(src) = &f.src else { return Ok(None) };
    match src.read(buf) {
        Ok(n) => {
            let text = std::str::from_utf8(&buf[..n]).map_err(|_| Error::parse(SENSOR, src.path(), "not valid UTF-8"))?;
            parse(text).map(Some).map_err(|m| Error::parse(SENSOR, src.path(), format!("{m}: {:?}", truncate(text.trim(), 40))))
        }
        Err(e) => {
            let path = src.path().to_path_buf();
            absent_or_gone(&f.dir, &path, f.primary, e)?;
            f.src = None;
            Ok(None)
        }
    }
}

/// Sorts out a failure to open or read a statistics file: `Ok` if only the
/// file is missing, not-found if the cgroup is gone, else the error.
fn absent_or_gone(dir: &Path, file: &Path, primary: bool, e: std::io::Error) -> Result<()> {
    // A held file of a removed cgroup reads ENODEV.
    let missing = e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ENODEV);
    if !missing {
        return Err(Error::io(SENSOR, file, e));
    }
    if primary && !dir.is_dir() {
        return Err(Error::io(SENSOR, dir, std::io::Error::new(std::io::ErrorKind::NotFound, "cgroup removed")));
    }
    Ok(())
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
