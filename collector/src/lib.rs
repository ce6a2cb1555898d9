//! fairwatt-collector: everything the host agent reads, and the simulated host.
//!
//! Every hardware source sits behind a small trait whose constructor takes a
//! root path (`/sys`, `/proc`, `/dev`), so tests and benchmarks read fixture
//! trees the project generates ([`fixture`]); native libraries (NVML, perf)
//! sit behind narrow traits with fake backends. A sensor that is absent or
//! failing reports a [`fairwatt_core::SensorStatus`] and an [`Error`] naming
//! the sensor and file; it never panics and never stops the other sensors.

pub mod discovery;
pub mod energy;
pub mod error;
pub mod fixture;
pub mod fsutil;
pub mod gpu;
pub mod perf;
pub mod proc;
pub mod rapl;
pub mod sampler;
pub mod sim;
pub mod spool;
pub mod trace_io;

pub use error::{Error, Result};
