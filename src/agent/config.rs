//! Agent configuration: command-line flags, environment variables
//! (`FAIRWATT_*`) and an optional TOML file, in that order of precedence.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde::Deserialize;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    #[default]
    Json,
    Text,
}

#[derive(Args, Debug, Default)]
pub struct AgentArgs {
    /// TOML file with any of the options below (flags and environment win over it).
    #[arg(long, env = "FAIRWATT_CONFIG")]
    pub config: Option<PathBuf>,
    /// This host's id in traces and metrics [default: the hostname].
    #[arg(long, env = "FAIRWATT_HOST_ID")]
    pub host_id: Option<String>,
    /// Sampling interval in seconds [default: 1].
    #[arg(long, env = "FAIRWATT_INTERVAL")]
    pub interval: Option<f64>,
    /// Root of the sysfs tree (fixture runs) [default: /sys].
    #[arg(long, env = "FAIRWATT_SYSFS_ROOT")]
    pub sysfs_root: Option<PathBuf>,
    /// Root of the procfs tree (fixture runs) [default: /proc].
    #[arg(long, env = "FAIRWATT_PROCFS_ROOT")]
    pub procfs_root: Option<PathBuf>,
    /// Root of the device tree holding cpu/N/msr (fixture runs) [default: /dev].
    #[arg(long, env = "FAIRWATT_DEV_ROOT")]
    pub dev_root: Option<PathBuf>,
    /// Directories with libvirt domain XML [default: /run/libvirt/qemu and /etc/libvirt/qemu].
    #[arg(long = "libvirt-dir")]
    pub libvirt_dirs: Vec<PathBuf>,
    /// TOML file mapping VMs to tenants and flavors where libvirt metadata is missing.
    #[arg(long, env = "FAIRWATT_MAPPING")]
    pub mapping: Option<PathBuf>,
    /// Spool directory for samples awaiting shipment [default: /var/lib/fairwatt/spool as root, else ./fairwatt-data/spool].
    #[arg(long, env = "FAIRWATT_SPOOL")]
    pub spool: Option<PathBuf>,
    /// Spool size limit in MiB; when full, old intervals are merged, never silently dropped [default: 256].
    #[arg(long, env = "FAIRWATT_SPOOL_MAX_MB")]
    pub spool_max_mb: Option<u64>,
    /// Do not keep a spool.
    #[arg(long)]
    pub no_spool: bool,
    /// Address for the Prometheus /metrics endpoint [default: 127.0.0.1:9477].
    #[arg(long, env = "FAIRWATT_LISTEN")]
    pub listen: Option<String>,
    /// Do not serve /metrics.
    #[arg(long)]
    pub no_metrics: bool,
    /// Sample one interval, print it and exit.
    #[arg(long)]
    pub once: bool,
    /// Output format of --once.
    #[arg(long, value_enum, default_value = "json")]
    pub format: OutputFormat,
    /// Also append every interval to this trace file (docs/trace-format.md).
    #[arg(long)]
    pub record: Option<PathBuf>,
    /// Stop after this many intervals.
    #[arg(long)]
    pub count: Option<u64>,
    /// Simulate a host of this scenario instead of reading sensors (see `fairwatt simulate --help`).
    #[arg(long, env = "FAIRWATT_SIMULATE")]
    pub simulate: Option<String>,
    /// With --simulate: which host of the scenario's fleet (0 = the first,
    /// as `fairwatt registry scenario NAME --hosts N` lists them).
    #[arg(long, default_value_t = 0)]
    pub sim_host: usize,
    /// With --simulate: the simulated clock's start (RFC 3339), e.g. the first
    /// day of last month to replay a month with --fast; default now.
    #[arg(long)]
    pub sim_start: Option<fairwatt_core::Timestamp>,
    /// Seed for --simulate.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// With --simulate: produce intervals as fast as possible instead of in real time.
    #[arg(long)]
    pub fast: bool,
    /// Ship the spool to the billing API at http://HOST:PORT (needs --spool and --key).
    #[arg(long, env = "FAIRWATT_SERVER")]
    pub server: Option<String>,
    /// The collector API key for --server.
    #[arg(long, env = "FAIRWATT_KEY", hide_env_values = true)]
    pub key: Option<String>,
    /// Intervals per shipped batch.
    #[arg(long, default_value_t = 300)]
    pub ship_batch: usize,
}

/// The file form: every field optional, names as in the flags with `_`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub host_id: Option<String>,
    pub interval: Option<f64>,
    pub sysfs_root: Option<PathBuf>,
    pub procfs_root: Option<PathBuf>,
    pub dev_root: Option<PathBuf>,
    #[serde(default)]
    pub libvirt_dirs: Vec<PathBuf>,
    pub mapping: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    pub spool_max_mb: Option<u64>,
    pub listen: Option<String>,
    pub server: Option<String>,
}

/// Everything resolved to a value.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub host_id: String,
    pub interval_s: f64,
    pub sysfs_root: PathBuf,
    pub procfs_root: PathBuf,
    pub dev_root: PathBuf,
    pub libvirt_dirs: Vec<PathBuf>,
    pub mapping: Option<PathBuf>,
    pub spool: Option<PathBuf>,
    pub spool_max_mb: u64,
    pub listen: Option<String>,
    pub server: Option<String>,
}

fn hostname(procfs_root: &Path) -> String {
    std::fs::read_to_string(procfs_root.join("sys/kernel/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

impl AgentArgs {
    pub fn resolve(&self) -> anyhow::Result<AgentConfig> {
        let file: FileConfig = match &self.config {
            Some(p) => {
                let text = std::fs::read_to_string(p).with_context(|| format!("reading config file {}", p.display()))?;
                toml::from_str(&text).with_context(|| format!("config file {}", p.display()))?
            }
            None => FileConfig::default(),
        };
        let procfs_root = self.procfs_root.clone().or(file.procfs_root).unwrap_or_else(|| "/proc".into());
        let interval_s = self.interval.or(file.interval).unwrap_or(1.0);
        if !(interval_s.is_finite() && (0.01..=3600.0).contains(&interval_s)) {
            anyhow::bail!("interval must be between 0.01 and 3600 seconds, got {interval_s}");
        }
        let libvirt_dirs = if !self.libvirt_dirs.is_empty() {
            self.libvirt_dirs.clone()
        } else if !file.libvirt_dirs.is_empty() {
            file.libvirt_dirs
        } else {
            fairwatt_collector::discovery::DiscoveryConfig::default().libvirt_dirs
        };
        let spool = if self.no_spool {
            None
        } else {
            Some(self.spool.clone().or(file.spool).unwrap_or_else(|| {
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } == 0 { "/var/lib/fairwatt/spool".into() } else { "fairwatt-data/spool".into() }
            }))
        };
        let host_id = self.host_id.clone().or(file.host_id).unwrap_or_else(|| hostname(&procfs_root));
        fairwatt_core::HostId::new(host_id.clone())?;
        Ok(AgentConfig {
            host_id,
            interval_s,
            sysfs_root: self.sysfs_root.clone().or(file.sysfs_root).unwrap_or_else(|| "/sys".into()),
            dev_root: self.dev_root.clone().or(file.dev_root).unwrap_or_else(|| "/dev".into()),
            procfs_root,
            libvirt_dirs,
            mapping: self.mapping.clone().or(file.mapping),
            spool,
            spool_max_mb: self.spool_max_mb.or(file.spool_max_mb).unwrap_or(256),
            server: self.server.clone().or(file.server),
            listen: if self.no_metrics || self.once {
                None
            } else {
                Some(self.listen.clone().or(file.listen).unwrap_or_else(|| "127.0.0.1:9477".into()))
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_file_and_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("agent.toml");
        std::fs::write(&p, "interval = 5.0\nhost_id = \"from-file\"\nlisten = \"127.0.0.1:1\"\n").unwrap();
        let args = AgentArgs { config: Some(p.clone()), host_id: Some("from-flag".into()), ..Default::default() };
        let c = args.resolve().unwrap();
        assert_eq!(c.host_id, "from-flag");
        assert_eq!(c.interval_s, 5.0);
        assert_eq!(c.listen.as_deref(), Some("127.0.0.1:1"));
        assert_eq!(c.sysfs_root, PathBuf::from("/sys"));
        std::fs::write(&p, "intervall = 5.0\n").unwrap();
        let err = format!("{:#}", AgentArgs { config: Some(p), ..Default::default() }.resolve().unwrap_err());
        assert!(err.contains("intervall"), "{err}");
        let bad = AgentArgs { interval: Some(f64::NAN), host_id: Some("h".into()), ..Default::default() };
        assert!(bad.resolve().unwrap_err().to_string().contains("interval"));
    }
}
