//! Power of an Alibaba GPU node from what is allocated on it: the figures
//! (per GPU model, per vCPU) and the node power formula the simulator
//! integrates into energy.
//!
//! Node power, when at least one pod is on the node:
//!
//! ```text
//! P = vCPUs × (cpu_idle + (cpu_max − cpu_idle) × allocated CPU share)
//!   + Σ_GPUs gpu_idle + (gpu_max − gpu_idle) × allocated GPU fraction
//! ```
//!
//! and 0 W when nothing is on it: an empty node counts as switched off (or
//! suspended), the choice CloudSim's power-aware studies make and the one
//! that lets packing save energy at all. Allocation stands in for
//! utilisation because the trace has requests and lifetimes, no utilisation.
//! Memory, disks, fans and PSU losses are not modelled: only CPU and GPU.

/// Idle and maximum board power of one GPU model.
#[derive(Clone, Debug, PartialEq)]
pub struct GpuPower {
    /// The trace's model code (`V100M32`, `T4`, …).
    pub model: String,
    pub idle_w: f64,
    /// The datasheet's maximum board power (TDP).
    pub max_w: f64,
    /// Where the figures come from.
    pub source: &'static str,
}

/// Every figure the power model uses; [`PowerTable::default`] holds the
/// published ones (see the comments there), a test may pass its own.
#[derive(Clone, Debug, PartialEq)]
pub struct PowerTable {
    /// Watts per vCPU with nothing allocated / everything allocated.
    pub cpu_idle_w_per_vcpu: f64,
    pub cpu_max_w_per_vcpu: f64,
    pub gpus: Vec<GpuPower>,
    /// Used for a model the table does not name.
    pub unknown_gpu: GpuPower,
}

// Idle figures: NVIDIA datasheets publish only the maximum. We assume an
// idle board at about 13 % of its TDP, the range nvidia-smi commonly shows
// for an idle data-centre card with the driver loaded (T4 ≈ 10 W, P100 ≈
// 30 W, V100 ≈ 40 W), and the same figures the project's twin uses for T4
// and P100 (collector/src/sim/power.rs). They are assumptions, stated as such.
const IDLE_NOTE: &str = "idle assumed ≈13 % of TDP (typical nvidia-smi idle reading)";

fn gpu(model: &str, idle_w: f64, max_w: f64, source: &'static str) -> GpuPower {
    GpuPower { model: model.to_string(), idle_w, max_w, source }
}

impl Default for PowerTable {
    fn default() -> Self {
        PowerTable {
            // Cloud Carbon Footprint's per-vCPU coefficients for Intel Cascade
            // Lake (min 0.6389 W, max 3.9673 W per vCPU, derived from
            // SPECpower_ssj2008 results; cloudcarbonfootprint.org/docs/methodology),
            // the same figures the project's twin uses for its Xeon 8280 host.
            // The trace does not name the CPUs; Cascade Lake matches the era
            // of the V100/T4 nodes.
            cpu_idle_w_per_vcpu: 0.6389,
            cpu_max_w_per_vcpu: 3.9673,
            gpus: vec![
                // NVIDIA Tesla V100 datasheet: 300 W for SXM2 (250 W PCIe).
                // The 8-GPU V100M32 nodes are SXM2 boards; we use 300 W for
                // both memory sizes.
                gpu("V100M16", 40.0, 300.0, "NVIDIA V100 datasheet 300 W (SXM2); idle assumed"),
                gpu("V100M32", 40.0, 300.0, "NVIDIA V100 datasheet 300 W (SXM2); idle assumed"),
                // NVIDIA T4 datasheet: 70 W.
                gpu("T4", 10.0, 70.0, "NVIDIA T4 datasheet 70 W; idle assumed"),
                // NVIDIA Tesla P100 datasheet: 250 W for PCIe (the 2-GPU
                // P100 nodes are PCIe servers), 300 W for SXM2.
                gpu("P100", 30.0, 250.0, "NVIDIA P100 datasheet 250 W (PCIe); idle assumed"),
                // NVIDIA A10 datasheet: 150 W.
                gpu("A10", 20.0, 150.0, "NVIDIA A10 datasheet 150 W; idle assumed"),
                // G2 and G3 are codes Alibaba does not disclose: no datasheet
                // applies. We assume the class of the fleet's named 8-GPU
                // part (V100 SXM2, 300 W), so they neither win nor lose by an
                // invented figure.
                gpu("G2", 40.0, 300.0, "undisclosed model: assumed V100-SXM2 class"),
                gpu("G3", 40.0, 300.0, "undisclosed model: assumed V100-SXM2 class"),
            ],
            unknown_gpu: gpu("unknown", 40.0, 300.0, IDLE_NOTE),
        }
    }
}

impl PowerTable {
    /// The figures for a model code, the `unknown_gpu` ones when not listed.
    pub fn gpu(&self, model: Option<&str>) -> &GpuPower {
        model.and_then(|m| self.gpus.iter().find(|g| g.model == m)).unwrap_or(&self.unknown_gpu)
    }

    /// Coefficients of one node: see [`NodePower`].
    pub fn node(&self, cpu_milli: u64, gpus: u32, model: Option<&str>) -> NodePower {
        let vcpus = cpu_milli as f64 / 1000.0;
        let g = self.gpu(model);
        let n = gpus as f64;
        NodePower {
            idle_w: vcpus * self.cpu_idle_w_per_vcpu + n * g.idle_w,
            cpu_dyn_w: vcpus * (self.cpu_max_w_per_vcpu - self.cpu_idle_w_per_vcpu),
            gpu_dyn_w_per_milli: (g.max_w - g.idle_w) / 1000.0,
        }
    }
}

/// A node's power as a linear function of its allocation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NodePower {
    /// CPU idle + every GPU's idle: what waking the node costs.
    pub idle_w: f64,
    /// Extra CPU watts at full CPU allocation.
    pub cpu_dyn_w: f64,
    /// Extra GPU watts per thousandth of a GPU allocated.
    pub gpu_dyn_w_per_milli: f64,
}

impl NodePower {
    /// Watts with `cpu_share` (0..=1) of the CPU and `gpu_milli` thousandths
    /// of GPU allocated; 0 when the node holds no pod (`busy` false).
    pub fn watts(&self, busy: bool, cpu_share: f64, gpu_milli: u64) -> f64 {
        if !busy {
            return 0.0;
        }
        self.idle_w + self.cpu_dyn_w * cpu_share.clamp(0.0, 1.0) + self.gpu_dyn_w_per_milli * gpu_milli as f64
    }
}
