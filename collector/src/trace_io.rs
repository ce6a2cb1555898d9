//! Reading and writing trace files on disk (the codec is in
//! `fairwatt_core::trace`). One file per host, `HOST.jsonl`; a trace
//! directory holds one such file per host.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use fairwatt_core::IntervalRecord;
use fairwatt_core::trace::{TraceHeader, TraceReader, encode_header, encode_record};

use crate::error::{Error, Result};

const SENSOR: &str = "trace";

/// Appends records to one host's trace file.
pub struct TraceWriter {
    path: PathBuf,
    out: BufWriter<File>,
}

impl TraceWriter {
    /// Creates (or truncates) `path` and writes the header line.
    pub fn create(path: &Path, header: &TraceHeader) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(SENSOR, dir, e))?;
        }
        let file = File::create(path).map_err(|e| Error::io(SENSOR, path, e))?;
        let mut w = TraceWriter { path: path.to_path_buf(), out: BufWriter::with_capacity(1 << 16, file) };
        w.line(&encode_header(header))?;
        Ok(w)
    }

    pub fn write(&mut self, r: &IntervalRecord) -> Result<()> {
        self.line(&encode_record(r))
    }

    fn line(&mut self, s: &str) -> Result<()> {
        self.out
            .write_all(s.as_bytes())
            .and_then(|_| self.out.write_all(b"\n"))
            .map_err(|e| Error::io(SENSOR, &self.path, e))
    }

    pub fn flush(&mut self) -> Result<()> {
        self.out.flush().map_err(|e| Error::io(SENSOR, &self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TraceWriter {
    fn drop(&mut self) {
        let _ = self.out.flush();
    }
}

/// The file name of a host's trace inside a trace directory.
pub fn host_file(dir: &Path, host: &fairwatt_core::HostId) -> PathBuf {
    dir.join(format!("{host}.jsonl"))
}

/// Opens one trace file and reads its header.
pub fn open(path: &Path) -> Result<TraceReader<BufReader<File>>> {
    let f = File::open(path).map_err(|e| Error::io(SENSOR, path, e))?;
    TraceReader::new(BufReader::with_capacity(1 << 16, f)).map_err(|e| Error::parse(SENSOR, path, e.to_string()))
}

/// The trace files at `path`: the file itself, or every `*.jsonl` in a directory, sorted.
pub fn files(path: &Path) -> Result<Vec<PathBuf>> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let rd = std::fs::read_dir(path).map_err(|e| Error::io(SENSOR, path, e))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .collect();
    out.sort();
    if out.is_empty() {
        return Err(Error::NotAvailable { sensor: SENSOR, reason: format!("no *.jsonl trace files in {}", path.display()) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use fairwatt_core::trace::TraceSource;
    use fairwatt_core::{Domain, DomainEnergy, Energy, HostId, Micros, Timestamp};

    #[test]
    fn writes_then_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let host = HostId::new("hv-1").unwrap();
        let t0 = Timestamp::from_micros(1_700_000_000_000_000).unwrap();
        let header = TraceHeader::new(host.clone(), TraceSource::Agent, t0, Micros::from_secs(1));
        let path = host_file(dir.path(), &host);
        let mut w = TraceWriter::create(&path, &header).unwrap();
        for seq in 0..3u64 {
            let start = t0.plus(Micros::from_secs(seq));
            let mut domains = std::collections::BTreeMap::new();
            domains.insert(Domain::package(0), DomainEnergy::ok(Energy::from_uj(seq * 10)));
            w.write(&IntervalRecord { host: host.clone(), seq, start, end: start.plus(Micros::from_secs(1)), domains, vms: vec![], truth: None })
                .unwrap();
        }
        drop(w);
        assert_eq!(files(dir.path()).unwrap(), vec![path.clone()]);
        let recs: Vec<_> = open(&path).unwrap().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[2].measured_total(), Energy::from_uj(20));
        let empty = tempfile::tempdir().unwrap();
        assert!(files(empty.path()).unwrap_err().to_string().contains("no *.jsonl"));
    }
}
