//! Genetic algorithm for VM placement, one of the metaheuristic baselines
//! of the KDQNVMP paper (see [`super`] for the problem and the encoding).
//!
//! Generational: the elites pass unchanged, every other child comes from
//! two tournament winners by uniform crossover (each VM's host from either
//! parent) and per-VM mutation, then the decoder repairs it. Uniform rather
//! than one-point crossover because genes are in decreasing-MIPS order, not
//! grouped by host, so neighbouring genes carry no shared building block.

use super::{best, Fitness, Problem};
use crate::error::{PlaceError, Result};
use crate::rng::SplitMix64;

/// GA settings. Defaults: 40 individuals, 100 generations, tournaments of
/// 3, crossover rate 0.9, mutation 2 % per VM, consolidation 0.3 per child,
/// 2 elites, seed 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaConfig {
    pub population: usize,
    pub generations: usize,
    /// Individuals drawn (with replacement) per tournament; the best wins.
    pub tournament: usize,
    /// Chance that a child mixes two parents rather than copying one.
    pub crossover_rate: f64,
    /// Chance per VM that a child's host is mutated.
    pub mutation_rate: f64,
    /// Chance per child of emptying one host (see [`super`]).
    pub consolidation: f64,
    /// Best individuals copied unchanged into the next generation.
    pub elites: usize,
    pub seed: u64,
}

impl Default for GaConfig {
    fn default() -> GaConfig {
        GaConfig { population: 40, generations: 100, tournament: 3, crossover_rate: 0.9, mutation_rate: 0.02, consolidation: 0.3, elites: 2, seed: 1 }
    }
}

impl GaConfig {
    pub fn validate(&self) -> Result<()> {
        let bad = |what: String| Err(PlaceError::Config(format!("GA: {what}")));
        if self.population == 0 {
            return bad("the population needs at least one individual".into());
        }
        if self.tournament == 0 {
            return bad("a tournament needs at least one entrant".into());
        }
        if self.elites > self.population {
            return bad(format!("{} elites exceed the population of {}", self.elites, self.population));
        }
        for (name, x) in [("crossover_rate", self.crossover_rate), ("mutation_rate", self.mutation_rate), ("consolidation", self.consolidation)] {
            if !(0.0..=1.0).contains(&x) {
                return bad(format!("{name} is a probability, not {x}"));
            }
        }
        Ok(())
    }
}

/// Runs the GA; returns the best (decoded) genes and their fitness.
pub(crate) fn run(p: &mut Problem, c: &GaConfig) -> (Vec<u32>, Fitness) {
    let mut rng = SplitMix64::new(c.seed);
    let mut pop = p.initial(c.population, &mut rng);
    let n = p.len();
    // The best ever seen: with no elites a generation can lose it, and the
    // result must still be no worse than FFD (in the first population).
    let mut champion = pop[best(&pop)].clone();
    for _ in 0..c.generations {
        // Best first: elites are the head, and a tournament's winner is
        // simply its smallest index.
        pop.sort_by(|a, b| a.1.rank(&b.1));
        let mut next: Vec<(Vec<u32>, Fitness)> = pop[..c.elites].to_vec();
        while next.len() < pop.len() {
            let mother = tournament(pop.len(), c.tournament, &mut rng);
            let mut child = pop[mother].0.clone();
            if rng.unit() < c.crossover_rate {
                let father = &pop[tournament(pop.len(), c.tournament, &mut rng)].0;
                // One random word gives 64 coin flips.
                let mut bits = 0u64;
                for i in 0..n {
                    if i % 64 == 0 {
                        bits = rng.next_u64();
                    }
                    if bits >> (i % 64) & 1 == 1 {
                        child[i] = father[i];
                    }
                }
            }
            for i in 0..n {
                if rng.unit() < c.mutation_rate {
                    child[i] = p.mutation(&child, &mut rng);
                }
            }
            if rng.unit() < c.consolidation {
                p.empty_host(&mut child, &mut rng);
            }
            let f = p.decode(&mut child);
            if f.better_than(&champion.1) {
                champion = (child.clone(), f);
            }
            next.push((child, f));
        }
        pop = next;
    }
    champion
}

/// Index of a tournament's winner in a population sorted best first.
fn tournament(size: usize, entrants: usize, rng: &mut SplitMix64) -> usize {
    (0..entrants).map(|_| super::below(rng, size)).min().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::testkit::*;
    use super::*;
    use crate::meta::Meta;

    fn ga(seed: u64) -> Meta {
        Meta::Ga(GaConfig { seed, generations: 60, ..GaConfig::default() })
    }

    #[test]
    fn ga_never_exceeds_capacity_with_ram_and_placed_vms() {
        check_capacity(ga(3));
    }

    #[test]
    fn ga_is_reproducible_by_seed() {
        check_seeds(ga);
    }

    #[test]
    fn ga_power_is_at_most_ffd_and_below_random() {
        check_power(ga(5));
    }

    #[test]
    fn ga_refuses_a_vm_larger_than_any_host_and_bad_configs() {
        check_oversized(ga(2));
        check_config_error(Meta::Ga(GaConfig { population: 0, ..GaConfig::default() }), "population");
        check_config_error(Meta::Ga(GaConfig { elites: 41, ..GaConfig::default() }), "elites");
        check_config_error(Meta::Ga(GaConfig { mutation_rate: -0.1, ..GaConfig::default() }), "mutation_rate");
        check_config_error(Meta::Ga(GaConfig { tournament: 0, ..GaConfig::default() }), "tournament");
    }

    #[test]
    fn ga_with_one_individual_and_no_generations_is_ffd() {
        let c = GaConfig { population: 1, generations: 0, elites: 1, ..GaConfig::default() };
        let (mut dc, batch) = fleet(false);
        let mut ffd = dc.clone();
        crate::heuristics::place_all(&mut ffd, crate::heuristics::Order::DecreasingMips, crate::heuristics::Heuristic::FirstFit);
        crate::meta::place_batch(&mut dc, &batch, Meta::Ga(c)).unwrap();
        assert_eq!((0..dc.vm_count()).map(|v| dc.host_of(v)).collect::<Vec<_>>(), (0..ffd.vm_count()).map(|v| ffd.host_of(v)).collect::<Vec<_>>());
    }
}

/// Fleet and checks shared by the PSO and GA tests, and tests of the
/// decoder and the entry points they share (here to keep `mod.rs` short).
#[cfg(test)]
pub(crate) mod testkit {
    use crate::meta::*;
    use crate::error::PlaceError;
    use crate::heuristics::{Heuristic, Report};
    use crate::heuristics::{place_all, Order};
    use crate::model::VmSpec;

    /// 20 hosts (G4/G5 alternating), 40 VMs of CloudSim's four types.
    pub(crate) fn fleet(enforce_ram: bool) -> (Datacenter, Vec<usize>) {
        fleet_of(20, enforce_ram)
    }

    fn fleet_of(hosts: usize, enforce_ram: bool) -> (Datacenter, Vec<usize>) {
        let mut dc = Datacenter::cloudsim(hosts, enforce_ram).unwrap();
        let types = [(2500.0, 870), (2000.0, 1740), (1000.0, 1740), (500.0, 613)];
        let batch = (0..40).map(|i| dc.add_vm(VmSpec { id: format!("vm{i}"), mips: types[i * 7 % 4].0, ram_mb: types[i * 7 % 4].1 }).unwrap()).collect();
        (dc, batch)
    }

    fn hosts_of(dc: &Datacenter) -> Vec<Option<usize>> {
        (0..dc.vm_count()).map(|v| dc.host_of(v)).collect()
    }

    /// Every host within MIPS, per-core MIPS and RAM; every batch VM placed or refused.
    fn assert_within_capacity(dc: &Datacenter, batch: &[usize], report: &Report) {
        for (h, t) in dc.hosts.iter().enumerate() {
            assert!(dc.allocated_share(h) <= 1.0 + 1e-12, "host {h} at {}", dc.allocated_share(h));
            assert!(dc.vms_on(h).map(|v| dc.vm(v).ram_mb).sum::<u64>() <= t.ram_mb, "host {h} RAM");
            assert!(dc.vms_on(h).all(|v| dc.vm(v).mips <= t.mips_per_core as f64));
        }
        assert_eq!(report.placed + report.refused.len(), batch.len());
        assert_eq!(batch.iter().filter(|v| dc.host_of(**v).is_some()).count(), report.placed);
    }

    pub(crate) fn check_capacity(algo: Meta) {
        // Roomy, with VMs already placed that must stay; then too few hosts.
        let (mut dc, mut batch) = fleet(true);
        let kept = [(batch.remove(0), 1), (batch.remove(0), 1), (batch.remove(0), 0)];
        for (v, h) in kept {
            dc.place(v, h).unwrap();
        }
        let report = place_batch(&mut dc, &batch, algo).unwrap();
        assert_within_capacity(&dc, &batch, &report);
        assert!(kept.iter().all(|(v, h)| dc.host_of(*v) == Some(*h)));
        assert_eq!(report.placed, batch.len());
        let (mut tight, batch) = fleet_of(6, true);
        let report = place_batch(&mut tight, &batch, algo).unwrap();
        assert_within_capacity(&tight, &batch, &report);
        assert!(!report.refused.is_empty() && report.refused.iter().all(|(_, e)| e.to_string().contains("no host has room")), "{:?}", report.refused);
    }

    pub(crate) fn check_seeds(algo: fn(u64) -> Meta) {
        let run = |seed| {
            let (mut dc, batch) = fleet(true);
            place_batch(&mut dc, &batch, algo(seed)).unwrap();
            hosts_of(&dc)
        };
        assert_eq!(run(7), run(7));
        let runs: Vec<_> = (1..=4).map(run).collect();
        assert!(runs.iter().any(|r| *r != runs[0]), "four seeds gave one placement");
    }

    pub(crate) fn check_power(algo: Meta) {
        let (dc, batch) = fleet(true);
        let (mut ffd, mut random, mut ours) = (dc.clone(), dc.clone(), dc);
        let ffd_report = place_all(&mut ffd, Order::DecreasingMips, Heuristic::FirstFit);
        place_all(&mut random, Order::AsGiven, Heuristic::Random { seed: 11 });
        let solution = search(&ours, &batch, &algo).unwrap();
        let report = apply(&mut ours, &solution);
        assert!(report.placed >= ffd_report.placed);
        assert_eq!(report.placed, batch.len());
        let (p_ours, p_ffd, p_random) = (datacenter_power(&ours), datacenter_power(&ffd), datacenter_power(&random));
        assert!((solution.fitness.power - p_ours).abs() < 1e-6, "{} vs {p_ours}", solution.fitness.power);
        assert!(p_ours <= p_ffd + 1e-9 && p_ours < p_random, "ours {p_ours} W, FFD {p_ffd} W, random {p_random} W");
    }

    pub(crate) fn check_oversized(algo: Meta) {
        let (mut dc, mut batch) = fleet(false);
        // 3000 MIPS exceeds a G5 core (2660), so no host can ever take it.
        batch.push(dc.add_vm(VmSpec { id: "huge".into(), mips: 3000.0, ram_mb: 512 }).unwrap());
        let report = place_batch(&mut dc, &batch, algo).unwrap();
        assert_eq!(report.placed, 40);
        assert_eq!(report.refused.len(), 1);
        let (v, e) = &report.refused[0];
        assert_eq!(dc.vm(*v).id, "huge");
        assert!(matches!(e, PlaceError::NoCapacity(m) if m.contains("larger than any host")), "{e}");
    }

    pub(crate) fn check_config_error(algo: Meta, word: &str) {
        let (mut dc, batch) = fleet(false);
        match place_batch(&mut dc, &batch, algo) {
            Err(PlaceError::Config(m)) => assert!(m.contains(word), "{m}"),
            other => panic!("expected a configuration error about {word}, got {other:?}"),
        }
        assert!(hosts_of(&dc).iter().all(Option::is_none), "a refused configuration placed nothing");
    }

    #[test]
    fn bad_batches_are_refused_and_an_empty_one_is_a_no_op() {
        let (mut dc, batch) = fleet(false);
        dc.place(batch[0], 3).unwrap();
        let algo = Meta::Ga(GaConfig::default());
        for (b, why) in [(vec![1, 2, 1], "twice"), (vec![99], "out of range"), (vec![batch[0]], "already placed")] {
            assert!(matches!(search(&dc, &b, &algo), Err(PlaceError::BadRequest(m)) if m.contains(why)), "{why}");
        }
        let before = datacenter_power(&dc);
        let s = search(&dc, &[], &algo).unwrap();
        assert_eq!((s.fitness.placed, s.assignment.len()), (0, 0));
        assert!((s.fitness.power - before).abs() < 1e-9 && before > 0.0);
        assert_eq!(place_batch(&mut dc, &[], algo).unwrap(), Report::default());
    }

    #[test]
    fn decoding_keeps_feasible_genes_and_repairs_the_rest_to_first_fit() {
        let (dc, batch) = fleet(true);
        let mut p = Problem::new(&dc, &batch).unwrap();
        // Every VM asks for host 5: it keeps those that fit there, and the
        // rest go where first fit puts them, so nothing is left unplaced.
        let mut genes = vec![5; p.len()];
        let f = p.decode(&mut genes);
        assert_eq!(f.placed, 40);
        assert!(genes.iter().filter(|g| **g == 5).count() >= 2 && genes.iter().any(|g| *g != 5));
        assert!(p.used_mips[5] <= dc.hosts[5].mips() && p.used_ram[5] <= dc.hosts[5].ram_mb);
        let again = genes.clone();
        assert_eq!(p.decode(&mut genes), f, "a repaired solution decodes to itself");
        assert_eq!(genes, again);
    }
}
