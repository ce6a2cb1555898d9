//! Placing one step's arrivals together, then never migrating: first fit
//! and best fit decreasing (the VMs by decreasing MIPS), and the PSO and
//! GA searches of the KDQNVMP comparison, in the same twin and metrics as
//! the dynamic policies.

use super::plan::Plan;
use super::state::State;
use super::Policy;
use crate::meta::{self, Meta};
use crate::model::{Datacenter, VmSpec};

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Batch {
    FirstFitDecreasing,
    BestFitDecreasing,
    /// PSO or GA over the batch (power at the requested load, first-fit
    /// decreasing among the seeds of the search).
    Search(Meta),
}

/// A batch placer with no consolidation.
#[derive(Clone, Debug)]
pub struct BatchStatic(pub Batch);

impl BatchStatic {
    fn decreasing(plan: &Plan, vms: &[usize]) -> Vec<usize> {
        let mut order = vms.to_vec();
        order.sort_by(|a, b| plan.st.vms[*b].spec.mips.total_cmp(&plan.st.vms[*a].spec.mips));
        order
    }

    /// The greedy pass: each VM, largest first, on the first host or the
    /// tightest host it fits.
    fn greedy(plan: &Plan, vms: &[usize], best: bool) -> Vec<(usize, Option<usize>)> {
        let mut p = plan.clone();
        let mut out = Vec::with_capacity(vms.len());
        for v in Self::decreasing(plan, vms) {
            let fits = (0..p.hosts()).filter(|h| p.suitable(*h, v));
            let pick = if best {
                fits.min_by(|a, b| free(&p, *a).total_cmp(&free(&p, *b)))
            } else {
                fits.into_iter().next()
            };
            if let Some(h) = pick {
                p.add(h, v);
            }
            out.push((v, pick));
        }
        out
    }

    /// The search on a mirror of the fleet: hosts, what runs there now
    /// (as it is held, current MIPS), the batch at its full MIPS.
    fn search(plan: &Plan, vms: &[usize], algo: Meta) -> Vec<(usize, Option<usize>)> {
        let st: &State = plan.st;
        let Ok(mut dc) = Datacenter::new(st.hosts.clone(), true) else { return vms.iter().map(|v| (*v, None)).collect() };
        for (h, on) in st.resident.iter().enumerate() {
            for &v in on {
                let vm = &st.vms[v];
                let held = VmSpec { id: vm.spec.id.clone(), mips: vm.scheduled().max(1e-6), ram_mb: vm.held_ram };
                if let Ok(i) = dc.add_vm(held) {
                    let _ = dc.place(i, h);
                }
            }
        }
        let first = dc.vm_count();
        for &v in vms {
            let _ = dc.add_vm(st.vms[v].spec.clone());
        }
        let batch: Vec<usize> = (first..dc.vm_count()).collect();
        let Ok(sol) = meta::search(&dc, &batch, &algo) else { return vms.iter().map(|v| (*v, None)).collect() };
        // Back to twin indices, checked against the twin's own rules.
        let mut p = plan.clone();
        sol.assignment
            .iter()
            .map(|&(i, h)| {
                let v = vms[i - first];
                let h = h.filter(|h| p.suitable(*h, v));
                if let Some(h) = h {
                    p.add(h, v);
                }
                (v, h)
            })
            .collect()
    }
}

fn free(p: &Plan, h: usize) -> f64 {
    p.st.hosts[h].mips() - p.used_mips(h)
}

impl Policy for BatchStatic {
    fn name(&self) -> String {
        match self.0 {
            Batch::FirstFitDecreasing => "ffd".into(),
            Batch::BestFitDecreasing => "bfd".into(),
            Batch::Search(Meta::Pso(_)) => "pso".into(),
            Batch::Search(Meta::Ga(_)) => "ga".into(),
        }
    }

    fn admit(&mut self, plan: &Plan, v: usize, _step_s: f64) -> Option<usize> {
        (0..plan.hosts()).find(|h| plan.suitable(*h, v))
    }

    fn admit_batch(&mut self, plan: &Plan, vms: &[usize], _step_s: f64) -> Option<Vec<(usize, Option<usize>)>> {
        Some(match self.0 {
            Batch::FirstFitDecreasing => Self::greedy(plan, vms, false),
            Batch::BestFitDecreasing => Self::greedy(plan, vms, true),
            Batch::Search(algo) => Self::search(plan, vms, algo),
        })
    }

    fn consolidate(&mut self, _: &State, _: f64) -> Vec<(usize, usize)> {
        Vec::new()
    }
}
