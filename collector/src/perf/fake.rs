//! A scripted [`PerfBackend`] for tests and fixture runs.
//!
//! Tests add to per-(target, event) totals; a counter reads the growth of its
//! total since it was opened, as a real counter counts from its opening.
//! Failures are injected by errno and go through [`open_error`], so the
//! sampler sees exactly the errors the real backend would give.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use super::{PerfBackend, PerfCounter, PerfEvent, PerfTarget, open_error};
use crate::error::Result;

#[derive(Debug, Default)]
struct State {
    totals: BTreeMap<(PerfTarget, PerfEvent), u64>,
    hardware_errno: Option<i32>,
    event_errno: BTreeMap<PerfEvent, i32>,
    all_errno: Option<i32>,
    target_errno: BTreeMap<PerfTarget, i32>,
    exited: BTreeSet<u32>,
    open_now: usize,
    opens: usize,
}

/// Scripted perf. Clones share state: keep one as a handle, box one into the sampler.
#[derive(Clone, Debug, Default)]
pub struct FakePerf {
    state: Arc<Mutex<State>>,
}

impl FakePerf {
    pub fn new() -> Self {
        FakePerf::default()
    }

    /// `target` did `n` more `ev` events.
    pub fn add(&self, target: &PerfTarget, ev: PerfEvent, n: u64) {
        let mut st = self.lock();
        let t = st.totals.entry((target.clone(), ev)).or_insert(0);
        *t = t.saturating_add(n);
    }

    /// Shorthand for a thread target.
    pub fn add_thread(&self, tid: u32, ev: PerfEvent, n: u64) {
        self.add(&PerfTarget::Thread(tid), ev, n);
    }

    /// Hardware events fail to open with `errno` (`libc::ENOENT` as on most VMs); `None` lifts it.
    pub fn fail_hardware(&self, errno: Option<i32>) {
        self.lock().hardware_errno = errno;
    }

    /// Opens of this one event fail with `errno` (a PMU that lacks some events).
    pub fn fail_event(&self, ev: PerfEvent, errno: Option<i32>) {
        let mut st = self.lock();
        match errno {
            Some(e) => st.event_errno.insert(ev, e),
            None => st.event_errno.remove(&ev),
        };
    }

    /// Every open fails with `errno` (`libc::EACCES` for a paranoid kernel); `None` lifts it.
    pub fn fail_all(&self, errno: Option<i32>) {
        self.lock().all_errno = errno;
    }

    /// Opens on this one target fail with `errno`.
    pub fn fail_target(&self, target: &PerfTarget, errno: Option<i32>) {
        let mut st = self.lock();
        match errno {
            Some(e) => st.target_errno.insert(target.clone(), e),
            None => st.target_errno.remove(target),
        };
    }

    /// The thread exited: new opens get ESRCH, open counters keep their final count.
    pub fn exit_thread(&self, tid: u32) {
        self.lock().exited.insert(tid);
    }

    /// Counters currently open (not yet dropped).
    pub fn open_counters(&self) -> usize {
        self.lock().open_now
    }

    /// Successful opens so far.
    pub fn opens(&self) -> usize {
        self.lock().opens
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl PerfBackend for FakePerf {
    fn open(&mut self, target: &PerfTarget, ev: PerfEvent) -> Result<Box<dyn PerfCounter>> {
        let mut st = self.lock();
        let errno = st
            .all_errno
            .or_else(|| st.target_errno.get(target).copied())
            .or_else(|| st.event_errno.get(&ev).copied())
            .or(if ev.is_hardware() { st.hardware_errno } else { None })
            .or(match target {
                PerfTarget::Thread(tid) if st.exited.contains(tid) => Some(libc::ESRCH),
                _ => None,
            });
        if let Some(errno) = errno {
            return Err(open_error(target, ev, std::io::Error::from_raw_os_error(errno)));
        }
        let key = (target.clone(), ev);
        let base = st.totals.get(&key).copied().unwrap_or(0);
        st.open_now += 1;
        st.opens += 1;
        drop(st);
        Ok(Box::new(FakeCounter { perf: self.clone(), key, base }))
    }
}

struct FakeCounter {
    perf: FakePerf,
    key: (PerfTarget, PerfEvent),
    base: u64,
}

impl PerfCounter for FakeCounter {
    fn read(&mut self) -> Result<u64> {
        Ok(self.perf.lock().totals.get(&self.key).copied().unwrap_or(0).saturating_sub(self.base))
    }
}

impl Drop for FakeCounter {
    fn drop(&mut self) {
        let mut st = self.perf.lock();
        st.open_now = st.open_now.saturating_sub(1);
    }
}
