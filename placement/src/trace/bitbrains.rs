//! Bitbrains GWA-T-12 (`rnd` set) VM traces: one `;\t`-separated CSV per VM.
//!
//! Facts about the files that shape this loader:
//! - the `Timestamp [ms]` column is really Unix *seconds*;
//! - samples are ~300 s apart with jitter (299..302 s) and occasional gaps
//!   (600 s, 2400 s, even ~31 h), so rows are placed on a 300 s grid by
//!   rounding and gaps are filled by holding the previous sample;
//! - VMs start at different times (some weeks after the first), so every VM
//!   is aligned to the earliest provisioned timestamp across the folder and
//!   gets `start_step` accordingly;
//! - rows before a VM is provisioned have 0 cores and 0 capacity; they are
//!   not samples and are dropped silently (some files contain only those and
//!   are skipped);
//! - usage sometimes exceeds the provisioned capacity, hence the clamping.
//!
//! CPU utilisation is `CPU usage [MHZ] / CPU capacity provisioned [MHZ]`
//! rather than the `%` column: both agree in the real data, but the MHz ratio
//! keeps full precision and is consistent with `cpu_mhz`, which the simulator
//! uses to size the VM.

use std::path::Path;

use super::{TraceError, VmTrace, Workload, csv_line, file_id, open_csv, sorted_files};

/// The trace's sampling interval.
pub const STEP_S: u32 = 300;

/// One provisioned, well-formed row.
struct Sample {
    line: usize,
    ts: i64,
    cpu: f64,
    mem: f64,
}

/// One file before alignment.
struct Parsed {
    id: String,
    cores: u32,
    cpu_mhz: f64,
    mem_mib: u64,
    samples: Vec<Sample>,
}

const COLS: [&str; 6] = [
    "Timestamp",
    "CPU cores",
    "CPU capacity provisioned [MHZ]",
    "CPU usage [MHZ]",
    "Memory capacity provisioned [KB]",
    "Memory usage [KB]",
];

/// Parses a file; bad rows go to `skipped` with `file:line` and a reason.
fn parse_file(path: &Path, skipped: &mut Vec<(String, String)>) -> Result<Parsed, TraceError> {
    let name = file_id(path);
    let (mut rdr, idx) = open_csv(path, b';', COLS)?;
    let mut out: Option<Parsed> = None;
    let (mut bad, mut first_bad) = (0usize, None);
    for rec in rdr.records() {
        let (line, row) = match rec {
            Ok(r) => (csv_line(r.position()), parse_row(&r, &idx)),
            Err(e) => (csv_line(e.position()), Err(e.to_string())),
        };
        let row = row.and_then(|r| match &out {
            Some(p) if r.0 <= p.samples.last().map_or(i64::MIN, |s| s.ts) => {
                Err(format!("timestamp {} not after the previous sample", r.0))
            }
            Some(_) if r.2 <= 0.0 || r.4 <= 0.0 => Err("zero provisioned capacity".into()),
            _ => Ok(r),
        });
        let (ts, cores, cap, used, mcap, mused) = match row {
            Ok(r) => r,
            Err(reason) => {
                bad += 1;
                first_bad.get_or_insert(line);
                skipped.push((format!("{name}:{line}"), reason));
                continue;
            }
        };
        if cap <= 0.0 || mcap <= 0.0 {
            continue; // not provisioned yet (only reachable before the first sample)
        }
        let p = out.get_or_insert_with(|| Parsed {
            id: path
                .file_stem()
                .map_or(name.clone(), |s| s.to_string_lossy().into_owned()),
            cores,
            cpu_mhz: cap,
            mem_mib: (mcap / 1024.0).round() as u64,
            samples: Vec::new(),
        });
        p.samples.push(Sample {
            line,
            ts,
            cpu: (used / cap).clamp(0.0, 1.0),
            mem: (mused / mcap).clamp(0.0, 1.0),
        });
    }
    match out {
        // A file that is mostly garbage is not trusted even if a few rows parse.
        Some(p) if bad > p.samples.len() => Err(TraceError::Parse {
            path: path.to_path_buf(),
            line: first_bad.unwrap_or(0),
            message: format!("{bad} bad rows vs {} good; file dropped", p.samples.len()),
        }),
        Some(p) => Ok(p),
        None => Err(TraceError::Empty {
            path: path.to_path_buf(),
        }),
    }
}

type Row = (i64, u32, f64, f64, f64, f64);

fn parse_row(r: &csv::StringRecord, idx: &[usize; 6]) -> Result<Row, String> {
    let num = |k: usize| -> Result<f64, String> {
        let s = r
            .get(idx[k])
            .ok_or_else(|| format!("missing field `{}`", COLS[k]))?;
        match s.parse::<f64>() {
            Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
            _ => Err(format!("bad `{}`: {s:?}", COLS[k])),
        }
    };
    let cores = num(1)?;
    if cores.fract() != 0.0 || cores > f64::from(u32::MAX) {
        return Err(format!("bad `CPU cores`: {cores}"));
    }
    Ok((
        num(0)?.round() as i64,
        cores as u32,
        num(2)?,
        num(3)?,
        num(4)?,
        num(5)?,
    ))
}

/// Puts samples on the common grid starting at `t0`.
fn align(p: Parsed, t0: i64, name: &str, skipped: &mut Vec<(String, String)>) -> VmTrace {
    let step_of = |ts: i64| ((ts - t0) as f64 / f64::from(STEP_S)).round() as u32;
    let start = step_of(p.samples[0].ts);
    let (mut cpu, mut mem): (Vec<f64>, Vec<f64>) = (Vec::new(), Vec::new());
    for s in &p.samples {
        let i = (step_of(s.ts) - start) as usize;
        if i < cpu.len() {
            skipped.push((
                format!("{name}:{}", s.line),
                "falls on the same 300 s step as the previous sample".into(),
            ));
            continue;
        }
        // Hold the last value across gaps: a VM does not vanish between samples.
        while cpu.len() < i {
            cpu.push(*cpu.last().unwrap_or(&s.cpu));
            mem.push(*mem.last().unwrap_or(&s.mem));
        }
        cpu.push(s.cpu);
        mem.push(s.mem);
    }
    VmTrace {
        id: p.id,
        step_s: STEP_S,
        cpu,
        mem: Some(mem),
        cores: Some(p.cores),
        cpu_mhz: Some(p.cpu_mhz),
        mem_mib: Some(p.mem_mib),
        start_step: start,
        end_step: None,
    }
}

/// Loads one file on its own grid (`start_step` 0 at its first sample);
/// also returns the rows it skipped.
pub fn load_file(path: &Path) -> Result<(VmTrace, Vec<(String, String)>), TraceError> {
    let mut skipped = Vec::new();
    let p = parse_file(path, &mut skipped)?;
    let t0 = p.samples[0].ts;
    let vm = align(p, t0, &file_id(path), &mut skipped);
    Ok((vm, skipped))
}

/// Loads every `*.csv` of a folder (sorted by name; other files such as a
/// README are ignored), aligned to the earliest provisioned timestamp.
/// Files with no good row are reported in `skipped`; a folder with no
/// usable file is [`TraceError::Empty`].
pub fn load_dir(dir: &Path) -> Result<Workload, TraceError> {
    let mut w = Workload::default();
    let mut parsed = Vec::new();
    for path in sorted_files(dir)? {
        let name = file_id(&path);
        if !name.to_ascii_lowercase().ends_with(".csv") {
            continue;
        }
        match parse_file(&path, &mut w.skipped) {
            Ok(p) => parsed.push((name, p)),
            Err(e) => w.skipped.push((name, e.to_string())),
        }
    }
    let Some(t0) = parsed.iter().map(|(_, p)| p.samples[0].ts).min() else {
        return Err(TraceError::Empty {
            path: dir.to_path_buf(),
        });
    };
    for (name, p) in parsed {
        w.vms.push(align(p, t0, &name, &mut w.skipped));
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{real_data, scratch_dir};

    const HEADER: &str = "Timestamp [ms];\tCPU cores;\tCPU capacity provisioned [MHZ];\tCPU usage [MHZ];\tCPU usage [%];\tMemory capacity provisioned [KB];\tMemory usage [KB];\tDisk read throughput [KB/s];\tDisk write throughput [KB/s];\tNetwork received throughput [KB/s];\tNetwork transmitted throughput [KB/s]";

    fn row(ts: i64, cores: u32, cap: f64, used: f64, mcap: f64, mused: f64) -> String {
        format!("{ts};\t{cores};\t{cap};\t{used};\t0.0;\t{mcap};\t{mused};\t0.0;\t0.0;\t0.0;\t0.0")
    }

    fn write(dir: &Path, name: &str, rows: &[String]) {
        let mut s = format!("{HEADER}\n");
        for r in rows {
            s.push_str(r);
            s.push('\n');
        }
        std::fs::write(dir.join(name), s).unwrap();
    }

    #[test]
    fn aligns_clamps_fills_gaps_and_skips_bad_rows() {
        let d = scratch_dir("bb-parse");
        write(
            &d,
            "a.csv",
            &[
                row(1000, 2, 2000.0, 500.0, 1048576.0, 524288.0),
                row(1300, 2, 2000.0, 3000.0, 1048576.0, 2e6), // over capacity: clamped
                row(1900, 2, 2000.0, 0.0, 1048576.0, 0.0),    // one step missing before
            ],
        );
        write(
            &d,
            "b.csv",
            &[
                row(1000, 0, 0.0, 0.0, 0.0, 0.0), // not provisioned yet: dropped silently
                row(1601, 4, 1000.0, 100.0, 2048.0, 1024.0),
                "1700;\t4;\tabc;\t1;\t0;\t1;\t1;\t0;\t0;\t0;\t0".into(),
                "1750;\t4".into(),
                row(1899, 4, 1000.0, 200.0, 2048.0, 512.0),
                row(2200, 4, 0.0, 0.0, 0.0, 0.0), // capacity vanishes mid-life: bad row
                row(2500, 4, 1000.0, 300.0, 2048.0, 2048.0), // after a gap: step 4 holds step 3
            ],
        );
        write(&d, "c.csv", &[row(900, 0, 0.0, 0.0, 0.0, 0.0)]);
        std::fs::write(d.join("SOURCE-README.md"), "not a trace").unwrap();
        let w = load_dir(&d).unwrap();
        assert_eq!(w.vms.len(), 2);
        let a = &w.vms[0];
        assert_eq!((a.id.as_str(), a.step_s, a.start_step), ("a", 300, 0));
        assert_eq!(a.cpu, vec![0.25, 1.0, 1.0, 0.0]);
        assert_eq!(a.mem, Some(vec![0.5, 1.0, 1.0, 0.0]));
        assert_eq!(
            (a.cores, a.cpu_mhz, a.mem_mib),
            (Some(2), Some(2000.0), Some(1024))
        );
        let b = &w.vms[1];
        // Earliest provisioned sample is a's 1000 s, not c's unprovisioned 900 s.
        assert_eq!(b.start_step, 2);
        assert_eq!(b.cpu, vec![0.1, 0.2, 0.2, 0.3]);
        assert_eq!(b.mem, Some(vec![0.5, 0.25, 0.25, 1.0]));
        assert_eq!((b.cores, b.mem_mib), (Some(4), Some(2)));
        let keys: Vec<_> = w.skipped.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["b.csv:4", "b.csv:5", "b.csv:7", "c.csv"]);
        assert!(w.skipped[0].1.contains("CPU capacity provisioned"));
        assert!(w.skipped[2].1.contains("zero provisioned capacity"));
        assert!(w.skipped[3].1.contains("no usable data"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn mostly_garbage_file_and_missing_column_are_skipped() {
        let d = scratch_dir("bb-garbage");
        write(
            &d,
            "g.csv",
            &[row(0, 1, 10.0, 1.0, 10.0, 1.0), "x".into(), "y".into()],
        );
        std::fs::write(d.join("h.csv"), "Timestamp [ms];\tCPU cores\n1;\t2\n").unwrap();
        let e = load_dir(&d).unwrap_err();
        assert!(matches!(e, TraceError::Empty { .. }), "{e}");
        let mut skipped = Vec::new();
        let e = parse_file(&d.join("g.csv"), &mut skipped)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("g.csv:3:") && e.contains("2 bad rows"), "{e}");
        let e = parse_file(&d.join("h.csv"), &mut skipped).err().unwrap();
        assert!(matches!(e, TraceError::MissingColumn { .. }));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn same_step_duplicate_is_skipped() {
        let d = scratch_dir("bb-dup");
        write(
            &d,
            "a.csv",
            &[
                row(0, 1, 10.0, 1.0, 10.0, 1.0),
                row(100, 1, 10.0, 2.0, 10.0, 1.0),
            ],
        );
        let (vm, skipped) = load_file(&d.join("a.csv")).unwrap();
        assert_eq!(vm.cpu, vec![0.1]);
        assert_eq!(skipped[0].0, "a.csv:3");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn real_day_loads() {
        let Some(dir) = real_data("bitbrains-rnd-day1") else {
            return;
        };
        let w = load_dir(&dir).unwrap();
        let files = w.skipped.iter().filter(|(k, _)| !k.contains(':')).count();
        eprintln!(
            "bitbrains: {} VMs, {} files skipped, {} rows skipped",
            w.vms.len(),
            files,
            w.skipped.len() - files
        );
        // 15 of the 500 files never get provisioned (all rows 0 cores / 0 MHz).
        assert_eq!(w.vms.len() + files, 500);
        assert!(files <= 15, "{:?}", w.skipped);
        assert!(w.vms.iter().any(|v| v.start_step == 0));
        for v in &w.vms {
            assert!(
                v.cpu
                    .iter()
                    .chain(v.mem.as_ref().unwrap())
                    .all(|x| (0.0..=1.0).contains(x))
            );
            assert!(v.cores.unwrap() >= 1 && v.cpu_mhz.unwrap() > 0.0);
        }
    }
}
