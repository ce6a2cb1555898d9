//! What a sensor reports about itself: found, missing, or failing.
//!
//! A missing sensor is a status, not a crash. The agent prints these at start
//! and exports them as metrics so operators see which meters a host has.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SensorState {
    /// Found and reading.
    Ok,
    /// Reading, but with a fallback (software perf counters, power integrated instead of an energy counter).
    Degraded,
    /// Not present on this host.
    Missing,
    /// Present but failing (permission denied, garbage values).
    Error,
}

impl SensorState {
    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Ok => "ok",
            SensorState::Degraded => "degraded",
            SensorState::Missing => "missing",
            SensorState::Error => "error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorStatus {
    /// Short stable name: `rapl-powercap`, `rapl-msr`, `nvml`, `perf`, `procfs`, `cgroup`, `simulator`.
    pub sensor: String,
    pub state: SensorState,
    /// One human sentence: what was found, or what is wrong and what to do.
    pub detail: String,
}

impl SensorStatus {
    pub fn new(sensor: impl Into<String>, state: SensorState, detail: impl Into<String>) -> Self {
        SensorStatus { sensor: sensor.into(), state, detail: detail.into() }
    }

    pub fn ok(sensor: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(sensor, SensorState::Ok, detail)
    }

    pub fn missing(sensor: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(sensor, SensorState::Missing, detail)
    }

    pub fn error(sensor: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(sensor, SensorState::Error, detail)
    }

    pub fn degraded(sensor: impl Into<String>, detail: impl Into<String>) -> Self {
        Self::new(sensor, SensorState::Degraded, detail)
    }
}

impl fmt::Display for SensorStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:<14} {:<8} {}", self.sensor, self.state.as_str(), self.detail)
    }
}
