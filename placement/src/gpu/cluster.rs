//! The GPU cluster's state: per node free CPU, memory and the free fraction
//! of each GPU; placing and releasing pods; and the checker that recomputes
//! every node from its placements to prove no capacity was ever exceeded.
//!
//! A GPU-sharing pod takes a fraction of ONE GPU; a pod asking for whole
//! GPUs takes that many GPUs that are entirely free (a half-used GPU is no
//! use to it). GPU fractions are kept in thousandths, as the trace writes them.

pub(crate) use super::demand::{Demand, GpuNeed, GpuTake, WHOLE};
use super::frag::FragModel;
use super::power::{NodePower, PowerTable};
use crate::error::{PlaceError, Result};
use crate::trace::NodeSpec;

#[derive(Clone, Debug)]
pub(crate) struct Node {
    pub cpu_cap: u64,
    pub mem_cap: u64,
    /// Index into the cluster's model names (see `model_names`); `None` for CPU-only nodes.
    pub model: Option<u8>,
    pub cpu_free: u64,
    pub mem_free: u64,
    /// Free thousandths of each GPU.
    pub gpu_free: Vec<u32>,
    pub pods: u32,
    pub power: NodePower,
    // Cached per-node figures, kept current by `refresh`, so cluster sums
    // never need a pass over every node.
    pub watts: f64,
    pub frag: f64,
    pub util: f64,
}

impl Node {
    pub fn gpus(&self) -> u32 {
        self.gpu_free.len() as u32
    }
    pub fn gpu_free_total(&self) -> u64 {
        self.gpu_free.iter().map(|&f| f as u64).sum()
    }
    pub fn gpu_used(&self) -> u64 {
        self.gpus() as u64 * WHOLE as u64 - self.gpu_free_total()
    }

    /// Whether the pod fits now, CPU, memory, GPU model and GPUs all.
    pub fn fits(&self, d: &Demand) -> bool {
        if self.cpu_free < d.cpu || self.mem_free < d.mem {
            return false;
        }
        match d.need {
            GpuNeed::None => true,
            need => {
                let model_ok = self.model.is_some_and(|m| d.allowed >> m & 1 == 1);
                model_ok
                    && match need {
                        GpuNeed::Share(m) => self.gpu_free.iter().any(|&f| f >= m),
                        GpuNeed::Whole(k) => self.gpu_free.iter().filter(|&&f| f == WHOLE).count() >= k as usize,
                        GpuNeed::None => unreachable!(),
                    }
            }
        }
    }

    /// The first `k` entirely free GPUs (all alike, so the first will do).
    pub fn whole_take(&self, k: u32) -> Option<u64> {
        let mut mask = 0u64;
        let mut left = k;
        for (i, &f) in self.gpu_free.iter().enumerate() {
            if left == 0 {
                break;
            }
            if f == WHOLE {
                mask |= 1 << i;
                left -= 1;
            }
        }
        (left == 0).then_some(mask)
    }

    /// Watts if `d` were added (the node then holds at least one pod).
    pub fn watts_with(&self, d: &Demand) -> f64 {
        let cpu = (self.cpu_cap - self.cpu_free + d.cpu) as f64 / self.cpu_cap.max(1) as f64;
        self.power.watts(true, cpu, self.gpu_used() + d.gpu_milli())
    }

    fn refresh(&mut self, frag: &FragModel) {
        let cpu = (self.cpu_cap - self.cpu_free) as f64 / self.cpu_cap.max(1) as f64;
        let mem = (self.mem_cap - self.mem_free) as f64 / self.mem_cap.max(1) as f64;
        self.watts = self.power.watts(self.pods > 0, cpu, self.gpu_used());
        self.frag = frag.node_frag(self.model, self.cpu_free, &self.gpu_free);
        // Utilisation for load balance: the mean share allocated over the
        // resources the node has.
        self.util = if self.gpus() > 0 {
            let g = self.gpu_used() as f64 / (self.gpus() as f64 * WHOLE as f64);
            (cpu + mem + g) / 3.0
        } else {
            (cpu + mem) / 2.0
        };
    }
}

/// Cluster-wide sums, updated node by node.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Totals {
    pub watts: f64,
    pub gpu_used: u64,
    pub gpu_cap: u64,
    pub active: usize,
    pub frag: f64,
    pub util: f64,
    pub util_sq: f64,
}

#[derive(Clone, Debug)]
pub(crate) struct Cluster {
    pub nodes: Vec<Node>,
    pub totals: Totals,
    /// Per pod index: (node, GPUs taken, demand) while placed.
    placed: Vec<Option<(usize, GpuTake, Demand)>>,
}

impl Cluster {
    /// An empty cluster; `models` gives each node's model index.
    pub fn new(specs: &[NodeSpec], models: &[String], power: &PowerTable, frag: &FragModel, pods: usize) -> Result<Cluster> {
        if specs.is_empty() {
            return Err(PlaceError::Config("no nodes: a GPU cluster needs at least one node".into()));
        }
        let mut nodes = Vec::with_capacity(specs.len());
        for s in specs {
            if s.gpus > 64 {
                return Err(PlaceError::Config(format!("node {} has {} GPUs; at most 64 are supported", s.id, s.gpus)));
            }
            if s.cpu_milli == 0 || s.memory_mib == 0 {
                return Err(PlaceError::Config(format!("node {} has no CPU or no memory", s.id)));
            }
            // GPU nodes without a model name share the entry "" (see `model_names`).
            let name = s.gpu_model.as_deref().unwrap_or("");
            let model = (s.gpus > 0).then(|| models.iter().position(|x| x == name)).flatten().map(|i| i as u8);
            nodes.push(Node {
                cpu_cap: s.cpu_milli,
                mem_cap: s.memory_mib,
                model,
                cpu_free: s.cpu_milli,
                mem_free: s.memory_mib,
                gpu_free: vec![WHOLE; s.gpus as usize],
                pods: 0,
                power: power.node(s.cpu_milli, s.gpus, s.gpu_model.as_deref()),
                watts: 0.0,
                frag: 0.0,
                util: 0.0,
            });
        }
        let mut c = Cluster { nodes, totals: Totals::default(), placed: vec![None; pods] };
        for n in 0..c.nodes.len() {
            c.nodes[n].refresh(frag);
            c.add_totals(n, 1.0);
            c.totals.gpu_cap += c.nodes[n].gpus() as u64 * WHOLE as u64;
        }
        Ok(c)
    }

    fn add_totals(&mut self, n: usize, sign: f64) {
        let node = &self.nodes[n];
        let t = &mut self.totals;
        t.watts += sign * node.watts;
        t.frag += sign * node.frag;
        t.util += sign * node.util;
        t.util_sq += sign * node.util * node.util;
        if node.pods > 0 {
            t.active = (t.active as isize + sign as isize) as usize;
        }
    }

    /// Puts pod `pod` on node `n`. Refuses (an error, a policy bug) anything
    /// that does not fit, so capacity can never be exceeded.
    pub fn place(&mut self, pod: usize, n: usize, take: GpuTake, d: &Demand, frag: &FragModel) -> Result<()> {
        let node = &self.nodes[n];
        let gpu_ok = match take {
            GpuTake::None => d.need == GpuNeed::None,
            GpuTake::Share { gpu, milli } => d.need == GpuNeed::Share(milli) && node.gpu_free.get(gpu as usize).is_some_and(|&f| f >= milli),
            GpuTake::Whole(mask) => {
                d.need == GpuNeed::Whole(mask.count_ones())
                    && (0..64).filter(|i| mask >> i & 1 == 1).all(|i| node.gpu_free.get(i).is_some_and(|&f| f == WHOLE))
            }
        };
        if !node.fits(d) || !gpu_ok || self.placed[pod].is_some() {
            return Err(PlaceError::NoCapacity(format!("pod #{pod} does not fit node #{n} as chosen ({take:?})")));
        }
        self.add_totals(n, -1.0);
        let node = &mut self.nodes[n];
        node.cpu_free -= d.cpu;
        node.mem_free -= d.mem;
        match take {
            GpuTake::None => {}
            GpuTake::Share { gpu, milli } => node.gpu_free[gpu as usize] -= milli,
            GpuTake::Whole(mask) => (0..64).filter(|i| mask >> i & 1 == 1).for_each(|i| node.gpu_free[i] = 0),
        }
        node.pods += 1;
        self.totals.gpu_used += d.gpu_milli();
        node.refresh(frag);
        self.add_totals(n, 1.0);
        self.placed[pod] = Some((n, take, *d));
        Ok(())
    }

    /// Takes pod `pod` off its node; false when it was not placed.
    pub fn release(&mut self, pod: usize, frag: &FragModel) -> bool {
        let Some((n, take, d)) = self.placed[pod].take() else { return false };
        self.add_totals(n, -1.0);
        let node = &mut self.nodes[n];
        node.cpu_free += d.cpu;
        node.mem_free += d.mem;
        match take {
            GpuTake::None => {}
            GpuTake::Share { gpu, milli } => node.gpu_free[gpu as usize] += milli,
            GpuTake::Whole(mask) => (0..64).filter(|i| mask >> i & 1 == 1).for_each(|i| node.gpu_free[i] = WHOLE),
        }
        node.pods -= 1;
        self.totals.gpu_used -= d.gpu_milli();
        node.refresh(frag);
        self.add_totals(n, 1.0);
        true
    }

    /// Recomputes every node from the placements alone and compares: used
    /// never above capacity, free = capacity − used, each GPU at most whole.
    pub fn check(&self) -> Result<()> {
        let mut cpu = vec![0u64; self.nodes.len()];
        let mut mem = vec![0u64; self.nodes.len()];
        let mut pods = vec![0u32; self.nodes.len()];
        let mut gpu: Vec<Vec<u32>> = self.nodes.iter().map(|n| vec![0; n.gpu_free.len()]).collect();
        for (n, take, d) in self.placed.iter().flatten() {
            cpu[*n] += d.cpu;
            mem[*n] += d.mem;
            pods[*n] += 1;
            match *take {
                GpuTake::None => {}
                GpuTake::Share { gpu: g, milli } => gpu[*n][g as usize] += milli,
                GpuTake::Whole(mask) => (0..64).filter(|i| mask >> i & 1 == 1).for_each(|i| gpu[*n][i] += WHOLE),
            }
        }
        for (i, node) in self.nodes.iter().enumerate() {
            let bad = |what: &str| Err(PlaceError::NoCapacity(format!("capacity check: node #{i} {what}")));
            if cpu[i] > node.cpu_cap || node.cpu_free != node.cpu_cap - cpu[i] {
                return bad(&format!("CPU used {} of {}, free {}", cpu[i], node.cpu_cap, node.cpu_free));
            }
            if mem[i] > node.mem_cap || node.mem_free != node.mem_cap - mem[i] {
                return bad(&format!("memory used {} of {}, free {}", mem[i], node.mem_cap, node.mem_free));
            }
            if pods[i] != node.pods {
                return bad(&format!("holds {} pods, counts {}", pods[i], node.pods));
            }
            for (g, (&used, &free)) in gpu[i].iter().zip(&node.gpu_free).enumerate() {
                if used > WHOLE || free != WHOLE - used {
                    return bad(&format!("GPU {g} used {used}/1000, free {free}"));
                }
            }
        }
        Ok(())
    }

    /// Tampering hook for the checker's own test.
    #[cfg(test)]
    pub fn corrupt(&mut self, n: usize) {
        self.nodes[n].cpu_free += 1;
    }
}
