//! The dynamic datacenter: VMs arrive, follow their traces, leave, and a
//! [`Policy`] admits them and migrates them between hosts every interval.
//! Energy, SLA and migration costs are counted with CloudSim 3.0.3's
//! semantics (see [`state`]), including its sub-interval updates when
//! migrations land, so runs sit beside its published results.
//!
//! - [`state`]: hosts, VMs, migrations in flight, per-host load;
//! - [`plan`]: tentative reallocations a policy builds before committing;
//! - [`detect`], [`select`], [`beloglazov`]: CloudSim's consolidation
//!   policies (THR/IQR/MAD/LR/LRR × MMT/MC/MU/RS, PABFD placement);
//! - [`batch`]: FFD, BFD, PSO and GA placing each step's arrivals together;
//! - [`engine`]: the time loop and its metrics;
//! - [`setup`]: CloudSim's fleet and VM types, policies by name;
//! - [`stats`]: the statistics the detectors use.

mod account;
pub mod batch;
pub mod beloglazov;
pub mod detect;
pub mod engine;
pub mod plan;
pub mod select;
pub mod setup;
pub mod state;
pub mod stats;
#[cfg(test)]
mod tests;

pub use batch::{Batch, BatchStatic};
pub use beloglazov::{Admission, Beloglazov, NoMigration};
pub use detect::Detector;
pub use account::lower_bound_watts;
pub use engine::{Outcome, PowerMode, SimConfig, StepRecord, run};
pub use plan::Plan;
pub use select::Selector;
pub use setup::{cloudsim_hosts, cloudsim_vms, policy_by_name};
pub use state::State;

/// A placement policy: where new VMs go, and which VMs move each interval.
pub trait Policy {
    fn name(&self) -> String;
    /// The host for VM `v`, which is being created and asks for its full
    /// MIPS; the plan holds this step's earlier admissions.
    fn admit(&mut self, plan: &Plan, v: usize, step_s: f64) -> Option<usize>;
    /// One step's arrivals at once, as (VM, host or none), for placers
    /// that look at the whole batch (FFD, BFD, PSO, GA); `None` admits them
    /// one by one through [`Policy::admit`].
    fn admit_batch(&mut self, _plan: &Plan, _vms: &[usize], _step_s: f64) -> Option<Vec<(usize, Option<usize>)>> {
        None
    }
    /// Migrations to start now, as (VM, destination host).
    fn consolidate(&mut self, st: &State, step_s: f64) -> Vec<(usize, usize)>;
    /// Sees the state after each update, before `consolidate` (learners
    /// turn it into rewards for their earlier choices).
    fn observe(&mut self, _st: &State, _step_s: f64) {}
}

/// Picks the host for one VM (a new one, or one leaving an overloaded or
/// underloaded host) inside Beloglazov's loop; PABFD is the default and
/// learned agents plug in here.
pub trait HostChooser {
    fn name(&self) -> String;
    /// A host not `excluded` that fits VM `v` as the plan stands, or none.
    /// `detector` says which hosts the VM would overload.
    fn choose(&mut self, plan: &Plan, v: usize, excluded: &[bool], detector: Detector, step_s: f64) -> Option<usize>;
    /// The state after each update (see [`Policy::observe`]).
    fn observe(&mut self, _st: &State, _step_s: f64) {}
}
