//! Deltas of monotonically increasing hardware energy counters.
//!
//! RAPL and NVML counters only ever count up, but they wrap at a fixed
//! modulus (32 bits of raw units for MSRs, `max_energy_range_uj` for
//! powercap) and they reset to zero when a driver reloads or a machine
//! resumes. A backwards step is therefore either a wrap or a reset, never
//! negative energy. We call it a wrap when the wrapped delta is plausible for
//! the interval and a reset otherwise; after a reset only the energy counted
//! since the reset (the new value) is known.

use serde::{Deserialize, Serialize};

/// How one counter moved between two readings, in the counter's raw units.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CounterDelta {
    Normal(u64),
    Wrapped(u64),
    /// The counter restarted; the value is what it counted since.
    Reset(u64),
}

impl CounterDelta {
    pub fn value(self) -> u64 {
        match self {
            CounterDelta::Normal(v) | CounterDelta::Wrapped(v) | CounterDelta::Reset(v) => v,
        }
    }
}

/// Delta from `prev` to `cur` of a counter that wraps at `modulus` (values lie
/// in `0..modulus`). `plausible_max` bounds what one interval can count: a
/// backwards step whose wrapped delta exceeds it is treated as a reset.
pub fn counter_delta(prev: u64, cur: u64, modulus: Option<u64>, plausible_max: Option<u64>) -> CounterDelta {
    if cur >= prev {
        return CounterDelta::Normal(cur - prev);
    }
    match modulus {
        Some(m) if prev < m => {
            let wrapped = (m - prev).saturating_add(cur);
            match plausible_max {
                Some(max) if wrapped > max => CounterDelta::Reset(cur),
                _ => CounterDelta::Wrapped(wrapped),
            }
        }
        _ => CounterDelta::Reset(cur),
    }
}

/// A counter's last reading, turning successive raw readings into deltas.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WrapCounter {
    modulus: Option<u64>,
    last: Option<u64>,
}

impl WrapCounter {
    pub fn new(modulus: Option<u64>) -> Self {
        WrapCounter { modulus, last: None }
    }

    pub fn modulus(&self) -> Option<u64> {
        self.modulus
    }

    /// Feeds a reading; `None` for the first one (no interval yet).
    pub fn update(&mut self, raw: u64, plausible_max: Option<u64>) -> Option<CounterDelta> {
        let delta = self.last.map(|prev| counter_delta(prev, raw, self.modulus, plausible_max));
        self.last = Some(raw);
        delta
    }

    pub fn last(&self) -> Option<u64> {
        self.last
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forward_wrap_and_reset() {
        assert_eq!(counter_delta(10, 25, Some(100), None), CounterDelta::Normal(15));
        assert_eq!(counter_delta(90, 5, Some(100), None), CounterDelta::Wrapped(15));
        assert_eq!(counter_delta(90, 5, Some(100), Some(10)), CounterDelta::Reset(5));
        assert_eq!(counter_delta(90, 5, None, None), CounterDelta::Reset(5));
        // A previous value outside the modulus cannot have wrapped.
        assert_eq!(counter_delta(150, 5, Some(100), None), CounterDelta::Reset(5));
    }

    #[test]
    fn counter_tracks_last_reading() {
        let mut c = WrapCounter::new(Some(1 << 32));
        assert_eq!(c.update(u32::MAX as u64 - 9, None), None);
        assert_eq!(c.update(20, None), Some(CounterDelta::Wrapped(30)));
        assert_eq!(c.update(50, None), Some(CounterDelta::Normal(30)));
        assert_eq!(c.last(), Some(50));
    }

    proptest! {
        /// Summing deltas over a wrapping sequence recovers the true total.
        #[test]
        fn wrapped_deltas_sum_to_truth(steps in proptest::collection::vec(0u64..1000, 1..300), start in 0u64..4096) {
            let m = 4096u64;
            let mut c = WrapCounter::new(Some(m));
            let mut truth = start;
            c.update(start % m, Some(1000));
            let mut seen = 0u64;
            for s in &steps {
                truth += s;
                seen += c.update(truth % m, Some(1000)).unwrap().value();
            }
            prop_assert_eq!(seen, truth - start);
        }

        #[test]
        fn never_exceeds_modulus(prev in 0u64..1 << 32, cur in 0u64..1 << 32) {
            let d = counter_delta(prev, cur, Some(1 << 32), None);
            prop_assert!(d.value() < 1 << 32);
        }
    }
}
