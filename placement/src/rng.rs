//! The seeded generator behind every random choice of the placement crate
//! (random placement and selection, synthetic workloads, PSO and GA, the
//! RL agents' exploration and replay): the attribution crate's splitmix64,
//! so one implementation serves both and runs are reproducible by seed on
//! every platform and release.

pub use fairwatt_attribution::shapley::SplitMix64;
