//! GPU energy and per-process use through a scripted NVML, plus the real
//! NVML loader on whatever host runs the tests.

use fairwatt_collector::Error;
use fairwatt_collector::energy::{EnergySource, Meter, RawReading, Scale};
use fairwatt_collector::fixture::gpu::{GpuModel, fake_nvml, fake_nvml_mixed};
use fairwatt_collector::gpu::{
    GpuProcessUse, GpuSource, NvmlBackend, ProcessSample, RealNvml, RunningProcess, normalize_pci_bus_id,
};
use fairwatt_core::{Domain, DomainEnergy, Energy, ReadingStatus, SensorState, Timestamp};

fn t(s: i64) -> Timestamp {
    Timestamp::from_micros(1_700_000_000_000_000 + s * 1_000_000).unwrap()
}

fn sample(pid: u32, sm: u32, mem: u32, ts: u64) -> ProcessSample {
    ProcessSample { pid, sm_util_pct: sm, mem_util_pct: mem, timestamp_us: ts }
}

#[test]
fn energy_counter_goes_through_the_meter_in_microjoules() {
    let fake = fake_nvml(2, GpuModel::A100);
    let src = GpuSource::new(Box::new(fake.clone()));
    assert!(src.status().iter().all(|s| s.state == SensorState::Ok && s.sensor == "nvml"), "{:?}", src.status());
    let mut meter = Meter::new(vec![Box::new(src.clone())]);
    assert!(meter.tick(t(0)).domains.is_empty());
    fake.add_energy_mj(0, 250);
    fake.add_energy_mj(1, 1_234);
    let r = meter.tick(t(1));
    assert!(r.errors.is_empty(), "{:?}", r.errors);
    assert_eq!(r.domains[&Domain::gpu(0)], DomainEnergy { energy_uj: Energy::from_uj(250_000), status: ReadingStatus::Ok });
    assert_eq!(r.domains[&Domain::gpu(1)].energy_uj, Energy::from_uj(1_234_000));
}

#[test]
fn power_only_devices_are_integrated_and_degraded() {
    let fake = fake_nvml(1, GpuModel::K80);
    let mut src = GpuSource::new(Box::new(fake.clone()));
    let st = src.status();
    assert_eq!(st.len(), 1);
    assert_eq!(st[0].state, SensorState::Degraded);
    assert!(st[0].detail.contains("no energy counter"), "{}", st[0].detail);
    assert!(st[0].detail.contains("per-process utilisation not supported"), "{}", st[0].detail);
    fake.set_power_mw(0, 100_000);
    let r = src.read();
    assert!(matches!(r[0], (d, Ok(RawReading::Power(p))) if d == Domain::gpu(0) && p.as_uw() == 100_000_000));
    let mut meter = Meter::new(vec![Box::new(src)]);
    meter.tick(t(0));
    fake.set_power_mw(0, 300_000);
    let r = meter.tick(t(2));
    // Trapezoid: (100 W + 300 W) / 2 over 2 s.
    assert_eq!(r.domains[&Domain::gpu(0)], DomainEnergy { energy_uj: Energy::from_uj(400_000_000), status: ReadingStatus::Integrated });
}

#[test]
fn counter_that_becomes_unsupported_falls_back_to_power() {
    let fake = fake_nvml(1, GpuModel::H100);
    let mut src = GpuSource::new(Box::new(fake.clone()));
    assert!(matches!(src.read()[0].1, Ok(RawReading::Counter { modulus: None, scale: Scale::MILLIJOULE, .. })));
    fake.set_energy_mj(0, None);
    fake.set_power_mw(0, 50_000);
    assert!(matches!(src.read()[0].1, Ok(RawReading::Power(_))));
    // Remembered: even if the counter answers again, the source stays on power.
    fake.set_energy_mj(0, Some(5));
    assert!(matches!(src.read()[0].1, Ok(RawReading::Power(_))));
    assert_eq!(src.status()[0].state, SensorState::Degraded);
}

#[test]
fn a_failing_device_fails_alone() {
    let fake = fake_nvml_mixed(&[GpuModel::A100, GpuModel::A100, GpuModel::K80]);
    let src = GpuSource::new(Box::new(fake.clone()));
    let mut meter = Meter::new(vec![Box::new(src.clone())]);
    fake.set_power_mw(2, 30_000);
    meter.tick(t(0));
    fake.add_energy_mj(0, 10);
    fake.set_fail(1, Some("GPU is lost"));
    fake.set_power_mw(2, 30_000);
    fake.push_sample(0, sample(7, 40, 10, 100));
    let r = meter.tick(t(1));
    assert_eq!(r.domains[&Domain::gpu(0)].energy_uj, Energy::from_uj(10_000));
    assert_eq!(r.domains[&Domain::gpu(2)].energy_uj, Energy::from_uj(30_000_000));
    assert!(!r.domains.contains_key(&Domain::gpu(1)));
    assert_eq!(r.errors.len(), 1);
    let msg = r.errors[0].to_string();
    assert!(msg.contains("nvml") && msg.contains("GPU 1") && msg.contains("total_energy_consumption"), "{msg}");

    let (uses, errors) = src.usage();
    assert_eq!(uses, vec![GpuProcessUse { gpu: 0, pid: 7, sm_util_pct: 40, mem_util_pct: 10, memory_bytes: 0 }]);
    assert_eq!(errors.len(), 2, "{errors:?}"); // samples and running processes of GPU 1
    assert!(errors.iter().all(|e| e.to_string().contains("GPU 1")));

    fake.set_fail(1, None);
    fake.add_energy_mj(1, 7);
    let r = meter.tick(t(2));
    assert!(r.errors.is_empty());
    assert_eq!(r.domains[&Domain::gpu(1)].energy_uj, Energy::from_uj(7_000));
}

#[test]
fn usage_averages_clamps_and_only_counts_new_samples() {
    let fake = fake_nvml(2, GpuModel::A100);
    let src = GpuSource::new(Box::new(fake.clone()));
    fake.push_sample(0, sample(100, 50, 20, 10));
    fake.push_sample(0, sample(100, 70, 30, 20));
    fake.push_sample(0, sample(100, 250, u32::MAX, 30)); // garbage from the driver: clamped to 100
    fake.push_sample(1, sample(300, 90, 5, 15));
    fake.set_running(0, vec![
        RunningProcess { pid: 100, memory_bytes: Some(4 << 30) },
        RunningProcess { pid: 200, memory_bytes: Some(1 << 20) },
    ]);
    fake.set_running(1, vec![RunningProcess { pid: 300, memory_bytes: None }]);
    let (uses, errors) = src.usage();
    assert!(errors.is_empty());
    assert_eq!(uses, vec![
        // (50 + 70 + 100) / 3 = 73.3; (20 + 30 + 100) / 3 = 50
        GpuProcessUse { gpu: 0, pid: 100, sm_util_pct: 73, mem_util_pct: 50, memory_bytes: 4 << 30 },
        GpuProcessUse { gpu: 0, pid: 200, sm_util_pct: 0, mem_util_pct: 0, memory_bytes: 1 << 20 },
        GpuProcessUse { gpu: 1, pid: 300, sm_util_pct: 90, mem_util_pct: 5, memory_bytes: 0 },
    ]);
    // Next interval: only the sample newer than the last one seen counts.
    fake.push_sample(0, sample(100, 10, 0, 40));
    fake.set_running(0, vec![]);
    fake.set_running(1, vec![]);
    let (uses, _) = src.usage();
    assert_eq!(uses, vec![GpuProcessUse { gpu: 0, pid: 100, sm_util_pct: 10, mem_util_pct: 0, memory_bytes: 0 }]);
    assert!(src.usage().0.is_empty());
}

#[test]
fn devices_have_normalised_bus_ids() {
    let src = GpuSource::new(Box::new(fake_nvml(2, GpuModel::H100)));
    let d = src.devices();
    assert_eq!(d.len(), 2);
    assert_eq!((d[0].index, d[0].pci_bus_id.as_str()), (0, "0000:3b:00.0"));
    assert_eq!((d[1].index, d[1].pci_bus_id.as_str()), (1, "0000:5b:00.0"));
    assert_eq!(d[1].name, "NVIDIA H100 80GB HBM3");
    assert_eq!(normalize_pci_bus_id("00000000:3B:00.0"), "0000:3b:00.0");
    assert_eq!(normalize_pci_bus_id("0000:AF:1f.7\0"), "0000:af:1f.7");
    assert_eq!(normalize_pci_bus_id("3b:00.0"), "0000:3b:00.0");
    assert_eq!(normalize_pci_bus_id(" Weird "), "weird");
}

#[test]
fn device_count_failure_is_an_error_status() {
    let fake = fake_nvml(1, GpuModel::A100);
    fake.set_count_error(Some("Unknown Error"));
    let mut src = GpuSource::new(Box::new(fake));
    assert!(src.read().is_empty());
    let st = src.status();
    assert_eq!(st[0].state, SensorState::Error);
    assert!(st[0].detail.contains("Unknown Error"));
}

#[test]
fn real_nvml_without_the_library_is_not_available() {
    match RealNvml::init() {
        Err(Error::NotAvailable { sensor, reason }) => {
            println!("{reason}");
            assert_eq!(sensor, "nvml");
            assert!(reason.starts_with("NVML not available"), "{reason}");
            let (src, status) = GpuSource::detect();
            assert!(src.is_none());
            assert_eq!(status.len(), 1);
            assert_eq!(status[0].state, SensorState::Missing);
            assert!(status[0].detail.contains("NVML not available"), "{}", status[0].detail);
        }
        Err(other) => panic!("expected NotAvailable, got {other}"),
        Ok(nvml) => {
            // A GPU host: the real library must enumerate and read without errors.
            let n = nvml.device_count().unwrap();
            println!("NVML present with {n} device(s)");
            let (src, status) = GpuSource::detect();
            println!("{status:?}");
            if n > 0 {
                let src = src.expect("GPUs found");
                let mut meter = Meter::new(vec![Box::new(src.clone())]);
                meter.tick(t(0));
                std::thread::sleep(std::time::Duration::from_millis(200));
                let r = meter.tick(t(0).plus(fairwatt_core::Micros::from_millis(200)));
                assert!(r.errors.is_empty(), "{:?}", r.errors);
                assert!(src.devices().iter().all(|d| d.pci_bus_id.len() == 12), "{:?}", src.devices());
                let (_, errors) = src.usage();
                assert!(errors.is_empty(), "{errors:?}");
            }
        }
    }
}
