//! Identifiers of hosts, VMs and tenants.
//!
//! They travel through traces, URLs, SQL and Prometheus labels, so they are
//! validated once at the edge: non-empty, at most 128 bytes, printable, no
//! whitespace or slashes. Stored as `Arc<str>`: ids are cloned into every
//! interval record, and a clone should not allocate.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} id is empty")]
    Empty { kind: &'static str },
    #[error("{kind} id is {len} bytes long; at most 128 are allowed")]
    TooLong { kind: &'static str, len: usize },
    #[error("{kind} id {id:?} contains {ch:?}; only printable characters without whitespace or '/' are allowed")]
    BadChar { kind: &'static str, id: String, ch: char },
}

fn validate(kind: &'static str, s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if s.len() > 128 {
        return Err(IdError::TooLong { kind, len: s.len() });
    }
    if let Some(ch) = s.chars().find(|c| c.is_control() || c.is_whitespace() || *c == '/') {
        return Err(IdError::BadChar { kind, id: s.to_string(), ch });
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident, $kind:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(Arc<str>);

        impl $name {
            pub fn new(s: impl Into<String>) -> Result<Self, IdError> {
                let s = s.into();
                validate($kind, &s)?;
                Ok($name(Arc::from(s)))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(s: String) -> Result<Self, IdError> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0.to_string()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                $name::new(s)
            }
        }
    };
}

id_type!(
    /// A hypervisor host, usually its hostname.
    HostId, "host"
);
id_type!(
    /// A VM, the libvirt/QEMU UUID where known (stable across live migration).
    VmId, "vm"
);
id_type!(
    /// A tenant (customer account).
    TenantId, "tenant"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validates() {
        assert!(VmId::new("0b0c5a46-6c1f-4d1e-9a3f-2f1d7f3c9e01").is_ok());
        assert_eq!(HostId::new(""), Err(IdError::Empty { kind: "host" }));
        assert!(matches!(TenantId::new("a b"), Err(IdError::BadChar { ch: ' ', .. })));
        assert!(matches!(TenantId::new("a/b"), Err(IdError::BadChar { ch: '/', .. })));
        assert!(matches!(VmId::new("x".repeat(129)), Err(IdError::TooLong { len: 129, .. })));
        let bad: Result<VmId, _> = serde_json::from_str("\"\"");
        assert!(bad.unwrap_err().to_string().contains("vm id is empty"));
    }

    proptest! {
        #[test]
        fn never_panics_and_round_trips(s in "\\PC{0,140}") {
            if let Ok(id) = HostId::new(s.clone()) {
                let json = serde_json::to_string(&id).unwrap();
                prop_assert_eq!(serde_json::from_str::<HostId>(&json).unwrap(), id);
            }
        }
    }
}
