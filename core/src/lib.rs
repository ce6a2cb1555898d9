//! fairwatt-core: the vocabulary every other fairwatt crate speaks.
//!
//! Units (integer energy in microjoules with wraparound-aware counter deltas,
//! power, durations, timestamps), ids, energy domains, per-interval samples,
//! the versioned trace record and a clock. This crate does no IO: it never
//! touches the filesystem, the network or the environment, so every type here
//! can be built and checked in tests without a host.

pub mod clock;
pub mod counter;
pub mod domain;
pub mod domain_map;
pub mod ids;
mod merge;
pub mod sample;
pub mod status;
pub mod trace;
pub mod units;

pub use counter::{CounterDelta, WrapCounter, counter_delta};
pub use domain::{Domain, DomainKind};
pub use domain_map::DomainMap;
pub use ids::{HostId, IdError, TenantId, VmId};
pub use sample::{DomainEnergy, Flavor, GpuUse, IntervalRecord, HostTruth, PerfSource, ReadingStatus, RecordError, VmFeatures, VmInfo, VmRecord, VmTruth};
pub use status::{SensorState, SensorStatus};
pub use units::{Energy, Micros, Power, Timestamp, TimestampParseError};
