//! [`PerfBackend`] over the kernel's perf_event_open, through perf-event 0.4.9.

use std::fs::File;

use perf_event::events::{Event, Hardware, Software};
use perf_event::{Builder, Counter};

use super::{PerfBackend, PerfCounter, PerfEvent, PerfTarget, SENSOR, open_error};
use crate::error::{Error, Result};

/// Opens real counters.
///
/// Counters include kernel mode where allowed: with kernel mode excluded the
/// PMU also drops the guest kernel's cycles of a vCPU thread, which is work
/// the VM asked for. Where only user mode is allowed (unprivileged agent with
/// `perf_event_paranoid` 2) it falls back to user mode and remembers that.
/// Thread counters do not set `inherit`: the sampler opens a counter for each
/// thread it sees, so inheriting would count new threads twice.
#[derive(Debug, Default)]
pub struct RealPerf {
    user_only: bool,
}

impl RealPerf {
    pub fn new() -> Self {
        RealPerf::default()
    }

    /// True once kernel-mode counting was refused and counters count user mode only.
    pub fn user_only(&self) -> bool {
        self.user_only
    }
}

fn kind(ev: PerfEvent) -> Event {
    match ev {
        PerfEvent::Cycles => Hardware::CPU_CYCLES.into(),
        PerfEvent::Instructions => Hardware::INSTRUCTIONS.into(),
        PerfEvent::CacheReferences => Hardware::CACHE_REFERENCES.into(),
        PerfEvent::CacheMisses => Hardware::CACHE_MISSES.into(),
        PerfEvent::TaskClock => Software::TASK_CLOCK.into(),
    }
}

fn build(target: &PerfTarget, ev: PerfEvent, cgroup: Option<&File>, user_only: bool) -> std::io::Result<Counter> {
    let mut b = Builder::new().kind(kind(ev));
    b = match (target, cgroup) {
        (PerfTarget::Cgroup { cpu, .. }, Some(f)) => b.observe_cgroup(f).one_cpu(*cpu as usize),
        (PerfTarget::Thread(tid), _) => b.observe_pid(*tid as libc::pid_t).any_cpu(),
        // Unreachable by construction; EINVAL reads as a plain failure.
        (PerfTarget::Cgroup { .. }, None) => return Err(std::io::Error::from_raw_os_error(libc::EINVAL)),
    };
    b.exclude_kernel(user_only);
    b.build()
}

impl PerfBackend for RealPerf {
    fn open(&mut self, target: &PerfTarget, ev: PerfEvent) -> Result<Box<dyn PerfCounter>> {
        if let PerfTarget::Thread(tid) = target
            && libc::pid_t::try_from(*tid).is_err()
        {
            return Err(Error::Device { sensor: SENSOR, msg: format!("thread id {tid} out of range") });
        }
        // The kernel takes its own reference to the cgroup: the directory
        // handle is only needed while opening.
        let cgroup = match target {
            PerfTarget::Cgroup { dir, .. } => Some(File::open(dir).map_err(|e| Error::io(SENSOR, dir, e))?),
            PerfTarget::Thread(_) => None,
        };
        let mut built = build(target, ev, cgroup.as_ref(), self.user_only);
        if !self.user_only
            && let Err(e) = &built
            && matches!(e.raw_os_error(), Some(libc::EACCES) | Some(libc::EPERM))
            && let Ok(c) = build(target, ev, cgroup.as_ref(), true)
        {
            tracing::warn!(
                "perf: kernel-mode counting denied ({e}); counting user mode only, so guest kernel work is not counted"
            );
            self.user_only = true;
            built = Ok(c);
        }
        let mut counter = built.map_err(|e| open_error(target, ev, e))?;
        counter.enable().map_err(|e| open_error(target, ev, e))?;
        Ok(Box::new(RealCounter { counter, target: target.clone(), ev, last: (0, 0, 0), estimate: 0 }))
    }
}

struct RealCounter {
    counter: Counter,
    target: PerfTarget,
    ev: PerfEvent,
    /// Raw (count, time enabled, time running) at the previous read.
    last: (u64, u64, u64),
    estimate: u64,
}

impl PerfCounter for RealCounter {
    fn read(&mut self) -> Result<u64> {
        let cat = self.counter.read_count_and_time().map_err(|e| Error::Device {
            sensor: SENSOR,
            msg: format!("reading {} on {} failed: {e}", self.ev, self.target),
        })?;
        let (c0, e0, r0) = self.last;
        let dc = cat.count.saturating_sub(c0);
        let de = cat.time_enabled.saturating_sub(e0);
        let dr = cat.time_running.saturating_sub(r0);
        // Scale each step by its own enabled/running ratio rather than the
        // totals', so the estimate never goes backwards when multiplexing varies.
        let scaled = if dr == 0 || dr >= de { dc } else { (u128::from(dc) * u128::from(de) / u128::from(dr)) as u64 };
        self.last = (cat.count, cat.time_enabled, cat.time_running);
        self.estimate = self.estimate.saturating_add(scaled);
        Ok(self.estimate)
    }
}
