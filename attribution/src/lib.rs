//! fairwatt-attribution: turns each interval's measured host energy into
//! per-VM energy.
//!
//! - [`model`]: the power models (CPU-time ratio baseline, non-negative
//!   linear, forest with Shapley shares) behind one trait.
//! - [`engine::Attributor`]: per host, online: fit on a sliding window,
//!   attribute each interval, re-fit when the error drifts, version models.
//! - [`alloc`]: exact integer splitting (largest remainder).
//! - [`idle_power`]: how idle power is estimated; [`idle`]: who carries it.
//! - [`result`]: the immutable per-interval results others read.
//! - [`eval`]: scoring against the simulator's ground truth.
//!
//! Invariant: for every interval and domain the VMs' shares plus the
//! unattributed remainder equal the measured energy exactly, in integer
//! microjoules ([`result::DomainAttribution::is_conserved`]).

pub mod alloc;
pub mod engine;
pub mod error;
pub mod eval;
pub mod features;
pub mod idle;
pub mod idle_power;
pub mod model;
pub mod result;
pub mod shapley;
pub mod signature;

pub use engine::{Attributor, AttributorConfig, ModelVersion, Step};
pub use error::{Error, Result};
pub use idle::IdlePolicy;
pub use model::{Method, ModelParams, PowerModel};
pub use result::{DomainAttribution, IntervalAttribution, VmShare};
