//! Named fleets of simulated hosts.
//!
//! A scenario cycles through a list of host templates (server model, GPUs,
//! which workload classes and how densely packed) for as many hosts as asked
//! for, and fills each with VMs until its vCPU budget
//! (`threads × overcommit`), its memory or 60 VMs are reached, at least 2
//! (`churn` budgets 2.5× as much, since its VMs are not all there at once).
//! Small servers get small VMs (a quarter of the machine at most). VMs belong
//! to one of six tenants, `tenant-1` … `tenant-6`. Sensor noise is 0.5 %. Everything is drawn from `(name, seed)`: host `i`'s VMs
//! depend on the seed and `i` only, so asking for more hosts adds hosts
//! without changing the first ones; [`SimHost::new`] derives each host's
//! random stream from the seed and the host id.
//!
//! | scenario | hosts | VMs |
//! |---|---|---|
//! | `mixed` | EPYC + 2 A100, Xeon 8280 + 2 T4, x3550, Xeon 8280, x3250 (no hardware perf) | all four classes (AI only with GPUs) |
//! | `ai-heavy` | EPYC + 4 A100, Xeon 8280 + 4 T4, x3550 + 2 P100 (power readings only) | mostly AI, some database and web |
//! | `web-farm` | Xeon 8280, EPYC, x3250, ML110 G5 | web, 2× overcommitted, up to 60 per host |
//! | `batch` | EPYC, x3550, ML110 G4, Xeon 8280 | batch, vCPUs = threads |
//! | `database` | Xeon 8280, x3550, EPYC, x3250, ML110 G3 | database, a few web |
//! | `churn` | Xeon 8280 + 2 T4, EPYC | mixed; 70 % arrive during the first 6 h, lifetimes ~40 min |
//! | `wrap` | x3550, Xeon 8280 + A100 | mixed; RAPL counters wrap at 2³² µJ, no noise |
//! | `demo` | EPYC + 2 A100, Xeon 8280 + 2 T4, Xeon 8280, x3550 | all four classes, about 40 VMs; hosts boot empty, VMs arrive over hours 4–8 |

use std::path::PathBuf;

use fairwatt_core::{Flavor, HostId, TenantId, Timestamp, VmId, VmInfo};

use super::power::{GpuModel, ServerModel};
use super::rng::{Rng, derive, tag_of};
use super::workload::WorkloadClass;
use super::{SimHost, SimHostConfig, SimVmSpec};
use crate::error::{Error, Result};

const NAMES: [&str; 8] = ["mixed", "ai-heavy", "web-farm", "batch", "database", "churn", "wrap", "demo"];
const TENANTS: usize = 6;
const MAX_VMS: usize = 60;
/// `demo` hosts stay empty this long after boot, so the attribution worker
/// sees their idle power, then their VMs arrive over as long again.
pub const DEMO_BOOT_S: u64 = 4 * 3600;

/// A fleet of simulated hosts and the seed that drives them.
#[derive(Clone, Debug, PartialEq)]
pub struct Scenario {
    pub name: String,
    pub seed: u64,
    pub hosts: Vec<SimHostConfig>,
}

impl Scenario {
    /// One [`SimHost`] per config, all driven by the scenario's seed.
    pub fn build(&self) -> Vec<SimHost> {
        self.hosts.iter().map(|c| SimHost::new(c.clone(), self.seed)).collect()
    }
}

/// The names [`scenario`] accepts.
pub fn scenario_names() -> &'static [&'static str] {
    &NAMES
}

struct Template {
    server: &'static ServerModel,
    gpus: &'static [GpuModel],
    /// Relative weights of ai, database, web, batch.
    weights: [u32; 4],
    overcommit: f64,
    hardware_perf: bool,
    max_vms: usize,
}

const fn t(server: &'static ServerModel, gpus: &'static [GpuModel], weights: [u32; 4], overcommit: f64) -> Template {
    Template { server, gpus, weights, overcommit, hardware_perf: true, max_vms: MAX_VMS }
}

const MIX: [u32; 4] = [1, 1, 1, 1];
const A100X1: &[GpuModel] = &[GpuModel::A100_SXM4_40GB];
const A100X2: &[GpuModel] = &[GpuModel::A100_SXM4_40GB, GpuModel::A100_SXM4_40GB];
const A100X4: &[GpuModel] = &[GpuModel::A100_SXM4_40GB, GpuModel::A100_SXM4_40GB, GpuModel::A100_SXM4_40GB, GpuModel::A100_SXM4_40GB];
const T4X2: &[GpuModel] = &[GpuModel::T4, GpuModel::T4];
const T4X4: &[GpuModel] = &[GpuModel::T4, GpuModel::T4, GpuModel::T4, GpuModel::T4];
const P100X2: &[GpuModel] = &[GpuModel::P100_PCIE_16GB, GpuModel::P100_PCIE_16GB];

fn templates(name: &str) -> Option<Vec<Template>> {
    use ServerModel as S;
    Some(match name {
        "mixed" => vec![
            t(&S::EPYC_7763_2S, A100X2, MIX, 1.0),
            t(&S::XEON_8280_2S, T4X2, MIX, 1.0),
            t(&S::IBM_X3550_X5675, &[], MIX, 1.0),
            t(&S::XEON_8280_2S, &[], MIX, 1.0),
            Template { hardware_perf: false, ..t(&S::IBM_X3250_X3480, &[], MIX, 1.0) },
        ],
        "ai-heavy" => vec![
            t(&S::EPYC_7763_2S, A100X4, [6, 1, 1, 0], 0.6),
            t(&S::XEON_8280_2S, T4X4, [6, 1, 1, 0], 0.6),
            t(&S::IBM_X3550_X5670, P100X2, [4, 1, 1, 0], 0.8),
        ],
        "web-farm" => vec![
            t(&S::XEON_8280_2S, &[], [0, 0, 1, 0], 2.0),
            t(&S::EPYC_7763_2S, &[], [0, 0, 1, 0], 2.0),
            t(&S::IBM_X3250_X3470, &[], [0, 0, 1, 0], 2.0),
            t(&S::HP_PROLIANT_ML110_G5, &[], [0, 0, 1, 0], 2.0),
        ],
        "batch" => vec![
            t(&S::EPYC_7763_2S, &[], [0, 0, 0, 1], 1.0),
            t(&S::IBM_X3550_X5670, &[], [0, 0, 0, 1], 1.0),
            t(&S::HP_PROLIANT_ML110_G4, &[], [0, 0, 0, 1], 1.0),
            t(&S::XEON_8280_2S, &[], [0, 0, 0, 1], 1.0),
        ],
        "database" => vec![
            t(&S::XEON_8280_2S, &[], [0, 6, 1, 0], 0.75),
            t(&S::IBM_X3550_X5675, &[], [0, 6, 1, 0], 0.75),
            t(&S::EPYC_7763_2S, &[], [0, 6, 1, 0], 0.75),
            t(&S::IBM_X3250_X3470, &[], [0, 6, 1, 0], 0.75),
            t(&S::HP_PROLIANT_ML110_G3, &[], [0, 6, 1, 0], 1.0),
        ],
        "churn" => vec![t(&S::XEON_8280_2S, T4X2, MIX, 1.0), t(&S::EPYC_7763_2S, &[], MIX, 1.0)],
        "wrap" => vec![t(&S::IBM_X3550_X5670, &[], [0, 1, 1, 1], 1.0), t(&S::XEON_8280_2S, A100X1, MIX, 1.0)],
        "demo" => vec![
            Template { max_vms: 10, ..t(&S::EPYC_7763_2S, A100X2, [2, 1, 1, 1], 1.0) },
            Template { max_vms: 10, ..t(&S::XEON_8280_2S, T4X2, MIX, 1.0) },
            Template { max_vms: 15, ..t(&S::XEON_8280_2S, &[], MIX, 1.0) },
            Template { max_vms: 10, ..t(&S::IBM_X3550_X5675, &[], [0, 1, 2, 1], 1.0) },
        ],
        _ => return None,
    })
}

/// Builds scenario `name` with `hosts` hosts, starting at `start`.
pub fn scenario(name: &str, hosts: usize, seed: u64, start: Timestamp) -> Result<Scenario> {
    let err = |msg: String| Error::Config { path: PathBuf::from("simulator scenario"), msg };
    let templates =
        templates(name).ok_or_else(|| err(format!("unknown scenario {name:?}; choose one of {}", NAMES.join(", "))))?;
    if hosts == 0 {
        return Err(err("a scenario needs at least one host".into()));
    }
    let base = derive(seed, tag_of(name));
    let mut configs = Vec::with_capacity(hosts);
    for i in 0..hosts {
        let tpl = &templates[i % templates.len()];
        let mut rng = Rng::new(derive(base, i as u64));
        let host = HostId::new(format!("sim-{name}-{i:02}")).map_err(|e| err(e.to_string()))?;
        let mut cfg = SimHostConfig::new(host, tpl.server.clone(), start);
        cfg.gpus = tpl.gpus.to_vec();
        cfg.hardware_perf = tpl.hardware_perf;
        cfg.scenario = Some(name.to_string());
        cfg.noise = 0.005;
        if name == "wrap" {
            cfg.noise = 0.0;
            cfg.counter_modulus_uj = Some(1 << 32);
        }
        cfg.vms = vms(tpl, i, name == "churn", &mut rng)?;
        if name == "demo" {
            let n = cfg.vms.len() as u64;
            for (k, v) in cfg.vms.iter_mut().enumerate() {
                v.arrive_at_s = DEMO_BOOT_S + k as u64 * DEMO_BOOT_S / n.max(1);
            }
        }
        configs.push(cfg);
    }
    Ok(Scenario { name: name.to_string(), seed, hosts: configs })
}

fn pick<T: Copy>(rng: &mut Rng, xs: &[T]) -> T {
    xs[rng.below(xs.len() as u64) as usize]
}

fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-{:04x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        0x8000 | ((b >> 48) & 0x3fff),
        b & 0xffff_ffff_ffff
    )
}

fn vms(tpl: &Template, host: usize, churn: bool, rng: &mut Rng) -> Result<Vec<SimVmSpec>> {
    let server = tpl.server;
    let mut weights = tpl.weights;
    let gpus = tpl.gpus.len() as u32;
    if gpus == 0 {
        weights[0] = 0;
    }
    let total: u32 = weights.iter().sum::<u32>().max(1);
    let budget = (server.threads as f64 * tpl.overcommit * if churn { 2.5 } else { 1.0 }).max(2.0);
    // Small servers get small VMs: a quarter of the machine at most.
    let max_vcpus = (server.threads / 4).max(1);
    let mem_per_vm = (server.memory_gib << 10) / 4;
    let mem_budget = ((server.memory_gib << 10) as f64 * if churn { 2.5 } else { 1.0 }) as u64;
    let (mut used, mut mem_used, mut ai_whole, mut ai_sliced, mut out) = (0.0, 0u64, 0u32, 0u32, Vec::new());
    // Bounded: a template whose only class cannot be placed must still end.
    for _ in 0..10 * tpl.max_vms {
        if out.len() >= tpl.max_vms {
            break;
        }
        let mut roll = rng.below(total as u64) as u32;
        let class = WorkloadClass::ALL
            .into_iter()
            .zip(weights)
            .find(|&(_, w)| {
                let hit = roll < w;
                roll = roll.saturating_sub(w);
                hit
            })
            .map_or(WorkloadClass::Web, |(c, _)| c);
        let (sizes, gib_per_vcpu): (&[u32], u64) = match class {
            WorkloadClass::Ai => (&[8, 16], 8),
            WorkloadClass::Database => (&[4, 8, 8, 16], 4),
            WorkloadClass::Web => (&[1, 2, 2, 4], 2),
            WorkloadClass::Batch => (&[4, 8, 16], 2),
        };
        let vcpus = pick(rng, sizes).min(max_vcpus);
        let mut gpu_req = 0;
        if class == WorkloadClass::Ai {
            // Whole GPUs while they last (A100s and half the T4s), then vGPU slices, two per free device.
            let whole = if tpl.gpus.first().is_some_and(|g| g.max_watts < 100.0) { gpus / 2 } else { gpus };
            if ai_whole < whole {
                gpu_req = 1;
                ai_whole += 1;
            } else if ai_sliced < 2 * (gpus - whole) {
                ai_sliced += 1;
            } else {
                continue;
            }
        }
        let memory_mib = ((vcpus as u64 * gib_per_vcpu) << 10).min(mem_per_vm).max(512);
        if (used + vcpus as f64 > budget || mem_used + memory_mib > mem_budget) && out.len() >= 2 {
            break;
        }
        used += vcpus as f64;
        mem_used += memory_mib;
        let k = out.len();
        let tenant = TenantId::new(format!("tenant-{}", 1 + rng.below(TENANTS as u64))).map_err(cfg_err)?;
        let (arrive_at_s, depart_at_s) = if churn {
            let arrive = if rng.chance(0.3) { 0 } else { rng.below(6 * 3600) };
            (arrive, Some(arrive + 60 + rng.exponential(2400.0) as u64))
        } else {
            (0, None)
        };
        out.push(SimVmSpec {
            info: VmInfo {
                id: VmId::new(uuid(rng)).map_err(cfg_err)?,
                name: format!("{}-{host:02}-{k:02}", class.as_str()).into(),
                tenant: Some(tenant),
                flavor: Some(Flavor { vcpus, memory_mib, gpus: gpu_req }),
            },
            class,
            arrive_at_s,
            depart_at_s,
        });
    }
    Ok(out)
}

fn cfg_err(e: fairwatt_core::IdError) -> Error {
    Error::Config { path: PathBuf::from("simulator scenario"), msg: e.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn start() -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000).unwrap()
    }

    #[test]
    fn every_name_builds_and_unknown_names_are_listed() {
        for name in scenario_names() {
            let s = scenario(name, 6, 3, start()).unwrap();
            assert_eq!(s.hosts.len(), 6);
            for h in &s.hosts {
                h.validate().unwrap();
                assert!((2..=MAX_VMS).contains(&h.vms.len()), "{name}: {} VMs", h.vms.len());
            }
        }
        let e = scenario("nope", 1, 0, start()).unwrap_err().to_string();
        assert!(e.contains("nope") && e.contains("web-farm") && e.contains("wrap"), "{e}");
        assert!(scenario("mixed", 0, 0, start()).is_err());
    }

    /// The README's demo fleet: four server types, about 40 VMs of every
    /// class and all six tenants, each host quiet until its idle is seen.
    #[test]
    fn the_demo_fleet_has_every_class_and_tenant_and_boots_empty() {
        let s = scenario("demo", 4, 42, start()).unwrap();
        let servers: std::collections::BTreeSet<_> = s.hosts.iter().map(|h| (h.server.name, h.gpus.len())).collect();
        assert_eq!(servers.len(), 4);
        let vms: Vec<_> = s.hosts.iter().flat_map(|h| &h.vms).collect();
        assert!((36..=44).contains(&vms.len()), "{} VMs", vms.len());
        let classes: std::collections::BTreeSet<_> = vms.iter().map(|v| v.class).collect();
        assert_eq!(classes.len(), 4);
        let tenants: std::collections::BTreeSet<_> = vms.iter().map(|v| v.info.tenant.clone()).collect();
        assert_eq!(tenants.len(), TENANTS);
        assert!(vms.iter().all(|v| (DEMO_BOOT_S..2 * DEMO_BOOT_S).contains(&v.arrive_at_s)));
    }

    #[test]
    fn deterministic_and_stable_under_more_hosts() {
        let a = scenario("mixed", 2, 9, start()).unwrap();
        let b = scenario("mixed", 5, 9, start()).unwrap();
        assert_eq!(a.hosts[..], b.hosts[..2]);
        assert_ne!(a.hosts, scenario("mixed", 2, 10, start()).unwrap().hosts);
        let tenants: std::collections::BTreeSet<_> = b.hosts.iter().flat_map(|h| h.vms.iter().map(|v| v.info.tenant.clone())).collect();
        assert_eq!(tenants.len(), TENANTS);
    }
}
