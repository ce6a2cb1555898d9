//! What [`super::ProcReader`] keeps about one process between ticks: its
//! files, held open on a real procfs, and which threads are vCPUs.
//!
//! Re-reading an open procfs file with `pread` costs a fraction of
//! open+read+close, and a file held open belongs to its process for good:
//! once that process exits, reads fail with ESRCH even if the PID is reused.
//! On other filesystems (fixture trees) deleted files stay readable, so
//! there files are opened by path on every read.
//!
//! On the host's own procfs the process's CPU time comes from its kernel
//! CPU clock and its RSS from `statm` ([`Main::Clock`]), which together cost
//! a third of formatting and parsing all of `stat`; `stat` is then read only
//! once, for the start time.

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// A file read once per tick.
pub(super) enum Src {
    Held(File, PathBuf),
    Path(PathBuf),
}

impl Src {
    pub fn open(path: PathBuf, hold: bool) -> io::Result<Src> {
        if hold { File::open(&path).map(|f| Src::Held(f, path)) } else { Ok(Src::Path(path)) }
    }

    pub fn path(&self) -> &std::path::Path {
        match self {
            Src::Held(_, p) | Src::Path(p) => p,
        }
    }

    pub fn is_held(&self) -> bool {
        matches!(self, Src::Held(..))
    }

    pub fn unhold(&mut self) {
        if let Src::Held(_, p) = self {
            *self = Src::Path(std::mem::take(p));
        }
    }

    /// Reads the whole file from its start into `buf`; returns its length.
    /// `buf` is only grown, never shrunk, so steady-state reads do not allocate.
    pub fn read(&self, buf: &mut Vec<u8>) -> io::Result<usize> {
        match self {
            Src::Path(p) => {
                buf.clear();
                File::open(p)?.read_to_end(buf)
            }
            Src::Held(f, _) => {
                if buf.len() < 4096 {
                    buf.resize(4096, 0);
                }
                let mut n = 0;
                loop {
                    let got = f.read_at(&mut buf[n..], n as u64)?;
                    n += got;
                    // procfs returns a whole record per read, so a short
                    // read is the end; saves the read that would return 0.
                    if n < buf.len() {
                        return Ok(n);
                    }
                    let grown = buf.len() * 2;
                    buf.resize(grown, 0);
                }
            }
        }
    }
}

/// A vCPU thread's CPU time source.
pub(super) struct Vcpu {
    pub tid: u32,
    pub src: Src,
    /// `src` is `schedstat` (run time in ns) rather than `stat` (clock ticks).
    pub schedstat: bool,
}

/// Where a process's CPU time and RSS come from on each tick.
pub(super) enum Main {
    /// `stat`, parsed whole: by path (fixture trees, over the descriptor
    /// budget) or held (a procfs of another PID namespace).
    Stat(Src),
    /// The kernel's process CPU clock (`clock_gettime` on the PID's
    /// CPU-time clock: one syscall, no text) and `statm` for RSS, held open;
    /// `task` is `/proc/PID/task`, whose link count is the thread count plus
    /// two. A clock is named by PID number, so it alone cannot tell a reused
    /// PID; the held `statm` can: it is read after the clock, and a read that
    /// succeeds proves the process was alive, so its PID not yet reused,
    /// when the clock was read. Only on the procfs of our own PID namespace.
    Clock { clock: libc::clockid_t, statm: Src, task: File, stat_path: PathBuf },
}

pub(super) struct Handle {
    pub start_time_ticks: u64,
    pub main: Main,
    /// `None` once the file proved unreadable (another user's process without root) or absent.
    pub io: Option<Src>,
    pub num_threads: u64,
    /// Shared with every [`super::ProcStats`] handed out, so a tick does not copy it.
    pub threads: Arc<[u32]>,
    pub vcpus: Vec<Vcpu>,
    pub non_vcpu: HashSet<u32>,
    pub reads: u32,
    /// The CPU time last reported, µs. A clock handle that goes back to
    /// `stat` (over the descriptor budget) would otherwise step back by up
    /// to two clock ticks (stat truncates), which reads as a counter reset.
    pub cpu_floor_us: u64,
    /// Reused by every read of this process.
    pub buf: Vec<u8>,
}

impl Handle {
    pub fn new(main: Main, io: Option<Src>) -> Self {
        Handle { start_time_ticks: 0, main, io, num_threads: 0, threads: Arc::from([]), vcpus: Vec::new(), non_vcpu: HashSet::new(), reads: 0, cpu_floor_us: 0, buf: Vec::new() }
    }

    /// File descriptors this handle keeps open.
    pub fn fds(&self) -> usize {
        let main = match &self.main {
            Main::Stat(s) => usize::from(s.is_held()),
            Main::Clock { .. } => 2,
        };
        main + self.io.as_ref().map_or(0, |s| usize::from(s.is_held())) + self.vcpus.iter().filter(|v| v.src.is_held()).count()
    }

    /// Closes the files, keeping the paths, when the descriptor budget is
    /// spent. Without a held file the clock could read a reused PID, so a
    /// clock handle goes back to `stat` by path (its start time checked each read).
    pub fn unhold(&mut self) {
        match &mut self.main {
            Main::Stat(s) => s.unhold(),
            Main::Clock { stat_path, .. } => self.main = Main::Stat(Src::Path(std::mem::take(stat_path))),
        }
        if let Some(io) = &mut self.io {
            io.unhold();
        }
        for v in &mut self.vcpus {
            v.src.unhold();
        }
    }

    /// Forgets the threads, as when a PID turns out to be a new process.
    pub fn reset_threads(&mut self) {
        self.threads = Arc::from([]);
        self.vcpus.clear();
        self.non_vcpu.clear();
        self.num_threads = 0;
        self.reads = 0;
        self.cpu_floor_us = 0;
    }
}

/// The thread count from a held `/proc/PID/task` directory (`fstat`: its
/// link count is two plus the threads); `None` if it says nothing useful.
pub(super) fn thread_count(task: &File) -> Option<u64> {
    use std::os::fd::AsRawFd;
    // SAFETY: fstat writes into `st`; the descriptor is owned by `task`.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::fstat(task.as_raw_fd(), &mut st) };
    #[allow(clippy::unnecessary_cast)] // st_nlink's width differs between targets
    let n = st.st_nlink as u64;
    (rc == 0 && n > 2).then(|| n - 2)
}

/// The CPU time of the whole process behind `clock` in ns: the scheduler's
/// run time summed over its threads, dead ones included, which is what
/// `stat`'s utime + stime are scaled to (at clock-tick resolution).
pub(super) fn clock_ns(clock: libc::clockid_t) -> io::Result<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into `ts`.
    if unsafe { libc::clock_gettime(clock, &mut ts) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((ts.tv_sec as u64).saturating_mul(1_000_000_000).saturating_add(ts.tv_nsec as u64))
}

/// The CPU-time clock of process `pid` (`clock_getcpuclockid`, which also
/// checks the process exists).
pub(super) fn process_clock(pid: u32) -> io::Result<libc::clockid_t> {
    let mut clock: libc::clockid_t = 0;
    // SAFETY: writes the clock id into `clock`.
    let rc = unsafe { libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) };
    if rc != 0 {
        return Err(io::Error::from_raw_os_error(rc));
    }
    Ok(clock)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn held_reads_see_rewrites_and_grow_the_buffer() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        let big: String = (0..2000).map(|i| format!("{i} ")).collect();
        std::fs::write(&p, &big).unwrap();
        let src = Src::open(p.clone(), true).unwrap();
        let mut buf = Vec::new();
        let n = src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], big.as_bytes());
        std::fs::write(&p, "short\n").unwrap();
        let n = src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"short\n");
        let mut path_src = Src::open(p, true).unwrap();
        path_src.unhold();
        assert!(!path_src.is_held());
        let n = path_src.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"short\n");
    }
}
