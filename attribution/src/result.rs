//! What attribution publishes: immutable per-interval results that billing,
//! exporters and placement only read.

use serde::{Deserialize, Serialize};

use fairwatt_core::{Domain, Energy, HostId, ReadingStatus, TenantId, Timestamp, VmId};

use crate::idle::IdlePolicy;
use crate::model::Method;

/// One VM's energy in one domain over one interval.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmShare {
    pub vm: VmId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<TenantId>,
    /// The VM's share of the domain's dynamic (above idle) energy.
    pub dynamic_uj: Energy,
    /// The VM's share of the domain's idle energy under the idle policy.
    pub idle_uj: Energy,
}

impl VmShare {
    pub fn total(&self) -> Energy {
        self.dynamic_uj + self.idle_uj
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DomainAttribution {
    pub domain: Domain,
    /// What the meter measured.
    pub measured_uj: Energy,
    #[serde(default, skip_serializing_if = "is_ok")]
    pub status: ReadingStatus,
    /// The model's idle (static) energy for the interval, at most `measured_uj`.
    pub idle_uj: Energy,
    /// Energy no VM carries: idle kept as host overhead, dynamic energy with no
    /// active VM to carry it, and rounding units that could not be split evenly.
    pub unattributed_uj: Energy,
    pub vms: Vec<VmShare>,
}

fn is_ok(s: &ReadingStatus) -> bool {
    *s == ReadingStatus::Ok
}

impl DomainAttribution {
    /// `Σ VM shares + unattributed`; equals `measured_uj` (the conservation invariant).
    pub fn accounted(&self) -> u128 {
        self.vms.iter().map(|v| v.dynamic_uj.as_uj() as u128 + v.idle_uj.as_uj() as u128).sum::<u128>() + self.unattributed_uj.as_uj() as u128
    }

    pub fn is_conserved(&self) -> bool {
        self.accounted() == self.measured_uj.as_uj() as u128
    }
}

/// One host's interval, attributed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntervalAttribution {
    pub host: HostId,
    pub seq: u64,
    pub start: Timestamp,
    pub end: Timestamp,
    pub method: Method,
    /// The model version that produced the dynamic split (see [`crate::ModelVersion`]).
    pub model_version: u64,
    pub idle_policy: IdlePolicy,
    pub domains: Vec<DomainAttribution>,
    /// Defined-behaviour notes for this interval (measured below the idle
    /// estimate, VMs whose features were imputed, …).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl IntervalAttribution {
    pub fn is_conserved(&self) -> bool {
        self.domains.iter().all(DomainAttribution::is_conserved)
    }

    pub fn domain(&self, d: Domain) -> Option<&DomainAttribution> {
        self.domains.iter().find(|x| x.domain == d)
    }
}
