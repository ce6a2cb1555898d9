//! RAPL read straight from the model-specific registers (`/dev/cpu/N/msr`),
//! for hosts whose kernel has no powercap RAPL driver.
//!
//! Each energy-status register holds a 32-bit counter (bits 31:0) in units of
//! 1/2^ESU J, ESU being bits 12:8 of the power-unit register. Facts used here,
//! from Linux `drivers/powercap/intel_rapl_common.c` and `arch/x86/events/rapl.c`:
//! - a register that reads zero or cannot be read (EIO) is a domain the part
//!   does not have (`rapl_check_domain` skips both);
//! - Intel package counters are per die, AMD's per socket (perf's RAPL PMU
//!   uses die scope except on AMD/Hygon);
//! - DRAM on the models in [`FIXED_DRAM_UNIT_MODELS`] counts a fixed 15.3 µJ
//!   unit whatever the unit register says; Sapphire and Emerald Rapids use the
//!   unit register for DRAM ("Use standard Energy Unit for SPR Dram RAPL
//!   domain", 2022) but count psys in whole joules;
//! - AMD (family ≥ 0x17) and Hygon have a package counter and one core-energy
//!   counter per physical core, no DRAM or psys.
//!
//! The per-core AMD counters are summed into `core-N`. A sum of wrapping
//! counters is not a wrapping counter, so each core keeps its own
//! [`WrapCounter`] and the domain reports the running sum of their deltas
//! since this source was created, with `modulus: None`. After an agent
//! restart that sum starts again from zero: the meter sees a reset, so core
//! energy during the downtime is unknown but never over-counted.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::unix::fs::{FileExt, FileTypeExt};
use std::path::{Path, PathBuf};

use fairwatt_core::{DomainKind, Domain, SensorStatus, WrapCounter};

use super::MSR_SENSOR as SENSOR;
use super::cpu::{CpuId, Vendor, read_cpuinfo, read_topology};
use crate::energy::{EnergySource, RawReading, Scale};
use crate::error::{Error, Result};

pub const INTEL_POWER_UNIT: u64 = 0x606;
pub const INTEL_PKG_ENERGY: u64 = 0x611;
pub const INTEL_DRAM_ENERGY: u64 = 0x619;
pub const INTEL_PP0_ENERGY: u64 = 0x639;
pub const INTEL_PP1_ENERGY: u64 = 0x641;
pub const INTEL_PLATFORM_ENERGY: u64 = 0x64D;
pub const AMD_POWER_UNIT: u64 = 0xC001_0299;
pub const AMD_CORE_ENERGY: u64 = 0xC001_029A;
pub const AMD_PKG_ENERGY: u64 = 0xC001_029B;

/// Intel family-6 models whose DRAM counter uses the fixed 15.3 µJ unit:
/// the models mapped to `rapl_defaults_hsw_server` in Linux
/// `drivers/powercap/intel_rapl_common.c` (`rapl_ids`). Broadwell-DE (0x56)
/// is not there (the powercap driver uses the unit register for it, although
/// perf's `arch/x86/events/rapl.c` applies the fixed unit); we follow the
/// powercap driver so both RAPL sources agree on one host. Sapphire Rapids
/// (0x8F) and Emerald Rapids (0xCF) were dropped from the fixed-unit list in
/// 2022 and use the unit register.
pub const FIXED_DRAM_UNIT_MODELS: &[(u32, &str)] = &[
    (0x3F, "Haswell-X"),
    (0x4F, "Broadwell-X"),
    (0x55, "Skylake-X / Cascade Lake-X / Cooper Lake"),
    (0x57, "Xeon Phi Knights Landing"),
    (0x6A, "Ice Lake-X"),
    (0x6C, "Ice Lake-D"),
    (0x85, "Xeon Phi Knights Mill"),
];

/// Sapphire and Emerald Rapids count psys in joules (`psys_domain_energy_unit`).
const JOULE_PSYS_MODELS: &[u32] = &[0x8F, 0xCF];

/// Where a regular file stands in for `/dev/cpu/N/msr` (fixtures), register
/// `r` is stored at byte `r * 8`. The device addresses whole 8-byte registers
/// by offset, so adjacent addresses (AMD's 0xC0010299..0xC001029B) do not
/// overlap there, but they would in a byte-addressed file.
pub const REGULAR_FILE_REGISTER_STRIDE: u64 = 8;

const COUNTER_MASK: u64 = 0xFFFF_FFFF;
const MISSING_HINT: &str = "modprobe msr; needs root";
const PERMISSION_HINT: &str = "reading MSRs needs root: read access to /dev/cpu/*/msr and CAP_SYS_RAWIO";

#[derive(Debug)]
struct MsrFile {
    path: PathBuf,
    file: File,
    /// Bytes per register address: 1 for the device, [`REGULAR_FILE_REGISTER_STRIDE`] for fixtures.
    stride: u64,
}

impl MsrFile {
    fn open(dev_root: &Path, cpu: u32) -> Result<Self> {
        let path = dev_root.join(format!("cpu/{cpu}/msr"));
        match File::open(&path) {
            Ok(file) => {
                let char_device = file.metadata().is_ok_and(|m| m.file_type().is_char_device());
                Ok(MsrFile { path, file, stride: if char_device { 1 } else { REGULAR_FILE_REGISTER_STRIDE } })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Err(Error::NotAvailable { sensor: SENSOR, reason: format!("no {}: {MISSING_HINT}", path.display()) })
            }
            Err(e) => Err(msr_error(&path, None, e)),
        }
    }

    /// The msr driver maps the file offset to the register address.
    fn read(&self, reg: u64) -> std::io::Result<u64> {
        let mut buf = [0u8; 8];
        let offset = reg.checked_mul(self.stride).ok_or(std::io::ErrorKind::InvalidInput)?;
        self.file.read_exact_at(&mut buf, offset)?;
        Ok(u64::from_le_bytes(buf))
    }

    /// `None` when the part lacks the register (EIO, or past the end of a fixture).
    fn probe(&self, reg: u64) -> Result<Option<u64>> {
        match self.read(reg) {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.raw_os_error() == Some(libc::EIO) || e.kind() == std::io::ErrorKind::UnexpectedEof => Ok(None),
            Err(e) => Err(msr_error(&self.path, Some(reg), e)),
        }
    }
}

fn msr_error(path: &Path, reg: Option<u64>, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return Error::PermissionDenied { sensor: SENSOR, path: path.to_path_buf(), hint: PERMISSION_HINT.into() };
    }
    let source = match reg {
        Some(r) => std::io::Error::new(e.kind(), format!("register {r:#x}: {e}")),
        None => e,
    };
    Error::Io { sensor: SENSOR, path: path.to_path_buf(), source }
}

#[derive(Debug)]
enum Reader {
    /// One package-wide register on the package's first CPU.
    Single { file: usize, reg: u64 },
    /// The same per-core register on one CPU of each core, summed as deltas.
    Summed { reg: u64, parts: Vec<(usize, WrapCounter)>, total: u64 },
}

#[derive(Debug)]
struct MsrDomain {
    domain: Domain,
    scale: Scale,
    reader: Reader,
    fault: Option<String>,
}

/// RAPL domains read through `/dev/cpu/N/msr`.
#[derive(Debug)]
pub struct MsrRapl {
    cpu: CpuId,
    files: Vec<MsrFile>,
    domains: Vec<MsrDomain>,
    notes: Vec<String>,
}

impl MsrRapl {
    /// Identifies the CPU, picks one CPU per package (per die on Intel) and
    /// probes every candidate register once; only domains that read are kept.
    pub fn new(sysfs_root: &Path, dev_root: &Path, procfs_root: &Path) -> Result<Self> {
        let cpu = read_cpuinfo(procfs_root)?;
        let amd = match cpu.vendor {
            Vendor::Intel => false,
            Vendor::Amd | Vendor::Hygon if cpu.family >= 0x17 => true,
            v => {
                let reason = format!("no RAPL MSRs known for {v:?} CPU family {:#x}", cpu.family);
                return Err(Error::NotAvailable { sensor: SENSOR, reason });
            }
        };
        let topo = read_topology(sysfs_root)?;
        if !dev_root.join("cpu").is_dir() {
            let reason = format!("no {}/cpu/*/msr: {MISSING_HINT}", dev_root.display());
            return Err(Error::NotAvailable { sensor: SENSOR, reason });
        }
        let mut units: BTreeMap<(u32, u32), u32> = BTreeMap::new();
        let mut cores: BTreeMap<(u32, u32), Vec<u32>> = BTreeMap::new();
        let mut seen_cores = std::collections::BTreeSet::new();
        for t in &topo {
            let unit = if amd { (t.package, 0) } else { (t.package, t.die) };
            units.entry(unit).or_insert(t.cpu);
            if seen_cores.insert((t.package, t.die, t.core)) {
                cores.entry(unit).or_default().push(t.cpu);
            }
        }
        let multi_die = units.keys().any(|&(_, die)| die > 0);
        let mut rapl = MsrRapl { cpu, files: Vec::new(), domains: Vec::new(), notes: Vec::new() };
        let mut by_cpu = BTreeMap::new();
        for (n, (&(package, die), &lead)) in units.iter().enumerate() {
            // Die-scoped counters on multi-die parts each get their own package index.
            let index = if multi_die { n as u32 } else { package };
            if multi_die {
                rapl.notes.push(format!("package {package} die {die} is package-{index}"));
            }
            let f = rapl.open(dev_root, lead, &mut by_cpu)?;
            let unit_reg = if amd { AMD_POWER_UNIT } else { INTEL_POWER_UNIT };
            let Some(unit) = rapl.files[f].probe(unit_reg)? else {
                let reason =
                    format!("register {unit_reg:#x} unreadable on CPU {lead}: this CPU or hypervisor exposes no RAPL");
                return Err(Error::NotAvailable { sensor: SENSOR, reason });
            };
            let base = Scale::rapl_esu(((unit >> 8) & 0x1F) as u32);
            if amd {
                rapl.add_single(f, Domain::package(index), AMD_PKG_ENERGY, base)?;
                let cpus = cores.get(&(package, die)).cloned().unwrap_or_default();
                rapl.add_core_sum(dev_root, &mut by_cpu, Domain::core(index), &cpus, base)?;
            } else {
                let fixed_dram = cpu.family == 6 && FIXED_DRAM_UNIT_MODELS.iter().any(|(m, _)| *m == cpu.model);
                let joule_psys = cpu.family == 6 && JOULE_PSYS_MODELS.contains(&cpu.model);
                rapl.add_single(f, Domain::package(index), INTEL_PKG_ENERGY, base)?;
                rapl.add_single(f, Domain::core(index), INTEL_PP0_ENERGY, base)?;
                rapl.add_single(f, Domain::uncore(index), INTEL_PP1_ENERGY, base)?;
                rapl.add_single(
                    f,
                    Domain::dram(index),
                    INTEL_DRAM_ENERGY,
                    if fixed_dram { Scale::SERVER_DRAM } else { base },
                )?;
                let psys = if joule_psys { Scale { num: 1_000_000, den: 1 } } else { base };
                rapl.add_single(f, Domain::psys(index), INTEL_PLATFORM_ENERGY, psys)?;
            }
        }
        if rapl.domains.is_empty() {
            let reason = format!("no RAPL energy register reads non-zero ({})", rapl.notes.join("; "));
            return Err(Error::NotAvailable { sensor: SENSOR, reason });
        }
        Ok(rapl)
    }

    fn open(&mut self, dev_root: &Path, cpu: u32, by_cpu: &mut BTreeMap<u32, usize>) -> Result<usize> {
        if let Some(&i) = by_cpu.get(&cpu) {
            return Ok(i);
        }
        self.files.push(MsrFile::open(dev_root, cpu)?);
        by_cpu.insert(cpu, self.files.len() - 1);
        Ok(self.files.len() - 1)
    }

    fn add_single(&mut self, file: usize, domain: Domain, reg: u64, scale: Scale) -> Result<()> {
        match self.files[file].probe(reg)? {
            Some(v) if v & COUNTER_MASK != 0 => {
                self.domains.push(MsrDomain { domain, scale, reader: Reader::Single { file, reg }, fault: None })
            }
            _ => self.notes.push(format!("{domain} absent (register {reg:#x} unreadable or zero)")),
        }
        Ok(())
    }

    fn add_core_sum(
        &mut self,
        dev_root: &Path,
        by_cpu: &mut BTreeMap<u32, usize>,
        domain: Domain,
        cpus: &[u32],
        scale: Scale,
    ) -> Result<()> {
        let mut parts = Vec::with_capacity(cpus.len());
        let mut any_energy = false;
        for &cpu in cpus {
            let f = self.open(dev_root, cpu, by_cpu)?;
            let Some(v) = self.files[f].probe(AMD_CORE_ENERGY)? else {
                // A partial sum would silently under-report the package's cores.
                self.notes.push(format!("{domain} absent (core energy register unreadable on CPU {cpu})"));
                return Ok(());
            };
            any_energy |= v & COUNTER_MASK != 0;
            let mut counter = WrapCounter::new(Some(1 << 32));
            counter.update(v & COUNTER_MASK, None);
            parts.push((f, counter));
        }
        if !any_energy {
            self.notes.push(format!("{domain} absent (core energy registers read zero)"));
            return Ok(());
        }
        let reader = Reader::Summed { reg: AMD_CORE_ENERGY, parts, total: 0 };
        self.domains.push(MsrDomain { domain, scale, reader, fault: None });
        Ok(())
    }

    /// Keeps only the domains of `kind` (the per-core AMD sums beside
    /// powercap's package counters); the others' registers are not read.
    pub fn keep_kind(&mut self, kind: DomainKind) {
        self.domains.retain(|d| d.domain.kind == kind);
    }

    /// The domains this source reports, in reading order.
    pub fn domains(&self) -> Vec<Domain> {
        self.domains.iter().map(|d| d.domain).collect()
    }

    pub fn cpu(&self) -> CpuId {
        self.cpu
    }
}

fn read_domain(files: &[MsrFile], d: &mut MsrDomain) -> Result<RawReading> {
    let scale = d.scale;
    match &mut d.reader {
        Reader::Single { file, reg } => {
            let f = &files[*file];
            let raw = f.read(*reg).map_err(|e| msr_error(&f.path, Some(*reg), e))? & COUNTER_MASK;
            Ok(RawReading::Counter { raw, modulus: Some(1 << 32), scale })
        }
        Reader::Summed { reg, parts, total } => {
            // Read every core before updating any, so a failure leaves all untouched.
            let mut raws = Vec::with_capacity(parts.len());
            for (file, _) in parts.iter() {
                let f = &files[*file];
                raws.push(f.read(*reg).map_err(|e| msr_error(&f.path, Some(*reg), e))? & COUNTER_MASK);
            }
            for ((_, counter), raw) in parts.iter_mut().zip(raws) {
                // MSR counters only restart with the CPU, which restarts the
                // agent too: a backwards step here is always a wrap.
                *total = total.wrapping_add(counter.update(raw, None).map_or(0, |c| c.value()));
            }
            Ok(RawReading::Counter { raw: *total, modulus: None, scale })
        }
    }
}

impl EnergySource for MsrRapl {
    fn name(&self) -> &'static str {
        SENSOR
    }

    fn status(&self) -> Vec<SensorStatus> {
        let model = FIXED_DRAM_UNIT_MODELS.iter().find(|(m, _)| self.cpu.family == 6 && *m == self.cpu.model);
        let mut detail = format!(
            "{:?} family {:#x} model {:#x}{}: ",
            self.cpu.vendor,
            self.cpu.family,
            self.cpu.model,
            model.map_or(String::new(), |(_, name)| format!(" ({name}, fixed 15.3 µJ DRAM unit)"))
        );
        let faults: Vec<String> = self.domains.iter().filter_map(|d| d.fault.clone()).collect();
        let ok: Vec<String> = self.domains.iter().filter(|d| d.fault.is_none()).map(|d| d.domain.to_string()).collect();
        if faults.is_empty() {
            detail.push_str(&format!("reading {}", ok.join(", ")));
        } else {
            detail.push_str(&format!(
                "{}; still reading: {}",
                faults.join("; "),
                if ok.is_empty() { "none".into() } else { ok.join(", ") }
            ));
        }
        for d in &self.domains {
            if let Reader::Summed { parts, .. } = &d.reader {
                detail.push_str(&format!("; {} sums {} per-core counters", d.domain, parts.len()));
            }
        }
        if !self.notes.is_empty() {
            detail.push_str(&format!(" ({})", self.notes.join("; ")));
        }
        vec![if faults.is_empty() { SensorStatus::ok(SENSOR, detail) } else { SensorStatus::error(SENSOR, detail) }]
    }

    fn read(&mut self) -> Vec<(Domain, Result<RawReading>)> {
        let files = &self.files;
        self.domains
            .iter_mut()
            .map(|d| {
                let r = read_domain(files, d);
                d.fault = r.as_ref().err().map(|e| format!("{}: {e}", d.domain));
                (d.domain, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_dram_models_exclude_broadwell_de_and_sapphire_rapids() {
        let has = |m: u32| FIXED_DRAM_UNIT_MODELS.iter().any(|(x, _)| *x == m);
        assert!(has(0x3F) && has(0x4F) && has(0x55) && has(0x57) && has(0x6A) && has(0x6C) && has(0x85));
        assert!(!has(0x56) && !has(0x8F) && !has(0xCF));
    }

    #[test]
    fn permission_denied_on_msr_names_cap_sys_rawio() {
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = msr_error(Path::new("/dev/cpu/0/msr"), Some(INTEL_PKG_ENERGY), io);
        assert!(matches!(e, Error::PermissionDenied { .. }));
        assert!(e.to_string().contains("CAP_SYS_RAWIO") && e.to_string().contains("root"), "{e}");
    }
}
