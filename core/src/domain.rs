//! Energy domains: the parts of a host that have their own energy meter.
//!
//! Containment matters for anyone summing domains: `core-N` and `uncore-N`
//! are parts of `package-N`; `psys` (platform) covers the whole SoC including
//! packages and DRAM. The disjoint domains whose sum is the host's measured
//! energy are packages, DRAM and GPUs ([`Domain::is_top_level`]).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DomainKind {
    Package,
    Core,
    Uncore,
    Dram,
    Psys,
    Gpu,
}

impl DomainKind {
    pub const ALL: [DomainKind; 6] =
        [DomainKind::Package, DomainKind::Core, DomainKind::Uncore, DomainKind::Dram, DomainKind::Psys, DomainKind::Gpu];

    pub fn as_str(self) -> &'static str {
        match self {
            DomainKind::Package => "package",
            DomainKind::Core => "core",
            DomainKind::Uncore => "uncore",
            DomainKind::Dram => "dram",
            DomainKind::Psys => "psys",
            DomainKind::Gpu => "gpu",
        }
    }
}

/// One meter: a kind and the index of its socket or GPU, written `package-0`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain {
    pub kind: DomainKind,
    pub index: u32,
}

impl Domain {
    pub const fn new(kind: DomainKind, index: u32) -> Self {
        Domain { kind, index }
    }

    pub const fn package(i: u32) -> Self {
        Domain::new(DomainKind::Package, i)
    }

    pub const fn core(i: u32) -> Self {
        Domain::new(DomainKind::Core, i)
    }

    pub const fn uncore(i: u32) -> Self {
        Domain::new(DomainKind::Uncore, i)
    }

    pub const fn dram(i: u32) -> Self {
        Domain::new(DomainKind::Dram, i)
    }

    pub const fn psys(i: u32) -> Self {
        Domain::new(DomainKind::Psys, i)
    }

    pub const fn gpu(i: u32) -> Self {
        Domain::new(DomainKind::Gpu, i)
    }

    /// True for the disjoint domains that add up to the host's energy.
    pub fn is_top_level(self) -> bool {
        matches!(self.kind, DomainKind::Package | DomainKind::Dram | DomainKind::Gpu)
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.kind.as_str(), self.index)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid energy domain {0:?}: expected KIND-INDEX with KIND one of package, core, uncore, dram, psys, gpu")]
pub struct DomainParseError(pub String);

impl FromStr for Domain {
    type Err = DomainParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || DomainParseError(s.to_string());
        let (kind, index) = s.rsplit_once('-').ok_or_else(err)?;
        let kind = DomainKind::ALL.into_iter().find(|k| k.as_str() == kind).ok_or_else(err)?;
        let index = index.parse::<u32>().map_err(|_| err())?;
        Ok(Domain { kind, index })
    }
}

impl Serialize for Domain {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Domain {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_rejects() {
        assert_eq!("dram-1".parse::<Domain>().unwrap(), Domain::dram(1));
        assert!("dram".parse::<Domain>().is_err());
        assert!("fan-0".parse::<Domain>().is_err());
        assert!("gpu--1".parse::<Domain>().is_err());
        assert!(Domain::package(0).is_top_level());
        assert!(!Domain::core(0).is_top_level());
        assert!(!Domain::psys(0).is_top_level());
    }

    proptest! {
        #[test]
        fn display_parse_round_trip(k in 0usize..6, i in any::<u32>()) {
            let d = Domain::new(DomainKind::ALL[k], i);
            prop_assert_eq!(d.to_string().parse::<Domain>().unwrap(), d);
        }

        #[test]
        fn parser_never_panics(s in ".*") {
            let _ = s.parse::<Domain>();
        }
    }
}
