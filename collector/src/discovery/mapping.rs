//! The mapping file: tenant and flavor for VMs whose libvirt XML carries no
//! fairwatt metadata (hand-started QEMU, platforms that do not write it).
//!
//! ```toml
//! [[vm]]
//! match = "web-1"        # VM name or UUID
//! tenant = "acme"
//! vcpus = 2
//! memory_mib = 4096
//! gpus = 0
//! ```

use std::collections::HashMap;
use std::path::Path;

use fairwatt_core::TenantId;
use serde::Deserialize;

use super::cmdline::normalize_uuid;
use crate::error::{Error, Result};

/// One `[[vm]]` entry; every field but `match` is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MappingEntry {
    #[serde(rename = "match")]
    pub matches: String,
    #[serde(default)]
    pub tenant: Option<TenantId>,
    #[serde(default)]
    pub vcpus: Option<u32>,
    #[serde(default)]
    pub memory_mib: Option<u64>,
    #[serde(default)]
    pub gpus: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    vm: Vec<toml::Spanned<MappingEntry>>,
}

/// Entries by UUID (lowercase) and by name.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    by_uuid: HashMap<String, MappingEntry>,
    by_name: HashMap<String, MappingEntry>,
}

impl Mapping {
    /// Reads and checks a mapping file; every problem is an [`Error::Config`]
    /// naming the file and the line.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::Config { path: path.into(), msg: format!("cannot read: {e}") })?;
        Self::parse(&text).map_err(|msg| Error::Config { path: path.into(), msg })
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        let line_of = |offset: usize| text.get(..offset).map_or(1, |t| t.matches('\n').count() + 1);
        let file: File = toml::from_str(text).map_err(|e| match e.span() {
            Some(span) => format!("line {}: {}", line_of(span.start), e.message().trim()),
            None => e.message().trim().to_string(),
        })?;
        let mut m = Mapping::default();
        for spanned in file.vm {
            let line = line_of(spanned.span().start);
            let entry = spanned.into_inner();
            let key = entry.matches.trim().to_string();
            if key.is_empty() {
                return Err(format!("line {line}: `match` is empty; give a VM name or UUID"));
            }
            let (map, key) = match normalize_uuid(&key) {
                Some(uuid) => (&mut m.by_uuid, uuid),
                None => (&mut m.by_name, key),
            };
            if map.insert(key.clone(), entry).is_some() {
                return Err(format!("line {line}: a second [[vm]] matches {key:?}"));
            }
        }
        Ok(m)
    }

    /// The entry for a VM, by UUID first and then by name.
    pub fn lookup(&self, uuid: Option<&str>, name: &str) -> Option<&MappingEntry> {
        uuid.and_then(|u| self.by_uuid.get(&u.to_ascii_lowercase())).or_else(|| self.by_name.get(name))
    }

    pub fn len(&self) -> usize {
        self.by_uuid.len() + self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_looks_up() {
        let m = Mapping::parse("[[vm]]\nmatch = \"web-1\"\ntenant = \"acme\"\nvcpus = 2\nmemory_mib = 4096\n\n[[vm]]\nmatch = \"0B0C5A46-6C1F-4D1E-9A3F-2F1D7F3C9E01\"\ngpus = 1\n").unwrap();
        assert_eq!(m.len(), 2);
        let e = m.lookup(None, "web-1").unwrap();
        assert_eq!((e.tenant.as_ref().map(|t| t.as_str()), e.vcpus, e.memory_mib, e.gpus), (Some("acme"), Some(2), Some(4096), None));
        assert_eq!(m.lookup(Some("0b0c5a46-6c1f-4d1e-9a3f-2f1d7f3c9e01"), "other").unwrap().gpus, Some(1));
        assert!(m.lookup(None, "web-2").is_none());
        assert!(Mapping::parse("").unwrap().is_empty());
    }

    #[test]
    fn errors_name_the_line() {
        let e = Mapping::parse("[[vm]]\nmatch = \"a\"\n\n[[vm]]\nmatch = \"b\"\nvcpus = \"two\"\n").unwrap_err();
        assert!(e.starts_with("line 6:"), "{e}");
        let e = Mapping::parse("[[vm]]\nmatch = \"a\"\ncolour = \"red\"\n").unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("colour"), "{e}");
        let e = Mapping::parse("[[vm]]\nmatch = \"a\"\ntenant = \"a b\"\n").unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("tenant"), "{e}");
        let e = Mapping::parse("[[vm]]\nmatch = \"a\"\n[[vm]]\nmatch = \"a\"\n").unwrap_err();
        assert!(e.starts_with("line 3:") && e.contains("second"), "{e}");
        let e = Mapping::parse("[[vm]\n").unwrap_err();
        assert!(e.starts_with("line 1:"), "{e}");
    }

    proptest! {
        #[test]
        fn never_panics(s in "\\PC{0,200}") {
            let _ = Mapping::parse(&s);
        }
    }
}
