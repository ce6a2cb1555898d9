//! Where "now" comes from: the system clock in the agent, a manual clock in
//! tests and the simulator so runs are reproducible.

use std::sync::atomic::{AtomicI64, Ordering};

use crate::units::{Micros, Timestamp};

pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::from_datetime(chrono::Utc::now())
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    micros: AtomicI64,
}

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        ManualClock { micros: AtomicI64::new(start.as_micros()) }
    }

    pub fn advance(&self, d: Micros) {
        let d = i64::try_from(d.0).unwrap_or(i64::MAX);
        self.micros.fetch_add(d, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        let us = self.micros.load(Ordering::SeqCst);
        Timestamp::from_micros(us).unwrap_or_else(|| Timestamp::from_micros(0).expect("epoch is in range"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_advances_only_when_told() {
        let t0 = Timestamp::from_micros(1_000_000).unwrap();
        let c = ManualClock::new(t0);
        assert_eq!(c.now(), t0);
        c.advance(Micros::from_secs(2));
        assert_eq!(c.now().since(t0), Some(Micros::from_secs(2)));
    }

    #[test]
    fn system_clock_is_after_2020() {
        assert!(SystemClock.now().as_micros() > 1_577_836_800_000_000);
    }
}
