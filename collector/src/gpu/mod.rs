//! NVIDIA GPUs: host energy per GPU and per-process GPU use, through NVML.
//!
//! NVML sits behind the narrow [`NvmlBackend`] trait: [`RealNvml`] loads
//! `libnvidia-ml.so` at run time (a host without it gets a status, not a
//! crash) and [`FakeNvml`] lets tests and fixture runs script devices.
//! [`GpuSource`] is both an [`EnergySource`] for the [`crate::energy::Meter`]
//! (one domain `gpu-N` per device) and the sampler's view of which processes
//! used which GPU; clones share state so one can live in the meter and one
//! with the sampler.

mod fake;
mod nvml;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use fairwatt_core::{Domain, Power, SensorStatus};

use crate::energy::{EnergySource, RawReading, Scale};
use crate::error::{Error, Result};

pub use fake::{FakeGpu, FakeNvml};
pub use nvml::RealNvml;

/// The sensor label of everything in this module.
pub const SENSOR: &str = "nvml";

/// What identifies one GPU.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct GpuInfo {
    /// NVML's index; also the `gpu-N` domain index.
    pub index: u32,
    pub name: String,
    pub uuid: String,
    /// Lowercase `dddd:bb:dd.f`, as sysfs and libvirt's hostdev addresses write it.
    pub pci_bus_id: String,
}

/// One NVML per-process utilisation sample.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ProcessSample {
    pub pid: u32,
    pub sm_util_pct: u32,
    pub mem_util_pct: u32,
    /// CPU timestamp of the sample, µs (NVML's clock, only compared with itself).
    pub timestamp_us: u64,
}

/// A process holding a context on a GPU (compute or graphics).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunningProcess {
    pub pid: u32,
    /// `None` where the driver does not say (Windows WDDM, some vGPU modes).
    pub memory_bytes: Option<u64>,
}

/// What fairwatt needs from NVML and nothing more, so that a fake can stand in.
/// Devices are addressed by NVML index `0..device_count()`.
pub trait NvmlBackend: Send {
    fn device_count(&self) -> Result<u32>;
    fn device_info(&self, index: u32) -> Result<GpuInfo>;
    /// Energy since the driver loaded, mJ; `Ok(None)` where the device has no
    /// energy counter (pre-Volta parts, some vGPU modes).
    fn total_energy_mj(&self, index: u32) -> Result<Option<u64>>;
    /// Current board power, mW (a roughly one-second average on most parts).
    fn power_mw(&self, index: u32) -> Result<u32>;
    /// Samples newer than `since_us` (all the driver buffered when `None`);
    /// `Ok(None)` where per-process utilisation is not supported.
    fn process_samples(&self, index: u32, since_us: Option<u64>) -> Result<Option<Vec<ProcessSample>>>;
    /// Compute and graphics processes, each pid once.
    fn running_processes(&self, index: u32) -> Result<Vec<RunningProcess>>;
}

/// One process's use of one GPU since the previous [`GpuSource::usage`] call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GpuProcessUse {
    pub gpu: u32,
    pub pid: u32,
    /// Mean over the samples in the interval, 0–100; 0 when the process held
    /// a context but NVML sampled no activity.
    pub sm_util_pct: u32,
    pub mem_util_pct: u32,
    /// Device memory at the time of the call; 0 when unknown or exited.
    pub memory_bytes: u64,
}

/// Turns NVML's `00000000:3B:00.0` into `0000:3b:00.0`; anything it does not
/// recognise comes back trimmed and lowercased so matching still has a chance.
pub fn normalize_pci_bus_id(raw: &str) -> String {
    let s = raw.trim().trim_end_matches('\0').to_ascii_lowercase();
    let parts: Vec<&str> = s.split(':').collect();
    let (domain, bus, devfn) = match parts.as_slice() {
        [d, b, df] => (*d, *b, *df),
        [b, df] => ("0", *b, *df),
        _ => return s,
    };
    let Some((dev, func)) = devfn.split_once('.') else { return s };
    let hex = |x: &str| u32::from_str_radix(x, 16).ok();
    match (hex(domain), hex(bus), hex(dev), hex(func)) {
        (Some(d), Some(b), Some(v), Some(f)) if d <= 0xffff && b <= 0xff && v <= 0x1f && f <= 7 => {
            format!("{d:04x}:{b:02x}:{v:02x}.{f:x}")
        }
        _ => s,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EnergyMode {
    /// Not yet known (the probe failed); asked again on the next read.
    Unknown,
    Counter,
    /// No energy counter: the meter integrates power. Remembered so that the
    /// unsupported call is not repeated every tick.
    PowerOnly,
}

#[derive(Debug)]
struct DeviceState {
    info: GpuInfo,
    info_error: Option<String>,
    energy: EnergyMode,
    util_supported: bool,
    /// Newest process-sample timestamp seen, so each call gets only new samples.
    last_sample_us: Option<u64>,
}

struct Inner {
    backend: Box<dyn NvmlBackend>,
    devices: Vec<DeviceState>,
    count_error: Option<String>,
}

/// The GPUs of this host. Cheap to clone; clones share one backend and state.
#[derive(Clone)]
pub struct GpuSource {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for GpuSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuSource").field("devices", &self.devices()).finish()
    }
}

impl GpuSource {
    /// Enumerates the backend's devices and probes each for an energy counter.
    /// A device whose info cannot be read is kept (by index) and reported in
    /// [`GpuSource::status`], so its energy still counts if reads work.
    pub fn new(backend: Box<dyn NvmlBackend>) -> Self {
        let (count, count_error) = match backend.device_count() {
            Ok(n) => (n, None),
            Err(e) => (0, Some(e.to_string())),
        };
        let devices = (0..count)
            .map(|index| {
                let (info, info_error) = match backend.device_info(index) {
                    Ok(mut info) => {
                        info.index = index;
                        info.pci_bus_id = normalize_pci_bus_id(&info.pci_bus_id);
                        (info, None)
                    }
                    Err(e) => (
                        GpuInfo { index, name: "unknown".into(), uuid: String::new(), pci_bus_id: String::new() },
                        Some(e.to_string()),
                    ),
                };
                let energy = match backend.total_energy_mj(index) {
                    Ok(Some(_)) => EnergyMode::Counter,
                    Ok(None) => EnergyMode::PowerOnly,
                    Err(_) => EnergyMode::Unknown,
                };
                // Asked once so the start-up status can say so; samples are not consumed.
                let util_supported = !matches!(backend.process_samples(index, None), Ok(None));
                DeviceState { info, info_error, energy, util_supported, last_sample_us: None }
            })
            .collect();
        GpuSource { inner: Arc::new(Mutex::new(Inner { backend, devices, count_error })) }
    }

    /// Loads the real NVML. `None` when there is no library or no GPU; the
    /// statuses say which, and what each device measures.
    pub fn detect() -> (Option<GpuSource>, Vec<SensorStatus>) {
        match RealNvml::init() {
            Err(e) => (None, vec![status_of_init_error(&e)]),
            Ok(real) => {
                let src = GpuSource::new(Box::new(real));
                let status = src.status_list();
                if src.devices().is_empty() && src.lock().count_error.is_none() {
                    return (None, vec![SensorStatus::missing(SENSOR, "NVML loaded, but it reports no NVIDIA GPUs")]);
                }
                (Some(src), status)
            }
        }
    }

    /// What was found, for matching passthrough GPUs by PCI bus id.
    pub fn devices(&self) -> Vec<GpuInfo> {
        self.lock().devices.iter().map(|d| d.info.clone()).collect()
    }

    /// Per process and GPU: mean SM and memory utilisation over the samples
    /// since the previous call (the first call sees whatever the driver still
    /// buffers, a few seconds), merged with the processes holding a context
    /// for their memory. A failing device adds an error; the others go on.
    pub fn usage(&self) -> (Vec<GpuProcessUse>, Vec<Error>) {
        let mut guard = self.lock();
        let Inner { backend, devices, .. } = &mut *guard;
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for dev in devices.iter_mut() {
            let index = dev.info.index;
            // pid -> (sm sum, mem sum, samples, memory)
            let mut per_pid: BTreeMap<u32, (u64, u64, u64, u64)> = BTreeMap::new();
            if dev.util_supported {
                match backend.process_samples(index, dev.last_sample_us) {
                    Ok(Some(samples)) => {
                        let mut newest = dev.last_sample_us;
                        for s in samples {
                            // Guard against backends that ignore `since`: a sample
                            // counted twice would skew the mean.
                            if dev.last_sample_us.is_some_and(|last| s.timestamp_us <= last) {
                                continue;
                            }
                            newest = newest.max(Some(s.timestamp_us));
                            let e = per_pid.entry(s.pid).or_default();
                            e.0 += u64::from(s.sm_util_pct.min(100));
                            e.1 += u64::from(s.mem_util_pct.min(100));
                            e.2 += 1;
                        }
                        dev.last_sample_us = newest;
                    }
                    Ok(None) => dev.util_supported = false,
                    Err(e) => errors.push(e),
                }
            }
            match backend.running_processes(index) {
                Ok(procs) => {
                    for p in procs {
                        let e = per_pid.entry(p.pid).or_default();
                        e.3 = e.3.max(p.memory_bytes.unwrap_or(0));
                    }
                }
                Err(e) => errors.push(e),
            }
            out.extend(per_pid.into_iter().map(|(pid, (sm, mem, n, bytes))| GpuProcessUse {
                gpu: index,
                pid,
                sm_util_pct: mean_pct(sm, n),
                mem_util_pct: mean_pct(mem, n),
                memory_bytes: bytes,
            }));
        }
        (out, errors)
    }

    fn status_list(&self) -> Vec<SensorStatus> {
        let inner = self.lock();
        let mut out = Vec::new();
        if let Some(e) = &inner.count_error {
            out.push(SensorStatus::error(SENSOR, format!("cannot count GPUs: {e}")));
        }
        for d in &inner.devices {
            let util = if d.util_supported { "" } else { "; per-process utilisation not supported" };
            let what = format!("GPU {} {} ({})", d.info.index, d.info.name, d.info.pci_bus_id);
            out.push(match (&d.info_error, d.energy) {
                (Some(e), _) => SensorStatus::error(SENSOR, format!("GPU {}: cannot read device info: {e}", d.info.index)),
                (None, EnergyMode::Counter) => SensorStatus::ok(SENSOR, format!("{what}: total energy counter{util}")),
                (None, EnergyMode::PowerOnly) => {
                    SensorStatus::degraded(SENSOR, format!("{what}: no energy counter, integrating power readings{util}"))
                }
                (None, EnergyMode::Unknown) => {
                    SensorStatus::error(SENSOR, format!("{what}: energy counter probe failed, retrying on each read"))
                }
            });
        }
        out
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere while holding the lock leaves plain data behind; keep reading.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn mean_pct(sum: u64, n: u64) -> u32 {
    if n == 0 {
        return 0;
    }
    ((sum + n / 2) / n).min(100) as u32
}

fn status_of_init_error(e: &Error) -> SensorStatus {
    match e {
        Error::NotAvailable { reason, .. } => SensorStatus::missing(SENSOR, reason.clone()),
        other => SensorStatus::error(SENSOR, other.to_string()),
    }
}

impl EnergySource for GpuSource {
    fn name(&self) -> &'static str {
        SENSOR
    }

    fn status(&self) -> Vec<SensorStatus> {
        self.status_list()
    }

    fn read(&mut self) -> Vec<(Domain, Result<RawReading, Error>)> {
        let mut guard = self.lock();
        let Inner { backend, devices, .. } = &mut *guard;
        devices
            .iter_mut()
            .map(|dev| {
                let index = dev.info.index;
                (Domain::gpu(index), read_device(backend.as_ref(), dev))
            })
            .collect()
    }
}

fn read_device(backend: &dyn NvmlBackend, dev: &mut DeviceState) -> Result<RawReading> {
    let index = dev.info.index;
    if dev.energy != EnergyMode::PowerOnly {
        match backend.total_energy_mj(index)? {
            Some(mj) => {
                dev.energy = EnergyMode::Counter;
                return Ok(RawReading::Counter { raw: mj, modulus: None, scale: Scale::MILLIJOULE });
            }
            None => dev.energy = EnergyMode::PowerOnly,
        }
    }
    let mw = backend.power_mw(index)?;
    Ok(RawReading::Power(Power::from_mw(u64::from(mw))))
}
