//! Simulated RAPL and NVML meters: an [`EnergySource`] whose counters the
//! simulated host fills, so its energy reaches records through the same
//! [`crate::energy::Meter`] as a real host's (wraps, scales, integration).
//!
//! - RAPL (package, core, uncore, DRAM): a powercap-like cumulative counter in
//!   µJ that wraps at `modulus` (`max_energy_range_uj`; by default
//!   [`POWERCAP_RANGE_UJ`]). The reading is `total mod modulus`, exact.
//! - NVML with an energy counter: cumulative millijoules, never wrapping
//!   (`nvmlDeviceGetTotalEnergyConsumption`). The reading is `⌊total / 1000⌋`,
//!   so each interval shows a whole number of millijoules; the difference to
//!   the deposited microjoules is returned by [`SimCounters::deposit`] so the
//!   host can book it (it books it to the GPU's idle truth).
//! - NVML without one: the interval's average power, which the meter
//!   integrates with the trapezoid rule (status `Integrated`, approximate).

use std::sync::{Arc, Mutex, MutexGuard};

use fairwatt_core::{Domain, Micros, Power, SensorStatus};

use crate::energy::{EnergySource, RawReading, Scale};
use crate::error::Error;

/// `max_energy_range_uj` of Intel package domains under Linux powercap.
pub const POWERCAP_RANGE_UJ: u64 = 262_143_328_850;

const SENSOR: &str = "simulator";

/// How one simulated domain is metered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CounterKind {
    /// Cumulative µJ wrapping at `modulus` (RAPL via powercap).
    Microjoules { modulus: u64 },
    /// Cumulative mJ, no wrap (NVML total energy).
    Millijoules,
    /// Average power over the interval (NVML power usage).
    Power,
}

#[derive(Clone, Debug)]
struct Channel {
    domain: Domain,
    kind: CounterKind,
    /// µJ since "boot" (modulo the modulus for wrapping counters).
    total_uj: u64,
    power: Power,
}

type Bank = Arc<Mutex<Vec<Channel>>>;

fn lock(bank: &Bank) -> MutexGuard<'_, Vec<Channel>> {
    // A panic elsewhere while holding the lock leaves plain integers behind: still usable.
    bank.lock().unwrap_or_else(|e| e.into_inner())
}

/// The meter-facing half: what the [`crate::energy::Meter`] reads.
pub struct SimEnergySource {
    bank: Bank,
    detail: String,
}

/// The host-facing half: where the simulated host deposits energy.
#[derive(Clone)]
pub struct SimCounters {
    bank: Bank,
}

impl SimEnergySource {
    /// One channel per `(domain, kind, initial µJ)`; the initial value is the
    /// counter's reading at boot + uptime (reduced modulo its modulus), and the
    /// initial power of power-only channels is `initial` read as µW.
    pub fn new(channels: &[(Domain, CounterKind, u64)]) -> (SimEnergySource, SimCounters) {
        let chans: Vec<Channel> = channels
            .iter()
            .map(|&(domain, kind, initial)| {
                let total_uj = match kind {
                    CounterKind::Microjoules { modulus } => initial % modulus.max(1),
                    CounterKind::Millijoules => initial,
                    CounterKind::Power => 0,
                };
                let power = if kind == CounterKind::Power { Power::from_uw(initial) } else { Power::ZERO };
                Channel { domain, kind, total_uj, power }
            })
            .collect();
        let rapl = chans.iter().filter(|c| matches!(c.kind, CounterKind::Microjoules { .. })).count();
        let nvml = chans.iter().filter(|c| c.kind == CounterKind::Millijoules).count();
        let power = chans.iter().filter(|c| c.kind == CounterKind::Power).count();
        let modulus = chans.iter().find_map(|c| match c.kind {
            CounterKind::Microjoules { modulus } => Some(modulus),
            _ => None,
        });
        let detail = format!(
            "digital twin: {rapl} RAPL-like µJ counters{}, {nvml} GPU mJ energy counters, {power} GPU power-only readings; records carry ground truth",
            modulus.map(|m| format!(" (wrap at {m} µJ)")).unwrap_or_default()
        );
        let bank: Bank = Arc::new(Mutex::new(chans));
        (SimEnergySource { bank: bank.clone(), detail }, SimCounters { bank })
    }
}

impl EnergySource for SimEnergySource {
    fn name(&self) -> &'static str {
        SENSOR
    }

    fn status(&self) -> Vec<SensorStatus> {
        vec![SensorStatus::ok(SENSOR, self.detail.clone())]
    }

    fn read(&mut self) -> Vec<(Domain, Result<RawReading, Error>)> {
        lock(&self.bank)
            .iter()
            .map(|c| {
                let r = match c.kind {
                    CounterKind::Microjoules { modulus } => {
                        RawReading::Counter { raw: c.total_uj, modulus: Some(modulus), scale: Scale::MICROJOULE }
                    }
                    CounterKind::Millijoules => RawReading::Counter { raw: c.total_uj / 1000, modulus: None, scale: Scale::MILLIJOULE },
                    CounterKind::Power => RawReading::Power(c.power),
                };
                (c.domain, Ok(r))
            })
            .collect()
    }
}

impl SimCounters {
    /// Adds `uj[i]` µJ (drawn over `dt`) to channel `i`, in the order given to
    /// [`SimEnergySource::new`], and writes into `shown[i]` the energy the
    /// meter will report for counter channels (`uj[i]` for µJ counters, whole
    /// millijoules for mJ counters; `uj[i]` for power channels, whose meter
    /// value is only approximate).
    pub fn deposit(&self, uj: &[u64], dt: Micros, shown: &mut [u64]) {
        let mut chans = lock(&self.bank);
        for (i, c) in chans.iter_mut().enumerate() {
            let e = uj.get(i).copied().unwrap_or(0);
            let s = match c.kind {
                CounterKind::Microjoules { modulus } => {
                    let m = modulus.max(1) as u128;
                    c.total_uj = ((c.total_uj as u128 + e as u128) % m) as u64;
                    e
                }
                CounterKind::Millijoules => {
                    let before = c.total_uj / 1000;
                    c.total_uj = c.total_uj.saturating_add(e);
                    (c.total_uj / 1000 - before) * 1000
                }
                CounterKind::Power => {
                    c.power = if dt.0 == 0 { Power::ZERO } else { Power::from_uw(((e as u128 * 1_000_000) / dt.0 as u128).min(u64::MAX as u128) as u64) };
                    e
                }
            };
            if let Some(slot) = shown.get_mut(i) {
                *slot = s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::energy::Meter;
    use fairwatt_core::{ReadingStatus, Timestamp};

    #[test]
    fn meter_sees_exactly_what_was_deposited() {
        let chans = [
            (Domain::package(0), CounterKind::Microjoules { modulus: 1000 }, 990),
            (Domain::gpu(0), CounterKind::Millijoules, 123_456_789),
            (Domain::gpu(1), CounterKind::Power, 30_000_000),
        ];
        let (src, bank) = SimEnergySource::new(&chans);
        let mut meter = Meter::new(vec![Box::new(src)]);
        let t0 = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        meter.tick(t0);
        let mut shown = [0u64; 3];
        let dt = Micros::from_secs(1);
        bank.deposit(&[500, 2_500_400, 50_000_000], dt, &mut shown);
        // 123_456 mJ shown before, 125_957 after: whole millijoules only.
        assert_eq!(shown[..2], [500, 2_501_000]);
        let r = meter.tick(t0.plus(dt));
        assert_eq!(r.domains[&Domain::package(0)].energy_uj.as_uj(), 500);
        assert_eq!(r.domains[&Domain::package(0)].status, ReadingStatus::Wrapped);
        assert_eq!(r.domains[&Domain::gpu(0)].energy_uj.as_uj(), 2_501_000);
        // Trapezoid of 30 W and 50 W over 1 s.
        assert_eq!(r.domains[&Domain::gpu(1)].energy_uj.as_uj(), 40_000_000);
        assert_eq!(r.domains[&Domain::gpu(1)].status, ReadingStatus::Integrated);
        assert!(r.errors.is_empty());
    }
}
