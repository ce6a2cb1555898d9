//! A scripted [`NvmlBackend`] for tests, benchmarks and fixture runs.
//!
//! Clones share one state, so a test keeps a clone as a handle and changes
//! energy, power, process lists and failures between reads of the source.

use std::sync::{Arc, Mutex, MutexGuard};

use super::{GpuInfo, NvmlBackend, ProcessSample, RunningProcess, SENSOR};
use crate::error::{Error, Result};

/// One fake device. Public fields: tests set what they need.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FakeGpu {
    pub info: GpuInfo,
    /// Energy counter in mJ; `None` makes `total_energy_mj` answer NotSupported.
    pub energy_mj: Option<u64>,
    pub power_mw: u32,
    /// Buffered utilisation samples; returned when newer than the caller's timestamp.
    pub samples: Vec<ProcessSample>,
    /// `false` makes `process_samples` answer NotSupported.
    pub util_supported: bool,
    pub running: Vec<RunningProcess>,
    /// `Some(msg)`: every call on this device fails with `msg`.
    pub fail: Option<String>,
}

impl FakeGpu {
    /// A device with an energy counter at 0 mJ and no processes.
    pub fn new(index: u32, name: &str) -> Self {
        FakeGpu {
            info: GpuInfo {
                index,
                name: name.to_string(),
                uuid: format!("GPU-00000000-0000-0000-0000-{index:012x}"),
                pci_bus_id: format!("00000000:{:02X}:00.0", 0x3b_u32.wrapping_add(index.wrapping_mul(0x20)) & 0xff),
            },
            energy_mj: Some(0),
            power_mw: 0,
            samples: Vec::new(),
            util_supported: true,
            running: Vec::new(),
            fail: None,
        }
    }
}

#[derive(Debug, Default)]
struct State {
    gpus: Vec<FakeGpu>,
    count_error: Option<String>,
}

/// Scripted NVML. Device `i` of the backend is `gpus[i]`.
#[derive(Clone, Debug, Default)]
pub struct FakeNvml {
    state: Arc<Mutex<State>>,
}

impl FakeNvml {
    pub fn new(gpus: Vec<FakeGpu>) -> Self {
        FakeNvml { state: Arc::new(Mutex::new(State { gpus, count_error: None })) }
    }

    /// Changes device `index` in place; a no-op for an index that does not exist.
    pub fn update(&self, index: u32, f: impl FnOnce(&mut FakeGpu)) {
        if let Some(g) = self.lock().gpus.get_mut(index as usize) {
            f(g);
        }
    }

    pub fn set_energy_mj(&self, index: u32, mj: Option<u64>) {
        self.update(index, |g| g.energy_mj = mj);
    }

    /// Advances the energy counter (a device without one stays without).
    pub fn add_energy_mj(&self, index: u32, mj: u64) {
        self.update(index, |g| g.energy_mj = g.energy_mj.map(|e| e.saturating_add(mj)));
    }

    pub fn set_power_mw(&self, index: u32, mw: u32) {
        self.update(index, |g| g.power_mw = mw);
    }

    pub fn push_sample(&self, index: u32, sample: ProcessSample) {
        self.update(index, |g| g.samples.push(sample));
    }

    pub fn set_running(&self, index: u32, running: Vec<RunningProcess>) {
        self.update(index, |g| g.running = running);
    }

    /// `Some(msg)`: every call on the device fails; `None`: it works again.
    pub fn set_fail(&self, index: u32, msg: Option<&str>) {
        self.update(index, |g| g.fail = msg.map(str::to_string));
    }

    /// Makes `device_count` fail (NVML loaded but the driver misbehaves).
    pub fn set_count_error(&self, msg: Option<&str>) {
        self.lock().count_error = msg.map(str::to_string);
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn with<T>(&self, index: u32, call: &str, f: impl FnOnce(&FakeGpu) -> T) -> Result<T> {
        let st = self.lock();
        let g = st.gpus.get(index as usize).ok_or_else(|| Error::Device {
            sensor: SENSOR,
            msg: format!("GPU {index}: {call} failed: Invalid Argument (no such device)"),
        })?;
        if let Some(msg) = &g.fail {
            return Err(Error::Device { sensor: SENSOR, msg: format!("GPU {index}: {call} failed: {msg}") });
        }
        Ok(f(g))
    }
}

impl NvmlBackend for FakeNvml {
    fn device_count(&self) -> Result<u32> {
        let st = self.lock();
        match &st.count_error {
            Some(msg) => Err(Error::Device { sensor: SENSOR, msg: format!("device_count failed: {msg}") }),
            None => Ok(st.gpus.len() as u32),
        }
    }

    fn device_info(&self, index: u32) -> Result<GpuInfo> {
        self.with(index, "device_info", |g| GpuInfo { index, ..g.info.clone() })
    }

    fn total_energy_mj(&self, index: u32) -> Result<Option<u64>> {
        self.with(index, "total_energy_consumption", |g| g.energy_mj)
    }

    fn power_mw(&self, index: u32) -> Result<u32> {
        self.with(index, "power_usage", |g| g.power_mw)
    }

    fn process_samples(&self, index: u32, since_us: Option<u64>) -> Result<Option<Vec<ProcessSample>>> {
        self.with(index, "process_utilization_stats", |g| {
            g.util_supported.then(|| {
                g.samples.iter().filter(|s| since_us.is_none_or(|t| s.timestamp_us > t)).copied().collect()
            })
        })
    }

    fn running_processes(&self, index: u32) -> Result<Vec<RunningProcess>> {
        self.with(index, "running_processes", |g| g.running.clone())
    }
}
