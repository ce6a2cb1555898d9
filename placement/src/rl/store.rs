//! The model file: a first line `fairwatt-rl-model`, a second line of JSON
//! naming the format version, the agent's kind, its observation length,
//! its action count k, the measurement count, its whole configuration and
//! the name and shape of each array; then the arrays' values as
//! little-endian f64, in that order (f32 weights widen exactly, Q-table
//! keys stay exact). A file of another version, kind or shape is refused
//! with an error naming what differs.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::config::{AgentConfig, MEASURES};
use super::env::feature_len;
use crate::error::{PlaceError, Result};

pub const MAGIC: &str = "fairwatt-rl-model";
pub const VERSION: u32 = 1;

/// A named array of a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Array {
    pub name: String,
    pub shape: Vec<usize>,
    pub data: Vec<f64>,
}

impl Array {
    pub fn new(name: impl Into<String>, shape: Vec<usize>, data: Vec<f64>) -> Array {
        Array { name: name.into(), shape, data }
    }
}

/// The array called `name` with shape `shape`, or an error naming the
/// mismatch.
pub fn find<'a>(arrays: &'a [Array], name: &str, shape: &[usize]) -> Result<&'a Array> {
    let a = arrays.iter().find(|a| a.name == name).ok_or_else(|| PlaceError::Model(format!("model has no array {name:?}")))?;
    if a.shape != shape {
        return Err(PlaceError::Model(format!("array {name:?} has shape {:?}, this agent needs {shape:?}", a.shape)));
    }
    Ok(a)
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub version: u32,
    pub kind: String,
    pub features: usize,
    pub k: usize,
    pub measures: usize,
    pub config: AgentConfig,
    pub arrays: Vec<(String, Vec<usize>)>,
}

pub fn write(path: &Path, config: &AgentConfig, arrays: &[Array]) -> Result<()> {
    let k = config.env().k_max;
    let header = Header { version: VERSION, kind: config.kind().into(), features: feature_len(k), k, measures: MEASURES, config: config.clone(), arrays: arrays.iter().map(|a| (a.name.clone(), a.shape.clone())).collect() };
    let json = serde_json::to_string(&header).map_err(|e| PlaceError::Model(format!("encoding the header: {e}")))?;
    let mut bytes = format!("{MAGIC}\n{json}\n").into_bytes();
    for a in arrays {
        for x in &a.data {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
    }
    std::fs::write(path, bytes).map_err(|e| PlaceError::Model(format!("{}: {e}", path.display())))
}

/// Reads a model file, checking its version and its internal consistency.
pub fn read(path: &Path) -> Result<(Header, Vec<Array>)> {
    let bad = |why: String| PlaceError::Model(format!("model file {}: {why}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let line_end = |from: usize| bytes[from..].iter().position(|b| *b == b'\n').map(|p| from + p);
    let first = line_end(0).ok_or_else(|| bad("not a fairwatt RL model (no header line)".into()))?;
    if &bytes[..first] != MAGIC.as_bytes() {
        return Err(bad(format!("not a fairwatt RL model (first line is not {MAGIC:?})")));
    }
    let second = line_end(first + 1).ok_or_else(|| bad("header cut short".into()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes[first + 1..second]).map_err(|e| bad(format!("unreadable header: {e}")))?;
    match value.get("version").and_then(serde_json::Value::as_u64) {
        Some(v) if v == u64::from(VERSION) => {}
        Some(v) => return Err(bad(format!("format version {v}, this build reads version {VERSION}"))),
        None => return Err(bad("header has no format version".into())),
    }
    let kind = value.get("kind").and_then(serde_json::Value::as_str).unwrap_or("").to_string();
    if AgentConfig::by_name(&kind).is_none() {
        return Err(bad(format!("unknown agent kind {kind:?}")));
    }
    let h: Header = serde_json::from_value(value).map_err(|e| bad(format!("header of a {kind} model: {e}")))?;
    if h.config.kind() != h.kind {
        return Err(bad(format!("kind {} but its configuration is for {}", h.kind, h.config.kind())));
    }
    let k = h.config.env().k_max;
    if h.k != k || h.features != feature_len(k) || h.measures != MEASURES {
        return Err(bad(format!("shape (features {}, k {}, measures {}) does not match its configuration (features {}, k {k}, measures {MEASURES})", h.features, h.k, h.measures, feature_len(k))));
    }
    let mut arrays = Vec::with_capacity(h.arrays.len());
    let mut at = second + 1;
    for (name, shape) in &h.arrays {
        let n: usize = shape.iter().product();
        let end = at + 8 * n;
        if end > bytes.len() {
            return Err(bad(format!("array {name:?} {shape:?} cut short")));
        }
        let data = bytes[at..end].chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
        arrays.push(Array::new(name.clone(), shape.clone(), data));
        at = end;
    }
    if at != bytes.len() {
        return Err(bad(format!("{} bytes after the last array", bytes.len() - at)));
    }
    Ok((h, arrays))
}

/// Refuses a header whose kind or shape differs from `want`'s.
pub fn check_against(path: &Path, h: &Header, want: &AgentConfig) -> Result<()> {
    let bad = |why: String| Err(PlaceError::Model(format!("model file {}: {why}", path.display())));
    if h.kind != want.kind() {
        return bad(format!("agent kind {}, expected {}", h.kind, want.kind()));
    }
    let k = want.env().k_max;
    if h.k != k {
        return bad(format!("k = {} actions, this configuration has k = {k}", h.k));
    }
    if h.features != feature_len(k) {
        return bad(format!("{} features, this configuration has {}", h.features, feature_len(k)));
    }
    Ok(())
}

/// Detectors by name in the header (`lr-1.2`), as `policy_by_name` spells them.
pub mod detector_name {
    use crate::dynamic::Detector;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(d: &Detector, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&d.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Detector, D::Error> {
        let name = String::deserialize(d)?;
        let bad = || D::Error::custom(format!("unknown detector {name:?} (thr-P, iqr-P, mad-P, lr-P, lrr-P)"));
        let (kind, p) = name.split_once('-').ok_or_else(bad)?;
        let p: f64 = p.parse().map_err(|_| bad())?;
        Ok(match kind {
            "thr" => Detector::Thr(p),
            "iqr" => Detector::Iqr(p),
            "mad" => Detector::Mad(p),
            "lr" => Detector::Lr(p),
            "lrr" => Detector::Lrr(p),
            _ => return Err(bad()),
        })
    }
}

/// Selectors by name (`mmt`).
pub mod selector_name {
    use crate::dynamic::Selector;
    use serde::{Deserialize, Deserializer, Serializer, de::Error};

    pub fn serialize<S: Serializer>(v: &Selector, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(v.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Selector, D::Error> {
        let name = String::deserialize(d)?;
        Ok(match name.as_str() {
            "mmt" => Selector::Mmt,
            "mc" => Selector::Mc,
            "mu" => Selector::Mu,
            "rs" => Selector::Rs,
            _ => return Err(D::Error::custom(format!("unknown selector {name:?} (mmt, mc, mu, rs)"))),
        })
    }
}
