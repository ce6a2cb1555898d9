//! RAPL through the kernel's powercap sysfs tree (`/sys/class/powercap`).
//!
//! Each `intel-rapl:N` zone is a package (`package-N`, or `package-N-die-M` on
//! multi-die parts) or the platform (`psys`); its subzones `intel-rapl:N:M`
//! are the package's `core`, `uncore` and `dram`. Some servers put `dram` at
//! the top level instead. AMD's driver uses the same `intel-rapl` names.
//! `energy_uj` counts microjoules and wraps after `max_energy_range_uj`.
//!
//! Facts this module relies on (Linux `drivers/powercap/intel_rapl_common.c`):
//! - a zone's `enabled` file is the enable bit of its power *limit* (PL1); the
//!   energy counter runs regardless, so disabled zones are still read;
//! - since Linux 5.10 `energy_uj` is mode 0400 (CVE-2020-8694, the PLATYPUS
//!   power side channel), so a non-root agent gets EACCES;
//! - `max_energy_range_uj` is the 32-bit raw counter maximum times the energy
//!   unit, so the true wrap point is `max + one unit`; we use `max + 1`,
//!   which misplaces each wrap by less than one unit (≈ 61 µJ).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use fairwatt_core::{Domain, DomainKind, SensorStatus};

use super::POWERCAP_SENSOR as SENSOR;
use crate::energy::{EnergySource, RawReading, Scale};
use crate::error::{Error, Result};
use crate::fsutil;

const PERMISSION_HINT: &str = "since Linux 5.10 energy_uj is readable only by root (CVE-2020-8694, PLATYPUS): \
run the agent as root, or grant its user read access, e.g. `chmod 0444 /sys/class/powercap/intel-rapl:*/energy_uj` \
re-applied at boot by a udev rule or a systemd-tmpfiles `z` line, accepting the side-channel risk on that host";

/// What the kernel's zone `name` says the zone is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ZoneName {
    Package {
        package: u32,
        die: Option<u32>,
    },
    Core,
    Uncore,
    Dram,
    /// `psys` on the first package, `psys-N` on others.
    Psys(Option<u32>),
}

/// Parses `intel-rapl:N` or `intel-rapl:N:M`; anything else (the control
/// type directory `intel-rapl`, `intel-rapl-mmio:*`, other drivers) is `None`.
pub(crate) fn parse_zone_id(s: &str) -> Option<(u32, Option<u32>)> {
    let rest = s.strip_prefix("intel-rapl:")?;
    let num = |t: &str| fsutil::parse_u64(t).and_then(|v| u32::try_from(v).ok());
    match rest.split_once(':') {
        None => Some((num(rest)?, None)),
        Some((n, m)) => Some((num(n)?, Some(num(m)?))),
    }
}

pub(crate) fn classify(name: &str) -> Option<ZoneName> {
    let num = |t: &str| fsutil::parse_u64(t).and_then(|v| u32::try_from(v).ok());
    match name {
        "core" => return Some(ZoneName::Core),
        "uncore" => return Some(ZoneName::Uncore),
        "dram" => return Some(ZoneName::Dram),
        "psys" => return Some(ZoneName::Psys(None)),
        _ => {}
    }
    if let Some(n) = name.strip_prefix("psys-") {
        return Some(ZoneName::Psys(Some(num(n)?)));
    }
    let rest = name.strip_prefix("package-")?;
    match rest.split_once("-die-") {
        None => Some(ZoneName::Package { package: num(rest)?, die: None }),
        Some((p, d)) => Some(ZoneName::Package { package: num(p)?, die: Some(num(d)?) }),
    }
}

#[derive(Clone, Debug)]
enum Fault {
    Permission(String),
    Other(String),
}

#[derive(Debug)]
struct Zone {
    id: String,
    domain: Domain,
    energy: fsutil::HeldCounter,
    max_path: PathBuf,
    /// `max_energy_range_uj`, once it has been read successfully.
    max: Option<u64>,
    fault: Option<Fault>,
}

impl Zone {
    fn read(&mut self) -> Result<RawReading> {
        let max = match self.max {
            Some(m) => m,
            None => {
                let m = read_counter_file(&self.max_path)?;
                if m == 0 {
                    return Err(Error::parse(SENSOR, &self.max_path, "max_energy_range_uj is 0"));
                }
                self.max = Some(m);
                m
            }
        };
        let raw = self.energy.read_u64(SENSOR).map_err(with_permission_hint)?;
        if raw > max {
            let msg = format!("value {raw} exceeds max_energy_range_uj {max}");
            return Err(Error::parse(SENSOR, self.energy.path(), msg));
        }
        Ok(RawReading::Counter { raw, modulus: max.checked_add(1), scale: Scale::MICROJOULE })
    }

    fn record(&mut self, r: &Result<RawReading>) {
        self.fault = match r {
            Ok(_) => None,
            Err(e @ Error::PermissionDenied { .. }) => Some(Fault::Permission(e.to_string())),
            Err(e) => Some(Fault::Other(e.to_string())),
        };
    }
}

/// Reads a counter file, turning EACCES into the powercap-specific hint.
fn read_counter_file(path: &Path) -> Result<u64> {
    fsutil::read_u64(SENSOR, path).map_err(with_permission_hint)
}

pub(crate) fn with_permission_hint(e: Error) -> Error {
    match e {
        Error::PermissionDenied { path, .. } => {
            Error::PermissionDenied { sensor: SENSOR, path, hint: PERMISSION_HINT.to_string() }
        }
        other => other,
    }
}

/// RAPL zones found under `{sysfs_root}/class/powercap`.
#[derive(Debug)]
pub struct Powercap {
    dir: PathBuf,
    zones: Vec<Zone>,
    /// Zones ignored and why, for the status line.
    notes: Vec<String>,
}

impl Powercap {
    /// Finds the zones and probes each counter once. Succeeds whenever RAPL
    /// zones exist, even if their counters are unreadable: [`Powercap::status`]
    /// then says why and [`Powercap::usable`] is false.
    pub fn new(sysfs_root: &Path) -> Result<Self> {
        let dir = sysfs_root.join("class/powercap");
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let reason = format!(
                    "no powercap tree at {}: the RAPL driver is not loaded (modprobe intel_rapl_msr) \
                     or this host, e.g. a VM, exposes no RAPL",
                    dir.display()
                );
                return Err(Error::NotAvailable { sensor: SENSOR, reason });
            }
            Err(e) => return Err(Error::io(SENSOR, &dir, e)),
        };
        let mut ids = Vec::new();
        let mut notes = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|e| Error::io(SENSOR, &dir, e))?;
            let file_name = entry.file_name();
            let Some(name) = file_name.to_str() else { continue };
            if name.starts_with("intel-rapl-mmio:") {
                // The MMIO interface (processor thermal device, for power
                // limits) mirrors the MSR package counter: reading both
                // would count package energy twice.
                notes.push(format!("{name} ignored: it mirrors the intel-rapl package counter through MMIO"));
            } else if let Some((n, m)) = parse_zone_id(name) {
                ids.push((n, m, name.to_string()));
            }
        }
        ids.sort();
        let mut pc = Powercap { zones: Vec::new(), notes, dir };
        pc.map_zones(&ids);
        if pc.zones.is_empty() {
            let mut reason = format!("no RAPL zones under {}", pc.dir.display());
            if !pc.notes.is_empty() {
                reason.push_str(&format!(" ({})", pc.notes.join("; ")));
            }
            return Err(Error::NotAvailable { sensor: SENSOR, reason });
        }
        for z in &mut pc.zones {
            let r = z.read();
            z.record(&r);
        }
        Ok(pc)
    }

    /// Maps zone directories to domains; unreadable or unknown zones become notes.
    fn map_zones(&mut self, ids: &[(u32, Option<u32>, String)]) {
        let mut names = BTreeMap::new();
        for (n, m, id) in ids {
            let path = self.dir.join(id).join("name");
            match fsutil::read_string(SENSOR, &path) {
                Ok(s) => match classify(s.trim()) {
                    Some(kind) => {
                        names.insert((*n, *m), (id.as_str(), kind));
                    }
                    None => {
                        self.notes.push(format!("{id} ignored: unknown zone name {:?}", fsutil::truncate(s.trim(), 40)))
                    }
                },
                Err(e) => self.notes.push(format!("{id} ignored: {e}")),
            }
        }
        // Multi-die parts name zones `package-P-die-D`; the package number
        // alone would collide, so number dies in zone order instead.
        let multi_die = names.values().any(|(_, k)| matches!(k, ZoneName::Package { die: Some(_), .. }));
        let mut package_of_zone = BTreeMap::new();
        let (mut next_pkg, mut next_psys, mut next_dram) = (0u32, 0u32, 0u32);
        let mut planned = Vec::new();
        for (&(n, m), &(id, kind)) in &names {
            let domain = match (m, kind) {
                (None, ZoneName::Package { package, .. }) => {
                    let index = if multi_die { next_pkg } else { package };
                    next_pkg += 1;
                    package_of_zone.insert(n, index);
                    Some(Domain::package(index))
                }
                (None, ZoneName::Psys(explicit)) => {
                    let index = explicit.unwrap_or(next_psys);
                    next_psys += 1;
                    Some(Domain::psys(index))
                }
                (None, ZoneName::Dram) => {
                    next_dram += 1;
                    Some(Domain::dram(next_dram - 1))
                }
                (Some(_), ZoneName::Core | ZoneName::Uncore | ZoneName::Dram) => {
                    let pkg = package_of_zone.get(&n).copied();
                    pkg.map(|p| match kind {
                        ZoneName::Core => Domain::core(p),
                        ZoneName::Uncore => Domain::uncore(p),
                        _ => Domain::dram(p),
                    })
                }
                _ => None,
            };
            match domain {
                Some(d) => planned.push((id, d)),
                None => self.notes.push(format!("{id} ignored: unexpected zone {kind:?} at this level")),
            }
        }
        let mut seen = BTreeSet::new();
        for (id, domain) in planned {
            if !seen.insert(domain) {
                self.notes.push(format!("{id} ignored: a second zone for {domain}"));
                continue;
            }
            let zone_dir = self.dir.join(id);
            if fsutil::read_string(SENSOR, &zone_dir.join("enabled")).is_ok_and(|s| s.trim() == "0") {
                self.notes
                    .push(format!("{domain} has its power limit disabled (enabled=0); its energy is still counted"));
            }
            self.zones.push(Zone {
                id: id.to_string(),
                domain,
                energy: fsutil::HeldCounter::new(zone_dir.join("energy_uj")),
                max_path: zone_dir.join("max_energy_range_uj"),
                max: None,
                fault: None,
            });
        }
    }

    /// The domains this source reports, in reading order.
    pub fn domains(&self) -> Vec<Domain> {
        self.zones.iter().map(|z| z.domain).collect()
    }

    /// True when at least one counter could be read at the last attempt.
    pub fn usable(&self) -> bool {
        self.zones.iter().any(|z| z.fault.is_none())
    }

    /// Stops reporting every domain of `kind`, saying why in the status.
    pub fn drop_kind(&mut self, kind: DomainKind, why: &str) {
        let (dropped, kept): (Vec<Zone>, Vec<Zone>) = self.zones.drain(..).partition(|z| z.domain.kind == kind);
        self.zones = kept;
        for z in dropped {
            self.notes.push(format!("{} ({}) not reported: {why}", z.domain, z.id));
        }
    }
}

impl EnergySource for Powercap {
    fn name(&self) -> &'static str {
        SENSOR
    }

    fn status(&self) -> Vec<SensorStatus> {
        let list = |f: &dyn Fn(&Zone) -> bool| {
            self.zones.iter().filter(|z| f(z)).map(|z| z.domain.to_string()).collect::<Vec<_>>()
        };
        let denied = list(&|z| matches!(z.fault, Some(Fault::Permission(_))));
        let mut detail = if !denied.is_empty() {
            format!("permission denied reading energy_uj of {}: {PERMISSION_HINT}", denied.join(", "))
        } else {
            let faults: Vec<String> = self
                .zones
                .iter()
                .filter_map(|z| match &z.fault {
                    Some(Fault::Other(msg) | Fault::Permission(msg)) => Some(msg.clone()),
                    None => None,
                })
                .collect();
            if faults.is_empty() {
                format!("reading {} under {}", list(&|_| true).join(", "), self.dir.display())
            } else {
                let ok = list(&|z| z.fault.is_none());
                format!(
                    "{}; still reading: {}",
                    faults.join("; "),
                    if ok.is_empty() { "none".into() } else { ok.join(", ") }
                )
            }
        };
        if !self.notes.is_empty() {
            detail.push_str(&format!(" ({})", self.notes.join("; ")));
        }
        let failing = self.zones.iter().any(|z| z.fault.is_some());
        vec![if failing { SensorStatus::error(SENSOR, detail) } else { SensorStatus::ok(SENSOR, detail) }]
    }

    fn read(&mut self) -> Vec<(Domain, Result<RawReading>)> {
        self.zones
            .iter_mut()
            .map(|z| {
                let r = z.read();
                z.record(&r);
                (z.domain, r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fairwatt_core::SensorState;
    use proptest::prelude::*;

    #[test]
    fn zone_ids_and_names() {
        assert_eq!(parse_zone_id("intel-rapl:0"), Some((0, None)));
        assert_eq!(parse_zone_id("intel-rapl:1:2"), Some((1, Some(2))));
        assert_eq!(parse_zone_id("intel-rapl"), None);
        assert_eq!(parse_zone_id("intel-rapl-mmio:0"), None);
        assert_eq!(parse_zone_id("intel-rapl:0:1:2"), None);
        assert_eq!(classify("package-3"), Some(ZoneName::Package { package: 3, die: None }));
        assert_eq!(classify("package-0-die-1"), Some(ZoneName::Package { package: 0, die: Some(1) }));
        assert_eq!(classify("psys-1"), Some(ZoneName::Psys(Some(1))));
        assert_eq!(classify("package--1"), None);
        assert_eq!(classify("gpu"), None);
    }

    /// EACCES cannot be provoked by file modes when tests run as root, so the
    /// hint and the status are checked with a synthetic error here.
    #[test]
    fn permission_denied_names_the_cve_in_error_and_status() {
        let path = PathBuf::from("/sys/class/powercap/intel-rapl:0/energy_uj");
        let io = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        let e = with_permission_hint(Error::io(SENSOR, &path, io));
        let msg = e.to_string();
        assert!(matches!(e, Error::PermissionDenied { .. }), "{msg}");
        assert!(msg.contains("CVE-2020-8694") && msg.contains("5.10") && msg.contains("root"), "{msg}");
        let mut zone = Zone {
            id: "intel-rapl:0".into(),
            domain: Domain::package(0),
            energy: fsutil::HeldCounter::new(path.clone()),
            max_path: path,
            max: Some(1000),
            fault: None,
        };
        zone.record(&Err(e));
        let pc = Powercap { dir: "/sys/class/powercap".into(), zones: vec![zone], notes: vec![] };
        let st = &pc.status()[0];
        assert_eq!(st.state, SensorState::Error);
        assert!(st.detail.contains("permission denied") && st.detail.contains("CVE-2020-8694"), "{}", st.detail);
        assert!(!pc.usable());
    }

    proptest! {
        #[test]
        fn name_parsers_never_panic(s in "\\PC{0,24}") {
            let _ = parse_zone_id(&s);
            let _ = classify(&s);
        }

        #[test]
        fn zone_ids_round_trip(n in any::<u32>(), m in proptest::option::of(any::<u32>())) {
            let s = match m { Some(m) => format!("intel-rapl:{n}:{m}"), None => format!("intel-rapl:{n}") };
            prop_assert_eq!(parse_zone_id(&s), Some((n, m)));
        }
    }
}
