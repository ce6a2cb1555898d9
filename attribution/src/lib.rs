//! fairwatt-attribution: turns each interval's measured host energy into
//! per-VM energy.
//!
//! Planned (issue 3): a CPU-time-ratio baseline (what Kepler and Scaphandre
//! do), workload-aware regressors per energy domain recalibrated online, a
//! configurable idle-power policy and Shapley-value shares for non-additive
//! models. Its invariant: for every interval and domain, the VMs' shares plus
//! the unattributed remainder equal the measured energy exactly, in integer
//! microjoules. It reads `fairwatt_core::IntervalRecord`s (the trace format).
