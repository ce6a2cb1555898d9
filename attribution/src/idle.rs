//! Who carries a domain's idle (static) energy: the power a host draws with
//! nothing running, estimated per domain as the model's intercept.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use fairwatt_core::{DomainKind, VmRecord};

use crate::error::Error;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IdlePolicy {
    /// By what each VM reserved: vCPUs for CPU-side domains, memory for
    /// DRAM, GPUs for GPU domains (a passthrough GPU's idle to its owner).
    #[default]
    Reservation,
    /// Equally among the VMs present.
    Equal,
    /// In proportion to each VM's dynamic share.
    Dynamic,
    /// Not attributed: kept as host overhead.
    Unattributed,
}

impl IdlePolicy {
    pub const ALL: [IdlePolicy; 4] = [IdlePolicy::Reservation, IdlePolicy::Equal, IdlePolicy::Dynamic, IdlePolicy::Unattributed];

    pub fn as_str(self) -> &'static str {
        match self {
            IdlePolicy::Reservation => "reservation",
            IdlePolicy::Equal => "equal",
            IdlePolicy::Dynamic => "dynamic",
            IdlePolicy::Unattributed => "unattributed",
        }
    }

    /// Split weights for the idle energy of a domain of `kind`; `dynamic` are
    /// the VMs' dynamic shares in that domain. For a GPU domain `gpu_users`
    /// marks the VMs that use (or own) the device. Empty weights or all zeros
    /// leave the idle energy unattributed.
    pub fn weights(self, kind: DomainKind, vms: &[VmRecord], dynamic: &[u64], gpu_users: &[bool], out: &mut Vec<f64>) {
        out.clear();
        match self {
            IdlePolicy::Unattributed => out.extend(vms.iter().map(|_| 0.0)),
            IdlePolicy::Equal => out.extend(vms.iter().enumerate().map(|(i, _)| if kind == DomainKind::Gpu && !gpu_users[i] { 0.0 } else { 1.0 })),
            IdlePolicy::Dynamic => out.extend(dynamic.iter().map(|&d| d as f64)),
            IdlePolicy::Reservation => out.extend(vms.iter().enumerate().map(|(i, v)| {
                let f = v.flavor.unwrap_or_default();
                match kind {
                    DomainKind::Dram => f.memory_mib as f64,
                    DomainKind::Gpu if gpu_users[i] => f.gpus.max(1) as f64,
                    DomainKind::Gpu => 0.0,
                    _ => f.vcpus as f64,
                }
            })),
        }
    }
}

impl fmt::Display for IdlePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for IdlePolicy {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        IdlePolicy::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| Error::Param(format!("unknown idle policy {s:?}: expected reservation, equal, dynamic or unattributed")))
    }
}
