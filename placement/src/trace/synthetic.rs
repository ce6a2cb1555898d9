//! Synthetic workload for default tests and benchmarks: no data files needed.
//!
//! Each VM follows a daily sine (period 288 steps of 300 s) around its own
//! base level with its own phase, plus noise; about one VM in eight is
//! bursty (short spikes near full load). Memory moves slowly around its own
//! level. Output depends only on the arguments: the seeded splitmix64
//! of [`crate::rng`] keeps it reproducible across platforms and releases.

use super::{VmTrace, Workload};
use crate::rng::SplitMix64;

/// Same step as the real traces so results compare.
pub const STEP_S: u32 = 300;
const DAY_STEPS: f64 = 86_400.0 / STEP_S as f64;

/// `vms` VMs of `steps` samples each, all present from step 0.
pub fn generate(vms: usize, steps: usize, seed: u64) -> Workload {
    let mut rng = SplitMix64::new(seed);
    let vms = (0..vms)
        .map(|i| {
            let base = rng.range(0.05, 0.5);
            let amp = rng.range(0.0, 0.3);
            let phase = rng.range(0.0, std::f64::consts::TAU);
            let noise = rng.range(0.01, 0.08);
            let bursty = rng.unit() < 0.125;
            let mem_base = rng.range(0.2, 0.7);
            let cores = 1u32 << (rng.next_u64() % 4); // 1, 2, 4 or 8
            let mem_mib = 1024 * u64::from(cores) * (1 + rng.next_u64() % 4);
            let (mut cpu, mut mem) = (Vec::with_capacity(steps), Vec::with_capacity(steps));
            let mut m = mem_base;
            let mut burst_left = 0u32;
            for t in 0..steps {
                let day = (std::f64::consts::TAU * t as f64 / DAY_STEPS + phase).sin();
                let mut c = base + amp * day + noise * rng.range(-1.0, 1.0);
                if bursty {
                    if burst_left == 0 && rng.unit() < 0.03 {
                        burst_left = 1 + (rng.next_u64() % 6) as u32;
                    }
                    if burst_left > 0 {
                        burst_left -= 1;
                        c = rng.range(0.8, 1.0);
                    }
                }
                cpu.push(c.clamp(0.0, 1.0));
                // Mean-reverting walk: memory drifts but stays near its level.
                m += 0.1 * (mem_base - m) + 0.02 * rng.range(-1.0, 1.0);
                mem.push(m.clamp(0.0, 1.0));
            }
            VmTrace {
                id: format!("syn-{i:04}"),
                step_s: STEP_S,
                cpu,
                mem: Some(mem),
                cores: Some(cores),
                cpu_mhz: Some(2500.0 * f64::from(cores)),
                mem_mib: Some(mem_mib),
                start_step: 0,
                end_step: None,
            }
        })
        .collect();
    Workload {
        vms,
        skipped: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_per_seed() {
        assert_eq!(generate(20, 300, 7), generate(20, 300, 7));
        assert_ne!(generate(20, 300, 7), generate(20, 300, 8));
    }

    #[test]
    fn shapes_and_ranges() {
        let w = generate(50, 576, 1);
        assert_eq!(w.vms.len(), 50);
        assert!(w.skipped.is_empty());
        for v in &w.vms {
            assert_eq!(v.cpu.len(), 576);
            assert_eq!(v.mem.as_ref().unwrap().len(), 576);
            assert_eq!((v.step_s, v.start_step, v.end_step), (300, 0, None));
            assert!(
                v.cpu
                    .iter()
                    .chain(v.mem.as_ref().unwrap())
                    .all(|x| (0.0..=1.0).contains(x))
            );
            assert!([1, 2, 4, 8].contains(&v.cores.unwrap()));
        }
        // Not constant: the diurnal swing shows up in every VM.
        assert!(w.vms.iter().all(|v| v.cpu.iter().any(|&c| c != v.cpu[0])));
        // Some VM bursts near full load.
        assert!(
            w.vms
                .iter()
                .any(|v| v.cpu.iter().filter(|&&c| c >= 0.8).count() >= 3)
        );
        assert!(generate(0, 10, 1).vms.is_empty());
    }
}
