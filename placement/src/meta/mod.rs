//! Metaheuristic placement baselines: the particle swarm ([`pso`]) and
//! genetic algorithm ([`ga`]) the KDQNVMP paper compares its agent against.
//!
//! The problem both solve: a datacenter already holds some VMs (they stay);
//! place a batch of unplaced ones so that no host's capacity is exceeded
//! ([`Datacenter::fits`]), placing as many as possible first and then
//! drawing the least power at the requested load ([`datacenter_power`]):
//! fewer and more efficient active hosts.
//!
//! A solution is one gene per batch VM: a host index, or [`NONE`] for "no
//! preference". Decoding walks the VMs in decreasing-MIPS order and keeps a
//! gene whose host still has room; any other VM goes to the first host that
//! fits, or stays unplaced. So every decoded solution is feasible, the
//! all-[`NONE`] genome decodes to first-fit-decreasing (FFD), and since both
//! searches start from it and keep their best, they are never worse than FFD.
//! The other starting solutions are random: first fit over a random host order.
//!
//! Besides their textbook operators both use one move made for packing,
//! "consolidation": send all VMs of one host to hosts the solution already
//! uses. Freeing a host saves its idle power (86–94 W on CloudSim's hosts,
//! most of a host's draw), and moving VMs one at a time almost never frees one.

pub mod ga;
pub mod pso;

pub use ga::GaConfig;
pub use pso::PsoConfig;

use std::cmp::Ordering;

use crate::error::{PlaceError, Result};
use crate::heuristics::{self, Heuristic, Report};
use crate::model::Datacenter;
use crate::rng::SplitMix64;

/// Which metaheuristic, with its settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Meta {
    Pso(PsoConfig),
    Ga(GaConfig),
}

impl Meta {
    pub fn validate(&self) -> Result<()> {
        match self {
            Meta::Pso(c) => c.validate(),
            Meta::Ga(c) => c.validate(),
        }
    }
}

/// A solution's objective: placed VMs first (more is better), then watts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Fitness {
    pub placed: usize,
    /// The whole datacenter's power at the requested load with the solution applied.
    pub power: f64,
}

impl Fitness {
    /// `Less` when `self` is the better one, so sorting puts the best first.
    pub fn rank(&self, other: &Fitness) -> Ordering {
        other.placed.cmp(&self.placed).then(self.power.total_cmp(&other.power))
    }

    pub fn better_than(&self, other: &Fitness) -> bool {
        self.rank(other) == Ordering::Less
    }
}

/// The best placement found, not yet applied.
#[derive(Clone, Debug, PartialEq)]
pub struct Solution {
    /// `(VM index, host)` per batch VM in decoding order (decreasing MIPS,
    /// ties in batch order), then those larger than any host; `None`: not placed.
    pub assignment: Vec<(usize, Option<usize>)>,
    pub fitness: Fitness,
}

/// Watts of the datacenter at its requested load: Σ over non-empty hosts of
/// the host's SPECpower curve at its allocated share (empty hosts are off).
pub fn datacenter_power(dc: &Datacenter) -> f64 {
    (0..dc.hosts.len()).filter(|h| !dc.is_empty(*h)).map(|h| dc.hosts[h].power(dc.allocated_share(h))).sum()
}

/// Searches for the best placement of `batch` (unplaced VM indices) without
/// changing `dc`.
pub fn search(dc: &Datacenter, batch: &[usize], algo: &Meta) -> Result<Solution> {
    algo.validate()?;
    let mut p = Problem::new(dc, batch)?;
    let (genes, fitness) = match algo {
        _ if p.len() == 0 => {
            let f = p.decode(&mut []);
            (Vec::new(), f)
        }
        Meta::Pso(c) => pso::run(&mut p, c),
        Meta::Ga(c) => ga::run(&mut p, c),
    };
    let mut assignment: Vec<(usize, Option<usize>)> = p.vms.iter().zip(&genes).map(|(v, g)| (*v, (*g != NONE).then_some(*g as usize))).collect();
    assignment.extend(p.oversized.iter().map(|v| (*v, None)));
    Ok(Solution { assignment, fitness })
}

/// Searches with `algo` and applies the best placement found. Refused VMs
/// are reported with why, as [`heuristics::place_all`] does.
pub fn place_batch(dc: &mut Datacenter, batch: &[usize], algo: Meta) -> Result<Report> {
    let solution = search(dc, batch, &algo)?;
    Ok(apply(dc, &solution))
}

/// Applies `solution` to `dc`. A VM it leaves unplaced, or whose host turns
/// out to lack room (only possible through float rounding), gets one more
/// first-fit try on the final state, whose error then says why it was refused.
pub fn apply(dc: &mut Datacenter, solution: &Solution) -> Report {
    let mut report = Report::default();
    let mut retry = Vec::new();
    for &(v, h) in &solution.assignment {
        match h.map(|h| dc.place(v, h)) {
            Some(Ok(())) => report.placed += 1,
            _ => retry.push(v),
        }
    }
    let mut rng = SplitMix64::new(0); // first fit draws nothing
    for v in retry {
        match heuristics::choose(dc, v, Heuristic::FirstFit, &mut rng).and_then(|h| dc.place(v, h)) {
            Ok(()) => report.placed += 1,
            Err(e) => report.refused.push((v, e)),
        }
    }
    report
}

/// Gene value for "no preference": decoding first-fits the VM.
pub const NONE: u32 = u32::MAX;

/// The batch and the datacenter's fixed state in flat arrays, plus the
/// scratch capacity the decoder fills, so a decode allocates nothing.
pub(crate) struct Problem<'a> {
    dc: &'a Datacenter,
    /// Placeable batch VMs in decoding order; gene `i` is `vms[i]`'s host.
    vms: Vec<usize>,
    oversized: Vec<usize>,
    mips: Vec<f64>,
    ram: Vec<u64>,
    base_mips: Vec<f64>,
    base_ram: Vec<u64>,
    base_busy: Vec<bool>,
    used_mips: Vec<f64>,
    used_ram: Vec<u64>,
    batch_on: Vec<u32>,
    /// The repair's host order (index order, except while making random
    /// starting solutions) and each host's position in it.
    order: Vec<u32>,
    pos: Vec<u32>,
    /// A max-tree over `order` of the largest VM each host could take now and
    /// of its free RAM: first fit in O(log hosts) rather than a scan, which
    /// dominated decoding. Built on a decode's first repair.
    tree: Vec<(f64, u64)>,
    tree_ready: bool,
}

impl<'a> Problem<'a> {
    pub(crate) fn new(dc: &'a Datacenter, batch: &[usize]) -> Result<Problem<'a>> {
        let (nv, nh) = (dc.vm_count(), dc.hosts.len());
        if nh >= NONE as usize {
            return Err(PlaceError::Config(format!("{nh} hosts are more than a gene can name")));
        }
        let mut seen = vec![false; nv];
        for &v in batch {
            if v >= nv {
                return Err(PlaceError::BadRequest(format!("VM index {v} is out of range ({nv} VMs)")));
            }
            if std::mem::replace(&mut seen[v], true) {
                return Err(PlaceError::BadRequest(format!("VM {} is in the batch twice", dc.vm(v).id)));
            }
            if let Some(h) = dc.host_of(v) {
                return Err(PlaceError::BadRequest(format!("VM {} is already placed on host {h}", dc.vm(v).id)));
            }
        }
        let mut order = batch.to_vec();
        // Decreasing MIPS, as FFD: big VMs claim room before small ones fill it.
        order.sort_by(|a, b| dc.vm(*b).mips.total_cmp(&dc.vm(*a).mips));
        let (vms, oversized): (Vec<usize>, Vec<usize>) = order.into_iter().partition(|v| dc.could_ever_fit(*v));
        let mut base_ram = vec![0u64; nh];
        for v in 0..nv {
            if let Some(h) = dc.host_of(v) {
                base_ram[h] += dc.vm(v).ram_mb;
            }
        }
        Ok(Problem {
            mips: vms.iter().map(|v| dc.vm(*v).mips).collect(),
            ram: vms.iter().map(|v| dc.vm(*v).ram_mb).collect(),
            base_mips: (0..nh).map(|h| dc.allocated_share(h) * dc.hosts[h].mips()).collect(),
            base_busy: (0..nh).map(|h| !dc.is_empty(h)).collect(),
            base_ram,
            used_mips: vec![0.0; nh],
            used_ram: vec![0; nh],
            batch_on: vec![0; nh],
            order: (0..nh as u32).collect(),
            pos: (0..nh as u32).collect(),
            tree: vec![(f64::NEG_INFINITY, 0); 2 * nh.next_power_of_two()],
            tree_ready: false,
            dc,
            vms,
            oversized,
        })
    }

    /// Genes per solution.
    pub(crate) fn len(&self) -> usize {
        self.vms.len()
    }

    pub(crate) fn hosts(&self) -> usize {
        self.dc.hosts.len()
    }

    /// `Datacenter::fits` on the scratch state.
    fn fits(&self, h: usize, i: usize) -> bool {
        let t = &self.dc.hosts[h];
        self.mips[i] <= t.mips_per_core as f64 + 1e-9 && self.used_mips[h] + self.mips[i] <= t.mips() + 1e-9 && (!self.dc.enforce_ram || self.used_ram[h] + self.ram[i] <= t.ram_mb)
    }

    /// Decodes (and repairs in place) `genes`: each VM keeps its gene's host
    /// if it has room, else goes to the first host in the repair order that
    /// fits, else is unplaced (gene [`NONE`]). Writing the repair back keeps
    /// populations feasible.
    pub(crate) fn decode(&mut self, genes: &mut [u32]) -> Fitness {
        self.used_mips.copy_from_slice(&self.base_mips);
        self.used_ram.copy_from_slice(&self.base_ram);
        self.batch_on.fill(0);
        self.tree_ready = false;
        let mut placed = 0;
        for (i, gene) in genes.iter_mut().enumerate() {
            let host = if *gene != NONE && self.fits(*gene as usize, i) {
                Some(*gene as usize)
            } else {
                if !self.tree_ready {
                    self.build_tree();
                }
                self.first_fit(1, i)
            };
            *gene = match host {
                Some(h) => {
                    self.used_mips[h] += self.mips[i];
                    self.used_ram[h] += self.ram[i];
                    self.batch_on[h] += 1;
                    self.update_tree(h);
                    placed += 1;
                    h as u32
                }
                None => NONE,
            };
        }
        let hosts = &self.dc.hosts;
        let power = (0..hosts.len()).filter(|h| self.base_busy[*h] || self.batch_on[*h] > 0).map(|h| hosts[h].power(self.used_mips[h] / hosts[h].mips())).sum();
        Fitness { placed, power }
    }

    /// Host `h`'s leaf: the largest VM it could take (free MIPS, capped by a
    /// core's, as `fits` requires both) and its free RAM.
    fn leaf(&self, h: usize) -> (f64, u64) {
        let t = &self.dc.hosts[h];
        ((t.mips() - self.used_mips[h]).min(t.mips_per_core as f64), t.ram_mb.saturating_sub(self.used_ram[h]))
    }

    /// A node's value: the maxima of its children's.
    fn join(&self, node: usize) -> (f64, u64) {
        let (l, r) = (self.tree[2 * node], self.tree[2 * node + 1]);
        (l.0.max(r.0), l.1.max(r.1))
    }

    fn build_tree(&mut self) {
        let size = self.tree.len() / 2;
        for p in 0..self.order.len() {
            self.tree[size + p] = self.leaf(self.order[p] as usize);
        }
        for node in (1..size).rev() {
            self.tree[node] = self.join(node);
        }
        self.tree_ready = true;
    }

    fn update_tree(&mut self, h: usize) {
        if !self.tree_ready {
            return;
        }
        let mut node = self.tree.len() / 2 + self.pos[h] as usize;
        self.tree[node] = self.leaf(h);
        while node > 1 {
            node /= 2;
            let joined = self.join(node);
            // Room only shrinks: once a maximum holds, those above it do too.
            if joined == self.tree[node] {
                break;
            }
            self.tree[node] = joined;
        }
    }

    /// The first host under `node` where VM `i` fits. A subtree is skipped
    /// only when no host in it has the MIPS or the RAM; the leaf is checked
    /// with `fits` itself (MIPS and RAM may be on different hosts, and the
    /// tolerance here is looser, so rounding never skips a host that fits).
    fn first_fit(&self, node: usize, i: usize) -> Option<usize> {
        let (room, ram) = self.tree[node];
        if room + 2e-9 < self.mips[i] || (self.dc.enforce_ram && ram < self.ram[i]) {
            return None;
        }
        let size = self.tree.len() / 2;
        if node >= size {
            let h = *self.order.get(node - size)? as usize;
            return self.fits(h, i).then_some(h);
        }
        self.first_fit(2 * node, i).or_else(|| self.first_fit(2 * node + 1, i))
    }

    /// The starting population: FFD, then first fit over random host orders
    /// (random solutions that are feasible and not hopelessly spread out).
    pub(crate) fn initial(&mut self, size: usize, rng: &mut SplitMix64) -> Vec<(Vec<u32>, Fitness)> {
        let mut pop = Vec::with_capacity(size);
        for k in 0..size {
            if k > 0 {
                for j in (1..self.order.len()).rev() {
                    self.order.swap(j, below(rng, j + 1));
                }
                self.order.iter().enumerate().for_each(|(p, h)| self.pos[*h as usize] = p as u32);
            }
            let mut genes = vec![NONE; self.len()];
            let f = self.decode(&mut genes);
            pop.push((genes, f));
        }
        self.order.iter_mut().zip(self.pos.iter_mut()).enumerate().for_each(|(h, (o, p))| (*o, *p) = (h as u32, h as u32));
        pop
    }

    /// A mutated host for a gene: mostly that of another random gene (a host
    /// this solution already uses, so the move can consolidate), sometimes
    /// any host, so that the set of active hosts can change too.
    pub(crate) fn mutation(&self, genes: &[u32], rng: &mut SplitMix64) -> u32 {
        if rng.unit() < 0.8 { genes[below(rng, genes.len())] } else { below(rng, self.hosts()) as u32 }
    }

    /// Sends every VM of one used host to hosts of other random genes: the
    /// coordinated move that frees a host (and its idle watts), which
    /// single-VM moves almost never make. What does not fit is first-fit.
    pub(crate) fn empty_host(&self, genes: &mut [u32], rng: &mut SplitMix64) {
        let h = genes[below(rng, genes.len())];
        for i in 0..genes.len() {
            if genes[i] == h {
                genes[i] = genes[below(rng, genes.len())];
            }
        }
    }
}

/// Uniform in `0..n` (`n` > 0); the modulo bias is negligible for fleet sizes.
pub(crate) fn below(rng: &mut SplitMix64, n: usize) -> usize {
    (rng.next_u64() % n as u64) as usize
}

/// The best of `pop`.
pub(crate) fn best(pop: &[(Vec<u32>, Fitness)]) -> usize {
    (0..pop.len()).min_by(|a, b| pop[*a].1.rank(&pop[*b].1)).unwrap_or(0)
}
