//! Administration commands on the billing store: `fairwatt registry`,
//! `fairwatt carbon import` and `fairwatt invoices run`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use fairwatt_billing_api::registry::{self, HostBody, RegistryFile, TenantBody, VmBody};
use fairwatt_billing_api::{Db, Settings};
use fairwatt_core::Timestamp;

const DEFAULT_DB: &str = "sqlite://fairwatt-data/fairwatt.db";

#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Register the tenants, hosts and VMs of a JSON file (`-`: standard input).
    Import {
        file: PathBuf,
        #[arg(long, env = "FAIRWATT_DATABASE", default_value = DEFAULT_DB)]
        database: String,
    },
    /// Print the registry of a simulated scenario's fleet (for `import`).
    Scenario(ScenarioArgs),
}

#[derive(Args, Debug)]
pub struct ScenarioArgs {
    pub scenario: String,
    #[arg(long, default_value_t = 1)]
    pub hosts: usize,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Rename the first host (as `fairwatt agent --simulate --host-id` does).
    #[arg(long)]
    pub host_id: Option<String>,
    /// Grid zone of every host.
    #[arg(long, default_value = "DE")]
    pub region: String,
    #[arg(long, default_value_t = 1.4)]
    pub pue: f64,
    #[arg(long, default_value = "EUR")]
    pub currency: String,
}

#[derive(Subcommand, Debug)]
pub enum CarbonCommand {
    /// Import a grid-intensity CSV (Ember, Electricity Maps yearly or hourly, CCF, fairwatt hourly).
    Import {
        file: PathBuf,
        #[arg(long, env = "FAIRWATT_DATABASE", default_value = DEFAULT_DB)]
        database: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum InvoicesCommand {
    /// Invoice every tenant for a period (YYYY-MM), issuing them with --issue.
    Run {
        #[arg(long)]
        period: String,
        #[arg(long)]
        issue: bool,
        /// Who issues them; must match `fairwatt serve --issuer`, or numbering starts a second sequence.
        #[arg(long, env = "FAIRWATT_ISSUER", default_value = "FW")]
        issuer: String,
        /// Stamped on the invoices' methodology; must match the ledger's `fairwatt serve --idle-policy`.
        #[arg(long, env = "FAIRWATT_IDLE_POLICY", default_value = "reservation")]
        idle_policy: String,
        #[arg(long, env = "FAIRWATT_DATABASE", default_value = DEFAULT_DB)]
        database: String,
    },
}

fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    actix_web::rt::System::new().block_on(f)
}

async fn open(url: &str) -> anyhow::Result<Db> {
    crate::serve::sqlite_dir(url)?;
    Db::connect(url).await.with_context(|| format!("opening {url}"))
}

/// A scenario's registry: the fleet's tenants, hosts (sized from their
/// server model) and VMs placed on them.
pub fn scenario_registry(a: &ScenarioArgs) -> anyhow::Result<RegistryFile> {
    let start = Timestamp::from_micros(0).context("epoch")?;
    let sc = fairwatt_collector::sim::scenario(&a.scenario, a.hosts, a.seed, start)?;
    let mut f = RegistryFile::default();
    for (i, h) in sc.hosts.iter().enumerate() {
        let id = match (&a.host_id, i) {
            (Some(id), 0) => id.clone(),
            _ => h.host.to_string(),
        };
        let embodied = 1000.0 + 25.0 * h.server.threads as f64 + 100.0 * h.gpus.len() as f64;
        let host = HostBody {
            region: a.region.clone(),
            pue: a.pue,
            embodied_kgco2e: embodied,
            lifetime_years: 4.0,
            vcpus: h.server.threads as i64,
            memory_mib: (h.server.memory_gib * 1024) as i64,
        };
        f.hosts.insert(id.clone(), host);
        for v in &h.vms {
            let tenant = v.info.tenant.as_ref().map_or_else(|| "default".to_string(), |t| t.to_string());
            f.tenants.entry(tenant.clone()).or_insert_with(|| TenantBody { name: tenant.clone(), currency: a.currency.clone() });
            let (vcpus, memory_mib) = v.info.flavor.as_ref().map_or((1, 1024), |fl| (fl.vcpus as i64, fl.memory_mib as i64));
            let vm = VmBody { tenant, flavor: format!("{vcpus}c{}g", memory_mib / 1024), vcpus, memory_mib, host: Some(id.clone()), at: Some("2000-01-01T00:00:00Z".into()) };
            f.vms.insert(v.info.id.to_string(), vm);
        }
    }
    Ok(f)
}

pub fn registry(cmd: RegistryCommand) -> anyhow::Result<()> {
    match cmd {
        RegistryCommand::Scenario(a) => {
            println!("{}", serde_json::to_string_pretty(&scenario_registry(&a)?)?);
            Ok(())
        }
        RegistryCommand::Import { file, database } => {
            let text = if file.as_os_str() == "-" { std::io::read_to_string(std::io::stdin())? } else { std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))? };
            let f: RegistryFile = serde_json::from_str(&text).with_context(|| format!("{}: not a registry file", file.display()))?;
            block_on(async move {
                let db = open(&database).await?;
                let (t, h, v) = registry::import(&db, &f).await?;
                eprintln!("registered {t} tenants, {h} hosts, {v} VMs");
                Ok(())
            })
        }
    }
}

pub fn carbon(cmd: CarbonCommand) -> anyhow::Result<()> {
    let CarbonCommand::Import { file, database } = cmd;
    block_on(async move {
        let db = open(&database).await?;
        let r = fairwatt_billing_api::carbon::import_file(&db, &file).await?;
        eprintln!("{}: {} format, {} rows for {} regions imported, {} skipped", file.display(), r.format, r.rows, r.regions, r.skipped);
        Ok(())
    })
}

pub fn invoices(cmd: InvoicesCommand) -> anyhow::Result<()> {
    let InvoicesCommand::Run { period, issue, issuer, idle_policy, database } = cmd;
    let _: fairwatt_attribution::IdlePolicy = idle_policy.parse()?;
    block_on(async move {
        let db = open(&database).await?;
        let state = fairwatt_billing_api::AppState::new(db, Settings { issuer, idle_policy, ..Settings::default() });
        let t = std::time::Instant::now();
        let r = fairwatt_billing_api::invoices::run(&state, &period, issue).await?;
        eprintln!("{period}: {} tenants, {} issued, {} drafts, {} failed in {:.2} s", r.tenants, r.issued, r.drafts, r.failed.len(), t.elapsed().as_secs_f64());
        let failed: BTreeMap<_, _> = r.failed.into_iter().map(|f| (f.tenant, f.error)).collect();
        for (t, e) in &failed {
            eprintln!("  {t}: {e}");
        }
        anyhow::ensure!(failed.is_empty(), "{} tenants could not be invoiced", failed.len());
        Ok(())
    })
}
