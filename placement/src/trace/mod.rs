//! Trace loaders: turn public datacenter traces (PlanetLab, Bitbrains,
//! Alibaba GPU 2023) and a synthetic generator into one in-memory shape that
//! the simulator replays.
//!
//! Conventions shared by every loader:
//! - utilisations are fractions of what the VM *requested* (0..=1, clamped);
//! - time is in steps of `step_s` seconds; a VM's sample `cpu[i]` belongs to
//!   step `start_step + i`;
//! - inputs are read in a deterministic order (files sorted by name) so that
//!   simulations are reproducible;
//! - bad input that affects one VM or one line is reported in a `skipped`
//!   list rather than failing the whole load, because real traces contain a
//!   few broken records and a simulation should still run on the rest.

use std::path::{Path, PathBuf};

pub mod alibaba;
pub mod bitbrains;
pub mod planetlab;
pub mod synthetic;

/// Utilisation samples of one VM.
#[derive(Debug, Clone, PartialEq)]
pub struct VmTrace {
    /// Stable name taken from the source (file name, or generated).
    pub id: String,
    /// Seconds per sample.
    pub step_s: u32,
    /// Utilisation of the VM's requested CPU, 0..=1, one value per step.
    pub cpu: Vec<f64>,
    /// Utilisation of requested memory, 0..=1, per step, when the trace has it.
    pub mem: Option<Vec<f64>>,
    /// Requested cores, when the trace has them.
    pub cores: Option<u32>,
    /// Requested CPU capacity in MHz, when the trace has it.
    pub cpu_mhz: Option<f64>,
    /// Requested memory in MiB, when the trace has it.
    pub mem_mib: Option<u64>,
    /// First step at which the VM exists (0 = the trace's common start).
    pub start_step: u32,
    /// Exclusive step at which the VM leaves, when the source records a
    /// departure; `None` means it runs until its samples end (see [`VmTrace::end`]).
    pub end_step: Option<u32>,
}

impl VmTrace {
    /// Exclusive step after the last sample.
    pub fn end(&self) -> u32 {
        self.end_step
            .unwrap_or(self.start_step + self.cpu.len() as u32)
    }

    /// CPU utilisation at an absolute step, `None` when the VM does not exist then.
    pub fn cpu_at(&self, step: u32) -> Option<f64> {
        let i = step.checked_sub(self.start_step)? as usize;
        self.cpu.get(i).copied()
    }
}

/// A physical node of the Alibaba GPU cluster.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeSpec {
    pub id: String,
    /// CPU capacity in thousandths of a core.
    pub cpu_milli: u64,
    pub memory_mib: u64,
    pub gpus: u32,
    /// GPU type (`G1`..`G3` are undisclosed internal codes); `None` for CPU-only nodes.
    pub gpu_model: Option<String>,
}

/// A pod (task) of the Alibaba GPU trace: a request, not a utilisation series.
#[derive(Debug, Clone, PartialEq)]
pub struct PodRequest {
    pub id: String,
    /// Requested CPU in thousandths of a core.
    pub cpu_milli: u64,
    pub memory_mib: u64,
    /// Whole GPUs requested (0..=8 in the real trace).
    pub gpus: u32,
    /// Share of one GPU in thousandths, meaningful for GPU-sharing pods
    /// (`gpus == 1`); 1000 means a whole GPU.
    pub gpu_milli: u32,
    /// Allowed GPU types as written in the trace, alternatives separated by
    /// `|` (e.g. `V100M16|V100M32`); `None` = any type.
    pub gpu_model: Option<String>,
    /// `creation_time` column, seconds from the trace's origin.
    pub created_s: i64,
    /// `deletion_time` column, seconds; `None` when the column is empty.
    pub deleted_s: Option<i64>,
    /// `scheduled_time` column, seconds; empty for pods that never ran (Pending).
    pub scheduled_s: Option<i64>,
    /// QoS class as written (`LS`, `BE`, `Burstable`, ...).
    pub qos: String,
    /// Final phase as written (`Running`, `Succeeded`, `Failed`, `Pending`).
    pub phase: String,
}

/// VMs loaded from a trace plus what was left out and why.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Workload {
    pub vms: Vec<VmTrace>,
    /// (file or file:line, reason) for every skipped file or row.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}: {message}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        message: String,
    },
    #[error("{}: no usable data", path.display())]
    Empty { path: PathBuf },
    #[error("{}: missing column `{column}`", path.display())]
    MissingColumn { path: PathBuf, column: String },
}

impl TraceError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TraceError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

/// Where the shared real data lives: `$FAIRWATT_SHARED_DATA` when set, else
/// `../../shared/data` from this crate (the project's layout). Callers check
/// that the sub-folder they need exists: the data is optional.
pub fn shared_data_dir() -> PathBuf {
    match std::env::var_os("FAIRWATT_SHARED_DATA") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
    }
}

/// Regular files of `dir`, sorted by name so loads are deterministic.
pub(crate) fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>, TraceError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| TraceError::io(dir, e))? {
        let entry = entry.map_err(|e| TraceError::io(dir, e))?;
        // Follow symlinks: data folders are often linked in.
        let path = entry.path();
        if path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Opens a headed CSV and finds each wanted column by its trimmed header
/// name; a header may carry a unit label after the name (`Timestamp [ms]`
/// matches `Timestamp`), since labels are the part sources get wrong.
pub(crate) fn open_csv<const N: usize>(
    path: &Path,
    delimiter: u8,
    cols: [&str; N],
) -> Result<(csv::Reader<std::fs::File>, [usize; N]), TraceError> {
    let file = std::fs::File::open(path).map_err(|e| TraceError::io(path, e))?;
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .trim(csv::Trim::All)
        .flexible(true) // short rows become per-row errors, not a fatal one
        .from_reader(file);
    let headers = rdr.headers().map_err(|e| TraceError::Parse {
        path: path.to_path_buf(),
        line: 1,
        message: e.to_string(),
    })?;
    let mut idx = [0; N];
    for (slot, col) in idx.iter_mut().zip(cols) {
        let labelled = format!("{col} [");
        *slot = headers
            .iter()
            .position(|h| h == col || h.starts_with(&labelled))
            .ok_or_else(|| TraceError::MissingColumn {
                path: path.to_path_buf(),
                column: col.to_string(),
            })?;
    }
    Ok((rdr, idx))
}

/// 1-based line where a CSV record or error starts (0 if unknown).
pub(crate) fn csv_line(pos: Option<&csv::Position>) -> usize {
    pos.map_or(0, |p| p.line() as usize)
}

/// File name as an id (lossy: ids are labels, not paths).
pub(crate) fn file_id(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Real-data folder for a test, or `None` with the reason printed.
#[cfg(test)]
pub(crate) fn real_data(sub: &str) -> Option<PathBuf> {
    let p = shared_data_dir().join(sub);
    if p.exists() {
        Some(p)
    } else {
        eprintln!("skipping real-data test: {} not found", p.display());
        None
    }
}

/// Fresh, empty scratch folder under the system temp dir, unique per test.
#[cfg(test)]
pub(crate) fn scratch_dir(name: &str) -> PathBuf {
    let p = std::env::temp_dir().join(format!("fairwatt-trace-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&p);
    std::fs::create_dir_all(&p).expect("create scratch dir");
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_at_and_end_follow_start_step() {
        let vm = VmTrace {
            id: "a".into(),
            step_s: 300,
            cpu: vec![0.1, 0.2],
            mem: None,
            cores: None,
            cpu_mhz: None,
            mem_mib: None,
            start_step: 3,
            end_step: None,
        };
        assert_eq!(vm.cpu_at(2), None);
        assert_eq!(vm.cpu_at(3), Some(0.1));
        assert_eq!(vm.cpu_at(4), Some(0.2));
        assert_eq!(vm.cpu_at(5), None);
        assert_eq!(vm.end(), 5);
    }

    #[test]
    fn sorted_files_ignores_subdirs_and_sorts() {
        let d = scratch_dir("sorted");
        std::fs::write(d.join("b"), "1\n").unwrap();
        std::fs::write(d.join("a x"), "1\n").unwrap();
        std::fs::create_dir(d.join("sub")).unwrap();
        let names: Vec<_> = sorted_files(&d)
            .unwrap()
            .iter()
            .map(|p| file_id(p))
            .collect();
        assert_eq!(names, ["a x", "b"]);
        std::fs::remove_dir_all(&d).unwrap();
    }
}
