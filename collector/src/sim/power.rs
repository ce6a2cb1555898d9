//! Power models of the simulated hardware: servers and GPUs.
//!
//! A server is its wall-power curve `W(u)` at CPU utilisation `u ∈ [0, 1]`,
//! given at 0, 10, …, 100 % and interpolated linearly in between (as CloudSim's
//! `PowerModelSpecPower` does). The SPECpower_ssj2008 servers carry the
//! published numbers; each constant names the result it comes from, as
//! CloudSim's `PowerModelSpecPower*` classes cite them (CloudSim gives the
//! ML110 G3 and G4 the same result page).
//!
//! The curve is split into what RAPL can see and what it cannot:
//!
//! ```text
//! W(0)        = P_pkg,idle + P_dram,idle + P_platform,idle
//!               P_pkg,idle  = pkg_idle  · W(0)  (spread evenly over the sockets)
//!               P_core,idle = core_idle · P_pkg,idle,  P_uncore,idle = the rest
//!               P_dram,idle = dram_idle · W(0)
//! W(u) − W(0) = rapl_dyn · (W(u) − W(0))          package + DRAM dynamic, metered
//!             + (1 − rapl_dyn) · (W(u) − W(0))    platform dynamic (fans, VRM and
//!                                                 PSU losses): not visible to RAPL
//! ```
//!
//! There is no `psys` domain: server parts do not expose one, so platform
//! power exists in the twin (see `SimHost::last_power`) but is never metered.
//! The SPECpower servers predate RAPL (it arrived with Sandy Bridge); the twin
//! gives them RAPL-like meters anyway so their real curves can drive it.
//!
//! A GPU draws `P_idle + (P_max − P_idle) · min(1, 0.7·sm + 0.3·mem)` with
//! `sm`, `mem` the summed SM and memory-controller utilisation in `[0, 1]`;
//! the term is linear so each VM's share is exact.

/// How a server's idle power and dynamic range divide among the domains.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PowerSplit {
    /// Share of idle wall power drawn by the CPU packages.
    pub pkg_idle: f64,
    /// Share of idle wall power drawn by DRAM (refresh, background).
    pub dram_idle: f64,
    /// Share of package idle power in the cores (leakage); the rest is uncore.
    pub core_idle: f64,
    /// Share of the dynamic range `W(u) − W(0)` that RAPL (package + DRAM) sees.
    pub rapl_dyn: f64,
}

impl PowerSplit {
    /// Assumed for the SPECpower servers, whose results give wall power only:
    /// older 1U/tower servers spend about half their idle power outside the CPU
    /// (PSU losses, fans, chipset, disks).
    pub const SPEC_DEFAULT: PowerSplit = PowerSplit { pkg_idle: 0.40, dram_idle: 0.10, core_idle: 0.30, rapl_dyn: 0.85 };
}

/// A server's power curve and shape.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerModel {
    pub name: &'static str,
    /// Where the numbers come from.
    pub source: &'static str,
    pub sockets: u32,
    /// Logical CPUs (hardware threads).
    pub threads: u32,
    /// Nominal core clock, GHz.
    pub ghz: f64,
    pub memory_gib: u64,
    /// Wall watts at 0, 10, …, 100 % utilisation.
    pub watts: [f64; 11],
    pub split: PowerSplit,
}

const fn spec(
    name: &'static str,
    source: &'static str,
    sockets: u32,
    threads: u32,
    ghz: f64,
    memory_gib: u64,
    watts: [f64; 11],
) -> ServerModel {
    ServerModel { name, source, sockets, threads, ghz, memory_gib, watts, split: PowerSplit::SPEC_DEFAULT }
}

/// A server built from component budgets (idle, max) in watts: CPUs, DRAM,
/// platform; the curve is linear between idle and max, as Cloud Carbon
/// Footprint's min/max-watts-per-vCPU model assumes.
#[allow(clippy::too_many_arguments)]
const fn components(
    name: &'static str,
    source: &'static str,
    sockets: u32,
    threads: u32,
    ghz: f64,
    memory_gib: u64,
    cpu: (f64, f64),
    dram: (f64, f64),
    platform: (f64, f64),
) -> ServerModel {
    let idle = cpu.0 + dram.0 + platform.0;
    let max = cpu.1 + dram.1 + platform.1;
    let mut watts = [0.0; 11];
    let mut i = 0;
    while i < 11 {
        watts[i] = idle + (max - idle) * i as f64 / 10.0;
        i += 1;
    }
    let dynamic = max - idle;
    let split = PowerSplit {
        pkg_idle: cpu.0 / idle,
        dram_idle: dram.0 / idle,
        core_idle: 0.30,
        rapl_dyn: ((cpu.1 - cpu.0) + (dram.1 - dram.0)) / dynamic,
    };
    ServerModel { name, source, sockets, threads, ghz, memory_gib, watts, split }
}

impl ServerModel {
    /// SPECpower_ssj2008; the remaining six likewise.
    pub const HP_PROLIANT_ML110_G3: ServerModel = spec(
        "HP ProLiant ML110 G3 (1 x Pentium D930 3.0 GHz, 2 cores, 4 GB)",
        "http://www.spec.org/power_ssj2008/results/res2011q1/power_ssj2008-20110127-00342.html",
        1, 2, 3.0, 4,
        [105.0, 112.0, 118.0, 125.0, 131.0, 137.0, 147.0, 153.0, 157.0, 164.0, 169.0],
    );
    pub const HP_PROLIANT_ML110_G4: ServerModel = spec(
        "HP ProLiant ML110 G4 (1 x Xeon 3040 1.86 GHz, 2 cores, 4 GB)",
        "http://www.spec.org/power_ssj2008/results/res2011q1/power_ssj2008-20110127-00342.html",
        1, 2, 1.86, 4,
        [86.0, 89.4, 92.6, 96.0, 99.5, 102.0, 106.0, 108.0, 112.0, 114.0, 117.0],
    );
    pub const HP_PROLIANT_ML110_G5: ServerModel = spec(
        "HP ProLiant ML110 G5 (1 x Xeon 3075 2.66 GHz, 2 cores, 4 GB)",
        "http://www.spec.org/power_ssj2008/results/res2011q1/power_ssj2008-20110124-00339.html",
        1, 2, 2.66, 4,
        [93.7, 97.0, 101.0, 105.0, 110.0, 116.0, 121.0, 125.0, 129.0, 133.0, 135.0],
    );
    pub const IBM_X3250_X3470: ServerModel = spec(
        "IBM server x3250 (1 x Xeon X3470 2.93 GHz, 4 cores / 8 threads, 8 GB)",
        "http://www.spec.org/power_ssj2008/results/res2009q4/power_ssj2008-20091104-00213.html",
        1, 8, 2.93, 8,
        [41.6, 46.7, 52.3, 57.9, 65.4, 73.0, 80.7, 89.5, 99.6, 105.0, 113.0],
    );
    pub const IBM_X3250_X3480: ServerModel = spec(
        "IBM server x3250 (1 x Xeon X3480 3.07 GHz, 4 cores / 8 threads, 8 GB)",
        "http://www.spec.org/power_ssj2008/results/res2010q4/power_ssj2008-20101001-00297.html",
        1, 8, 3.07, 8,
        [42.3, 46.7, 49.7, 55.4, 61.8, 69.3, 76.1, 87.0, 96.1, 106.0, 113.0],
    );
    pub const IBM_X3550_X5670: ServerModel = spec(
        "IBM server x3550 (2 x Xeon X5670 2.93 GHz, 12 cores / 24 threads, 12 GB)",
        "http://www.spec.org/power_ssj2008/results/res2010q2/power_ssj2008-20100315-00239.html",
        2, 24, 2.93, 12,
        [66.0, 107.0, 120.0, 131.0, 143.0, 156.0, 173.0, 191.0, 211.0, 229.0, 247.0],
    );
    pub const IBM_X3550_X5675: ServerModel = spec(
        "IBM server x3550 (2 x Xeon X5675 3.07 GHz, 12 cores / 24 threads, 16 GB)",
        "http://www.spec.org/power_ssj2008/results/res2011q2/power_ssj2008-20110406-00368.html",
        2, 24, 3.07, 16,
        [58.4, 98.0, 109.0, 118.0, 128.0, 140.0, 153.0, 170.0, 189.0, 205.0, 222.0],
    );
    /// Approximate. CPUs: Cloud Carbon Footprint's Cascade Lake coefficients
    /// (0.6389 / 3.9673 W per vCPU) × 112 vCPUs = 71.6 / 444.3 W, consistent
    /// with 2 × 205 W TDP. DRAM: 12 × 32 GiB DDR4 RDIMM at ~2 / ~6 W each.
    /// Platform (fans, PSU loss, BMC, NICs): an assumed 50 / 90 W.
    pub const XEON_8280_2S: ServerModel = components(
        "2-socket Xeon Platinum 8280 (Cascade Lake 2.7 GHz, 56 cores / 112 threads, 384 GiB)",
        "approximate: CCF Cascade Lake W/vCPU x 112, Intel TDP 205 W/socket, typical DDR4 RDIMM power",
        2, 112, 2.7, 384,
        (71.6, 444.3), (24.0, 72.0), (50.0, 90.0),
    );
    /// Approximate. CPUs: CCF EPYC 3rd Gen coefficients (0.4454 / 2.0193 W per
    /// vCPU) × 256 vCPUs = 114.0 / 516.9 W, consistent with 2 × 280 W TDP.
    /// DRAM: 16 × 64 GiB DDR4 RDIMM at ~2.5 / ~7 W. Platform: assumed 60 / 110 W.
    pub const EPYC_7763_2S: ServerModel = components(
        "2-socket AMD EPYC 7763 (Milan 2.45 GHz, 128 cores / 256 threads, 1024 GiB)",
        "approximate: CCF EPYC 3rd Gen W/vCPU x 256, AMD TDP 280 W/socket, typical DDR4 RDIMM power",
        2, 256, 2.45, 1024,
        (114.0, 516.9), (40.0, 112.0), (60.0, 110.0),
    );

    /// Every built-in server.
    pub fn all() -> [&'static ServerModel; 9] {
        [
            &Self::HP_PROLIANT_ML110_G3,
            &Self::HP_PROLIANT_ML110_G4,
            &Self::HP_PROLIANT_ML110_G5,
            &Self::IBM_X3250_X3470,
            &Self::IBM_X3250_X3480,
            &Self::IBM_X3550_X5670,
            &Self::IBM_X3550_X5675,
            &Self::XEON_8280_2S,
            &Self::EPYC_7763_2S,
        ]
    }

    /// Wall power at utilisation `u` (clamped to `[0, 1]`; NaN reads as idle).
    pub fn power_at(&self, u: f64) -> f64 {
        let u = if u.is_nan() { 0.0 } else { u.clamp(0.0, 1.0) };
        let x = u * 10.0;
        let i = (x.floor() as usize).min(9);
        let frac = x - i as f64;
        self.watts[i] + (self.watts[i + 1] - self.watts[i]) * frac
    }

    pub fn idle_watts(&self) -> f64 {
        self.watts[0]
    }

    pub fn max_watts(&self) -> f64 {
        self.watts[10]
    }

    /// Idle watts per domain kind for one socket: (core, uncore, dram).
    pub(crate) fn idle_per_socket(&self) -> (f64, f64, f64) {
        let s = self.sockets.max(1) as f64;
        let pkg = self.idle_watts() * self.split.pkg_idle / s;
        let core = pkg * self.split.core_idle;
        (core, pkg - core, self.idle_watts() * self.split.dram_idle / s)
    }
}

/// A GPU's power envelope.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuModel {
    pub name: &'static str,
    pub idle_watts: f64,
    /// Board power limit (datasheet TDP).
    pub max_watts: f64,
    pub memory_bytes: u64,
    /// NVML exposes a total-energy counter (Volta and later); otherwise only power.
    pub energy_counter: bool,
}

impl GpuModel {
    /// Approximate, datasheet TDP 400 W; idle ~55 W as commonly reported by nvidia-smi.
    pub const A100_SXM4_40GB: GpuModel =
        GpuModel { name: "NVIDIA A100-SXM4-40GB", idle_watts: 55.0, max_watts: 400.0, memory_bytes: 40 << 30, energy_counter: true };
    /// Approximate, datasheet TDP 70 W; idle ~10 W.
    pub const T4: GpuModel =
        GpuModel { name: "NVIDIA Tesla T4", idle_watts: 10.0, max_watts: 70.0, memory_bytes: 16 << 30, energy_counter: true };
    /// Approximate, datasheet TDP 250 W; idle ~30 W. Pascal has no NVML energy
    /// counter, so this GPU is metered by integrating power readings.
    pub const P100_PCIE_16GB: GpuModel =
        GpuModel { name: "NVIDIA Tesla P100-PCIE-16GB", idle_watts: 30.0, max_watts: 250.0, memory_bytes: 16 << 30, energy_counter: false };

    /// Dynamic watts of one user at SM and memory utilisation in `[0, 1]`.
    pub fn dynamic_watts(&self, sm: f64, mem: f64) -> f64 {
        (self.max_watts - self.idle_watts).max(0.0) * (0.7 * sm + 0.3 * mem).clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates_the_spec_curve() {
        let s = &ServerModel::IBM_X3550_X5670;
        assert_eq!(s.power_at(0.0), 66.0);
        assert_eq!(s.power_at(1.0), 247.0);
        assert!((s.power_at(0.05) - 86.5).abs() < 1e-9);
        assert!((s.power_at(0.95) - 238.0).abs() < 1e-9);
        assert_eq!(s.power_at(f64::NAN), 66.0);
        assert_eq!(s.power_at(7.0), 247.0);
    }

    #[test]
    fn curves_are_monotone_and_splits_sane() {
        for s in ServerModel::all() {
            assert!(s.watts.windows(2).all(|w| w[0] <= w[1]), "{}", s.name);
            let p = &s.split;
            assert!(p.pkg_idle + p.dram_idle < 1.0 && p.pkg_idle > 0.0 && p.dram_idle > 0.0, "{}", s.name);
            assert!(p.rapl_dyn > 0.5 && p.rapl_dyn <= 1.0, "{}", s.name);
            let (c, u, d) = s.idle_per_socket();
            let idle = (c + u + d) * s.sockets as f64;
            assert!(idle < s.idle_watts(), "{}", s.name);
        }
        let m = &ServerModel::EPYC_7763_2S;
        assert!((m.idle_watts() - 214.0).abs() < 1e-9 && (m.max_watts() - 738.9).abs() < 1e-9);
    }

    #[test]
    fn gpu_dynamic_power_is_bounded() {
        let g = GpuModel::A100_SXM4_40GB;
        assert_eq!(g.dynamic_watts(0.0, 0.0), 0.0);
        assert!((g.dynamic_watts(1.0, 1.0) - 345.0).abs() < 1e-9);
        assert!((g.dynamic_watts(3.0, 3.0) - 345.0).abs() < 1e-9);
    }
}
