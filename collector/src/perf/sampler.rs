//! Keeps each VM's counters open between intervals and turns their
//! cumulative counts into per-interval deltas.
//!
//! A VM is counted through its cgroup when the caller gives one (one counter
//! per online CPU and event; threads that come and go inside the cgroup are
//! all counted), else through one counter per thread. What the host cannot
//! do is learned once and remembered: hardware events that do not exist are
//! not tried again, and a host where perf is denied stops trying altogether
//! (fixing `perf_event_paranoid` needs an agent restart to take effect).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use fairwatt_core::{PerfSource, SensorStatus, VmId};

use super::{PerfBackend, PerfCounter, PerfEvent, PerfTarget, SENSOR};
use crate::error::Error;

/// A VM's counts over one interval: the growth since the previous
/// [`PerfSampler::read`] of the same VM.
///
/// A field is `None` when no counter of that event was open at both reads:
/// always on a VM's first read (which only opens the counters), and for the
/// hardware fields on hosts without a PMU. In per-thread mode a thread is
/// counted from the read that first saw it; a thread that exits is read once
/// more (the kernel keeps an exited thread's final count) and then closed,
/// so only what a thread did before its first read is lost. Cgroup mode loses
/// nothing to thread churn.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PerfDelta {
    pub cycles: Option<u64>,
    pub instructions: Option<u64>,
    pub cache_references: Option<u64>,
    pub cache_misses: Option<u64>,
    pub task_clock_ns: Option<u64>,
}

impl PerfDelta {
    fn add(&mut self, ev: PerfEvent, n: u64) {
        let f = match ev {
            PerfEvent::Cycles => &mut self.cycles,
            PerfEvent::Instructions => &mut self.instructions,
            PerfEvent::CacheReferences => &mut self.cache_references,
            PerfEvent::CacheMisses => &mut self.cache_misses,
            PerfEvent::TaskClock => &mut self.task_clock_ns,
        };
        *f = Some(f.unwrap_or(0).saturating_add(n));
    }
}

struct Open {
    counter: Box<dyn PerfCounter>,
    last: u64,
}

#[derive(Default)]
struct VmCounters {
    counters: BTreeMap<(PerfTarget, PerfEvent), Open>,
    /// Counting the cgroup failed once: this VM is counted per thread from now on.
    cgroup_failed: bool,
}

/// How one open failure bears on the host, the VM or just this target.
enum Failure {
    Denied,
    Unsupported,
    Gone,
    Other,
}

fn classify(e: &Error) -> Failure {
    match e {
        Error::PermissionDenied { .. } => Failure::Denied,
        Error::NotAvailable { .. } => Failure::Unsupported,
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Failure::Gone,
        _ => Failure::Other,
    }
}

/// Per-VM perf counters over one [`PerfBackend`].
pub struct PerfSampler {
    backend: Box<dyn PerfBackend>,
    vms: BTreeMap<VmId, VmCounters>,
    /// Events this host does not have; never tried again.
    unsupported: BTreeSet<PerfEvent>,
    /// Perf is off for this agent (EACCES/EPERM before anything worked).
    denied: Option<String>,
    hardware_seen: bool,
    opened_any: bool,
    errors: Vec<Error>,
}

impl PerfSampler {
    /// Probes the backend on the agent's own process, so that [`status`]
    /// says at start-up whether hardware counters exist here.
    ///
    /// [`status`]: PerfSampler::status
    pub fn new(backend: Box<dyn PerfBackend>) -> Self {
        let mut s = PerfSampler {
            backend,
            vms: BTreeMap::new(),
            unsupported: BTreeSet::new(),
            denied: None,
            hardware_seen: false,
            opened_any: false,
            errors: Vec::new(),
        };
        s.probe();
        s
    }

    /// Opens and closes each event on the agent's main thread and remembers
    /// what the host supports. Returns what a VM would get.
    pub fn probe(&mut self) -> PerfSource {
        let me = PerfTarget::Thread(std::process::id());
        for ev in PerfEvent::ALL {
            if self.denied.is_some() || self.unsupported.contains(&ev) {
                continue;
            }
            match self.backend.open(&me, ev) {
                Ok(_) => self.note_opened(ev),
                Err(e) => self.note_failure(e, &me, ev),
            }
        }
        self.host_source()
    }

    /// The growth of `vm`'s counters since its previous read. `cgroup` is the
    /// VM's cgroup v2 directory (absolute) and the online CPUs; when given, it
    /// is preferred to `tids`. Errors are kept for [`take_errors`].
    ///
    /// [`take_errors`]: PerfSampler::take_errors
    pub fn read(&mut self, vm: &VmId, tids: &[u32], cgroup: Option<(&Path, &[u32])>) -> (PerfSource, PerfDelta) {
        if self.denied.is_some() {
            self.vms.remove(vm);
            return (PerfSource::None, PerfDelta::default());
        }
        let mut state = self.vms.remove(vm).unwrap_or_default();
        let targets = self.targets(&mut state, tids, cgroup);
        let wanted: BTreeSet<(PerfTarget, PerfEvent)> = targets
            .iter()
            .flat_map(|t| PerfEvent::ALL.into_iter().map(move |ev| (t.clone(), ev)))
            .filter(|(_, ev)| !self.unsupported.contains(ev))
            .collect();

        // Read every open counter before closing the unwanted ones: an exited
        // thread's counter still holds its final count.
        let mut delta = PerfDelta::default();
        let mut close = Vec::new();
        for (key, open) in state.counters.iter_mut() {
            match open.counter.read() {
                Ok(v) => {
                    delta.add(key.1, v.saturating_sub(open.last));
                    open.last = v;
                }
                Err(e) => {
                    self.errors.push(e);
                    close.push(key.clone());
                    continue;
                }
            }
            if !wanted.contains(key) {
                close.push(key.clone());
            }
        }
        for key in close {
            state.counters.remove(&key);
        }

        // Task-clock first: if even that fails for a target, hardware will too.
        for (target, ev) in wanted.iter().filter(|k| k.1 == PerfEvent::TaskClock).chain(wanted.iter().filter(|k| k.1.is_hardware())) {
            if self.denied.is_some() {
                break;
            }
            if state.counters.contains_key(&(target.clone(), *ev)) || self.unsupported.contains(ev) {
                continue;
            }
            self.open_into(&mut state, target, *ev);
        }
        if self.denied.is_some() {
            return (PerfSource::None, PerfDelta::default());
        }
        let source = if state.counters.keys().any(|k| k.1.is_hardware()) {
            PerfSource::Hardware
        } else if state.counters.is_empty() {
            PerfSource::None
        } else {
            PerfSource::Software
        };
        self.vms.insert(vm.clone(), state);
        (source, delta)
    }

    /// Closes the counters of VMs not in `live`.
    pub fn retain(&mut self, live: &[VmId]) {
        let live: BTreeSet<&VmId> = live.iter().collect();
        self.vms.retain(|id, _| live.contains(id));
    }

    /// Errors since the previous call (failed opens and reads), oldest first.
    pub fn take_errors(&mut self) -> Vec<Error> {
        std::mem::take(&mut self.errors)
    }

    /// Counters open now, over all VMs (each holds a file descriptor).
    pub fn open_counters(&self) -> usize {
        self.vms.values().map(|v| v.counters.len()).sum()
    }

    /// One `perf` status: hardware, software task-clock only, or why there is nothing.
    pub fn status(&self) -> Vec<SensorStatus> {
        let hw_missing: Vec<&str> =
            PerfEvent::HARDWARE.iter().filter(|ev| self.unsupported.contains(ev)).map(|ev| ev.as_str()).collect();
        let st = if let Some(why) = &self.denied {
            SensorStatus::error(SENSOR, why.clone())
        } else if self.unsupported.contains(&PerfEvent::TaskClock) {
            SensorStatus::missing(SENSOR, "perf events are not supported by this kernel (not even the software task-clock)")
        } else if hw_missing.len() == PerfEvent::HARDWARE.len() {
            SensorStatus::degraded(SENSOR, "hardware counters unsupported, using software task-clock")
        } else if !hw_missing.is_empty() {
            SensorStatus::degraded(SENSOR, format!("hardware events {} unsupported; counting the others", hw_missing.join(", ")))
        } else if self.hardware_seen {
            SensorStatus::ok(SENSOR, "hardware counters (cycles, instructions, cache references and misses) and task-clock")
        } else {
            SensorStatus::ok(SENSOR, "perf_event_open available; counters open on each VM's first read")
        };
        vec![st]
    }

    fn targets(&mut self, state: &mut VmCounters, tids: &[u32], cgroup: Option<(&Path, &[u32])>) -> Vec<PerfTarget> {
        if let Some((dir, cpus)) = cgroup
            && !state.cgroup_failed
            && !cpus.is_empty()
        {
            let targets: Vec<PerfTarget> = cpus.iter().map(|&cpu| PerfTarget::Cgroup { dir: dir.to_path_buf(), cpu }).collect();
            let any_open = state.counters.keys().any(|(t, _)| matches!(t, PerfTarget::Cgroup { .. }));
            if let Some(first) = targets.first()
                && (any_open || self.try_cgroup(state, first))
            {
                return targets;
            }
        }
        tids.iter().map(|&t| PerfTarget::Thread(t)).collect()
    }

    /// Opens task-clock on the cgroup's first CPU; on failure (cgroup v1 path,
    /// directory gone) the VM falls back to thread counters for good.
    fn try_cgroup(&mut self, state: &mut VmCounters, first: &PerfTarget) -> bool {
        if self.unsupported.contains(&PerfEvent::TaskClock) {
            return false;
        }
        match self.backend.open(first, PerfEvent::TaskClock) {
            Ok(c) => {
                self.insert(state, first, PerfEvent::TaskClock, c);
                true
            }
            Err(e) if matches!(classify(&e), Failure::Denied) && !self.opened_any => {
                self.note_failure(e, first, PerfEvent::TaskClock);
                false
            }
            Err(e) => {
                self.errors.push(Error::Device {
                    sensor: SENSOR,
                    msg: format!("cannot count {first}, counting its threads instead: {e}"),
                });
                state.cgroup_failed = true;
                false
            }
        }
    }

    fn open_into(&mut self, state: &mut VmCounters, target: &PerfTarget, ev: PerfEvent) {
        match self.backend.open(target, ev) {
            Ok(c) => self.insert(state, target, ev, c),
            Err(e) => self.note_failure(e, target, ev),
        }
    }

    /// Takes the counter's current value as its baseline: what it counted
    /// between opening and now belongs to no interval.
    fn insert(&mut self, state: &mut VmCounters, target: &PerfTarget, ev: PerfEvent, mut c: Box<dyn PerfCounter>) {
        match c.read() {
            Ok(v) => {
                self.note_opened(ev);
                state.counters.insert((target.clone(), ev), Open { counter: c, last: v });
            }
            Err(e) => self.errors.push(e),
        }
    }

    fn note_opened(&mut self, ev: PerfEvent) {
        self.opened_any = true;
        self.hardware_seen |= ev.is_hardware();
    }

    fn note_failure(&mut self, e: Error, target: &PerfTarget, ev: PerfEvent) {
        match classify(&e) {
            // Once something opened, a denial is about that one target (another
            // user's process, say), not about perf as a whole.
            Failure::Denied if !self.opened_any => {
                tracing::warn!("{e}");
                self.denied = Some(e.to_string());
                self.vms.clear();
            }
            // Only thread counters (any CPU) speak for the host: on a cgroup
            // counter, ENODEV can also mean that one CPU went offline.
            Failure::Unsupported if matches!(target, PerfTarget::Thread(_)) => {
                if self.unsupported.insert(ev) {
                    tracing::info!("{e}; not trying {ev} again");
                }
            }
            Failure::Gone => {}
            Failure::Denied | Failure::Unsupported | Failure::Other => self.errors.push(e),
        }
    }

    fn host_source(&self) -> PerfSource {
        if self.denied.is_some() || self.unsupported.contains(&PerfEvent::TaskClock) {
            PerfSource::None
        } else if PerfEvent::HARDWARE.iter().all(|ev| self.unsupported.contains(ev)) {
            PerfSource::Software
        } else {
            PerfSource::Hardware
        }
    }
}
