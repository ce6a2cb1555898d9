//! Discrete particle swarm optimisation for VM placement, one of the
//! metaheuristic baselines of the KDQNVMP paper (see [`super`] for the
//! problem and the encoding).
//!
//! Positions are host-per-VM assignments, so the continuous PSO update is
//! kept for the velocities only, as in binary PSO: each VM's velocity grows
//! with the pull of the particle's own best (`c1`) and the swarm's best
//! (`c2`) where the particle's host differs from theirs, and decays by the
//! inertia where it agrees. The velocity sets the chance that the VM moves
//! this step (`1 - e^-v`); a move adopts the personal or the global best's
//! host for it, picked in proportion to their pulls, together with the rest
//! of that host's VMs there ([`Groups::adopt`]). A little turbulence (random
//! moves) and consolidation keep the swarm from settling on one packing.

use super::{best, Fitness, Problem, NONE};
use crate::error::{PlaceError, Result};
use crate::rng::SplitMix64;

/// PSO settings. Defaults: 30 particles, 100 iterations, inertia 0.7,
/// c1 = c2 = 1.5 (the common balanced choice), velocity capped at 3 (a 95 %
/// chance to move), turbulence 1 % per VM and step, consolidation 0.3 per
/// particle and step, seed 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PsoConfig {
    pub particles: usize,
    pub iterations: usize,
    pub inertia: f64,
    /// Pull towards the particle's own best.
    pub c1: f64,
    /// Pull towards the swarm's best.
    pub c2: f64,
    pub v_max: f64,
    /// Chance per VM and step of a random move (as GA mutation).
    pub turbulence: f64,
    /// Chance per particle and step of emptying one host (see [`super`]).
    pub consolidation: f64,
    pub seed: u64,
}

impl Default for PsoConfig {
    fn default() -> PsoConfig {
        PsoConfig { particles: 30, iterations: 100, inertia: 0.7, c1: 1.5, c2: 1.5, v_max: 3.0, turbulence: 0.01, consolidation: 0.3, seed: 1 }
    }
}

impl PsoConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(PlaceError::Config(format!("PSO: {what}")));
        if self.particles == 0 {
            return bad("the swarm needs at least one particle".into());
        }
        for (name, x) in [("inertia", self.inertia), ("c1", self.c1), ("c2", self.c2)] {
            if !(x.is_finite() && x >= 0.0) {
                return bad(format!("{name} must be finite and non-negative, not {x}"));
            }
        }
        if !(self.v_max.is_finite() && self.v_max > 0.0) {
            return bad(format!("v_max must be finite and positive, not {}", self.v_max));
        }
        for (name, x) in [("turbulence", self.turbulence), ("consolidation", self.consolidation)] {
            if !(0.0..=1.0).contains(&x) {
                return bad(format!("{name} is a probability, not {x}"));
            }
        }
        Ok(())
    }
}

/// Runs the swarm; returns the best (decoded) genes and their fitness.
pub(crate) fn run(p: &mut Problem, c: &PsoConfig) -> (Vec<u32>, Fitness) {
    let mut rng = SplitMix64::new(c.seed);
    let mut swarm = p.initial(c.particles, &mut rng);
    let (n, nh) = (p.len(), p.hosts());
    // Velocities start at rest: the first moves come from the pulls alone.
    let mut velocity = vec![vec![0.0f64; n]; swarm.len()];
    let mut personal = swarm.clone();
    let mut global = swarm[best(&swarm)].clone();
    let (mut xg, mut pg, mut gg) = (Groups::new(n, nh), Groups::new(n, nh), Groups::new(n, nh));
    let (mut scratch, mut global_moved) = (Vec::new(), true);
    for _ in 0..c.iterations {
        for k in 0..swarm.len() {
            let (x, v, own) = (&mut swarm[k].0, &mut velocity[k], &personal[k].0);
            xg.build(x);
            pg.build(own);
            if std::mem::take(&mut global_moved) {
                gg.build(&global.0);
            }
            for i in 0..n {
                let pull_own = if x[i] != own[i] { c.c1 * rng.unit() } else { 0.0 };
                let pull_all = if x[i] != global.0[i] { c.c2 * rng.unit() } else { 0.0 };
                v[i] = (c.inertia * v[i] + pull_own + pull_all).min(c.v_max);
                let pull = pull_own + pull_all;
                if pull > 0.0 && rng.unit() < 1.0 - (-v[i]).exp() {
                    let (best, groups) = if rng.unit() * pull < pull_own { (own, &pg) } else { (&global.0, &gg) };
                    xg.adopt(x, i, best, groups, &mut scratch);
                } else if rng.unit() < c.turbulence {
                    let h = p.mutation(x, &mut rng);
                    xg.set(x, i, h);
                }
            }
            if rng.unit() < c.consolidation {
                p.empty_host(x, &mut rng);
            }
            let f = p.decode(x);
            swarm[k].1 = f;
            if f.better_than(&personal[k].1) {
                personal[k] = swarm[k].clone();
            }
            // Asynchronous: later particles of this step already follow it.
            if f.better_than(&global.1) {
                global = swarm[k].clone();
                global_moved = true;
            }
        }
    }
    global
}

/// Which VMs each host holds in one solution, kept current as genes move.
struct Groups {
    on: Vec<Vec<u32>>,
    /// Gene → its index in its host's list.
    slot: Vec<u32>,
}

impl Groups {
    fn new(n: usize, hosts: usize) -> Groups {
        Groups { on: vec![Vec::new(); hosts], slot: vec![0; n] }
    }

    fn build(&mut self, genes: &[u32]) {
        self.on.iter_mut().for_each(Vec::clear);
        for (i, g) in genes.iter().enumerate() {
            if *g != NONE {
                self.slot[i] = self.on[*g as usize].len() as u32;
                self.on[*g as usize].push(i as u32);
            }
        }
    }

    /// Moves gene `i` to host `h` (or [`NONE`]).
    fn set(&mut self, genes: &mut [u32], i: usize, h: u32) {
        let old = genes[i];
        if old == h {
            return;
        }
        if old != NONE {
            let (list, s) = (&mut self.on[old as usize], self.slot[i] as usize);
            list.swap_remove(s);
            if let Some(&moved) = list.get(s) {
                self.slot[moved as usize] = s as u32;
            }
        }
        if h != NONE {
            self.slot[i] = self.on[h as usize].len() as u32;
            self.on[h as usize].push(i as u32);
        }
        genes[i] = h;
    }

    /// Copies host `t`'s whole group from `best` (grouped as `bg`) into
    /// `genes`: a packing's building block is a full host, not one VM, so
    /// moving VMs one by one would spread them over both solutions' hosts.
    /// VMs the group displaces, and the rest of each host it breaks up, are
    /// freed for the decoder's first fit (as grouping GAs do).
    fn adopt(&mut self, genes: &mut [u32], i: usize, best: &[u32], bg: &Groups, freed: &mut Vec<u32>) {
        let t = best[i];
        if t == NONE {
            // `best` left VM `i` unplaced: nothing to copy but that.
            return self.set(genes, i, NONE);
        }
        freed.clear();
        freed.extend(self.on[t as usize].iter().copied().filter(|j| best[*j as usize] != t));
        for &j in &bg.on[t as usize] {
            let old = genes[j as usize];
            if old != t && old != NONE {
                freed.extend(self.on[old as usize].iter().copied().filter(|k| best[*k as usize] != t));
            }
        }
        for &j in freed.iter() {
            self.set(genes, j as usize, NONE);
        }
        for &j in &bg.on[t as usize] {
            self.set(genes, j as usize, t);
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::meta::ga::testkit::*;
    use super::*;
    use crate::meta::Meta;

    fn pso(seed: u64) -> Meta {
        Meta::Pso(PsoConfig { seed, iterations: 60, ..PsoConfig::default() })
    }

    #[test]
    fn pso_never_exceeds_capacity_with_ram_and_placed_vms() {
        check_capacity(pso(3));
    }

    #[test]
    fn pso_is_reproducible_by_seed() {
        check_seeds(pso);
    }

    #[test]
    fn pso_power_is_at_most_ffd_and_below_random() {
        check_power(pso(5));
    }

    #[test]
    fn adopting_a_host_copies_its_whole_group_and_frees_what_it_breaks() {
        // Host 1 of `best` holds VMs 0 and 2; taking it breaks up host 0 of
        // `x`, whose other VM (1) is freed for first fit.
        let (mut x, best) = (vec![0, 0, 1, 2], vec![1, 2, 1, NONE]);
        let (mut xg, mut bg, mut freed) = (Groups::new(4, 3), Groups::new(4, 3), Vec::new());
        xg.build(&x);
        bg.build(&best);
        xg.adopt(&mut x, 0, &best, &bg, &mut freed);
        assert_eq!(x, [1, NONE, 1, 2]);
        xg.adopt(&mut x, 3, &best, &bg, &mut freed);
        assert_eq!(x, [1, NONE, 1, NONE], "an unplaced VM in the best is copied as such");
        let mut on1 = xg.on[1].clone();
        on1.sort();
        assert_eq!((xg.on[0].len(), on1, xg.on[2].len()), (0, vec![0, 2], 0), "groups follow the genes");
    }

    #[test]
    fn pso_refuses_a_vm_larger_than_any_host_and_bad_configs() {
        check_oversized(pso(2));
        let zero = Meta::Pso(PsoConfig { particles: 0, ..PsoConfig::default() });
        check_config_error(zero, "particle");
        check_config_error(Meta::Pso(PsoConfig { turbulence: 1.5, ..PsoConfig::default() }), "turbulence");
        check_config_error(Meta::Pso(PsoConfig { c1: f64::NAN, ..PsoConfig::default() }), "c1");
    }
}
