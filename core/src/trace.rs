//! The fairwatt trace format, version 1 (JSON Lines; see docs/trace-format.md).
//!
//! A trace file holds one host: a header line, then one [`IntervalRecord`]
//! per line in increasing `seq`. The codec lives here so every crate reads
//! traces the same way; callers hand in any `BufRead`, this module opens no
//! files itself.

use std::io::BufRead;

use serde::{Deserialize, Serialize};

use crate::ids::HostId;
use crate::sample::IntervalRecord;
use crate::status::SensorStatus;
use crate::units::{Micros, Timestamp};

pub const TRACE_FORMAT: &str = "fairwatt-trace";
pub const TRACE_VERSION: u32 = 1;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceSource {
    Agent,
    Simulator,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TraceHeader {
    pub format: String,
    pub version: u32,
    pub host: HostId,
    pub source: TraceSource,
    pub created: Timestamp,
    /// The nominal sampling interval; records carry their exact bounds.
    pub interval_us: Micros,
    /// Simulator scenario name and seed, for reproducing the trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scenario: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Free-form host description (server model, sockets, GPUs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<String>,
    #[serde(default)]
    pub sensors: Vec<SensorStatus>,
}

impl TraceHeader {
    pub fn new(host: HostId, source: TraceSource, created: Timestamp, interval_us: Micros) -> Self {
        TraceHeader {
            format: TRACE_FORMAT.into(),
            version: TRACE_VERSION,
            host,
            source,
            created,
            interval_us,
            scenario: None,
            seed: None,
            machine: None,
            sensors: Vec::new(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    #[error("line {line}: cannot read: {source}")]
    Io { line: usize, source: std::io::Error },
    #[error("trace is empty: expected a header line with \"format\":\"{TRACE_FORMAT}\"")]
    Empty,
    #[error("line 1: not a fairwatt trace header: {0}")]
    BadHeader(String),
    #[error("trace version {found} is not supported (this build reads version {TRACE_VERSION})")]
    Version { found: u32 },
    #[error("line {line}: malformed interval record: {msg}")]
    Json { line: usize, msg: String },
    #[error("line {line}: {msg}")]
    Invalid { line: usize, msg: String },
}

/// Encodes one line (without the newline).
pub fn encode_header(h: &TraceHeader) -> String {
    serde_json::to_string(h).expect("trace header serialises")
}

pub fn encode_record(r: &IntervalRecord) -> String {
    serde_json::to_string(r).expect("interval record serialises")
}

/// Decodes and checks a header line.
pub fn decode_header(line: &str) -> Result<TraceHeader, TraceError> {
    let h: TraceHeader = serde_json::from_str(line).map_err(|e| TraceError::BadHeader(e.to_string()))?;
    if h.format != TRACE_FORMAT {
        return Err(TraceError::BadHeader(format!("format is {:?}, expected {TRACE_FORMAT:?}", h.format)));
    }
    if h.version != TRACE_VERSION {
        return Err(TraceError::Version { found: h.version });
    }
    Ok(h)
}

/// Decodes and validates one interval line; `line` is 1-based, for messages.
pub fn decode_record(text: &str, line: usize) -> Result<IntervalRecord, TraceError> {
    let r: IntervalRecord = serde_json::from_str(text).map_err(|e| TraceError::Json { line, msg: e.to_string() })?;
    r.validate().map_err(|e| TraceError::Invalid { line, msg: e.to_string() })?;
    Ok(r)
}

/// Like [`decode_record`], but a VM feature that is not a non-negative
/// integer (negative, fractional, NaN written as a string or `null`, text)
/// is dropped instead of failing the line: the interval's measured energy
/// is kept, the VM stays with what was readable (a bad `cpu_time_us`
/// becomes 0, i.e. "no activity known"). Returns what was repaired.
pub fn decode_record_repaired(text: &str, line: usize) -> Result<(IntervalRecord, Vec<String>), TraceError> {
    if let Ok(r) = decode_record(text, line) {
        return Ok((r, Vec::new()));
    }
    let mut v: serde_json::Value = serde_json::from_str(text).map_err(|e| TraceError::Json { line, msg: e.to_string() })?;
    let mut repairs = Vec::new();
    if let Some(vms) = v.get_mut("vms").and_then(|x| x.as_array_mut()) {
        for (i, vm) in vms.iter_mut().enumerate() {
            let Some(f) = vm.get_mut("features").and_then(|x| x.as_object_mut()) else { continue };
            let bad: Vec<String> = f.iter().filter(|(k, x)| *k != "gpus" && !x.is_u64()).map(|(k, _)| k.clone()).collect();
            for k in bad {
                repairs.push(format!("line {line}: VM #{i} feature {k} = {} is not a non-negative integer; dropped", f[&k]));
                if k == "cpu_time_us" {
                    f.insert(k, serde_json::Value::from(0u64));
                } else {
                    f.remove(&k);
                }
            }
        }
    }
    let r: IntervalRecord = serde_json::from_value(v).map_err(|e| TraceError::Json { line, msg: e.to_string() })?;
    r.validate().map_err(|e| TraceError::Invalid { line, msg: e.to_string() })?;
    Ok((r, repairs))
}

/// Reads a trace: the header first, then records one at a time. A bad record
/// is an `Err` item naming its line; iteration goes on with the next line, so
/// one corrupt line costs that interval only.
pub struct TraceReader<R> {
    input: R,
    header: TraceHeader,
    line: usize,
    last_seq: Option<u64>,
    buf: String,
    repair: bool,
    repairs: Vec<String>,
}

impl<R: BufRead> TraceReader<R> {
    pub fn new(mut input: R) -> Result<Self, TraceError> {
        let mut buf = String::new();
        let n = input.read_line(&mut buf).map_err(|source| TraceError::Io { line: 1, source })?;
        if n == 0 {
            return Err(TraceError::Empty);
        }
        let header = decode_header(buf.trim_end())?;
        Ok(TraceReader { input, header, line: 1, last_seq: None, buf, repair: false, repairs: Vec::new() })
    }

    /// Repairs bad VM features instead of rejecting their line (see
    /// [`decode_record_repaired`]); what was repaired is kept for [`Self::take_repairs`].
    pub fn with_repair(mut self) -> Self {
        self.repair = true;
        self
    }

    pub fn take_repairs(&mut self) -> Vec<String> {
        std::mem::take(&mut self.repairs)
    }

    pub fn header(&self) -> &TraceHeader {
        &self.header
    }
}

impl<R: BufRead> Iterator for TraceReader<R> {
    type Item = Result<IntervalRecord, TraceError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buf.clear();
            self.line += 1;
            match self.input.read_line(&mut self.buf) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(source) => return Some(Err(TraceError::Io { line: self.line, source })),
            }
            let text = self.buf.trim();
            if text.is_empty() {
                continue;
            }
            let line = self.line;
            let decoded = if self.repair {
                decode_record_repaired(text, line).map(|(r, notes)| {
                    self.repairs.extend(notes);
                    r
                })
            } else {
                decode_record(text, line)
            };
            let rec = match decoded {
                Ok(r) => r,
                Err(e) => return Some(Err(e)),
            };
            if rec.host != self.header.host {
                return Some(Err(TraceError::Invalid {
                    line,
                    msg: format!("record is for host {} but the trace header names {}", rec.host, self.header.host),
                }));
            }
            if let Some(prev) = self.last_seq
                && rec.seq <= prev
            {
                return Some(Err(TraceError::Invalid {
                    line,
                    msg: format!("seq {} does not follow {prev}; records must be in increasing order", rec.seq),
                }));
            }
            self.last_seq = Some(rec.seq);
            return Some(Ok(rec));
        }
    }
}

#[cfg(test)]
mod repair_tests {
    use super::*;

    #[test]
    fn bad_features_are_dropped_not_the_interval() {
        let good = encode_record(&crate::sample::tests::record(4));
        let bad = good.replace("\"cpu_time_us\":1500000", "\"cpu_time_us\":-3").replace("\"rss_bytes\":1073741824", "\"rss_bytes\":\"NaN\"");
        assert!(decode_record(&bad, 2).is_err());
        let (r, notes) = decode_record_repaired(&bad, 2).unwrap();
        assert_eq!(r.vms[0].features.cpu_time_us, 0);
        assert_eq!(r.vms[0].features.rss_bytes, None);
        assert_eq!(r.domains, crate::sample::tests::record(4).domains);
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("line 2"));
        assert!(decode_record_repaired("{not json", 3).is_err());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::tests::record;
    use proptest::prelude::*;

    fn trace(lines: &[String]) -> String {
        let h = TraceHeader::new(
            HostId::new("hv-01").unwrap(),
            TraceSource::Agent,
            Timestamp::from_micros(0).unwrap(),
            Micros::from_secs(1),
        );
        let mut s = encode_header(&h);
        for l in lines {
            s.push('\n');
            s.push_str(l);
        }
        s.push('\n');
        s
    }

    #[test]
    fn round_trips_and_skips_bad_lines() {
        let text = trace(&[encode_record(&record(1)), "{garbage".into(), String::new(), encode_record(&record(2))]);
        let reader = TraceReader::new(text.as_bytes()).unwrap();
        assert_eq!(reader.header().version, TRACE_VERSION);
        let items: Vec<_> = reader.collect();
        assert_eq!(items.len(), 3);
        assert_eq!(items[0].as_ref().unwrap(), &record(1));
        assert!(matches!(items[1], Err(TraceError::Json { line: 3, .. })));
        assert_eq!(items[2].as_ref().unwrap().seq, 2);
    }

    #[test]
    fn rejects_wrong_version_host_and_order() {
        let bad = trace(&[]).replace("\"version\":1", "\"version\":7");
        assert!(matches!(TraceReader::new(bad.as_bytes()), Err(TraceError::Version { found: 7 })));
        assert!(matches!(TraceReader::new(&b""[..]), Err(TraceError::Empty)));
        let mut other = record(1);
        other.host = HostId::new("hv-02").unwrap();
        let text = trace(&[encode_record(&record(2)), encode_record(&record(1)), encode_record(&other)]);
        let items: Vec<_> = TraceReader::new(text.as_bytes()).unwrap().collect();
        assert!(items[1].as_ref().unwrap_err().to_string().contains("does not follow 2"));
        assert!(items[2].as_ref().unwrap_err().to_string().contains("hv-02"));
    }

    proptest! {
        #[test]
        fn record_decoder_never_panics(s in ".{0,400}") {
            let _ = decode_record(&s, 2);
            let _ = decode_header(&s);
        }

        #[test]
        fn truncated_records_are_errors(cut in 0usize..200) {
            let full = encode_record(&record(1));
            let cut = cut.min(full.len() - 1);
            prop_assert!(decode_record(&full[..cut], 2).is_err());
        }
    }
}
