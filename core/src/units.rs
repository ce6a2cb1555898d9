//! Physical units as integer newtypes.
//!
//! Energy is counted in whole microjoules so that sums over VMs and intervals
//! are exact: billing depends on "shares plus remainder equal the measured
//! energy" holding bit for bit, which floating point cannot promise.

use std::fmt;
use std::ops::{Add, AddAssign, Sub};

use chrono::{DateTime, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// Energy in microjoules.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Energy(u64);

impl Energy {
    pub const ZERO: Energy = Energy(0);

    pub const fn from_uj(uj: u64) -> Self {
        Energy(uj)
    }

    /// Rounds to the nearest microjoule; `None` for NaN, infinite or negative input.
    pub fn from_joules(j: f64) -> Option<Self> {
        let uj = (j * 1e6).round();
        if uj.is_finite() && uj >= 0.0 && uj <= u64::MAX as f64 {
            Some(Energy(uj as u64))
        } else {
            None
        }
    }

    pub const fn as_uj(self) -> u64 {
        self.0
    }

    pub fn as_joules(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn as_kwh(self) -> f64 {
        self.0 as f64 / 3.6e12
    }

    pub fn checked_add(self, other: Energy) -> Option<Energy> {
        self.0.checked_add(other.0).map(Energy)
    }

    pub fn checked_sub(self, other: Energy) -> Option<Energy> {
        self.0.checked_sub(other.0).map(Energy)
    }

    pub fn saturating_sub(self, other: Energy) -> Energy {
        Energy(self.0.saturating_sub(other.0))
    }

    /// Average power over `dt`; zero for an empty interval.
    pub fn per(self, dt: Micros) -> Power {
        if dt.0 == 0 {
            return Power::ZERO;
        }
        // µJ / µs = W; scale to µW with 128-bit headroom.
        let uw = (self.0 as u128 * 1_000_000) / dt.0 as u128;
        Power(uw.min(u64::MAX as u128) as u64)
    }
}

impl Add for Energy {
    type Output = Energy;
    fn add(self, rhs: Energy) -> Energy {
        // 2^64 µJ is 5 GWh: an overflow is a corrupted counter, not a real reading.
        Energy(self.0.saturating_add(rhs.0))
    }
}

impl AddAssign for Energy {
    fn add_assign(&mut self, rhs: Energy) {
        *self = *self + rhs;
    }
}

impl Sub for Energy {
    type Output = Energy;
    /// Saturating: energy never goes negative.
    fn sub(self, rhs: Energy) -> Energy {
        self.saturating_sub(rhs)
    }
}

impl std::iter::Sum for Energy {
    fn sum<I: Iterator<Item = Energy>>(iter: I) -> Energy {
        iter.fold(Energy::ZERO, |a, b| a + b)
    }
}

impl fmt::Display for Energy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{:06} J", self.0 / 1_000_000, self.0 % 1_000_000)
    }
}

/// Power in microwatts.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Power(u64);

impl Power {
    pub const ZERO: Power = Power(0);

    pub const fn from_uw(uw: u64) -> Self {
        Power(uw)
    }

    pub const fn from_mw(mw: u64) -> Self {
        Power(mw.saturating_mul(1000))
    }

    /// `None` for NaN, infinite or negative watts.
    pub fn from_watts(w: f64) -> Option<Self> {
        let uw = (w * 1e6).round();
        if uw.is_finite() && uw >= 0.0 && uw <= u64::MAX as f64 {
            Some(Power(uw as u64))
        } else {
            None
        }
    }

    pub const fn as_uw(self) -> u64 {
        self.0
    }

    pub fn as_watts(self) -> f64 {
        self.0 as f64 / 1e6
    }

    /// Energy drawn at this power for `dt`, rounded down to the microjoule.
    pub fn over(self, dt: Micros) -> Energy {
        let uj = (self.0 as u128 * dt.0 as u128) / 1_000_000;
        Energy(uj.min(u64::MAX as u128) as u64)
    }
}

impl fmt::Display for Power {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.3} W", self.as_watts())
    }
}

/// A duration in microseconds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Micros(pub u64);

impl Micros {
    pub const fn from_secs(s: u64) -> Self {
        Micros(s * 1_000_000)
    }

    pub const fn from_millis(ms: u64) -> Self {
        Micros(ms * 1_000)
    }

    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }

    pub fn as_std(self) -> std::time::Duration {
        std::time::Duration::from_micros(self.0)
    }
}

impl From<std::time::Duration> for Micros {
    fn from(d: std::time::Duration) -> Self {
        Micros(d.as_micros().min(u64::MAX as u128) as u64)
    }
}

impl fmt::Display for Micros {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6} s", self.as_secs_f64())
    }
}

/// A UTC instant with microsecond resolution, serialised as RFC 3339.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Microseconds since the Unix epoch; `None` outside chrono's range.
    pub fn from_micros(us: i64) -> Option<Self> {
        Utc.timestamp_micros(us).single().map(Timestamp)
    }

    /// Truncates to whole microseconds, the resolution every trace carries.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        use chrono::SubsecRound;
        Timestamp(dt.trunc_subsecs(6))
    }

    pub fn as_micros(self) -> i64 {
        self.0.timestamp_micros()
    }

    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }

    /// Saturates at chrono's range instead of panicking.
    pub fn plus(self, d: Micros) -> Self {
        let us = self.as_micros().saturating_add(d.0.min(i64::MAX as u64) as i64);
        Timestamp::from_micros(us).unwrap_or(self)
    }

    /// Time from `earlier` to `self`; `None` when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> Option<Micros> {
        let d = self.as_micros().checked_sub(earlier.as_micros())?;
        u64::try_from(d).ok().map(Micros)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
    }
}

/// An RFC 3339 time (any offset, taken to UTC) that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an RFC 3339 time such as 2026-12-01T00:00:00Z")]
pub struct TimestampParseError(pub String);

impl std::str::FromStr for Timestamp {
    type Err = TimestampParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DateTime::parse_from_rfc3339(s.trim()).map(|t| Timestamp::from_datetime(t.with_timezone(&Utc))).map_err(|_| TimestampParseError(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn timestamps_parse_rfc3339_and_round_trip() {
        let t: Timestamp = "2026-12-01T01:02:03.000004+01:00".parse().unwrap();
        assert_eq!(t.to_string(), "2026-12-01T00:02:03.000004Z");
        assert_eq!(t.to_string().parse::<Timestamp>().unwrap(), t);
        assert!("yesterday".parse::<Timestamp>().unwrap_err().to_string().contains("RFC 3339"));
    }

    #[test]
    fn joules_reject_nan_and_negative() {
        assert_eq!(Energy::from_joules(f64::NAN), None);
        assert_eq!(Energy::from_joules(-1.0), None);
        assert_eq!(Energy::from_joules(1.5), Some(Energy::from_uj(1_500_000)));
        assert_eq!(Power::from_watts(f64::INFINITY), None);
    }

    #[test]
    fn power_and_energy_round_trip() {
        let p = Power::from_watts(120.0).unwrap();
        let e = p.over(Micros::from_secs(2));
        assert_eq!(e, Energy::from_uj(240_000_000));
        assert_eq!(e.per(Micros::from_secs(2)), p);
        assert_eq!(e.per(Micros(0)), Power::ZERO);
        assert_eq!(format!("{e}"), "240.000000 J");
    }

    #[test]
    fn energy_never_negative() {
        assert_eq!(Energy::from_uj(3) - Energy::from_uj(5), Energy::ZERO);
        assert_eq!(Energy::from_uj(u64::MAX) + Energy::from_uj(1), Energy::from_uj(u64::MAX));
    }

    #[test]
    fn datetimes_are_truncated_to_microseconds() {
        let dt = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00.123456789Z").unwrap().with_timezone(&chrono::Utc);
        let t = Timestamp::from_datetime(dt);
        assert_eq!(t.to_string(), "2026-01-01T00:00:00.123456Z");
        assert_eq!(Timestamp::from_micros(t.as_micros()), Some(t));
    }

    #[test]
    fn timestamps_order_and_format() {
        let a = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        let b = a.plus(Micros::from_millis(1500));
        assert_eq!(b.since(a), Some(Micros(1_500_000)));
        assert_eq!(a.since(b), None);
        assert_eq!(a.to_string(), "2023-11-14T22:13:20.000000Z");
        let json = serde_json::to_string(&a).unwrap();
        let back: Timestamp = serde_json::from_str(&json).unwrap();
        assert_eq!(back, a);
    }

    proptest! {
        #[test]
        fn sum_is_exact(xs in proptest::collection::vec(0u64..1u64 << 40, 0..200)) {
            let total: Energy = xs.iter().map(|&x| Energy::from_uj(x)).sum();
            prop_assert_eq!(total.as_uj(), xs.iter().sum::<u64>());
        }

        #[test]
        fn power_over_time_is_monotone(uw in 0u64..1u64 << 40, a in 0u64..1u64 << 30, b in 0u64..1u64 << 30) {
            let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
            let p = Power::from_uw(uw);
            prop_assert!(p.over(Micros(lo)) <= p.over(Micros(hi)));
        }
    }
}
