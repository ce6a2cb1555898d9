//! fairwatt-placement: decides which host gets each VM and when to
//! consolidate.
//!
//! - [`model`]: host types with SPECpower curves, VM requests, the
//!   datacenter's allocation and its capacity checks.
//! - [`heuristics`]: the CloudSim baselines for initial placement (first
//!   fit, best fit, power-aware best fit, random; arrival or decreasing order).
//! - [`sim`]: the time-stepped datacenter (CloudSim's energy and SLATAH
//!   semantics), for now with placements held fixed.
//! - [`trace`]: VM demand from PlanetLab, Bitbrains and Alibaba GPU 2023
//!   traces, and a synthetic generator for the default tests.
//! - [`vbp`]: vector bin packing heuristics and their optimality gap on the public benchmark.
//! - [`rng`]: the seeded generator behind every random choice.
//! - [`error`]: the crate's error type ([`trace::TraceError`] for loading).
//!
//! Still to come (issue 5): the rest of CloudSim's metrics, dynamic consolidation, metaheuristics, RL agents
//! whose reward includes attributed energy, and the live decision endpoint.

pub mod dynamic;
pub mod error;
pub mod heuristics;
pub mod model;
pub mod rng;
pub mod sim;
pub mod trace;
pub mod vbp;

pub use error::{PlaceError, Result};
