//! Per-process statistics of VM processes from procfs, and their cgroups.
//!
//! [`ProcReader`] reads one QEMU process per call: CPU time of the whole
//! process and of its vCPU threads, RSS, block IO and the start time that
//! tells a live process from a reused PID. [`cgroup::CgroupReader`] reads the
//! VM's cgroup scope. Both take a root directory so tests and benchmarks read
//! a fixture tree ([`crate::fixture::proc`]) instead of the host.

pub mod cgroup;
mod handle;
pub mod stat;

use std::collections::{HashMap, HashSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

pub use cgroup::{CgroupReader, CgroupRef, CgroupStats, CgroupVersion};

use self::handle::{Handle, Main, Src, Vcpu};

use crate::error::{Error, Result};

const SENSOR: &str = "procfs";

/// A process's statistics at one instant; counters are cumulative since it started.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcStats {
    /// User + system time of all threads of the process, µs: from the
    /// process's CPU clock (ns) on the host's procfs, else from `stat` in
    /// whole clock ticks.
    pub cpu_time_us: u64,
    /// Run time of the threads QEMU named `CPU N/KVM` (with
    /// `debug-threads=on`), µs; `None` when no thread carries such a name.
    /// Taken from their `schedstat` (ns) where the kernel has it; where
    /// `cpu_time_us` is in whole clock ticks this may exceed it by up to a
    /// tick, so subtract saturating.
    pub vcpu_time_us: Option<u64>,
    pub rss_bytes: u64,
    /// Bytes read from storage (`/proc/PID/io`); `None` when the file is not
    /// readable, which for other users' processes needs root.
    pub io_read_bytes: Option<u64>,
    pub io_write_bytes: Option<u64>,
    /// Clock ticks after boot at which the process started: with the PID it
    /// identifies a process, so a reused PID is not mistaken for the VM.
    pub start_time_ticks: u64,
    /// Thread ids, ascending. Re-listed when the thread count changes and
    /// every 32 reads, so a thread replaced by another may show for a while.
    pub threads: Arc<[u32]>,
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of `stat` times.
pub fn clock_ticks_per_sec() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if v > 0 { v as u64 } else { 100 }
}

/// The page size, the unit of `stat`'s RSS.
pub fn page_size() -> u64 {
    // SAFETY: sysconf only reads a configuration value.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 { v as u64 } else { 4096 }
}

/// Every this many reads (and whenever the thread count changes) the
/// thread list is read again and new threads are classified.
const RELIST_EVERY: u32 = 32;
/// Every this many reads threads already judged not to be vCPUs are judged
/// again, in case one was first seen before QEMU named it.
const RECLASSIFY_EVERY: u32 = 256;

/// A hash map keyed by PID. PIDs are small integers the kernel hands out,
/// not attacker-chosen keys, so a multiplicative hash does; SipHash was a
/// visible share of a tick with a lookup per VM and per /proc entry.
pub(crate) type PidMap<V> = HashMap<u32, V, std::hash::BuildHasherDefault<PidHasher>>;

#[derive(Default)]
pub(crate) struct PidHasher(u64);

impl std::hash::Hasher for PidHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u32(&mut self, n: u32) {
        // Odd multiplier: distinct PIDs keep distinct low bits (the bucket).
        self.0 = (self.0 ^ u64::from(n)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[derive(Default)]
struct Cache {
    handles: PidMap<Handle>,
    held_fds: usize,
}

/// Reads [`ProcStats`] of processes under a procfs root.
///
/// It remembers, per PID, the process's files and which threads are vCPUs,
/// so a tick costs a few cheap syscalls per VM (see `proc/handle.rs`); call
/// [`ProcReader::retain`] after discovery so stopped VMs are forgotten.
pub struct ProcReader {
    root: PathBuf,
    ticks_per_sec: u64,
    page_size: u64,
    hold_files: bool,
    /// `root` is the procfs of our PID namespace, so its PIDs name the
    /// processes whose CPU clocks `clock_gettime` reads.
    own_procfs: bool,
    max_held_fds: usize,
    cache: Mutex<Cache>,
}

impl ProcReader {
    /// Files are held open only where `procfs_root` is a real procfs, whose
    /// open files fail once their process exits.
    pub fn new(procfs_root: &Path) -> Self {
        ProcReader {
            root: procfs_root.to_path_buf(),
            ticks_per_sec: clock_ticks_per_sec(),
            page_size: page_size(),
            hold_files: is_procfs(procfs_root),
            own_procfs: is_own_procfs(procfs_root),
            max_held_fds: fd_budget(),
            cache: Mutex::new(Cache::default()),
        }
    }

    /// Overrides whether files are held open between reads (for tests and
    /// benchmarks of the fast path on a fixture tree, where a removed
    /// process then stays readable).
    pub fn with_held_files(mut self, hold: bool) -> Self {
        self.hold_files = hold;
        self
    }

    pub fn holds_files(&self) -> bool {
        self.hold_files
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Reads one process. A process that is gone yields an error whose
    /// [`Error::is_not_found`] is true.
    pub fn read(&self, pid: u32) -> Result<ProcStats> {
        let mut c = self.lock();
        let c = &mut *c;
        let h = match c.handles.entry(pid) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                let h = self.open(pid)?;
                c.held_fds += h.fds();
                e.insert(h)
            }
        };
        let before = h.fds();
        let r = self.sample(pid, h);
        let after = h.fds();
        c.held_fds = (c.held_fds + after).saturating_sub(before);
        if r.is_err() {
            // Gone, or unreadable: the next read starts afresh.
            if let Some(h) = c.handles.remove(&pid) {
                c.held_fds = c.held_fds.saturating_sub(h.fds());
            }
        } else if c.held_fds > self.max_held_fds {
            let h = c.handles.get_mut(&pid).expect("just sampled");
            h.unhold();
            c.held_fds = c.held_fds.saturating_sub(after - h.fds());
        }
        r
    }

    /// The start time of a process, the cheap check that a PID still is the
    /// process discovery found.
    pub fn start_time(&self, pid: u32) -> Result<u64> {
        let path = self.root.join(pid.to_string()).join("stat");
        let mut buf = String::with_capacity(512);
        read_into(&path, &mut buf)?;
        stat::parse_stat(&buf).map(|s| s.start_time_ticks).map_err(|m| Error::parse(SENSOR, &path, m))
    }

    /// True when `pid` is running and is the process that started at `start_time_ticks`.
    pub fn is_alive(&self, pid: u32, start_time_ticks: u64) -> bool {
        matches!(self.start_time(pid), Ok(t) if t == start_time_ticks)
    }

    /// Forgets (and closes the files of) processes not in `live`.
    pub fn retain(&self, live: &HashSet<u32>) {
        let mut c = self.lock();
        c.handles.retain(|pid, _| live.contains(pid));
        c.held_fds = c.handles.values().map(Handle::fds).sum();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        // The cache holds no invariant a panicking reader could break.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn open(&self, pid: u32) -> Result<Handle> {
        let dir = self.root.join(pid.to_string());
        let io_path = dir.join("io");
        let io = match Src::open(io_path.clone(), self.hold_files) {
            Ok(s) => Some(s),
            Err(e) => match io_err(&io_path, e) {
                // Unreadable without root; absent without task IO accounting.
                Error::PermissionDenied { .. } => None,
                e if e.is_not_found() => None,
                e => return Err(e),
            },
        };
        if self.hold_files && self.own_procfs {
            match self.open_clock(pid, &dir) {
                Ok(mut h) => {
                    h.io = io;
                    return Ok(h);
                }
                Err(e) if e.is_not_found() => return Err(e),
                // Anything else (a kernel without process CPU clocks): `stat`.
                Err(e) => tracing::debug!(pid, error = %e, "process CPU clock unusable, reading stat"),
            }
        }
        let stat = Src::open(dir.join("stat"), self.hold_files).map_err(|e| io_err(&dir.join("stat"), e))?;
        Ok(Handle::new(Main::Stat(stat), io))
    }

    /// A handle that reads the CPU clock and `statm`. The start time is read
    /// once, from `stat`, after the held files are open: the first read of
    /// the held `statm` then proves it was this process's.
    fn open_clock(&self, pid: u32, dir: &Path) -> Result<Handle> {
        let statm = Src::open(dir.join("statm"), true).map_err(|e| io_err(&dir.join("statm"), e))?;
        let task_path = dir.join("task");
        let task = std::fs::File::open(&task_path).map_err(|e| io_err(&task_path, e))?;
        let clock = handle::process_clock(pid).map_err(|e| {
            if e.raw_os_error() == Some(libc::ESRCH) {
                io_err(dir, e)
            } else {
                Error::Device { sensor: SENSOR, msg: format!("no CPU clock for process {pid}: {e}") }
            }
        })?;
        let stat_path = dir.join("stat");
        let mut text = String::with_capacity(512);
        read_into(&stat_path, &mut text)?;
        let st = stat::parse_stat(&text).map_err(|m| Error::parse(SENSOR, &stat_path, m))?;
        let mut h = Handle::new(Main::Clock { clock, statm, task, stat_path }, None);
        h.start_time_ticks = st.start_time_ticks;
        Ok(h)
    }

    fn sample(&self, pid: u32, h: &mut Handle) -> Result<ProcStats> {
        let mut buf = std::mem::take(&mut h.buf);
        let r = self.sample_with(pid, h, &mut buf);
        h.buf = buf;
        r
    }

    /// Order matters on the clock path: everything is read before the held
    /// `statm`, whose successful read proves none of it came from another
    /// process that reused the PID; the vCPU times before the process clock,
    /// so they do not run ahead of it.
    fn sample_with(&self, pid: u32, h: &mut Handle, buf: &mut Vec<u8>) -> Result<ProcStats> {
        let (num_threads, from_stat) = match &h.main {
            Main::Stat(src) => {
                let st = stat::parse_stat(read_text(src, buf)?).map_err(|m| Error::parse(SENSOR, src.path(), m))?;
                let cpu_time_us = self.ticks_to_us(st.utime_ticks.saturating_add(st.stime_ticks));
                (st.num_threads, Some((cpu_time_us, st.rss_pages, st.start_time_ticks)))
            }
            // No count (not a procfs directory): rely on the periodic relist.
            Main::Clock { task, .. } => (handle::thread_count(task).unwrap_or(h.num_threads), None),
        };
        if let Some((_, _, start)) = from_stat {
            if h.reads > 0 && start != h.start_time_ticks {
                // Only when reading by path: the PID now names another process.
                h.reset_threads();
            }
            h.start_time_ticks = start;
        }

        if h.reads.is_multiple_of(RELIST_EVERY) || num_threads != h.num_threads {
            self.relist(pid, h, buf)?;
            h.num_threads = num_threads;
        }
        let mut vcpu_ns: Option<u64> = None;
        let mut gone = Vec::new();
        for v in &h.vcpus {
            let ns = match read_text(&v.src, buf) {
                Ok(text) if v.schedstat => stat::parse_schedstat(text).map_err(|m| Error::parse(SENSOR, v.src.path(), m))?,
                Ok(text) => {
                    let t = stat::parse_stat(text).map_err(|m| Error::parse(SENSOR, v.src.path(), m))?;
                    self.ticks_to_us(t.utime_ticks.saturating_add(t.stime_ticks)).saturating_mul(1000)
                }
                // A vCPU unplugged since the thread list was read.
                Err(e) if e.is_not_found() => {
                    gone.push(v.tid);
                    continue;
                }
                Err(e) => return Err(e),
            };
            vcpu_ns = Some(vcpu_ns.unwrap_or(0).saturating_add(ns));
        }
        if !gone.is_empty() {
            h.vcpus.retain(|v| !gone.contains(&v.tid));
            h.threads = h.threads.iter().copied().filter(|t| !gone.contains(t)).collect();
        }

        let (cpu_time_us, rss_pages) = match (&h.main, from_stat) {
            // Never below what this process was already reported at.
            (_, Some((cpu, rss, _))) => (cpu.max(h.cpu_floor_us), rss),
            (Main::Clock { clock, statm, .. }, None) => {
                let cpu_ns = handle::clock_ns(*clock);
                // A process that is gone fails here, before its clock's error counts.
                let pages = stat::parse_statm_bytes(read_raw(statm, buf)?).map_err(|m| Error::parse(SENSOR, statm.path(), m))?;
                let cpu_ns = cpu_ns.map_err(|e| Error::Device { sensor: SENSOR, msg: format!("CPU clock of process {pid}: {e}") })?;
                (cpu_ns / 1000, pages)
            }
            // Not reached: a stat handle always has its stat fields.
            (Main::Stat(src), None) => return Err(Error::parse(SENSOR, src.path(), "read without its fields")),
        };

        let mut io_bytes = (None, None);
        if let Some(src) = &h.io {
            match read_raw(src, buf) {
                Ok(bytes) => {
                    let (r, w) = stat::parse_io_bytes(bytes).map_err(|m| Error::parse(SENSOR, src.path(), m))?;
                    io_bytes = (Some(r), Some(w));
                }
                Err(Error::PermissionDenied { .. }) => h.io = None,
                Err(e) if e.is_not_found() && !src.is_held() => h.io = None,
                Err(e) => return Err(e),
            }
        }
        h.reads = h.reads.wrapping_add(1);
        h.cpu_floor_us = cpu_time_us;
        Ok(ProcStats {
            cpu_time_us,
            vcpu_time_us: vcpu_ns.map(|ns| ns / 1000),
            rss_bytes: rss_pages.saturating_mul(self.page_size),
            io_read_bytes: io_bytes.0,
            io_write_bytes: io_bytes.1,
            start_time_ticks: h.start_time_ticks,
            threads: Arc::clone(&h.threads),
        })
    }

    /// Reads the thread list and finds the vCPU threads among threads not
    /// seen before; their `schedstat` (exact run time) is kept open where the
    /// kernel has it, else their `stat`.
    fn relist(&self, pid: u32, h: &mut Handle, buf: &mut Vec<u8>) -> Result<()> {
        let task_dir = self.root.join(pid.to_string()).join("task");
        let entries = std::fs::read_dir(&task_dir).map_err(|e| io_err(&task_dir, e))?;
        let mut threads: Vec<u32> = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok()).collect();
        threads.sort_unstable();
        if h.reads.is_multiple_of(RECLASSIFY_EVERY) {
            h.non_vcpu.clear();
        }
        h.non_vcpu.retain(|t| threads.binary_search(t).is_ok());
        h.vcpus.retain(|v| threads.binary_search(&v.tid).is_ok());
        for &tid in &threads {
            if h.non_vcpu.contains(&tid) || h.vcpus.iter().any(|v| v.tid == tid) {
                continue;
            }
            let dir = task_dir.join(tid.to_string());
            let stat_src = Src::Path(dir.join("stat"));
            let is_vcpu = match read_text(&stat_src, buf) {
                Ok(text) => stat::is_vcpu_comm(stat::parse_stat(text).map_err(|m| Error::parse(SENSOR, stat_src.path(), m))?.comm),
                // A thread exiting between readdir and read is normal.
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            };
            if !is_vcpu {
                h.non_vcpu.insert(tid);
                continue;
            }
            let sched = Src::open(dir.join("schedstat"), self.hold_files).ok();
            let sched = sched.filter(|s| read_text(s, buf).ok().is_some_and(|t| stat::parse_schedstat(t).is_ok()));
            let vcpu = match sched {
                Some(src) => Vcpu { tid, src, schedstat: true },
                None => match Src::open(dir.join("stat"), self.hold_files) {
                    Ok(src) => Vcpu { tid, src, schedstat: false },
                    Err(_) => continue,
                },
            };
            h.vcpus.push(vcpu);
        }
        h.threads = threads.into();
        Ok(())
    }

    fn ticks_to_us(&self, ticks: u64) -> u64 {
        (ticks as u128 * 1_000_000 / self.ticks_per_sec as u128).min(u64::MAX as u128) as u64
    }
}

/// Reads a file and checks it is text.
fn read_text<'b>(src: &Src, buf: &'b mut Vec<u8>) -> Result<&'b str> {
    let bytes = read_raw(src, buf)?;
    std::str::from_utf8(bytes).map_err(|_| Error::parse(SENSOR, src.path(), "not valid UTF-8"))
}

/// Reads a file whose parser looks only for ASCII keys and digits.
fn read_raw<'b>(src: &Src, buf: &'b mut Vec<u8>) -> Result<&'b [u8]> {
    let n = src.read(buf).map_err(|e| io_err(src.path(), e))?;
    Ok(&buf[..n])
}

/// Whether `root` is a procfs mount, not a directory of files.
fn is_procfs(root: &Path) -> bool {
    const PROC_SUPER_MAGIC: i64 = 0x9fa0;
    fs_magic(root) == Some(PROC_SUPER_MAGIC)
}

/// Whether `root` is the procfs of our own PID namespace: its `self` names
/// this process by the PID we would pass to `clock_gettime`.
fn is_own_procfs(root: &Path) -> bool {
    is_procfs(root) && std::fs::read_link(root.join("self")).is_ok_and(|l| l.as_os_str() == std::process::id().to_string().as_str())
}

/// The magic number of the filesystem `path` is on (`statfs`).
fn fs_magic(path: &Path) -> Option<i64> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: `c` is a valid NUL-terminated path and `st` a writable statfs.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::statfs(c.as_ptr(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // f_type's width differs between libcs
    let magic = st.f_type as i64;
    (rc == 0).then_some(magic)
}

/// How many descriptors the process reader may keep open: a quarter of the
/// soft limit (the cgroup reader takes an eighth), so the rest of the agent
/// (perf events, spool, sockets) keeps its share.
fn fd_budget() -> usize {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes into `lim`.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    if rc != 0 || lim.rlim_cur == libc::RLIM_INFINITY {
        return 16_384;
    }
    (lim.rlim_cur / 4).min(1 << 20) as usize
}

/// Reads a procfs file into `buf` (replacing its contents).
pub(crate) fn read_into(path: &Path, buf: &mut String) -> Result<()> {
    buf.clear();
    let mut f = std::fs::File::open(path).map_err(|e| io_err(path, e))?;
    f.read_to_string(buf).map_err(|e| {
        if e.kind() == std::io::ErrorKind::InvalidData {
            Error::parse(SENSOR, path, "not valid UTF-8")
        } else {
            io_err(path, e)
        }
    })?;
    Ok(())
}

/// Like [`Error::io`], but a process that exited while we read it (ESRCH)
/// counts as not found, the same as a PID directory that is already gone.
pub(crate) fn io_err(path: &Path, e: std::io::Error) -> Error {
    io_err_for(SENSOR, path, e)
}

pub(crate) fn io_err_for(sensor: &'static str, path: &Path, e: std::io::Error) -> Error {
    if e.raw_os_error() == Some(libc::ESRCH) {
        return Error::io(sensor, path, std::io::Error::new(std::io::ErrorKind::NotFound, e));
    }
    Error::io(sensor, path, e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture::proc::{FakeVm, ProcTree};

    #[test]
    fn over_the_descriptor_budget_files_are_read_by_path() {
        let dir = tempfile::tempdir().unwrap();
        let mut tree = ProcTree::new(&dir.path().join("proc"), &dir.path().join("sys")).unwrap();
        tree.add_vm(&FakeVm::new(100, "a")).unwrap();
        tree.add_vm(&FakeVm::new(200, "b")).unwrap();
        let mut r = ProcReader::new(tree.proc_root()).with_held_files(true);
        r.max_held_fds = 5;
        for _ in 0..3 {
            tree.add_cpu_time(100, 1, 0).unwrap();
            tree.add_cpu_time(200, 2, 0).unwrap();
            assert_eq!(r.read(100).unwrap().vcpu_time_us, r.read(100).unwrap().vcpu_time_us);
            r.read(200).unwrap();
        }
        // a: stat + io + 2 vCPUs held; b: over budget, by path.
        assert_eq!(r.lock().held_fds, 4);
        let b = r.read(200).unwrap();
        assert_eq!(b.vcpu_time_us, Some(2 * 3 * 2 * 1_000_000 / clock_ticks_per_sec()));
        r.retain(&HashSet::from([200]));
        assert_eq!(r.lock().held_fds, 0);
    }

    /// A child process on the real /proc, killed and reaped on drop.
    struct Kid(std::process::Child);

    impl Drop for Kid {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    fn kid(script: &str) -> Kid {
        Kid(std::process::Command::new("/bin/sh").args(["-c", script]).spawn().unwrap())
    }

    fn proc_root() -> Option<&'static Path> {
        let root = Path::new("/proc");
        if is_own_procfs(root) {
            Some(root)
        } else {
            eprintln!("skipping: /proc is not this PID namespace's procfs");
            None
        }
    }

    fn is_clock(r: &ProcReader, pid: u32) -> bool {
        matches!(r.lock().handles.get(&pid).map(|h| &h.main), Some(Main::Clock { .. }))
    }

    #[test]
    fn clock_path_agrees_with_stat() {
        let Some(root) = proc_root() else { return };
        // Busy for a while, then asleep, so both readers see the same total.
        let k = kid("i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done; exec sleep 30");
        let pid = k.0.id();
        let fast = ProcReader::new(root);
        let mut slow = ProcReader::new(root);
        slow.own_procfs = false;
        std::thread::sleep(std::time::Duration::from_millis(600));
        let a = fast.read(pid).unwrap();
        let b = slow.read(pid).unwrap();
        assert!(is_clock(&fast, pid) && !is_clock(&slow, pid));
        assert_eq!(a.start_time_ticks, b.start_time_ticks);
        assert_eq!(a.start_time_ticks, fast.start_time(pid).unwrap());
        // Recent kernels sum the per-CPU RSS counters exactly for `statm`
        // and `status` but not for `stat`, whose figure may lag by a per-CPU
        // batch (even read 0 for a fresh process), so `status` is the reference.
        let status = std::fs::read_to_string(root.join(pid.to_string()).join("status")).unwrap();
        let vm_rss_kib: u64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap();
        assert!(a.rss_bytes > 0 && a.rss_bytes.abs_diff(vm_rss_kib * 1024) <= 256 << 10, "statm {} B, status {vm_rss_kib} KiB, stat {} B", a.rss_bytes, b.rss_bytes);
        assert_eq!(*a.threads, [pid]);
        assert_eq!(a.io_read_bytes.is_some(), b.io_read_bytes.is_some());
        // stat truncates each of utime and stime to whole ticks.
        let tick_us = 1_000_000 / clock_ticks_per_sec();
        assert!(a.cpu_time_us + 1000 >= b.cpu_time_us && a.cpu_time_us <= b.cpu_time_us + 2 * tick_us + 1000, "clock {} µs, stat {} µs", a.cpu_time_us, b.cpu_time_us);
        let again = fast.read(pid).unwrap();
        assert!(again.cpu_time_us >= a.cpu_time_us);
    }

    #[test]
    fn clock_path_reports_a_gone_process_as_not_found() {
        let Some(root) = proc_root() else { return };
        let mut k = kid("exec sleep 30");
        let pid = k.0.id();
        let r = ProcReader::new(root);
        r.read(pid).unwrap();
        assert!(is_clock(&r, pid));
        k.0.kill().unwrap();
        k.0.wait().unwrap();
        let e = r.read(pid).unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(r.lock().handles.is_empty(), "the dead process's handle is dropped");
    }

    /// Over the descriptor budget a clock handle falls back to `stat` by
    /// path, which checks the start time itself: reads go on, and a gone
    /// process is still "not found".
    #[test]
    fn clock_path_over_budget_reads_stat_by_path() {
        let Some(root) = proc_root() else { return };
        let mut k = kid("exec sleep 30");
        let pid = k.0.id();
        let mut r = ProcReader::new(root);
        r.max_held_fds = 1;
        let a = r.read(pid).unwrap();
        assert!(matches!(r.lock().handles.get(&pid).map(|h| &h.main), Some(Main::Stat(Src::Path(_)))));
        assert_eq!(r.lock().held_fds, 0);
        let b = r.read(pid).unwrap();
        assert_eq!((a.start_time_ticks, a.threads.clone()), (b.start_time_ticks, b.threads.clone()));
        // The first read was the clock's (ns), the second stat's (whole ticks).
        assert!(b.cpu_time_us >= a.cpu_time_us, "{} then {}", a.cpu_time_us, b.cpu_time_us);
        k.0.kill().unwrap();
        k.0.wait().unwrap();
        assert!(r.read(pid).unwrap_err().is_not_found());
    }

    /// The clock names a live process, but the held `statm` is a dead
    /// one's, as after PID reuse: the read must fail as not found, not
    /// return the live process's CPU time.
    #[test]
    fn clock_path_never_reads_a_reused_pid() {
        let Some(root) = proc_root() else { return };
        let mut dead = kid("exec sleep 30");
        let live = kid("exec sleep 30");
        let r = ProcReader::new(root);
        let dead_statm = Src::open(root.join(dead.0.id().to_string()).join("statm"), true).unwrap();
        let dead_task = std::fs::File::open(root.join(dead.0.id().to_string()).join("task")).unwrap();
        dead.0.kill().unwrap();
        dead.0.wait().unwrap();
        let clock = handle::process_clock(live.0.id()).unwrap();
        let mut h = Handle::new(Main::Clock { clock, statm: dead_statm, task: dead_task, stat_path: PathBuf::new() }, None);
        let e = r.sample(live.0.id(), &mut h).unwrap_err();
        assert!(e.is_not_found(), "{e}");
    }

    /// The clock path relists threads when the count changes, not only
    /// every RELIST_EVERY reads, and reads vCPU threads' `schedstat`.
    #[test]
    fn clock_path_finds_a_new_vcpu_thread_at_once() {
        let Some(root) = proc_root() else { return };
        let me = std::process::id();
        let r = ProcReader::new(root);
        let first = r.read(me).unwrap();
        assert!(is_clock(&r, me));
        let (tx, rx) = std::sync::mpsc::channel();
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        let t = std::thread::Builder::new()
            .name("CPU 0/KVM".into())
            .spawn(move || {
                // SAFETY: gettid has no preconditions.
                tx.send(unsafe { libc::gettid() } as u32).unwrap();
                let t0 = std::time::Instant::now();
                while t0.elapsed() < std::time::Duration::from_millis(50) {
                    std::hint::black_box(0u64);
                }
                let _ = stop_rx.recv();
            })
            .unwrap();
        let tid = rx.recv().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(80));
        let second = r.read(me).unwrap();
        stop_tx.send(()).unwrap();
        t.join().unwrap();
        assert!(!first.threads.contains(&tid) && second.threads.contains(&tid), "{tid} in {:?}", second.threads);
        let vcpu = second.vcpu_time_us.expect("the CPU 0/KVM thread is a vCPU");
        assert!(vcpu >= 1_000, "busy 50 ms, counted {vcpu} µs");
        assert!(vcpu <= second.cpu_time_us, "vCPU {vcpu} µs > process {} µs", second.cpu_time_us);
    }
}
