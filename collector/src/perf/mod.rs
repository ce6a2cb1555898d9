//! Per-VM hardware and software performance counters (perf_event_open).
//!
//! Energy models want cycles, instructions and LLC traffic per VM; on most
//! virtual machines (this one included) the PMU is not exposed and only the
//! software task-clock works, so the [`PerfSampler`] degrades to it and says
//! so. The syscall sits behind [`PerfBackend`]: [`RealPerf`] uses the
//! perf-event crate, [`FakePerf`] scripts counts and failures for tests.

mod fake;
mod real;
mod sampler;

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};

pub use fake::FakePerf;
pub use real::RealPerf;
pub use sampler::{PerfDelta, PerfSampler};

/// The sensor label of everything in this module.
pub const SENSOR: &str = "perf";

/// Where the kernel's perf permission knob lives; named in every denial.
pub const PARANOID_PATH: &str = "/proc/sys/kernel/perf_event_paranoid";

/// The events fairwatt counts. The first four need a PMU; task-clock is
/// kernel software and works nearly everywhere.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PerfEvent {
    Cycles,
    Instructions,
    CacheReferences,
    CacheMisses,
    /// Nanoseconds on CPU.
    TaskClock,
}

impl PerfEvent {
    pub const ALL: [PerfEvent; 5] =
        [PerfEvent::Cycles, PerfEvent::Instructions, PerfEvent::CacheReferences, PerfEvent::CacheMisses, PerfEvent::TaskClock];
    pub const HARDWARE: [PerfEvent; 4] =
        [PerfEvent::Cycles, PerfEvent::Instructions, PerfEvent::CacheReferences, PerfEvent::CacheMisses];

    pub fn is_hardware(self) -> bool {
        self != PerfEvent::TaskClock
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PerfEvent::Cycles => "cycles",
            PerfEvent::Instructions => "instructions",
            PerfEvent::CacheReferences => "cache-references",
            PerfEvent::CacheMisses => "cache-misses",
            PerfEvent::TaskClock => "task-clock",
        }
    }
}

impl fmt::Display for PerfEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What one counter observes.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PerfTarget {
    /// One thread (a QEMU vCPU or I/O thread), on any CPU.
    Thread(u32),
    /// Every task in a cgroup v2 directory, on one CPU: the kernel counts a
    /// cgroup only per CPU, so a VM needs one counter per online CPU.
    Cgroup { dir: PathBuf, cpu: u32 },
}

impl fmt::Display for PerfTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PerfTarget::Thread(tid) => write!(f, "thread {tid}"),
            PerfTarget::Cgroup { dir, cpu } => write!(f, "cgroup {} on cpu {cpu}", dir.display()),
        }
    }
}

/// Opens counters. One backend serves every VM of the host.
pub trait PerfBackend: Send {
    /// Opens `ev` on `target`, already counting. Errors follow [`open_error`]'s
    /// mapping so the sampler can tell "unsupported" from "denied" from "gone".
    fn open(&mut self, target: &PerfTarget, ev: PerfEvent) -> Result<Box<dyn PerfCounter>>;
}

/// One open counter; closed when dropped.
pub trait PerfCounter: Send {
    /// The count since the counter was opened (estimated where the kernel
    /// multiplexed the PMU).
    fn read(&mut self) -> Result<u64>;
}

/// Maps a failed `perf_event_open` to the error variant the sampler acts on:
/// [`Error::PermissionDenied`] (perf is off for us: paranoid setting or
/// capabilities), [`Error::NotAvailable`] (this event does not exist here),
/// [`Error::Io`] with kind `NotFound` (the thread exited), else [`Error::Device`].
pub fn open_error(target: &PerfTarget, ev: PerfEvent, e: std::io::Error) -> Error {
    let what = format!("perf_event_open({ev} on {target})");
    match e.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => {
            let now = std::fs::read_to_string(PARANOID_PATH).map(|s| s.trim().to_string()).unwrap_or_else(|_| "?".into());
            Error::PermissionDenied {
                sensor: SENSOR,
                path: PARANOID_PATH.into(),
                hint: format!(
                    "{what} denied: run the agent as root or with CAP_PERFMON, or set {PARANOID_PATH} \
                     (now {now}) to 0 or lower to count other processes"
                ),
            }
        }
        Some(libc::ENOENT) | Some(libc::EOPNOTSUPP) | Some(libc::ENODEV) | Some(libc::ENOSYS) => Error::NotAvailable {
            sensor: SENSOR,
            reason: format!("{what}: event not supported on this host ({e})"),
        },
        Some(libc::ESRCH) => match target {
            PerfTarget::Thread(tid) => Error::Io {
                sensor: SENSOR,
                path: format!("/proc/{tid}").into(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, format!("{what}: thread has exited")),
            },
            PerfTarget::Cgroup { .. } => Error::Device { sensor: SENSOR, msg: format!("{what} failed: {e}") },
        },
        _ => Error::Device { sensor: SENSOR, msg: format!("{what} failed: {e}") },
    }
}
