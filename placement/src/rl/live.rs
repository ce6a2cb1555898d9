//! A trained agent serving live decisions (`POST /v1/placement/decide`
//! with `"policy": "rl"`). The registered fleet is mapped onto the twin the
//! agent was trained in: each host becomes a host type with its vCPUs as
//! capacity (1,000 MIPS each), its memory, and a power curve from the
//! ledger (idle watts, plus the attributed dynamic watts per vCPU in use
//! scaled to all its vCPUs); what live VMs hold becomes one running VM per
//! host, its attributed energy that host's dynamic power. The agent then
//! picks among the hosts the request fits.
//!
//! The agent (burn networks behind `Rc`) lives on a thread of its own;
//! requests reach it over a channel, so the API's workers share it.

use std::path::Path;
use std::sync::Mutex;
use std::sync::mpsc;

use super::RlAgent;
use crate::dynamic::{Detector, State};
use crate::error::{PlaceError, Result};
use crate::live::{LiveChooser, LiveHost, Request, median_idle};
use crate::model::{HostType, VmSpec};

const MIPS_PER_VCPU: u32 = 1000;
const STEP_S: f64 = 300.0;
/// Re-cluster the fleet at most this often (and whenever it changes size):
/// clustering 800 hosts takes ~20 ms, a decision without it ~0.3 ms, and a
/// fleet's shape changes over minutes, not between requests.
const RECLUSTER_EVERY: std::time::Duration = std::time::Duration::from_secs(60);

type Job = (Vec<LiveHost>, Request, Vec<usize>, mpsc::Sender<Result<usize>>);

#[derive(Debug)]
pub struct LiveAgent {
    name: String,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl LiveAgent {
    /// Loads the model in a serving thread; a bad file is an error here.
    pub fn spawn(model: &Path) -> Result<LiveAgent> {
        let (ready_tx, ready_rx) = mpsc::channel();
        let (tx, rx) = mpsc::channel::<Job>();
        let path = model.to_path_buf();
        std::thread::Builder::new()
            .name("fairwatt-rl".into())
            .spawn(move || {
                let agent = match RlAgent::load(&path) {
                    Ok(a) => a,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(format!("rl-{}", agent.kind())));
                let (mut size, mut clustered) = (usize::MAX, std::time::Instant::now());
                for (hosts, req, fits, reply) in rx {
                    let fresh = hosts.len() != size || clustered.elapsed() >= RECLUSTER_EVERY;
                    if fresh {
                        (size, clustered) = (hosts.len(), std::time::Instant::now());
                    }
                    let _ = reply.send(choose(&agent, &hosts, &req, &fits, fresh));
                }
            })
            .map_err(|e| PlaceError::Model(format!("starting the model's thread: {e}")))?;
        let name = ready_rx.recv().map_err(|_| PlaceError::Model(format!("model file {}: the loader stopped", model.display())))??;
        Ok(LiveAgent { name, jobs: Mutex::new(tx) })
    }
}

impl LiveChooser for LiveAgent {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn choose(&self, hosts: &[LiveHost], req: &Request, candidates: &[usize]) -> Result<usize> {
        let (tx, rx) = mpsc::channel();
        self.jobs.lock().map_err(|_| PlaceError::Model("the model's thread is gone".into()))?.send((hosts.to_vec(), req.clone(), candidates.to_vec(), tx)).map_err(|_| PlaceError::Model("the model's thread is gone".into()))?;
        rx.recv().map_err(|_| PlaceError::Model("the model's thread is gone".into()))?
    }
}

/// The fleet as the twin sees it: hosts, one VM per host holding what is
/// taken there, and the new VM last.
pub fn twin(hosts: &[LiveHost], req: &Request) -> State {
    let idle = median_idle(hosts);
    let types: Vec<HostType> = hosts
        .iter()
        .map(|h| {
            let idle_w = h.idle_w.unwrap_or(idle);
            let per_vcpu = match (h.dynamic_w, h.used_vcpus) {
                (Some(w), n) if n > 0 && w > 0.0 => w / n as f64,
                _ => 10.0,
            };
            let full = idle_w + per_vcpu * h.vcpus as f64;
            let watts = std::array::from_fn(|i| idle_w + (full - idle_w) * i as f64 / 10.0);
            // One "core" of the host's size, so a VM's fit is its vCPUs.
            HostType { name: "registered host", cores: 1, mips_per_core: h.vcpus.max(1) * MIPS_PER_VCPU, ram_mb: h.memory_mib, watts }
        })
        .collect();
    let mut vms: Vec<VmSpec> = hosts.iter().map(|h| VmSpec { id: format!("{}-live", h.id), mips: (h.used_vcpus.max(1) * MIPS_PER_VCPU) as f64, ram_mb: h.used_mib }).collect();
    vms.push(VmSpec { id: "request".into(), mips: (req.vcpus * MIPS_PER_VCPU) as f64, ram_mb: req.memory_mib });
    let mut st = State::new(types, vms, true);
    for (i, h) in hosts.iter().enumerate() {
        if h.used_vcpus > 0 || h.used_mib > 0 {
            st.create(i, i);
            st.observe(i, if h.used_vcpus > 0 { 1.0 } else { 0.0 });
            st.vms[i].attributed_last_uj = (h.dynamic_w.unwrap_or(0.0).max(0.0) * STEP_S * 1e6) as u64;
        }
        st.measured[i] = h.used_vcpus as f64 / h.vcpus.max(1) as f64;
    }
    st
}

fn choose(agent: &RlAgent, hosts: &[LiveHost], req: &Request, fits: &[usize], fresh: bool) -> Result<usize> {
    let st = twin(hosts, req);
    let mut excluded = vec![true; hosts.len()];
    for &h in fits {
        excluded[h] = false;
    }
    // Live capacity is allocation, not load: only a full host is overloaded.
    agent.act_once(&st, hosts.len(), &excluded, Detector::Thr(1.0), STEP_S, fresh).ok_or_else(|| PlaceError::NoCapacity(format!("{} found no host among {} that fit", agent.kind(), fits.len())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{candidates, decide_with};
    use crate::rl::{AgentConfig, Scenario};

    fn host(id: &str, region: &str, vcpus: u32, used: u32, dynamic_w: Option<f64>) -> LiveHost {
        LiveHost { id: id.into(), region: region.into(), vcpus, memory_mib: 131_072, used_vcpus: used, used_mib: used as u64 * 2048, idle_w: Some(90.0), dynamic_w }
    }

    fn model(tag: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("fairwatt-live-{tag}-{}.model", std::process::id()));
        let mut cfg = AgentConfig::by_name("q-table").unwrap();
        if let AgentConfig::QTable(c) = &mut cfg {
            c.episodes = 1;
        }
        let mut agent = RlAgent::new(cfg);
        agent.train(&[Scenario::synthetic(10, 20, 12, 1)], &mut |_, _| {}).unwrap();
        agent.save(&path).unwrap();
        path
    }

    #[test]
    fn a_served_agent_picks_a_host_that_fits_from_many_threads() {
        let path = model("ok");
        let agent = std::sync::Arc::new(LiveAgent::spawn(&path).unwrap());
        assert_eq!(agent.name(), "rl-q-table");
        let hosts = vec![host("a", "DE", 32, 30, Some(120.0)), host("b", "DE", 32, 8, Some(60.0)), host("c", "DE", 64, 0, None), host("d", "FR", 64, 0, None)];
        let req = Request { vcpus: 4, memory_mib: 8192, region: Some("DE".into()) };
        let fits = candidates(&hosts, &req).unwrap();
        assert_eq!(fits, [1, 2], "a has 2 vCPUs left; d is in FR");
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let (agent, hosts, req) = (agent.clone(), hosts.clone(), req.clone());
                std::thread::spawn(move || decide_with(&hosts, &req, agent.as_ref()).unwrap())
            })
            .collect();
        let picks: Vec<usize> = threads.into_iter().map(|t| t.join().unwrap().host).collect();
        assert!(picks.iter().all(|h| fits.contains(h)), "{picks:?}");
        assert!(picks.windows(2).all(|w| w[0] == w[1]), "greedy and deterministic: {picks:?}");
        // What no host can take never reaches the agent.
        let e = decide_with(&hosts, &Request { vcpus: 128, memory_mib: 1, region: None }, agent.as_ref()).unwrap_err().to_string();
        assert!(e.contains("larger than any host"), "{e}");
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn a_bad_model_file_is_refused_at_start_naming_it() {
        let path = std::env::temp_dir().join(format!("fairwatt-live-bad-{}.model", std::process::id()));
        std::fs::write(&path, "not a model").unwrap();
        let e = LiveAgent::spawn(&path).unwrap_err().to_string();
        assert!(e.contains(&path.display().to_string()), "{e}");
        assert!(LiveAgent::spawn(Path::new("/nonexistent/x.model")).unwrap_err().to_string().contains("/nonexistent/x.model"));
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn the_twin_holds_what_live_vms_take() {
        let hosts = vec![host("a", "DE", 16, 12, Some(80.0)), host("b", "DE", 16, 0, None)];
        let st = twin(&hosts, &Request { vcpus: 2, memory_mib: 1024, region: None });
        assert_eq!(st.hosts[0].mips(), 16_000.0);
        assert!((st.utilisation(0) - 0.75).abs() < 1e-12 && st.utilisation(1) == 0.0);
        assert_eq!(st.vms[0].attributed_last_uj, (80.0 * 300.0 * 1e6) as u64);
        // Idle 90 W plus 80 W / 12 vCPUs × 16 at full load.
        assert!((st.hosts[0].power(1.0) - (90.0 + 80.0 / 12.0 * 16.0)).abs() < 1e-9);
        assert!(!st.vms[2].alive, "the request is not placed yet");
    }
}
