//! [`NvmlBackend`] over the real NVIDIA library (nvml-wrapper, loaded at run time).

use std::collections::BTreeMap;

use nvml_wrapper::Nvml;
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;

use super::{GpuInfo, NvmlBackend, ProcessSample, RunningProcess, SENSOR};
use crate::error::{Error, Result};

/// The host's NVML. Holding it keeps the library loaded and initialised; it
/// shuts NVML down when dropped.
pub struct RealNvml {
    nvml: Nvml,
}

impl std::fmt::Debug for RealNvml {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RealNvml")
    }
}

impl RealNvml {
    /// Loads and initialises NVML. A host without the NVIDIA library or driver
    /// gets [`Error::NotAvailable`]; nothing here aborts the process.
    pub fn init() -> Result<Self> {
        Nvml::init().map(|nvml| RealNvml { nvml }).map_err(init_error)
    }

    fn device(&self, index: u32, call: &'static str) -> Result<nvml_wrapper::Device<'_>> {
        self.nvml.device_by_index(index).map_err(|e| device_error(index, call, e))
    }
}

fn init_error(e: NvmlError) -> Error {
    match e {
        NvmlError::LibloadingError(inner) => Error::NotAvailable {
            sensor: SENSOR,
            reason: format!("NVML not available: libnvidia-ml.so could not be loaded ({inner})"),
        },
        NvmlError::FailedToLoadSymbol(msg) => Error::NotAvailable {
            sensor: SENSOR,
            reason: format!("NVML not available: libnvidia-ml.so lacks a required function ({msg})"),
        },
        NvmlError::DriverNotLoaded => Error::NotAvailable {
            sensor: SENSOR,
            reason: "NVML not available: the NVIDIA kernel driver is not loaded".into(),
        },
        NvmlError::LibraryNotFound => Error::NotAvailable {
            sensor: SENSOR,
            reason: "NVML not available: the NVML shared library was not found".into(),
        },
        NvmlError::NoPermission => Error::PermissionDenied {
            sensor: SENSOR,
            path: "/dev/nvidiactl".into(),
            hint: "NVML has no permission to talk to the driver; run the agent as root or in the video group".into(),
        },
        other => Error::Device { sensor: SENSOR, msg: format!("NVML initialisation failed: {other}") },
    }
}

fn device_error(index: u32, call: &'static str, e: NvmlError) -> Error {
    Error::Device { sensor: SENSOR, msg: format!("GPU {index}: {call} failed: {e}") }
}

impl NvmlBackend for RealNvml {
    fn device_count(&self) -> Result<u32> {
        self.nvml.device_count().map_err(|e| Error::Device { sensor: SENSOR, msg: format!("device_count failed: {e}") })
    }

    fn device_info(&self, index: u32) -> Result<GpuInfo> {
        let d = self.device(index, "device_by_index")?;
        let name = d.name().map_err(|e| device_error(index, "name", e))?;
        let uuid = d.uuid().map_err(|e| device_error(index, "uuid", e))?;
        let pci = d.pci_info().map_err(|e| device_error(index, "pci_info", e))?;
        Ok(GpuInfo { index, name, uuid, pci_bus_id: super::normalize_pci_bus_id(&pci.bus_id) })
    }

    fn total_energy_mj(&self, index: u32) -> Result<Option<u64>> {
        match self.device(index, "device_by_index")?.total_energy_consumption() {
            Ok(mj) => Ok(Some(mj)),
            Err(NvmlError::NotSupported) => Ok(None),
            Err(e) => Err(device_error(index, "total_energy_consumption", e)),
        }
    }

    fn power_mw(&self, index: u32) -> Result<u32> {
        self.device(index, "device_by_index")?.power_usage().map_err(|e| device_error(index, "power_usage", e))
    }

    fn process_samples(&self, index: u32, since_us: Option<u64>) -> Result<Option<Vec<ProcessSample>>> {
        match self.device(index, "device_by_index")?.process_utilization_stats(since_us) {
            Ok(v) => Ok(Some(
                v.into_iter()
                    .map(|s| ProcessSample {
                        pid: s.pid,
                        sm_util_pct: s.sm_util,
                        mem_util_pct: s.mem_util,
                        timestamp_us: s.timestamp,
                    })
                    .collect(),
            )),
            // NVML says NotFound when no process was active since `since_us`.
            Err(NvmlError::NotFound) => Ok(Some(Vec::new())),
            Err(NvmlError::NotSupported) => Ok(None),
            Err(e) => Err(device_error(index, "process_utilization_stats", e)),
        }
    }

    fn running_processes(&self, index: u32) -> Result<Vec<RunningProcess>> {
        let d = self.device(index, "device_by_index")?;
        // A process with both a compute and a graphics context appears in both
        // lists with the same memory: keep one entry per pid.
        let mut by_pid: BTreeMap<u32, Option<u64>> = BTreeMap::new();
        for (call, list) in [
            ("running_compute_processes", d.running_compute_processes()),
            ("running_graphics_processes", d.running_graphics_processes()),
        ] {
            let list = match list {
                Ok(l) => l,
                Err(NvmlError::NotSupported) => continue,
                Err(e) => return Err(device_error(index, call, e)),
            };
            for p in list {
                let bytes = match p.used_gpu_memory {
                    UsedGpuMemory::Used(b) => Some(b),
                    UsedGpuMemory::Unavailable => None,
                };
                let e = by_pid.entry(p.pid).or_insert(None);
                *e = (*e).max(bytes);
            }
        }
        Ok(by_pid.into_iter().map(|(pid, memory_bytes)| RunningProcess { pid, memory_bytes }).collect())
    }
}
