//! fairwatt-placement: decides which host gets each VM and when to
//! consolidate.
//!
//! - [`model`]: host types with SPECpower curves, VM requests, the
//!   datacenter's allocation and its capacity checks.
//! - [`heuristics`]: the CloudSim baselines for initial placement (first
//!   fit, best fit, power-aware best fit, random; arrival or decreasing order).
//! - [`meta`]: the PSO and GA baselines of KDQNVMP: a batch placed for the fewest watts, never worse than FFD.
//! - [`dynamic`]: the dynamic datacenter twin: admission, consolidation
//!   (CloudSim's THR/IQR/MAD/LR/LRR × MMT/MC/MU/RS and fairwatt's), migration
//!   costs, CloudSim's metrics and the energy lower bound.
//! - [`trace`]: VM demand from PlanetLab, Bitbrains and Alibaba GPU 2023
//!   traces, and a synthetic generator for the default tests.
//! - [`gpu`]: CPU/memory/GPU pod placement on the Alibaba GPU 2023 cluster: seven policies incl. FGD and power-aware, energy and fragmentation.
//! - [`vbp`]: vector bin packing heuristics and their optimality gap on the public benchmark.
//! - [`live`]: the decision for a VM request against the registered fleet and the ledger.
//! - [`rl`]: RL agents (Q-table, DQN, A2C, KDQNVMP's DQNVMP on K-means host clusters) choosing hosts in the consolidation loop; attributed energy in the reward.
//! - [`rng`]: the seeded generator behind every random choice.
//! - [`error`]: the crate's error type ([`trace::TraceError`] for loading).
//!
//! The learned agents ([`rl`]) plug into the dynamic twin's
//! consolidation loop; their reward includes each VM's attributed energy.

pub mod dynamic;
pub mod error;
pub mod gpu;
pub mod heuristics;
pub mod live;
pub mod meta;
pub mod model;
#[cfg(feature = "rl")]
pub mod rl;
pub mod rng;
pub mod trace;
pub mod vbp;

pub use error::{PlaceError, Result};
