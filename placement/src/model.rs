//! The datacenter's parts: host types with SPECpower curves, hosts, VM
//! requests, and the allocation of VMs to hosts with its capacity checks.
//!
//! Power follows CloudSim's `PowerModelSpecPower`: watts measured at 0, 10,
//! …, 100 % load, linearly interpolated between them. The curves below are
//! the SPECpower_ssj2008 results CloudSim's power package uses (facts,
//! with their result pages), as in `../shared/data/power-models`.

use crate::error::{PlaceError, Result};

/// A server model: capacity and its measured power curve.
#[derive(Clone, Debug, PartialEq)]
pub struct HostType {
    pub name: &'static str,
    /// Cores × MIPS per core, as CloudSim counts CPU capacity.
    pub cores: u32,
    pub mips_per_core: u32,
    pub ram_mb: u64,
    /// Watts at 0 %, 10 %, …, 100 % load.
    pub watts: [f64; 11],
}

impl HostType {
    /// HP ProLiant ML110 G4 (Xeon 3040, 2 × 1860 MIPS, 4 GB): SPECpower result
    /// power_ssj2008-20110127-00342.
    pub const ML110_G4: HostType = HostType { name: "HP ProLiant ML110 G4", cores: 2, mips_per_core: 1860, ram_mb: 4096, watts: [86.0, 89.4, 92.6, 96.0, 99.5, 102.0, 106.0, 108.0, 112.0, 114.0, 117.0] };
    /// HP ProLiant ML110 G5 (Xeon 3075, 2 × 2660 MIPS, 4 GB): SPECpower result
    /// power_ssj2008-20110124-00339.
    pub const ML110_G5: HostType = HostType { name: "HP ProLiant ML110 G5", cores: 2, mips_per_core: 2660, ram_mb: 4096, watts: [93.7, 97.0, 101.0, 105.0, 110.0, 116.0, 121.0, 125.0, 129.0, 133.0, 135.0] };

    pub fn mips(&self) -> f64 {
        self.cores as f64 * self.mips_per_core as f64
    }

    /// Watts at `load` (0..=1; clamped), interpolated as CloudSim does.
    pub fn power(&self, load: f64) -> f64 {
        let u = if load.is_finite() { load.clamp(0.0, 1.0) } else { 0.0 };
        let x = u * 10.0;
        let i = (x.floor() as usize).min(9);
        self.watts[i] + (self.watts[i + 1] - self.watts[i]) * (x - i as f64)
    }

    /// Watts per MIPS at full load: lower is more efficient.
    pub fn watts_per_mips(&self) -> f64 {
        self.watts[10] / self.mips()
    }
}

/// What a VM asks for.
#[derive(Clone, Debug, PartialEq)]
pub struct VmSpec {
    pub id: String,
    /// Requested MIPS of each of its virtual CPUs.
    pub mips: f64,
    pub ram_mb: u64,
}

/// Hosts and which VMs each holds. Capacity is counted in requested MIPS
/// and RAM; `enforce_ram` false reproduces CloudSim's PlanetLab setup, whose
/// VMs hold no RAM once created.
#[derive(Clone, Debug)]
pub struct Datacenter {
    pub hosts: Vec<HostType>,
    pub enforce_ram: bool,
    used_mips: Vec<f64>,
    used_ram: Vec<u64>,
    /// VM index → host index.
    placed: Vec<Option<usize>>,
    vms: Vec<VmSpec>,
}

impl Datacenter {
    pub fn new(hosts: Vec<HostType>, enforce_ram: bool) -> Result<Datacenter> {
        if hosts.is_empty() {
            return Err(PlaceError::Config("a datacenter needs at least one host".into()));
        }
        let n = hosts.len();
        Ok(Datacenter { hosts, enforce_ram, used_mips: vec![0.0; n], used_ram: vec![0; n], placed: Vec::new(), vms: Vec::new() })
    }

    /// The Beloglazov/CloudSim setup: `n` hosts, half ML110 G4, half G5.
    pub fn cloudsim(n: usize, enforce_ram: bool) -> Result<Datacenter> {
        Datacenter::new((0..n).map(|i| if i % 2 == 0 { HostType::ML110_G4 } else { HostType::ML110_G5 }).collect(), enforce_ram)
    }

    /// Adds a VM request (unplaced); returns its index.
    pub fn add_vm(&mut self, vm: VmSpec) -> Result<usize> {
        if !(vm.mips.is_finite() && vm.mips > 0.0) {
            return Err(PlaceError::BadRequest(format!("VM {}: MIPS must be positive, not {}", vm.id, vm.mips)));
        }
        self.vms.push(vm);
        self.placed.push(None);
        Ok(self.vms.len() - 1)
    }

    pub fn vm(&self, v: usize) -> &VmSpec {
        &self.vms[v]
    }

    pub fn vm_count(&self) -> usize {
        self.vms.len()
    }

    pub fn host_of(&self, v: usize) -> Option<usize> {
        self.placed[v]
    }

    /// Whether host `h` has room for VM `v` (as requested).
    pub fn fits(&self, h: usize, v: usize) -> bool {
        let (vm, t) = (&self.vms[v], &self.hosts[h]);
        // As CloudSim's `isSuitableForVm`: a (one-PE) VM's MIPS must fit one of
        // the host's cores, and the host's free MIPS.
        vm.mips <= t.mips_per_core as f64 + 1e-9 && self.used_mips[h] + vm.mips <= t.mips() + 1e-9 && (!self.enforce_ram || self.used_ram[h] + vm.ram_mb <= t.ram_mb)
    }

    /// Whether any host, empty, could take VM `v`.
    pub fn could_ever_fit(&self, v: usize) -> bool {
        let vm = &self.vms[v];
        self.hosts.iter().any(|t| vm.mips <= t.mips_per_core as f64 && (!self.enforce_ram || vm.ram_mb <= t.ram_mb))
    }

    pub fn place(&mut self, v: usize, h: usize) -> Result<()> {
        if !self.fits(h, v) {
            return Err(PlaceError::NoCapacity(format!("host {h} has no room for VM {}", self.vms[v].id)));
        }
        if let Some(old) = self.placed[v] {
            self.release(old, v);
        }
        self.used_mips[h] += self.vms[v].mips;
        self.used_ram[h] += self.vms[v].ram_mb;
        self.placed[v] = Some(h);
        Ok(())
    }

    pub fn remove(&mut self, v: usize) {
        if let Some(h) = self.placed[v].take() {
            self.release(h, v);
        }
    }

    fn release(&mut self, h: usize, v: usize) {
        self.used_mips[h] = (self.used_mips[h] - self.vms[v].mips).max(0.0);
        self.used_ram[h] = self.used_ram[h].saturating_sub(self.vms[v].ram_mb);
    }

    /// Requested MIPS on host `h` over its capacity.
    pub fn allocated_share(&self, h: usize) -> f64 {
        self.used_mips[h] / self.hosts[h].mips()
    }

    pub fn is_empty(&self, h: usize) -> bool {
        self.used_mips[h] <= 1e-9 && self.used_ram[h] == 0
    }

    pub fn vms_on(&self, h: usize) -> impl Iterator<Item = usize> + '_ {
        self.placed.iter().enumerate().filter(move |(_, p)| **p == Some(h)).map(|(v, _)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_interpolates_the_measured_points() {
        let g4 = HostType::ML110_G4;
        assert_eq!(g4.power(0.0), 86.0);
        assert_eq!(g4.power(1.0), 117.0);
        assert!((g4.power(0.55) - 104.0).abs() < 1e-9);
        assert_eq!(g4.power(1.7), 117.0);
        assert_eq!(g4.power(f64::NAN), 86.0);
        assert!(HostType::ML110_G5.watts_per_mips() < g4.watts_per_mips());
    }

    #[test]
    fn capacity_is_never_exceeded() {
        let mut dc = Datacenter::new(vec![HostType::ML110_G4], true).unwrap();
        let a = dc.add_vm(VmSpec { id: "a".into(), mips: 1800.0, ram_mb: 870 }).unwrap();
        let b = dc.add_vm(VmSpec { id: "b".into(), mips: 1000.0, ram_mb: 3500 }).unwrap();
        let c = dc.add_vm(VmSpec { id: "c".into(), mips: 1800.0, ram_mb: 100 }).unwrap();
        let wide = dc.add_vm(VmSpec { id: "wide".into(), mips: 2500.0, ram_mb: 100 }).unwrap();
        assert!(!dc.fits(0, wide) && !dc.could_ever_fit(wide), "2500 MIPS exceeds a 1860-MIPS core");
        dc.place(a, 0).unwrap();
        assert!(matches!(dc.place(b, 0), Err(PlaceError::NoCapacity(_))), "RAM: 870 + 3500 > 4096");
        dc.place(c, 0).unwrap();
        assert!((dc.allocated_share(0) - 3600.0 / 3720.0).abs() < 1e-12);
        dc.remove(a);
        assert_eq!(dc.vms_on(0).collect::<Vec<_>>(), [c]);
        let mut cpu_only = Datacenter::new(vec![HostType::ML110_G4], false).unwrap();
        let big = cpu_only.add_vm(VmSpec { id: "big".into(), mips: 500.0, ram_mb: 100_000 }).unwrap();
        assert!(cpu_only.fits(0, big), "CloudSim's PlanetLab VMs hold no RAM");
        assert!(Datacenter::new(Vec::new(), true).is_err());
        assert!(dc.add_vm(VmSpec { id: "z".into(), mips: 0.0, ram_mb: 1 }).is_err());
    }
}
