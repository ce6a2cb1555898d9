//! Host energy sources and the meter that turns their readings into
//! per-interval energy.
//!
//! A source reports raw readings: a cumulative counter in its own units (with
//! the modulus it wraps at and a rational µJ-per-unit scale), or an
//! instantaneous power. The [`Meter`] keeps each domain's last reading and
//! returns exact integer microjoules per interval: wraps are corrected,
//! backward steps that cannot be wraps are resets, and the fractional
//! microjoules of scaled counters are carried to the next interval so that
//! nothing is lost to rounding.

use std::collections::BTreeMap;

use fairwatt_core::{
    CounterDelta, Domain, DomainEnergy, DomainKind, Energy, Micros, Power, ReadingStatus, SensorStatus, Timestamp,
    WrapCounter,
};

use crate::error::Error;

/// Microjoules per raw counter unit, as the exact fraction `num / den`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Scale {
    pub num: u64,
    pub den: u64,
}

impl Scale {
    pub const MICROJOULE: Scale = Scale { num: 1, den: 1 };

    /// 1 / 2^esu joules, the RAPL energy status unit.
    pub fn rapl_esu(esu: u32) -> Scale {
        Scale { num: 1_000_000, den: 1u64 << esu.min(31) }
    }

    /// The fixed 15.3 µJ DRAM unit of Intel server parts.
    pub const SERVER_DRAM: Scale = Scale { num: 153, den: 10 };

    /// Millijoules (NVML's total-energy counter).
    pub const MILLIJOULE: Scale = Scale { num: 1000, den: 1 };
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RawReading {
    /// A cumulative counter; values lie in `0..modulus` when it wraps.
    Counter { raw: u64, modulus: Option<u64>, scale: Scale },
    /// Instantaneous (or short-window average) power.
    Power(Power),
}

/// Anything that measures host energy per domain.
pub trait EnergySource: Send {
    /// Short stable name, used as the `sensor` label.
    fn name(&self) -> &'static str;
    /// What this source found, for the start-up report and metrics.
    fn status(&self) -> Vec<SensorStatus>;
    /// One reading per domain; a failing domain is an `Err` and the others go on.
    fn read(&mut self) -> Vec<(Domain, Result<RawReading, Error>)>;
}

/// The highest power one domain can plausibly draw, for telling wraps from resets.
fn plausible_watts(kind: DomainKind) -> u64 {
    match kind {
        DomainKind::Package | DomainKind::Core | DomainKind::Uncore => 1_500,
        DomainKind::Dram => 1_000,
        DomainKind::Gpu => 3_000,
        DomainKind::Psys => 5_000,
    }
}

#[derive(Debug)]
struct DomainState {
    counter: WrapCounter,
    scale: Scale,
    /// Leftover `num`-units below one µJ, carried so scaled sums stay exact.
    carry: u64,
    last_power: Option<(Power, Timestamp)>,
}

/// What a meter must remember to resume after an agent restart without
/// losing the energy counted while the agent was down.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MeterState {
    pub last_tick: Option<Timestamp>,
    pub domains: Vec<DomainSnapshot>,
}

#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DomainSnapshot {
    pub domain: Domain,
    pub last_raw: Option<u64>,
    pub modulus: Option<u64>,
    pub scale: Scale,
    pub carry: u64,
    pub last_power: Option<(Power, Timestamp)>,
}

/// One interval's measured energy plus whatever failed while reading it.
#[derive(Debug, Default)]
pub struct MeterReading {
    pub domains: BTreeMap<Domain, DomainEnergy>,
    pub errors: Vec<Error>,
}

/// Keeps every domain's previous reading and produces per-interval deltas.
#[derive(Default)]
pub struct Meter {
    sources: Vec<Box<dyn EnergySource>>,
    state: BTreeMap<Domain, DomainState>,
    last_tick: Option<Timestamp>,
}

impl Meter {
    pub fn new(sources: Vec<Box<dyn EnergySource>>) -> Self {
        Meter { sources, state: BTreeMap::new(), last_tick: None }
    }

    pub fn status(&self) -> Vec<SensorStatus> {
        self.sources.iter().flat_map(|s| s.status()).collect()
    }

    pub fn sources(&self) -> &[Box<dyn EnergySource>] {
        &self.sources
    }

    pub fn snapshot(&self) -> MeterState {
        MeterState {
            last_tick: self.last_tick,
            domains: self
                .state
                .iter()
                .map(|(d, st)| DomainSnapshot {
                    domain: *d,
                    last_raw: st.counter.last(),
                    modulus: st.counter.modulus(),
                    scale: st.scale,
                    carry: st.carry,
                    last_power: st.last_power,
                })
                .collect(),
        }
    }

    /// Resumes from a snapshot: the next tick returns the energy counted since
    /// the snapshot's tick. A counter that restarted meanwhile (reboot) shows
    /// up as a reset, so at worst the energy before the reset is unknown.
    pub fn restore(&mut self, s: &MeterState) {
        self.last_tick = s.last_tick;
        self.state = s
            .domains
            .iter()
            .map(|d| {
                let mut counter = WrapCounter::new(d.modulus);
                if let Some(raw) = d.last_raw {
                    counter.update(raw, None);
                }
                (d.domain, DomainState { counter, scale: d.scale, carry: d.carry, last_power: d.last_power })
            })
            .collect();
    }

    pub fn last_tick(&self) -> Option<Timestamp> {
        self.last_tick
    }

    /// Reads every source at `now`. The first call only primes the counters and
    /// returns no energy; each later call returns the energy since the previous.
    pub fn tick(&mut self, now: Timestamp) -> MeterReading {
        let dt = self.last_tick.and_then(|t| now.since(t)).unwrap_or_default();
        let first = self.last_tick.is_none();
        self.last_tick = Some(now);
        let mut out = MeterReading::default();
        for source in &mut self.sources {
            for (domain, reading) in source.read() {
                match reading {
                    Ok(r) => {
                        if let Some(e) = Self::apply(&mut self.state, domain, r, now, dt)
                            && !first
                        {
                            out.domains.insert(domain, e);
                        }
                    }
                    Err(e) => out.errors.push(e),
                }
            }
        }
        out
    }

    fn apply(
        state: &mut BTreeMap<Domain, DomainState>,
        domain: Domain,
        reading: RawReading,
        now: Timestamp,
        dt: Micros,
    ) -> Option<DomainEnergy> {
        match reading {
            RawReading::Counter { raw, modulus, scale } => {
                let st = state.entry(domain).or_insert_with(|| DomainState {
                    counter: WrapCounter::new(modulus),
                    scale,
                    carry: 0,
                    last_power: None,
                });
                if st.counter.modulus() != modulus || st.scale != scale {
                    // The source changed shape (driver reload): start over.
                    *st = DomainState { counter: WrapCounter::new(modulus), scale, carry: 0, last_power: None };
                }
                let max_uj = plausible_watts(domain.kind) as u128 * dt.0 as u128 * 2;
                let max_raw = (max_uj * scale.den as u128 / scale.num.max(1) as u128).min(u64::MAX as u128) as u64;
                let plausible = if dt.0 == 0 { None } else { Some(max_raw) };
                let delta = st.counter.update(raw, plausible)?;
                let status = match delta {
                    CounterDelta::Normal(_) => ReadingStatus::Ok,
                    CounterDelta::Wrapped(_) => ReadingStatus::Wrapped,
                    CounterDelta::Reset(_) => ReadingStatus::Reset,
                };
                let units = delta.value() as u128 * scale.num as u128 + st.carry as u128;
                let den = scale.den.max(1) as u128;
                st.carry = (units % den) as u64;
                let uj = (units / den).min(u64::MAX as u128) as u64;
                Some(DomainEnergy { energy_uj: Energy::from_uj(uj), status })
            }
            RawReading::Power(p) => {
                let st = state.entry(domain).or_insert_with(|| DomainState {
                    counter: WrapCounter::new(None),
                    scale: Scale::MICROJOULE,
                    carry: 0,
                    last_power: None,
                });
                let prev = st.last_power.replace((p, now));
                let (p0, t0) = prev?;
                let span = now.since(t0)?;
                // Trapezoid over the interval: NVML's reading is already a ~1 s average.
                let avg = Power::from_uw((p0.as_uw() / 2).saturating_add(p.as_uw() / 2));
                Some(DomainEnergy { energy_uj: avg.over(span), status: ReadingStatus::Integrated })
            }
        }
    }
}

/// A source with scripted readings, for tests of everything above the sensors.
pub struct ScriptedSource {
    pub name: &'static str,
    pub script: std::collections::VecDeque<Vec<(Domain, Result<RawReading, Error>)>>,
}

impl EnergySource for ScriptedSource {
    fn name(&self) -> &'static str {
        self.name
    }

    fn status(&self) -> Vec<SensorStatus> {
        vec![SensorStatus::ok(self.name, "scripted readings")]
    }

    fn read(&mut self) -> Vec<(Domain, Result<RawReading, Error>)> {
        self.script.pop_front().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_000).unwrap()
    }

    fn counter(raw: u64, modulus: u64, scale: Scale) -> Result<RawReading, Error> {
        Ok(RawReading::Counter { raw, modulus: Some(modulus), scale })
    }

    #[test]
    fn counters_wrap_reset_and_fail_independently() {
        let m = 1000u64;
        let script = vec![
            vec![(Domain::package(0), counter(900, m, Scale::MICROJOULE)), (Domain::dram(0), counter(0, m, Scale::MICROJOULE))],
            vec![(Domain::package(0), counter(100, m, Scale::MICROJOULE)), (Domain::dram(0), Err(Error::NotAvailable { sensor: "test", reason: "gone".into() }))],
            vec![(Domain::package(0), counter(50, m, Scale::MICROJOULE)), (Domain::dram(0), counter(10, m, Scale::MICROJOULE))],
        ];
        let mut meter = Meter::new(vec![Box::new(ScriptedSource { name: "test", script: script.into() })]);
        assert!(meter.tick(t(0)).domains.is_empty());
        let r = meter.tick(t(1));
        assert_eq!(r.domains[&Domain::package(0)], DomainEnergy { energy_uj: Energy::from_uj(200), status: ReadingStatus::Wrapped });
        assert_eq!(r.errors.len(), 1);
        assert!(!r.domains.contains_key(&Domain::dram(0)));
        // 100 -> 50 within 1 s at up to 1.5 kW could be a wrap of 950 µJ: plausible, so a wrap.
        let r = meter.tick(t(2));
        assert_eq!(r.domains[&Domain::package(0)].status, ReadingStatus::Wrapped);
        assert_eq!(r.domains[&Domain::dram(0)].energy_uj, Energy::from_uj(10));
    }

    #[test]
    fn implausible_backward_step_is_a_reset() {
        let m = 1u64 << 40;
        let script = vec![
            vec![(Domain::package(0), counter(500_000_000, m, Scale::MICROJOULE))],
            vec![(Domain::package(0), counter(7_000, m, Scale::MICROJOULE))],
        ];
        let mut meter = Meter::new(vec![Box::new(ScriptedSource { name: "test", script: script.into() })]);
        meter.tick(t(0));
        let r = meter.tick(t(1));
        assert_eq!(r.domains[&Domain::package(0)], DomainEnergy { energy_uj: Energy::from_uj(7_000), status: ReadingStatus::Reset });
    }

    #[test]
    fn power_is_integrated() {
        let p = |w: f64| Ok(RawReading::Power(Power::from_watts(w).unwrap()));
        let script = vec![vec![(Domain::gpu(0), p(100.0))], vec![(Domain::gpu(0), p(300.0))]];
        let mut meter = Meter::new(vec![Box::new(ScriptedSource { name: "test", script: script.into() })]);
        meter.tick(t(0));
        let r = meter.tick(t(2));
        assert_eq!(r.domains[&Domain::gpu(0)], DomainEnergy { energy_uj: Energy::from_uj(400_000_000), status: ReadingStatus::Integrated });
    }

    #[test]
    fn restored_meter_counts_the_downtime() {
        let m = 1u64 << 32;
        let mk = |vals: &[u64]| -> Box<dyn EnergySource> {
            let script = vals.iter().map(|v| vec![(Domain::package(0), counter(*v, m, Scale::rapl_esu(14)))]).collect();
            Box::new(ScriptedSource { name: "test", script })
        };
        let mut a = Meter::new(vec![mk(&[1000, 3001])]);
        a.tick(t(0));
        let first = a.tick(t(1)).domains[&Domain::package(0)].energy_uj;
        let snap = serde_json::to_string(&a.snapshot()).unwrap();
        let mut b = Meter::new(vec![mk(&[9001])]);
        b.restore(&serde_json::from_str(&snap).unwrap());
        let after = b.tick(t(60)).domains[&Domain::package(0)].energy_uj;
        let mut whole = Meter::new(vec![mk(&[1000, 9001])]);
        whole.tick(t(0));
        assert_eq!(first + after, whole.tick(t(60)).domains[&Domain::package(0)].energy_uj);
    }

    proptest! {
        /// Scaled 32-bit counters that wrap many times lose no microjoule to rounding.
        #[test]
        fn scaled_counter_sum_is_exact(steps in proptest::collection::vec(0u64..3_000, 1..200), esu in 10u32..17) {
            let scale = Scale::rapl_esu(esu);
            let m = 1u64 << 32;
            let mut total_raw = 3_000_000_000u64;
            let mut script = vec![vec![(Domain::package(0), counter(total_raw % m, m, scale))]];
            let start = total_raw;
            for s in &steps {
                total_raw += s * 1000;
                script.push(vec![(Domain::package(0), counter(total_raw % m, m, scale))]);
            }
            let mut meter = Meter::new(vec![Box::new(ScriptedSource { name: "test", script: script.into() })]);
            let mut sum = 0u64;
            for i in 0..=steps.len() {
                sum += meter.tick(t(i as i64)).domains.get(&Domain::package(0)).map_or(0, |e| e.energy_uj.as_uj());
            }
            let exact = ((total_raw - start) as u128 * scale.num as u128 / scale.den as u128) as u64;
            prop_assert_eq!(sum, exact);
        }
    }
}
