//! fairwatt-placement: decides which host gets each VM and when to
//! consolidate.
//!
//! Planned (issue 5): a datacenter simulator with SPECpower curves and real
//! VM traces, CloudSim's heuristics as baselines, and RL agents whose reward
//! includes the attributed energy from `fairwatt-attribution`.
