//! `fairwatt serve` (the billing API) and `fairwatt keys create`.

use std::net::TcpListener;

use anyhow::Context;
use clap::{Args, Subcommand};

use fairwatt_billing_api::{Db, Role, Settings, auth, serve_with};

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// `sqlite://PATH` (created when missing) or `postgres://USER:PASS@HOST/DB`.
    #[arg(long, env = "FAIRWATT_DATABASE", default_value = "sqlite://fairwatt-data/fairwatt.db")]
    database: String,
    #[arg(long, env = "FAIRWATT_LISTEN", default_value = "127.0.0.1:8080")]
    listen: String,
    /// Attribution method of the ledger: ratio, linear or forest.
    #[arg(long, default_value = "linear")]
    method: String,
    /// Who carries idle power: reservation, equal, dynamic or unattributed.
    #[arg(long, env = "FAIRWATT_IDLE_POLICY", default_value = "reservation")]
    idle_policy: String,
    /// Who issues the invoices; their numbers are ISSUER-000001, …
    #[arg(long, env = "FAIRWATT_ISSUER", default_value = "FW")]
    issuer: String,
    /// A placement agent's model (`fairwatt place train`): live decisions use it by default.
    #[arg(long, env = "FAIRWATT_PLACEMENT_MODEL")]
    placement_model: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum KeysCommand {
    /// Create an API key; its secret is printed once and stored only as a hash.
    Create(KeyArgs),
}

#[derive(Args, Debug)]
pub struct KeyArgs {
    /// tenant, finance, ops, placement or collector.
    #[arg(long)]
    role: String,
    /// The tenant a tenant key may see (tenant keys only).
    #[arg(long)]
    tenant: Option<String>,
    #[arg(long, env = "FAIRWATT_DATABASE", default_value = "sqlite://fairwatt-data/fairwatt.db")]
    database: String,
}

pub fn sqlite_dir(url: &str) -> anyhow::Result<()> {
    if let Some(path) = url.strip_prefix("sqlite://").map(|p| p.split('?').next().unwrap_or(p))
        && let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty())
    {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

pub fn run(a: ServeArgs) -> anyhow::Result<()> {
    sqlite_dir(&a.database)?;
    let method: fairwatt_attribution::Method = a.method.parse()?;
    let policy: fairwatt_attribution::IdlePolicy = a.idle_policy.parse()?;
    actix_web::rt::System::new().block_on(async move {
        let db = Db::connect(&a.database).await.with_context(|| format!("opening {}", a.database))?;
        spawn_worker(db.clone(), method, policy)?;
        let listener = TcpListener::bind(&a.listen).with_context(|| format!("listening on {}", a.listen))?;
        eprintln!("fairwatt serve: {} on http://{} ({:?} store)", a.database, listener.local_addr()?, db.backend);
        let placement_model = match &a.placement_model {
            Some(path) => {
                let agent = fairwatt_placement::rl::live::LiveAgent::spawn(path).with_context(|| format!("loading the placement model {}", path.display()))?;
                eprintln!("fairwatt serve: live placement decisions by {} from {}", fairwatt_placement::live::LiveChooser::name(&agent), path.display());
                Some(std::sync::Arc::new(agent) as std::sync::Arc<dyn fairwatt_placement::live::LiveChooser>)
            }
            None => None,
        };
        let settings = Settings { issuer: a.issuer.clone(), idle_policy: a.idle_policy.clone(), daily_rollups: true, usage_cache: true, placement_cache: true, placement_model };
        serve_with(listener, db, settings)?.await.context("the server stopped")
    })
}

/// The attribution worker on the current runtime: a pass whenever the last
/// one found work, else every second.
pub fn spawn_worker(db: Db, method: fairwatt_attribution::Method, policy: fairwatt_attribution::IdlePolicy) -> anyhow::Result<()> {
    let mut worker = fairwatt_billing_api::worker::Worker::new(db, method, policy)?;
    actix_web::rt::spawn(async move {
        loop {
            match worker.run_once().await {
                Ok(n) if n > 0 => continue,
                Ok(_) => {}
                Err(e) => tracing::error!("attribution worker: {e}"),
            }
            actix_web::rt::time::sleep(std::time::Duration::from_secs(1)).await;
        }
    });
    Ok(())
}

/// `fairwatt serve` in a thread of its own (the demo's and the benchmarks'
/// server): the API on `listener` over `database`, with the attribution
/// worker when given its method and idle policy. Returns once the store is
/// migrated and the server listens; the thread ends with the process.
pub fn spawn_in_thread(database: &str, listener: TcpListener, settings: Settings, worker: Option<(fairwatt_attribution::Method, fairwatt_attribution::IdlePolicy)>) -> anyhow::Result<()> {
    let (tx, rx) = std::sync::mpsc::channel();
    let database = database.to_string();
    std::thread::spawn(move || {
        let ready = tx.clone();
        let r = actix_web::rt::System::new().block_on(async move {
            let db = Db::connect(&database).await.with_context(|| format!("opening {database}"))?;
            if let Some((method, policy)) = worker {
                spawn_worker(db.clone(), method, policy)?;
            }
            let server = serve_with(listener, db, settings)?;
            let _ = ready.send(Ok(()));
            server.await.context("the server stopped")
        });
        if let Err(e) = r {
            let _ = tx.send(Err(e));
        }
    });
    rx.recv().context("the server thread ended")?
}

pub fn keys(cmd: KeysCommand) -> anyhow::Result<()> {
    let KeysCommand::Create(a) = cmd;
    let role: Role = a.role.parse()?;
    sqlite_dir(&a.database)?;
    actix_web::rt::System::new().block_on(async move {
        let db = Db::connect(&a.database).await.with_context(|| format!("opening {}", a.database))?;
        let k = auth::create_key(&db, role, a.tenant.as_deref()).await?;
        println!("{}", k.secret);
        eprintln!("created key {} ({}{}); the secret above is not shown again", k.id, k.role, k.tenant.map(|t| format!(", tenant {t}")).unwrap_or_default());
        Ok(())
    })
}
