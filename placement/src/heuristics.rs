//! Initial-placement heuristics, the baselines every learned policy is
//! measured against: first fit, best fit, power-aware best fit (PABFD,
//! Beloglazov & Buyya 2012: the host whose power grows least), random;
//! each in arrival order or by decreasing MIPS (FFD, BFD).

use crate::error::{PlaceError, Result};
use crate::model::Datacenter;
use crate::rng::SplitMix64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heuristic {
    FirstFit,
    BestFit,
    /// The least increase in power; ties to the more efficient host.
    PowerAwareBestFit,
    Random { seed: u64 },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    AsGiven,
    DecreasingMips,
}

/// What a placement run did: VMs placed and VMs refused, with why.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    pub placed: usize,
    pub refused: Vec<(usize, PlaceError)>,
}

impl Report {
    pub fn success_rate(&self) -> f64 {
        let n = self.placed + self.refused.len();
        if n == 0 { 1.0 } else { self.placed as f64 / n as f64 }
    }
}

/// The host `heuristic` picks for VM `v`, or why there is none.
pub fn choose(dc: &Datacenter, v: usize, heuristic: Heuristic, rng: &mut SplitMix64) -> Result<usize> {
    if !dc.could_ever_fit(v) {
        let vm = dc.vm(v);
        return Err(PlaceError::NoCapacity(format!("VM {} ({} MIPS, {} MB) is larger than any host", vm.id, vm.mips, vm.ram_mb)));
    }
    let fits: Vec<usize> = (0..dc.hosts.len()).filter(|h| dc.fits(*h, v)).collect();
    let Some(&first) = fits.first() else {
        return Err(PlaceError::NoCapacity(format!("no host has room for VM {} now", dc.vm(v).id)));
    };
    let mips = dc.vm(v).mips;
    let pick = match heuristic {
        Heuristic::FirstFit => first,
        Heuristic::BestFit => *fits
            .iter()
            .min_by(|a, b| {
                let left = |h: usize| dc.hosts[h].mips() * (1.0 - dc.allocated_share(h)) - mips;
                left(**a).total_cmp(&left(**b))
            })
            .unwrap_or(&first),
        Heuristic::PowerAwareBestFit => *fits
            .iter()
            .min_by(|a, b| {
                let rise = |h: usize| {
                    let t = &dc.hosts[h];
                    let u = dc.allocated_share(h);
                    t.power(u + mips / t.mips()) - t.power(u)
                };
                rise(**a).total_cmp(&rise(**b)).then(dc.hosts[**a].watts_per_mips().total_cmp(&dc.hosts[**b].watts_per_mips()))
            })
            .unwrap_or(&first),
        Heuristic::Random { .. } => fits[(rng.next_u64() % fits.len() as u64) as usize],
    };
    Ok(pick)
}

/// Places every unplaced VM in `order`; refusals are reported, not fatal.
pub fn place_all(dc: &mut Datacenter, order: Order, heuristic: Heuristic) -> Report {
    let mut vms: Vec<usize> = (0..dc.vm_count()).filter(|v| dc.host_of(*v).is_none()).collect();
    if order == Order::DecreasingMips {
        // Stable: equal requests keep their arrival order.
        vms.sort_by(|a, b| dc.vm(*b).mips.total_cmp(&dc.vm(*a).mips));
    }
    let mut rng = SplitMix64::new(match heuristic {
        Heuristic::Random { seed } => seed,
        _ => 0,
    });
    let mut report = Report::default();
    for v in vms {
        match choose(dc, v, heuristic, &mut rng).and_then(|h| dc.place(v, h)) {
            Ok(()) => report.placed += 1,
            Err(e) => report.refused.push((v, e)),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{HostType, VmSpec};

    fn dc_with(hosts: usize, vms: &[f64]) -> Datacenter {
        let mut dc = Datacenter::cloudsim(hosts, false).unwrap();
        for (i, m) in vms.iter().enumerate() {
            dc.add_vm(VmSpec { id: format!("vm{i}"), mips: *m, ram_mb: 613 }).unwrap();
        }
        dc
    }

    #[test]
    fn decreasing_order_packs_what_arrival_order_cannot() {
        // G4 = 2 × 1860 MIPS, G5 = 2 × 2660. Arrival order strands the 1800s.
        let sizes = [1000.0, 1000.0, 1000.0, 1800.0, 1800.0, 1800.0];
        let mut ff = dc_with(2, &sizes);
        let r = place_all(&mut ff, Order::AsGiven, Heuristic::FirstFit);
        assert_eq!(r.placed, 5);
        assert_eq!(r.refused.len(), 1);
        let mut ffd = dc_with(3, &sizes);
        assert_eq!(place_all(&mut ffd, Order::DecreasingMips, Heuristic::FirstFit).placed, 6);
        for h in 0..3 {
            assert!(ffd.allocated_share(h) <= 1.0 + 1e-12);
        }
    }

    #[test]
    fn best_fit_takes_the_tightest_host_and_pabfd_the_cheapest_watt() {
        let mut dc = dc_with(2, &[2600.0, 700.0]);
        dc.place(0, 1).unwrap(); // G5 at 2600 of 5320
        let mut rng = SplitMix64::new(0);
        // Best fit: G4 leaves 3020 free, G5 2020: the G5.
        assert_eq!(choose(&dc, 1, Heuristic::BestFit, &mut rng).unwrap(), 1);
        // PABFD: whichever host's power rises less with 700 more MIPS.
        let g4 = HostType::ML110_G4.power(700.0 / 3720.0) - HostType::ML110_G4.power(0.0);
        let u = 2600.0 / 5320.0;
        let g5 = HostType::ML110_G5.power(u + 700.0 / 5320.0) - HostType::ML110_G5.power(u);
        assert_eq!(choose(&dc, 1, Heuristic::PowerAwareBestFit, &mut rng).unwrap(), if g5 < g4 { 1 } else { 0 });
    }

    #[test]
    fn refusals_say_why_and_random_is_reproducible() {
        let mut dc = dc_with(2, &[3000.0, 100.0]);
        let r = place_all(&mut dc, Order::AsGiven, Heuristic::FirstFit);
        assert_eq!(r.placed, 1);
        assert!(r.refused[0].1.to_string().contains("larger than any host"), "{:?}", r.refused);
        assert!((r.success_rate() - 0.5).abs() < 1e-12);
        let sizes: Vec<f64> = (0..40).map(|i| 200.0 + 31.0 * i as f64).collect();
        let run = |seed| {
            let mut dc = dc_with(10, &sizes);
            place_all(&mut dc, Order::AsGiven, Heuristic::Random { seed });
            (0..sizes.len()).map(|v| dc.host_of(v)).collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }
}
