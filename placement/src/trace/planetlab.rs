//! PlanetLab CPU traces (Beloglazov & Buyya; as shipped with CloudSim).
//!
//! A day is a folder with one file per VM; each file holds one integer CPU
//! utilisation percentage (0..=100) per 5-minute step, 288 lines for a day.
//! The file name is the VM id; many names contain a space, so ids must not
//! be split on whitespace. There is no memory or size information.

use std::path::Path;

use super::{TraceError, VmTrace, Workload, file_id, sorted_files};

/// PlanetLab samples every 5 minutes.
pub const STEP_S: u32 = 300;

/// Parses one VM file. Any line that is not an integer 0..=100 (after
/// trimming) is an error naming the line; blank lines are accepted only at
/// the end, since a blank line inside would silently shift later steps.
pub fn load_file(path: &Path) -> Result<VmTrace, TraceError> {
    let text = std::fs::read_to_string(path).map_err(|e| TraceError::io(path, e))?;
    let lines: Vec<&str> = text.lines().collect();
    let used = lines
        .iter()
        .rposition(|l| !l.trim().is_empty())
        .map_or(0, |i| i + 1);
    if used == 0 {
        return Err(TraceError::Empty {
            path: path.to_path_buf(),
        });
    }
    let mut cpu = Vec::with_capacity(used);
    for (i, raw) in lines[..used].iter().enumerate() {
        let s = raw.trim();
        let bad = |message: String| TraceError::Parse {
            path: path.to_path_buf(),
            line: i + 1,
            message,
        };
        let v: u32 = s
            .parse()
            .map_err(|_| bad(format!("not an integer percentage: {s:?}")))?;
        if v > 100 {
            return Err(bad(format!("percentage {v} above 100")));
        }
        cpu.push(f64::from(v) / 100.0);
    }
    Ok(VmTrace {
        id: file_id(path),
        step_s: STEP_S,
        cpu,
        mem: None,
        cores: None,
        cpu_mhz: None,
        mem_mib: None,
        start_step: 0,
        end_step: None,
    })
}

/// Loads every regular file of a day folder, sorted by name. Unreadable or
/// malformed files are reported in `skipped` (the reason names file and
/// line); only a folder with no usable file is an error.
pub fn load_dir(dir: &Path) -> Result<Workload, TraceError> {
    let mut w = Workload::default();
    for path in sorted_files(dir)? {
        match load_file(&path) {
            Ok(vm) => w.vms.push(vm),
            Err(e) => w.skipped.push((file_id(&path), e.to_string())),
        }
    }
    if w.vms.is_empty() {
        return Err(TraceError::Empty {
            path: dir.to_path_buf(),
        });
    }
    Ok(w)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{real_data, scratch_dir};

    #[test]
    fn parses_values_step_and_trailing_blank() {
        let d = scratch_dir("pl-parse");
        std::fs::write(d.join("vm a"), "0\n 50 \r\n100\n\n").unwrap();
        let vm = load_file(&d.join("vm a")).unwrap();
        assert_eq!(vm.id, "vm a");
        assert_eq!(vm.step_s, 300);
        assert_eq!(vm.cpu, vec![0.0, 0.5, 1.0]);
        assert_eq!((vm.start_step, vm.end_step, vm.mem), (0, None, None));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn garbage_files_are_skipped_with_file_and_line() {
        let d = scratch_dir("pl-garbage");
        std::fs::write(d.join("good"), "1\n2\n").unwrap();
        std::fs::write(d.join("text"), "1\nabc\n3\n").unwrap();
        std::fs::write(d.join("high"), "1\n2\n101\n").unwrap();
        std::fs::write(d.join("hole"), "1\n\n3\n").unwrap();
        std::fs::write(d.join("neg"), "-1\n").unwrap();
        std::fs::write(d.join("empty"), "\n\n").unwrap();
        let w = load_dir(&d).unwrap();
        assert_eq!(w.vms.len(), 1);
        assert_eq!(w.vms[0].cpu, vec![0.01, 0.02]);
        let reasons: Vec<_> = w
            .skipped
            .iter()
            .map(|(f, r)| (f.as_str(), r.as_str()))
            .collect();
        assert_eq!(reasons.len(), 5);
        // Sorted by name: empty, high, hole, neg, text.
        assert_eq!(reasons[0].0, "empty");
        assert!(reasons[0].1.contains("no usable data"));
        assert_eq!(reasons[1].0, "high");
        assert!(reasons[1].1.contains("high:3:"), "{}", reasons[1].1);
        assert!(reasons[2].1.contains("hole:2:"), "{}", reasons[2].1);
        assert!(reasons[3].1.contains("neg:1:"), "{}", reasons[3].1);
        assert!(reasons[4].1.contains("text:2:") && reasons[4].1.contains("abc"));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn dir_without_usable_file_is_empty_error() {
        let d = scratch_dir("pl-empty");
        assert!(matches!(load_dir(&d), Err(TraceError::Empty { .. })));
        std::fs::write(d.join("x"), "nope\n").unwrap();
        assert!(matches!(load_dir(&d), Err(TraceError::Empty { .. })));
        std::fs::remove_dir_all(&d).unwrap();
        assert!(matches!(load_dir(&d), Err(TraceError::Io { .. })));
    }

    #[test]
    fn real_days_load_fully() {
        let Some(root) = real_data("planetlab") else {
            return;
        };
        for (day, n) in [
            ("20110303", 1052),
            ("20110306", 898),
            ("20110309", 1061),
            ("20110322", 1516),
            ("20110325", 1078),
        ] {
            let w = load_dir(&root.join(day)).unwrap();
            assert!(w.skipped.is_empty(), "{day}: {:?}", w.skipped);
            assert_eq!(w.vms.len(), n, "{day}");
            assert!(w.vms.iter().all(|v| v.cpu.len() == 288));
            assert!(w.vms.iter().any(|v| v.id.contains(' ')));
            assert!(
                w.vms
                    .iter()
                    .flat_map(|v| &v.cpu)
                    .all(|c| (0.0..=1.0).contains(c))
            );
        }
    }
}
