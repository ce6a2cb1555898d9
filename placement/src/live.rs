//! Live placement: which registered host a new VM should go to, from the
//! fleet as it is now (vCPUs and memory already taken, reservations from
//! recent decisions) and the energy the ledger attributes on each host.
//!
//! The energy policy prices each candidate by the power the VM would add:
//! on a running host, the host's attributed dynamic watts per vCPU in use
//! (its measured marginal cost, so an inefficient host costs more), on an
//! empty host its idle power as well (waking a host is the expensive part,
//! the lesson of the consolidation experiments). Ties go to the tighter
//! fit, then the host id, so decisions are reproducible.

use crate::error::{PlaceError, Result};

/// A host as the decision sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct LiveHost {
    pub id: String,
    pub region: String,
    pub vcpus: u32,
    pub memory_mib: u64,
    /// vCPUs and memory held by live VMs and open reservations.
    pub used_vcpus: u32,
    pub used_mib: u64,
    /// From the ledger over the recent window: the host's idle power and
    /// the dynamic power attributed to its VMs, watts (None: no data yet).
    pub idle_w: Option<f64>,
    pub dynamic_w: Option<f64>,
}

impl LiveHost {
    pub fn free_vcpus(&self) -> u32 {
        self.vcpus.saturating_sub(self.used_vcpus)
    }

    pub fn free_mib(&self) -> u64 {
        self.memory_mib.saturating_sub(self.used_mib)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Request {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Only hosts in this region.
    pub region: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LivePolicy {
    /// Least added power, from the ledger (the default).
    Energy,
    FirstFit,
    /// Fewest vCPUs left free.
    BestFit,
}

impl LivePolicy {
    pub fn by_name(s: &str) -> Result<LivePolicy> {
        match s {
            "energy" => Ok(LivePolicy::Energy),
            "first-fit" => Ok(LivePolicy::FirstFit),
            "best-fit" => Ok(LivePolicy::BestFit),
            _ => Err(PlaceError::BadRequest(format!("unknown policy {s:?}: expected energy, first-fit or best-fit"))),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            LivePolicy::Energy => "energy",
            LivePolicy::FirstFit => "first-fit",
            LivePolicy::BestFit => "best-fit",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    /// Index into the hosts given.
    pub host: usize,
    /// Estimated power the VM adds there, watts (energy policy).
    pub added_w: f64,
    /// Hosts that could take it.
    pub candidates: usize,
}

/// Idle watts assumed for a host the ledger has not seen yet: the fleet's
/// median of those it has, else this.
const DEFAULT_IDLE_W: f64 = 100.0;
/// Dynamic watts per vCPU assumed without data (a busy vCPU on a current
/// server: ~10 W; only relative order matters between unknown hosts).
const DEFAULT_W_PER_VCPU: f64 = 10.0;

/// A learned policy serving live decisions (the RL agents behind feature
/// `rl` implement it); shared across the API's worker threads.
pub trait LiveChooser: Send + Sync + std::fmt::Debug {
    fn name(&self) -> String;
    /// A host among `candidates` (indices into `hosts` that fit `req`).
    fn choose(&self, hosts: &[LiveHost], req: &Request, candidates: &[usize]) -> Result<usize>;
}

/// The hosts that can take `req` now, or why there are none.
pub fn candidates(hosts: &[LiveHost], req: &Request) -> Result<Vec<usize>> {
    if req.vcpus == 0 {
        return Err(PlaceError::BadRequest("a VM needs at least one vCPU".into()));
    }
    if hosts.is_empty() {
        return Err(PlaceError::NoCapacity("no hosts are registered".into()));
    }
    let in_region = |h: &LiveHost| req.region.as_deref().is_none_or(|r| r == h.region);
    let pool: Vec<usize> = (0..hosts.len()).filter(|i| in_region(&hosts[*i])).collect();
    if pool.is_empty() {
        return Err(PlaceError::NoCapacity(format!("no hosts in region {}", req.region.as_deref().unwrap_or(""))));
    }
    if !pool.iter().any(|i| hosts[*i].vcpus >= req.vcpus && hosts[*i].memory_mib >= req.memory_mib) {
        let big = pool.iter().map(|i| &hosts[*i]).max_by_key(|h| (h.vcpus, h.memory_mib)).expect("pool is not empty");
        return Err(PlaceError::NoCapacity(format!(
            "{} vCPUs and {} MiB is larger than any host{} (largest: {} with {} vCPUs, {} MiB)",
            req.vcpus,
            req.memory_mib,
            req.region.as_deref().map(|r| format!(" in {r}")).unwrap_or_default(),
            big.id,
            big.vcpus,
            big.memory_mib
        )));
    }
    let fits: Vec<usize> = pool.iter().copied().filter(|i| hosts[*i].free_vcpus() >= req.vcpus && hosts[*i].free_mib() >= req.memory_mib).collect();
    if fits.is_empty() {
        let most = pool.iter().map(|i| &hosts[*i]).max_by_key(|h| (h.free_vcpus(), h.free_mib())).expect("pool is not empty");
        return Err(PlaceError::NoCapacity(format!(
            "no host has {} vCPUs and {} MiB free now (most free: {} with {} vCPUs, {} MiB)",
            req.vcpus,
            req.memory_mib,
            most.id,
            most.free_vcpus(),
            most.free_mib()
        )));
    }
    Ok(fits)
}

/// The power `req` is estimated to add on host `h`: its attributed dynamic
/// watts per vCPU in use times the VM's vCPUs, plus the host's idle watts
/// when it runs nothing yet.
pub fn added_w(hosts: &[LiveHost], h: usize, req: &Request) -> f64 {
    added_with(&hosts[h], req, median_idle(hosts))
}

/// [`added_w`] with the fleet's median idle watts already known.
fn added_with(host: &LiveHost, req: &Request, median_idle: f64) -> f64 {
    let per_vcpu = match (host.dynamic_w, host.used_vcpus) {
        (Some(w), n) if n > 0 && w > 0.0 => w / n as f64,
        _ => DEFAULT_W_PER_VCPU,
    };
    let wake = if host.used_vcpus == 0 { host.idle_w.unwrap_or(median_idle) } else { 0.0 };
    wake + per_vcpu * req.vcpus as f64
}

/// The fleet's median idle watts (for hosts the ledger has not seen).
pub fn median_idle(hosts: &[LiveHost]) -> f64 {
    let mut idle: Vec<f64> = hosts.iter().filter_map(|h| h.idle_w).collect();
    idle.sort_by(f64::total_cmp);
    idle.get(idle.len() / 2).copied().unwrap_or(DEFAULT_IDLE_W)
}

/// The host for `req`, or why there is none.
pub fn decide(hosts: &[LiveHost], req: &Request, policy: LivePolicy) -> Result<Decision> {
    let fits = candidates(hosts, req)?;
    let median = median_idle(hosts);
    let left = |h: &LiveHost| (h.free_vcpus() - req.vcpus, h.free_mib() - req.memory_mib);
    let pick = match policy {
        LivePolicy::FirstFit => fits[0],
        LivePolicy::BestFit => *fits.iter().min_by(|a, b| left(&hosts[**a]).cmp(&left(&hosts[**b])).then(hosts[**a].id.cmp(&hosts[**b].id))).expect("fits is not empty"),
        LivePolicy::Energy => *fits
            .iter()
            .min_by(|a, b| {
                let (x, y) = (&hosts[**a], &hosts[**b]);
                added_with(x, req, median).total_cmp(&added_with(y, req, median)).then(left(x).cmp(&left(y))).then(x.id.cmp(&y.id))
            })
            .expect("fits is not empty"),
    };
    Ok(Decision { host: pick, added_w: added_with(&hosts[pick], req, median), candidates: fits.len() })
}

/// The host `chooser` picks for `req`, checked to be one that fits.
pub fn decide_with(hosts: &[LiveHost], req: &Request, chooser: &dyn LiveChooser) -> Result<Decision> {
    let fits = candidates(hosts, req)?;
    let pick = chooser.choose(hosts, req, &fits)?;
    if !fits.contains(&pick) {
        return Err(PlaceError::Model(format!("{} chose host {} that cannot take the VM", chooser.name(), hosts.get(pick).map_or("?", |h| h.id.as_str()))));
    }
    Ok(Decision { host: pick, added_w: added_w(hosts, pick, req), candidates: fits.len() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(id: &str, region: &str, vcpus: u32, used: u32, idle: Option<f64>, dynamic: Option<f64>) -> LiveHost {
        LiveHost { id: id.into(), region: region.into(), vcpus, memory_mib: 65536, used_vcpus: used, used_mib: used as u64 * 2048, idle_w: idle, dynamic_w: dynamic }
    }

    fn req(vcpus: u32) -> Request {
        Request { vcpus, memory_mib: 4096, region: None }
    }

    #[test]
    fn energy_prefers_a_running_efficient_host_over_waking_one() {
        let hosts = vec![
            host("a-empty", "DE", 32, 0, Some(90.0), None),
            host("b-busy-hot", "DE", 32, 8, Some(95.0), Some(160.0)), // 20 W per vCPU
            host("c-busy-lean", "DE", 32, 8, Some(95.0), Some(80.0)), // 10 W per vCPU
        ];
        let d = decide(&hosts, &req(4), LivePolicy::Energy).unwrap();
        assert_eq!(hosts[d.host].id, "c-busy-lean");
        assert!((d.added_w - 40.0).abs() < 1e-9);
        assert_eq!(d.candidates, 3);
        // First fit takes the first host that fits, whatever it costs.
        assert_eq!(decide(&hosts, &req(4), LivePolicy::FirstFit).unwrap().host, 0);
        // Once the lean host is full, the hot one still beats waking the empty one (80 W < 90 + 40 W).
        let mut full = hosts.clone();
        full[2].used_vcpus = 31;
        assert_eq!(full[decide(&full, &req(4), LivePolicy::Energy).unwrap().host].id, "b-busy-hot");
    }

    #[test]
    fn best_fit_and_ties_are_reproducible() {
        let hosts = vec![host("x", "DE", 16, 4, None, None), host("y", "DE", 16, 10, None, None), host("z", "DE", 16, 10, None, None)];
        assert_eq!(decide(&hosts, &req(4), LivePolicy::BestFit).unwrap().host, 1, "y and z tie on what is left; y sorts first");
        assert_eq!(decide(&hosts, &req(4), LivePolicy::Energy).unwrap().host, 1, "no ledger data: equal cost, tighter fit, then id");
    }

    #[test]
    fn no_capacity_says_which_limit_and_the_best_there_is() {
        let hosts = vec![host("small", "DE", 8, 6, None, None), host("far", "FR", 64, 0, None, None)];
        let e = decide(&hosts, &Request { vcpus: 16, memory_mib: 1024, region: Some("DE".into()) }, LivePolicy::Energy).unwrap_err().to_string();
        assert!(e.contains("larger than any host in DE") && e.contains("small with 8 vCPUs"), "{e}");
        let e = decide(&hosts, &Request { vcpus: 4, memory_mib: 1024, region: Some("DE".into()) }, LivePolicy::Energy).unwrap_err().to_string();
        assert!(e.contains("free now") && e.contains("small with 2 vCPUs"), "{e}");
        assert!(decide(&hosts, &Request { vcpus: 4, memory_mib: 1024, region: Some("US".into()) }, LivePolicy::Energy).unwrap_err().to_string().contains("no hosts in region US"));
        assert!(matches!(decide(&[], &req(1), LivePolicy::Energy), Err(PlaceError::NoCapacity(_))));
        assert!(matches!(decide(&hosts, &req(0), LivePolicy::Energy), Err(PlaceError::BadRequest(_))));
        assert!(LivePolicy::by_name("rl").unwrap_err().to_string().contains("energy, first-fit or best-fit"));
    }
}
