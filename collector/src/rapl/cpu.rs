//! Which CPU this is and where each CPU sits: `/proc/cpuinfo` for vendor,
//! family and model (they decide register addresses and unit quirks), and
//! `/sys/devices/system/cpu/cpuN/topology` for packages, dies and cores (they
//! decide which CPU's registers to read).

use std::path::Path;

use super::MSR_SENSOR as SENSOR;
use crate::error::{Error, Result};
use crate::fsutil;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Vendor {
    Intel,
    Amd,
    Hygon,
    Other,
}

impl Vendor {
    pub fn is_amd_like(self) -> bool {
        matches!(self, Vendor::Amd | Vendor::Hygon)
    }
}

/// The first CPU's identity from `/proc/cpuinfo` (family and model are the
/// combined display values the kernel prints).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuId {
    pub vendor: Vendor,
    pub family: u32,
    pub model: u32,
}

/// Parses the first processor block of `/proc/cpuinfo`. A file with no
/// `vendor_id` (non-x86) is `Vendor::Other`; an x86 one without a readable
/// family or model is an error.
pub fn parse_cpuinfo(text: &str) -> std::result::Result<CpuId, String> {
    let (mut vendor, mut family, mut model) = (None, None, None);
    for line in text.lines() {
        if line.trim().is_empty() && (vendor.is_some() || family.is_some() || model.is_some()) {
            break;
        }
        let Some((key, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        let num = || fsutil::parse_u64(value).and_then(|v| u32::try_from(v).ok()).ok_or_else(|| value.to_string());
        match key.trim() {
            "vendor_id" => vendor = Some(value.to_string()),
            "cpu family" => family = Some(num()),
            "model" => model = Some(num()),
            _ => {}
        }
    }
    let vendor = match vendor.as_deref() {
        None => return Ok(CpuId { vendor: Vendor::Other, family: 0, model: 0 }),
        Some("GenuineIntel") => Vendor::Intel,
        Some("AuthenticAMD") => Vendor::Amd,
        Some("HygonGenuine") => Vendor::Hygon,
        Some(_) => Vendor::Other,
    };
    let get = |v: Option<std::result::Result<u32, String>>, what: &str| match v {
        None => Err(format!("no `{what}` line in the first processor block")),
        Some(Err(bad)) => Err(format!("`{what}` is not a number: {:?}", fsutil::truncate(&bad, 40))),
        Some(Ok(n)) => Ok(n),
    };
    Ok(CpuId { vendor, family: get(family, "cpu family")?, model: get(model, "model")? })
}

pub(crate) fn read_cpuinfo(procfs_root: &Path) -> Result<CpuId> {
    let path = procfs_root.join("cpuinfo");
    let text = fsutil::read_string(SENSOR, &path).map_err(|e| not_found_as(e, format!("no {}", path.display())))?;
    parse_cpuinfo(&text).map_err(|msg| Error::parse(SENSOR, &path, msg))
}

fn not_found_as(e: Error, reason: String) -> Error {
    if e.is_not_found() { Error::NotAvailable { sensor: SENSOR, reason } } else { e }
}

/// A topology id; the kernel prints -1 when firmware gives none.
fn parse_topology_id(s: &str) -> Option<u32> {
    let s = s.trim();
    if let Some(neg) = s.strip_prefix('-') {
        return fsutil::parse_u64(neg).map(|_| 0);
    }
    fsutil::parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuTopo {
    pub(crate) cpu: u32,
    pub(crate) package: u32,
    pub(crate) die: u32,
    pub(crate) core: u32,
}

/// Online CPUs and where they sit; offline CPUs have no `topology` directory.
pub(crate) fn read_topology(sysfs_root: &Path) -> Result<Vec<CpuTopo>> {
    let dir = sysfs_root.join("devices/system/cpu");
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| not_found_as(Error::io(SENSOR, &dir, e), format!("no CPU topology at {}", dir.display())))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(SENSOR, &dir, e))?;
        let name = entry.file_name();
        let Some(cpu) = name.to_str().and_then(|n| n.strip_prefix("cpu")).and_then(parse_topology_id_strict) else {
            continue;
        };
        let topo = entry.path().join("topology");
        if !topo.is_dir() {
            continue;
        }
        let id = |file: &str, required: bool| -> Result<u32> {
            let path = topo.join(file);
            match fsutil::read_string(SENSOR, &path) {
                Ok(s) => parse_topology_id(&s).ok_or_else(|| {
                    Error::parse(
                        SENSOR,
                        &path,
                        format!("expected a CPU topology id, found {:?}", fsutil::truncate(s.trim(), 40)),
                    )
                }),
                Err(e) if !required && e.is_not_found() => Ok(0),
                Err(e) => Err(e),
            }
        };
        out.push(CpuTopo {
            cpu,
            package: id("physical_package_id", true)?,
            die: id("die_id", false)?,
            core: id("core_id", true)?,
        });
    }
    if out.is_empty() {
        return Err(Error::NotAvailable { sensor: SENSOR, reason: format!("no online CPU under {}", dir.display()) });
    }
    out.sort_by_key(|t| t.cpu);
    Ok(out)
}

fn parse_topology_id_strict(s: &str) -> Option<u32> {
    fsutil::parse_u64(s).and_then(|v| u32::try_from(v).ok())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_cpuinfo_first_block() {
        let text = "processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 85\nmodel name\t: Xeon\n\nprocessor\t: 1\nvendor_id\t: AuthenticAMD\n";
        assert_eq!(parse_cpuinfo(text), Ok(CpuId { vendor: Vendor::Intel, family: 6, model: 0x55 }));
        let amd = "vendor_id : AuthenticAMD\ncpu family : 25\nmodel : 1\n";
        assert_eq!(parse_cpuinfo(amd).map(|c| (c.vendor, c.family)), Ok((Vendor::Amd, 0x19)));
        assert_eq!(parse_cpuinfo("processor : 0\nBogoMIPS : 50\n").map(|c| c.vendor), Ok(Vendor::Other));
        let bad = parse_cpuinfo("vendor_id : GenuineIntel\ncpu family : six\nmodel : 85\n").unwrap_err();
        assert!(bad.contains("cpu family") && bad.contains("six"), "{bad}");
        assert!(parse_cpuinfo("vendor_id : GenuineIntel\ncpu family : 6\n").is_err());
    }

    #[test]
    fn topology_ids_accept_minus_one() {
        assert_eq!(parse_topology_id("-1\n"), Some(0));
        assert_eq!(parse_topology_id("3\n"), Some(3));
        assert_eq!(parse_topology_id("x"), None);
        assert_eq!(parse_topology_id("-"), None);
    }

    proptest! {
        #[test]
        fn cpuinfo_parser_never_panics(s in "\\PC{0,200}") {
            let _ = parse_cpuinfo(&s);
        }

        #[test]
        fn cpuinfo_keys_in_any_order(family in 0u32..300, model in 0u32..300) {
            let text = format!("model\t: {model}\ncpu family\t: {family}\nvendor_id\t: AuthenticAMD\n");
            prop_assert_eq!(parse_cpuinfo(&text), Ok(CpuId { vendor: Vendor::Amd, family, model }));
        }

        #[test]
        fn topology_parser_never_panics(s in "\\PC{0,20}") {
            let _ = parse_topology_id(&s);
        }
    }
}
