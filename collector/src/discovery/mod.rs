//! Finds the VMs running on this host: QEMU/KVM processes in procfs, their
//! cgroup scopes, and who they belong to (libvirt XML and its fairwatt
//! metadata, or the mapping file).
//!
//! Where sources disagree, per field:
//! - identity: the QEMU command line (`-uuid`, `-name`); a libvirt XML whose
//!   UUID or name differs from the process's is stale and ignored;
//! - vCPUs and memory: libvirt XML, else the command line, else the mapping
//!   file, else QEMU's defaults (1 vCPU, 128 MiB);
//! - GPUs: `<fairwatt:gpus>`, else the number of GPUs passed through (XML
//!   `<hostdev>` and `-device vfio-pci` devices whose sysfs PCI class is a
//!   display controller or processing accelerator; a NIC or NVMe drive
//!   passed through is not a GPU; a device whose class cannot be read is
//!   counted, since passthrough on metered hosts is mostly GPUs) if any,
//!   else the mapping file, else 0;
//! - tenant: `<fairwatt:tenant>`, else the mapping file, else none.
//!
//! So the mapping file only fills what libvirt does not say.

pub mod cmdline;
pub mod libvirt;
pub mod mapping;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use fairwatt_core::{Flavor, SensorStatus, TenantId, VmId, VmInfo};

use self::cmdline::QemuCmdline;
use self::libvirt::DomainXml;
use self::mapping::Mapping;
use crate::error::{Error, Result};
use crate::proc::{CgroupRef, PidMap, ProcReader, cgroup::parse_proc_cgroup, io_err_for};

const SENSOR: &str = "discovery";
/// QEMU's defaults when neither libvirt, the command line nor the mapping file say.
const DEFAULT_VCPUS: u32 = 1;
const DEFAULT_MEMORY_MIB: u64 = 128;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryConfig {
    pub procfs_root: PathBuf,
    /// For the PCI class of passed-through devices (`bus/pci/devices/ADDR/class`).
    pub sysfs_root: PathBuf,
    /// Searched in order for `NAME.xml`; the first match whose UUID agrees wins,
    /// so the live state (`/run`) goes before the persistent definition (`/etc`).
    pub libvirt_dirs: Vec<PathBuf>,
    pub mapping_file: Option<PathBuf>,
}

impl Default for DiscoveryConfig {
    fn default() -> Self {
        DiscoveryConfig {
            procfs_root: PathBuf::from("/proc"),
            sysfs_root: PathBuf::from("/sys"),
            libvirt_dirs: vec![PathBuf::from("/run/libvirt/qemu"), PathBuf::from("/etc/libvirt/qemu")],
            mapping_file: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveredVm {
    pub info: VmInfo,
    pub pid: u32,
    /// With `pid`, identifies the process: see [`Discovery::is_alive`].
    pub start_time_ticks: u64,
    /// The VM's machine scope; `None` if the process is in no machine scope.
    pub cgroup: Option<CgroupRef>,
    /// Host PCI addresses passed through to the VM, `0000:3b:00.0`, lowercase, sorted.
    pub passthrough_gpus: Vec<String>,
}

#[derive(Debug, Default)]
pub struct DiscoveryScan {
    /// Sorted by VM id.
    pub vms: Vec<DiscoveredVm>,
    /// Problems with single processes or files; the scan went on past each.
    pub errors: Vec<Error>,
}

struct CachedXml {
    text: String,
    parsed: Result<DomainXml, String>,
    seen: bool,
    /// Changes whenever `text` does, so a VM assembled from this file can
    /// tell whether it is still current.
    generation: u64,
}

#[derive(Default)]
struct Summary {
    vms: usize,
    with_xml: usize,
    with_tenant: usize,
    errors: usize,
    first_error: Option<String>,
    fatal: Option<String>,
}

/// What a scan learns about a QEMU process from /proc.
#[derive(Debug, Clone)]
struct ProcFacts {
    cmd: cmdline::QemuCmdline,
    start_time_ticks: u64,
    cgroup: Option<CgroupRef>,
    cmd_path: PathBuf,
    /// The VM last assembled from these facts, reused while its libvirt XML
    /// (by path and generation, or its absence) is unchanged: rebuilding
    /// every VM's identity and flavor on each rescan was most of a rescan.
    assembled: Option<Assembled>,
}

#[derive(Debug, Clone)]
struct Assembled {
    xml: Option<(PathBuf, u64)>,
    vm: DiscoveredVm,
}

pub struct Discovery {
    cfg: DiscoveryConfig,
    mapping: Mapping,
    proc: ProcReader,
    // Domain XML is re-parsed only when its text changes. Reading it each
    // scan is cheap; mtime and size alone miss quick same-size rewrites.
    xml_cache: HashMap<PathBuf, CachedXml>,
    xml_generation: u64,
    last: Option<Summary>,
    // PIDs whose command line was not QEMU's on two scans in a row: the
    // process has long finished any exec (libvirt forks, then execs QEMU),
    // so rescans skip it. Forgotten when the PID disappears, and every
    // FULL_SCAN_EVERY scans, so a PID reused by a new QEMU is found.
    not_qemu: PidMap<bool>,
    // What the last scan read from /proc for each VM process (command line,
    // cgroup), reused after a start-time check against PID reuse until the
    // next full scan; the libvirt XML is still consulted on every scan.
    known: PidMap<ProcFacts>,
    scans: u64,
    // File names in each libvirt dir as of this scan (`None`: unlistable, so
    // every lookup tries the file): one listing instead of a failed open per
    // VM and directory.
    xml_listing: Vec<Option<HashSet<std::ffi::OsString>>>,
}

const FULL_SCAN_EVERY: u64 = 30;

/// PCI base classes that are GPUs for metering: display controllers (VGA,
/// 3D controllers such as data-centre GPUs) and processing accelerators.
const GPU_PCI_CLASSES: [u32; 2] = [0x03, 0x12];

/// Whether the PCI device at `addr` is a GPU by its sysfs class; `None` when
/// the class cannot be read (no such device in this sysfs, a fixture tree).
pub fn pci_is_gpu(sysfs_root: &Path, addr: &str) -> Option<bool> {
    let text = std::fs::read_to_string(sysfs_root.join("bus/pci/devices").join(addr).join("class")).ok()?;
    let class = u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).ok()?;
    Some(GPU_PCI_CLASSES.contains(&(class >> 16)))
}

impl Discovery {
    /// Loads the mapping file, if any: a missing or malformed one is an
    /// [`Error::Config`] naming the file and line, since the operator asked for it.
    pub fn new(cfg: DiscoveryConfig) -> Result<Self> {
        let mapping = match &cfg.mapping_file {
            Some(p) => Mapping::load(p)?,
            None => Mapping::default(),
        };
        Ok(Discovery {
            proc: ProcReader::new(&cfg.procfs_root),
            cfg,
            mapping,
            xml_cache: HashMap::new(),
            xml_generation: 0,
            last: None,
            not_qemu: PidMap::default(),
            known: PidMap::default(),
            scans: 0,
            xml_listing: Vec::new(),
        })
    }

    pub fn config(&self) -> &DiscoveryConfig {
        &self.cfg
    }

    /// True when `pid` still is the process discovery found (not a reused PID);
    /// one small read, cheap enough for every tick.
    pub fn is_alive(&self, pid: u32, start_time_ticks: u64) -> bool {
        self.proc.is_alive(pid, start_time_ticks)
    }

    pub fn scan(&mut self) -> DiscoveryScan {
        self.scan_with(&HashMap::<u32, u64>::new())
    }

    /// A scan that trusts `verified`, PID to start time that the caller read
    /// moments ago (the sampler reads every VM's `stat` each tick): cached
    /// facts for such a PID need no second read of its `stat`.
    pub fn scan_with<S: std::hash::BuildHasher>(&mut self, verified: &HashMap<u32, u64, S>) -> DiscoveryScan {
        let mut scan = DiscoveryScan::default();
        let root = self.cfg.procfs_root.clone();
        let entries = match std::fs::read_dir(&root) {
            Ok(e) => e,
            Err(e) => {
                let err = Error::io(SENSOR, &root, e);
                self.last = Some(Summary { fatal: Some(err.to_string()), errors: 1, ..Default::default() });
                scan.errors.push(err);
                return scan;
            }
        };
        for c in self.xml_cache.values_mut() {
            c.seen = false;
        }
        self.list_xml_dirs();
        let mut with_xml = 0;
        if self.scans.is_multiple_of(FULL_SCAN_EVERY) {
            self.not_qemu.clear();
            self.known.clear();
        }
        let mut known = std::mem::take(&mut self.known);
        self.scans += 1;
        let mut live = Vec::with_capacity(self.not_qemu.len() + 64);
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            live.push(pid);
            if self.not_qemu.get(&pid) == Some(&true) {
                continue;
            }
            let cached = known.remove(&pid).filter(|f| match verified.get(&pid) {
                Some(&t) => t == f.start_time_ticks,
                None => self.proc.start_time(pid).is_ok_and(|t| t == f.start_time_ticks),
            });
            let facts = match cached {
                Some(f) => Ok(Some(f)),
                None => self.probe(pid, &mut scan.errors),
            };
            match facts.and_then(|f| f.map(|f| self.assemble(pid, f, &mut scan.errors)).transpose()) {
                Ok(Some((vm, had_xml, facts))) => {
                    with_xml += usize::from(had_xml);
                    self.known.insert(pid, facts);
                    scan.vms.push(vm);
                }
                Ok(None) => {
                    let twice = self.not_qemu.contains_key(&pid);
                    self.not_qemu.insert(pid, twice);
                }
                // Exited while we looked: it simply is not running.
                Err(e) if e.is_not_found() => {}
                Err(e) => scan.errors.push(e),
            }
        }
        self.xml_cache.retain(|_, c| c.seen);
        // procfs lists PIDs in order already; sorting makes sure.
        live.sort_unstable();
        self.not_qemu.retain(|p, _| live.binary_search(p).is_ok());

        // Two processes with one UUID (an incoming migration on the same
        // host, a stale process): keep the older, which holds the guest.
        scan.vms.sort_by(|a, b| (&a.info.id, a.start_time_ticks).cmp(&(&b.info.id, b.start_time_ticks)));
        scan.vms.dedup_by(|later, kept| {
            let dup = later.info.id == kept.info.id;
            if dup {
                tracing::warn!(vm = %kept.info.id, kept = kept.pid, ignored = later.pid, "two QEMU processes claim one VM");
            }
            dup
        });
        self.last = Some(Summary {
            vms: scan.vms.len(),
            with_xml,
            with_tenant: scan.vms.iter().filter(|v| v.info.tenant.is_some()).count(),
            errors: scan.errors.len(),
            first_error: scan.errors.first().map(|e| e.to_string()),
            fatal: None,
        });
        scan
    }

    pub fn status(&self) -> Vec<SensorStatus> {
        let root = self.cfg.procfs_root.display();
        let xml_dirs: Vec<String> = self.cfg.libvirt_dirs.iter().filter(|d| d.is_dir()).map(|d| d.display().to_string()).collect();
        let sources = format!(
            "libvirt XML from {}; mapping file {}",
            if xml_dirs.is_empty() { "nowhere (no libvirt directory found)".to_string() } else { xml_dirs.join(", ") },
            match &self.cfg.mapping_file {
                Some(p) => format!("{} ({} entries)", p.display(), self.mapping.len()),
                None => "none".to_string(),
            }
        );
        let st = match &self.last {
            None if !self.cfg.procfs_root.is_dir() => SensorStatus::error(SENSOR, format!("no procfs at {root}; no VM can be found")),
            None => SensorStatus::ok(SENSOR, format!("procfs at {root}, not scanned yet; {sources}")),
            Some(Summary { fatal: Some(f), .. }) => SensorStatus::error(SENSOR, format!("cannot list processes: {f}")),
            Some(s) => {
                let found = format!("{} QEMU/KVM VMs in {root} ({} with libvirt XML, {} with a tenant); {sources}", s.vms, s.with_xml, s.with_tenant);
                match &s.first_error {
                    Some(e) => SensorStatus::degraded(SENSOR, format!("{found}; {} problems, first: {e}", s.errors)),
                    None => SensorStatus::ok(SENSOR, found),
                }
            }
        };
        vec![st]
    }

    fn list_xml_dirs(&mut self) {
        self.xml_listing = self
            .cfg
            .libvirt_dirs
            .iter()
            .map(|d| match std::fs::read_dir(d) {
                Ok(rd) => Some(rd.flatten().map(|e| e.file_name()).collect()),
                // An absent directory holds no files; anything else (permissions)
                // falls back to trying each file, which reports the real error.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(HashSet::new()),
                Err(_) => None,
            })
            .collect();
    }

    /// What /proc says about one process: `Ok(None)` if it is not QEMU,
    /// not-found if it exited. Problems that leave the VM usable go to `errors`.
    fn probe(&mut self, pid: u32, errors: &mut Vec<Error>) -> Result<Option<ProcFacts>> {
        let dir = self.cfg.procfs_root.join(pid.to_string());
        let cmd_path = dir.join("cmdline");
        let raw = std::fs::read(&cmd_path).map_err(|e| io_err_for(SENSOR, &cmd_path, e))?;
        let Some(cmd) = cmdline::parse_cmdline(&raw) else { return Ok(None) };
        let start_time_ticks = self.proc.start_time(pid)?;

        let cg_path = dir.join("cgroup");
        let cgroup = match std::fs::read_to_string(&cg_path) {
            Ok(text) => parse_proc_cgroup(&text),
            Err(e) => {
                let err = io_err_for(SENSOR, &cg_path, e);
                if err.is_not_found() {
                    return Err(err);
                }
                errors.push(err);
                None
            }
        };
        Ok(Some(ProcFacts { cmd, start_time_ticks, cgroup, cmd_path, assembled: None }))
    }

    /// The VM from its process facts and its libvirt XML; with whether XML
    /// was found. Reuses the VM assembled on an earlier scan while the XML
    /// it came from is unchanged and assembling it reported no problem (so
    /// problems are reported on every scan, as before).
    fn assemble(&mut self, pid: u32, mut f: ProcFacts, errors: &mut Vec<Error>) -> Result<(DiscoveredVm, bool, ProcFacts)> {
        let problems = errors.len();
        let xml_key = match f.cmd.name.as_deref() {
            Some(name) => self.domain_xml(name, f.cmd.uuid.as_deref(), errors),
            None => None,
        };
        if let Some(a) = &f.assembled
            && a.xml == xml_key
            && errors.len() == problems
        {
            return Ok((a.vm.clone(), xml_key.is_some(), f));
        }
        let xml = xml_key.as_ref().and_then(|(p, _)| self.xml_cache.get(p)).and_then(|c| c.parsed.as_ref().ok());
        let mut passthrough_gpus = f.cmd.vfio_pci.clone();
        if let Some(x) = xml {
            passthrough_gpus.extend(x.hostdev_pci.iter().cloned());
        }
        passthrough_gpus.sort();
        passthrough_gpus.dedup();
        passthrough_gpus.retain(|addr| pci_is_gpu(&self.cfg.sysfs_root, addr) != Some(false));
        let xml_path = xml_key.as_ref().map(|(p, _)| p.as_path());
        let info = self.vm_info(pid, &f.cmd, xml, xml_path, passthrough_gpus.len(), errors).map_err(|m| Error::parse(SENSOR, &f.cmd_path, m))?;
        let vm = DiscoveredVm { info, pid, start_time_ticks: f.start_time_ticks, cgroup: f.cgroup.clone(), passthrough_gpus };
        let had_xml = xml.is_some();
        f.assembled = (errors.len() == problems).then(|| Assembled { xml: xml_key, vm: vm.clone() });
        Ok((vm, had_xml, f))
    }

    /// The first `NAME.xml` in the libvirt dirs that agrees with the process,
    /// as its path and the generation of its text in `xml_cache`.
    fn domain_xml(&mut self, name: &str, uuid: Option<&str>, errors: &mut Vec<Error>) -> Option<(PathBuf, u64)> {
        if name.is_empty() || name.contains('/') || name.starts_with('.') {
            return None;
        }
        let file = format!("{name}.xml");
        for (i, d) in self.cfg.libvirt_dirs.iter().enumerate() {
            if let Some(Some(names)) = self.xml_listing.get(i)
                && !names.contains(std::ffi::OsStr::new(&file))
            {
                continue;
            }
            let path = d.join(&file);
            let text = match crate::fsutil::read_string(SENSOR, &path) {
                Ok(t) => t,
                Err(e) if e.is_not_found() => continue,
                Err(e) => {
                    errors.push(e);
                    continue;
                }
            };
            let fresh = matches!(self.xml_cache.get(&path), Some(c) if c.text == text);
            if !fresh {
                let parsed = libvirt::parse_domain_xml(&text);
                self.xml_generation += 1;
                self.xml_cache.insert(path.clone(), CachedXml { text, parsed, seen: false, generation: self.xml_generation });
            }
            let Some(cached) = self.xml_cache.get_mut(&path) else { continue };
            cached.seen = true;
            match &cached.parsed {
                Err(msg) => errors.push(Error::parse(SENSOR, &path, msg.clone())),
                Ok(x) => {
                    let stale = matches!((uuid, x.uuid.as_deref()), (Some(a), Some(b)) if a != b) || x.name.as_deref().is_some_and(|n| n != name);
                    if !stale {
                        return Some((path, cached.generation));
                    }
                }
            }
        }
        None
    }

    /// Assembles the VM's identity, tenant and flavor by the precedence in the module doc.
    fn vm_info(&self, pid: u32, cmd: &QemuCmdline, xml: Option<&DomainXml>, xml_path: Option<&Path>, devices: usize, errors: &mut Vec<Error>) -> Result<VmInfo, String> {
        let uuid = cmd.uuid.clone().or_else(|| xml.and_then(|x| x.uuid.clone()));
        let name = cmd.name.clone().or_else(|| uuid.clone()).unwrap_or_else(|| format!("pid-{pid}"));
        let id = match (&uuid, &cmd.name) {
            (Some(u), _) => u.clone(),
            (None, Some(n)) => format!("name-{}", sanitize(n)),
            (None, None) => format!("pid-{pid}"),
        };
        let id = VmId::new(id).map_err(|e| format!("no usable VM id: {e}"))?;
        let map = self.mapping.lookup(uuid.as_deref(), &name);

        let xml_tenant = xml.and_then(|x| x.tenant.as_deref()).and_then(|t| match TenantId::new(t) {
            Ok(t) => Some(t),
            Err(e) => {
                if let Some(p) = xml_path {
                    errors.push(Error::parse(SENSOR, p, format!("<fairwatt:tenant>: {e}")));
                }
                None
            }
        });
        let tenant = xml_tenant.or_else(|| map.and_then(|m| m.tenant.clone()));
        let vcpus = xml.and_then(|x| x.vcpus).or(cmd.vcpus).or(map.and_then(|m| m.vcpus)).unwrap_or(DEFAULT_VCPUS);
        let memory_mib = xml.and_then(|x| x.memory_mib).or(cmd.memory_mib).or(map.and_then(|m| m.memory_mib)).unwrap_or(DEFAULT_MEMORY_MIB);
        let seen = u32::try_from(devices).ok().filter(|&n| n > 0);
        let gpus = xml.and_then(|x| x.gpus).or(seen).or(map.and_then(|m| m.gpus)).unwrap_or(0);
        Ok(VmInfo { id, name: name.into(), tenant, flavor: Some(Flavor { vcpus, memory_mib, gpus }) })
    }
}

/// Replaces what a [`VmId`] may not hold and bounds the length.
fn sanitize(name: &str) -> String {
    let mut s: String = name.chars().map(|c| if c.is_control() || c.is_whitespace() || c == '/' { '_' } else { c }).collect();
    if s.is_empty() {
        s.push('_');
    }
    while s.len() > 128 - "name-".len() {
        s.pop();
    }
    s
}
