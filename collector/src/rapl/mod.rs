//! RAPL energy counters: CPU packages, cores, uncore, DRAM and platform (psys).
//!
//! Two ways to read the same hardware counters:
//!
//! - [`Powercap`]: the kernel's powercap sysfs tree (`intel-rapl:N`), which
//!   already converts to microjoules. Preferred: no raw register access, and
//!   the kernel knows each model's unit quirks.
//! - [`MsrRapl`]: the model-specific registers through `/dev/cpu/N/msr`, for
//!   hosts whose kernel lacks the powercap driver. It decodes units itself.
//!
//! [`detect`] picks one and explains both in [`SensorStatus`]es. On AMD and
//! Hygon it combines them: powercap's `core` zone there reads one core's
//! energy register, not the package's, so the package comes from powercap
//! and `core-N` from the per-core MSRs summed per package, when readable.
//! Both sources report raw cumulative counters; the
//! [`crate::energy::Meter`] turns them into per-interval energy, handling
//! wraps and resets.

mod cpu;
mod msr;
mod powercap;

use std::path::Path;

use fairwatt_core::{DomainKind, SensorStatus};

use crate::energy::EnergySource;
use crate::error::Error;

pub use cpu::{CpuId, Vendor, parse_cpuinfo};
pub use msr::{
    AMD_CORE_ENERGY, AMD_PKG_ENERGY, AMD_POWER_UNIT, FIXED_DRAM_UNIT_MODELS, INTEL_DRAM_ENERGY, INTEL_PKG_ENERGY,
    INTEL_PLATFORM_ENERGY, INTEL_POWER_UNIT, INTEL_PP0_ENERGY, INTEL_PP1_ENERGY, MsrRapl, REGULAR_FILE_REGISTER_STRIDE,
};
pub use powercap::Powercap;

/// Sensor name of [`Powercap`].
pub const POWERCAP_SENSOR: &str = "rapl-powercap";
/// Sensor name of [`MsrRapl`].
pub const MSR_SENSOR: &str = "rapl-msr";

/// Finds the host's RAPL counters: powercap first, the MSRs only when powercap
/// is absent or cannot read a single counter (and, on AMD, for the core
/// domains beside powercap). The statuses say what was found for both, so an
/// operator sees why a host has no CPU energy. Every source returned reads
/// domains no other one does.
///
/// When powercap exists but every counter is refused (Linux ≥ 5.10 without
/// root) and the MSRs fail too, powercap is still returned: its reads keep
/// failing with an actionable error, and start working as soon as an
/// administrator grants access, without restarting the agent.
pub fn detect(
    sysfs_root: &Path,
    dev_root: &Path,
    procfs_root: &Path,
) -> (Vec<Box<dyn EnergySource>>, Vec<SensorStatus>) {
    let cpu = cpu::read_cpuinfo(procfs_root).ok();
    let amd = cpu.is_some_and(|c| c.vendor.is_amd_like());
    let powercap = Powercap::new(sysfs_root).map(|mut pc| {
        if amd {
            // AMD's powercap `core` zone reads the core-energy MSR of the
            // package's first CPU only: one core, not the package's cores.
            pc.drop_kind(DomainKind::Core, "AMD powercap `core` zones measure a single core, not all cores of the package");
        }
        pc
    });
    match powercap {
        Ok(pc) if pc.usable() => {
            let mut statuses = pc.status();
            let mut sources: Vec<Box<dyn EnergySource>> = vec![Box::new(pc)];
            if !amd {
                statuses.push(SensorStatus::missing(MSR_SENSOR, "not probed: rapl-powercap reads the same counters"));
                return (sources, statuses);
            }
            match MsrRapl::new(sysfs_root, dev_root, procfs_root) {
                Ok(mut m) => {
                    m.keep_kind(DomainKind::Core);
                    if m.domains().is_empty() {
                        statuses.push(SensorStatus::missing(MSR_SENSOR, "no per-core energy MSRs readable: no core domains on this AMD host"));
                    } else {
                        let cores: Vec<String> = m.domains().iter().map(|d| d.to_string()).collect();
                        statuses.push(SensorStatus::ok(MSR_SENSOR, format!("{} from the per-core energy MSRs, beside rapl-powercap's packages", cores.join(", "))));
                        sources.push(Box::new(m));
                    }
                }
                Err(e) => {
                    let mut st = error_status(MSR_SENSOR, &e);
                    st.detail = format!("core domains need the per-core MSRs: {}", st.detail);
                    statuses.push(st);
                }
            }
            (sources, statuses)
        }
        // Powercap present but unreadable, or absent: MSRs are the fallback.
        Ok(pc) => {
            let statuses = pc.status();
            msr_fallback(sysfs_root, dev_root, procfs_root, statuses, Some(Box::new(pc)))
        }
        Err(pe) => msr_fallback(sysfs_root, dev_root, procfs_root, vec![error_status(POWERCAP_SENSOR, &pe)], None),
    }
}

/// Tries MSRs; when they fail too, keeps `otherwise` (a powercap source that
/// may become readable once permissions are fixed).
fn msr_fallback(
    sysfs_root: &Path,
    dev_root: &Path,
    procfs_root: &Path,
    mut statuses: Vec<SensorStatus>,
    otherwise: Option<Box<dyn EnergySource>>,
) -> (Vec<Box<dyn EnergySource>>, Vec<SensorStatus>) {
    match MsrRapl::new(sysfs_root, dev_root, procfs_root) {
        Ok(m) => {
            statuses.extend(m.status());
            (vec![Box::new(m)], statuses)
        }
        Err(e) => {
            statuses.push(error_status(MSR_SENSOR, &e));
            (otherwise.into_iter().collect(), statuses)
        }
    }
}

/// A constructor's error as a status: absence is `missing`, anything else `error`.
fn error_status(sensor: &'static str, e: &Error) -> SensorStatus {
    match e {
        Error::NotAvailable { reason, .. } => SensorStatus::missing(sensor, reason.clone()),
        other => SensorStatus::error(sensor, other.to_string()),
    }
}
