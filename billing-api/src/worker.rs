//! The attribution worker: turns ingested intervals into the energy ledger.
//!
//! Per host, one [`Attributor`] (the attribution crate's online model) is fed
//! the host's intervals in sequence order as they arrive. Every interval it
//! attributes is written in one transaction with the others of the pass:
//! the per-VM shares (`ledger`), the host side of each split
//! (`ledger_domains`: measured, idle, unattributed), the hourly rollups
//! (`usage_hourly`), and the model version that produced it (`models`,
//! with its coefficients, window and error), marked on the interval. Every
//! split is checked to conserve energy exactly before it is written.
//!
//! - An interval held by the attributor (the first model waits for enough
//!   activity) stays unattributed until the model comes; one held longer
//!   than [`HOLD`] is attributed without a model (CPU-time split, idle 0,
//!   model version 0) so a short-lived host still reaches the ledger.
//! - An interval that arrives after later ones of its host were attributed
//!   is attributed with the current model on its own
//!   ([`Attributor::attribute_detached`]).
//! - After a restart, each host's attributor is warmed on its last
//!   attributed intervals (results discarded) before new ones are taken:
//!   nothing is attributed twice, since only intervals without a model are
//!   ever selected.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use fairwatt_attribution::{Attributor, AttributorConfig, IdlePolicy, IntervalAttribution, Method, ModelVersion};
use fairwatt_core::IntervalRecord;

use crate::db::{Db, now_us};
use crate::error::{ApiError, Result};

/// How long an interval may wait for its host's first model.
pub const HOLD: Duration = Duration::from_secs(600);
/// Intervals taken per pass.
pub const PASS: i64 = 2_000;
/// Intervals written per transaction.
pub const CHUNK: usize = 100;

pub struct Worker {
    db: Db,
    cfg: AttributorConfig,
    hosts: HashMap<String, HostWorker>,
    /// VM → tenant from the registry, filled as VMs are met.
    tenants: HashMap<String, String>,
}

struct HostWorker {
    att: Attributor,
    /// Highest sequence number pushed.
    pushed: Option<u64>,
    /// Pushed, not yet attributed, and when each was pushed.
    held: BTreeSet<u64>,
    held_since: Option<Instant>,
    /// The attributor's version numbers → `models.id`.
    models: HashMap<u64, i64>,
}

impl Worker {
    pub fn new(db: Db, method: Method, idle_policy: IdlePolicy) -> Result<Worker> {
        let cfg = AttributorConfig::new(method, idle_policy);
        Attributor::new(cfg.clone()).map_err(|e| ApiError::Config(e.to_string()))?;
        Ok(Worker { db, cfg, hosts: HashMap::new(), tenants: HashMap::new() })
    }

    /// One pass over the unattributed intervals; returns how many reached the ledger.
    pub async fn run_once(&mut self) -> Result<usize> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as("SELECT host, seq, record FROM intervals WHERE model_id IS NULL ORDER BY host, seq LIMIT $1")
            .bind(PASS)
            .fetch_all(&self.db.pool)
            .await?;
        let mut out: Vec<IntervalAttribution> = Vec::new();
        let mut versions: Vec<(String, ModelVersion)> = Vec::new();
        let mut seen_hosts = BTreeSet::new();
        for (host, seq, text) in rows {
            seen_hosts.insert(host.clone());
            let rec: IntervalRecord = serde_json::from_str(&text).map_err(|e| ApiError::Database(format!("stored interval {host}/{seq} does not parse: {e}")))?;
            if !self.hosts.contains_key(&host) {
                let (hw, warm_versions) = self.warm(&host).await?;
                versions.extend(warm_versions.into_iter().map(|v| (host.clone(), v)));
                self.hosts.insert(host.clone(), hw);
            }
            let hw = self.hosts.get_mut(&host).expect("inserted above");
            let seq = seq as u64;
            if hw.held.contains(&seq) {
                continue;
            }
            if hw.pushed.is_some_and(|p| seq <= p) {
                match hw.att.attribute_detached(&rec) {
                    Ok(a) => out.push(a),
                    Err(e) => tracing::error!("attribution of late interval {host}/{seq}: {e}"),
                }
                continue;
            }
            match hw.att.push(rec) {
                Ok(steps) => {
                    hw.pushed = Some(seq);
                    hw.held.insert(seq);
                    hw.held_since.get_or_insert_with(Instant::now);
                    for s in steps {
                        versions.extend(s.new_version.map(|v| (host.clone(), v)));
                        // Warm-up intervals come back too once the model is fitted: they are in the ledger already.
                        if hw.held.remove(&s.attribution.seq) {
                            out.push(s.attribution);
                        }
                    }
                    if hw.held.is_empty() {
                        hw.held_since = None;
                    }
                }
                Err(e) => tracing::error!("attribution of {host}/{seq}: {e}"),
            }
        }
        // Hosts whose first model is overdue: attribute what they hold without one.
        for (host, hw) in self.hosts.iter_mut() {
            if hw.held_since.is_some_and(|t| t.elapsed() >= HOLD) && !seen_hosts.contains(host) {
                for s in hw.att.flush() {
                    if hw.held.remove(&s.attribution.seq) {
                        out.push(s.attribution);
                    }
                }
                hw.held_since = None;
            }
        }
        let n = out.len();
        if n > 0 || !versions.is_empty() {
            self.write(versions, out).await?;
        }
        Ok(n)
    }

    /// A host's attributor, warmed on its last attributed intervals, and
    /// the model versions it fitted on them.
    async fn warm(&self, host: &str) -> Result<(HostWorker, Vec<ModelVersion>)> {
        let mut att = Attributor::new(self.cfg.clone()).map_err(|e| ApiError::Config(e.to_string()))?;
        let rows: Vec<(i64, String)> = sqlx::query_as("SELECT seq, record FROM intervals WHERE host = $1 AND model_id IS NOT NULL ORDER BY seq DESC LIMIT $2")
            .bind(host)
            .bind(self.cfg.window as i64)
            .fetch_all(&self.db.pool)
            .await?;
        let (mut pushed, mut versions) = (None, Vec::new());
        for (seq, text) in rows.into_iter().rev() {
            if let Ok(rec) = serde_json::from_str::<IntervalRecord>(&text)
                && let Ok(steps) = att.push(rec)
            {
                pushed = Some(seq as u64);
                versions.extend(steps.into_iter().filter_map(|s| s.new_version));
            }
        }
        // Warm-up results are already in the ledger; what the attributor still holds of them is too.
        let held_from_warmup = att.held();
        if held_from_warmup > 0 {
            tracing::debug!("{host}: warmed on intervals up to {pushed:?}, {held_from_warmup} still before the first fit");
        }
        Ok((HostWorker { att, pushed, held: BTreeSet::new(), held_since: None, models: HashMap::new() }, versions))
    }

    /// Writes model versions, then the attributions in transactions of
    /// [`CHUNK`] intervals, so ingest never waits long for the write lock.
    /// An interval whose chunk fails stays unattributed and is taken again.
    async fn write(&mut self, versions: Vec<(String, ModelVersion)>, out: Vec<IntervalAttribution>) -> Result<()> {
        let mut tx = self.db.begin_write().await?;
        let mut ids = Vec::new();
        for (host, v) in &versions {
            let id = insert_model(&mut tx, host, v.method, v.version, &serde_json::to_string(v).unwrap_or_default()).await?;
            ids.push((host.clone(), v.version, id));
        }
        tx.commit().await?;
        for (h, version, id) in &ids {
            if let Some(hw) = self.hosts.get_mut(h) {
                hw.models.insert(*version, *id);
            }
        }
        let mut out = out.into_iter().peekable();
        while out.peek().is_some() {
            let chunk: Vec<IntervalAttribution> = out.by_ref().take(CHUNK).collect();
            self.write_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn write_chunk(&mut self, out: Vec<IntervalAttribution>) -> Result<()> {
        let unknown: std::collections::BTreeSet<&str> =
            out.iter().flat_map(|a| a.domains.iter().flat_map(|d| d.vms.iter().map(|v| v.vm.as_str()))).filter(|vm| !self.tenants.contains_key(*vm)).collect();
        if !unknown.is_empty() {
            let found = crate::registry::tenants_of(&self.db.pool, &unknown.into_iter().collect::<Vec<_>>()).await?;
            self.tenants.extend(found);
        }
        type Sums = std::collections::BTreeMap<(i64, String, String, String), (String, i64, i64, i64)>;
        let (mut hourly, mut daily): (Sums, Sums) = Default::default();
        let mut tx = self.db.begin_write().await?;
        for a in out {
            if !a.is_conserved() {
                // Never written: energy must not be created or lost.
                tracing::error!("interval {}/{} is not conserved by its split; left unattributed", a.host, a.seq);
                continue;
            }
            let host = a.host.to_string();
            let hw = self.hosts.get_mut(&host).expect("a host the pass worked on");
            let model_id = match hw.models.get(&a.model_version) {
                Some(id) => *id,
                None => {
                    let desc = if a.model_version == 0 { "no model: idle 0, split by CPU time (GPU: SM utilisation)".to_string() } else { format!("model version {} (its fit was not recorded)", a.model_version) };
                    let id = insert_model(&mut tx, &host, a.method, a.model_version, &desc).await?;
                    hw.models.insert(a.model_version, id);
                    id
                }
            };
            let hour = a.start.as_micros().div_euclid(3_600_000_000) * 3_600_000_000;
            let day = a.start.as_micros().div_euclid(86_400_000_000) * 86_400_000_000;
            // One statement per interval for each ledger table; rollups summed
            // here and written once per key for the chunk, so a transaction
            // stays short (the write lock is shared with ingest).
            let mut doms = Vec::new();
            let mut shares = Vec::new();
            for d in &a.domains {
                let domain = d.domain.to_string();
                let top = d.domain.is_top_level() as i64;
                doms.push((domain.clone(), d.measured_uj.as_uj() as i64, d.idle_uj.as_uj() as i64, d.unattributed_uj.as_uj() as i64));
                for v in &d.vms {
                    // The registry owns the VM's account; ingest checked the record agrees.
                    let tenant = match self.tenants.get(v.vm.as_str()) {
                        Some(t) => t.clone(),
                        None => v.tenant.as_ref().map_or(String::new(), |t| t.to_string()),
                    };
                    let (dy, id) = (v.dynamic_uj.as_uj() as i64, v.idle_uj.as_uj() as i64);
                    for (at, acc) in [(hour, &mut hourly), (day, &mut daily)] {
                        let e = acc.entry((at, host.clone(), v.vm.to_string(), domain.clone())).or_insert((tenant.clone(), top, 0, 0));
                        e.2 += dy;
                        e.3 += id;
                    }
                    shares.push((domain.clone(), v.vm.to_string(), tenant, dy, id));
                }
            }
            let mut sql = String::from("INSERT INTO ledger_domains (host, seq, domain, measured_uj, idle_uj, unattributed_uj, model_id) VALUES ");
            for i in 0..doms.len() {
                let k = i * 7;
                sql.push_str(&format!("{}(${}, ${}, ${}, ${}, ${}, ${}, ${})", if i == 0 { "" } else { ", " }, k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7));
            }
            if !doms.is_empty() {
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (domain, m, i, u) in &doms {
                    q = q.bind(host.clone()).bind(a.seq as i64).bind(domain.clone()).bind(*m).bind(*i).bind(*u).bind(model_id);
                }
                q.execute(&mut *tx).await?;
            }
            // At most 500 rows a statement: 3,500 parameters, within both stores' limits.
            for part in shares.chunks(500) {
                let mut sql = String::from("INSERT INTO ledger (host, seq, domain, vm, tenant, dynamic_uj, idle_uj) VALUES ");
                for i in 0..part.len() {
                    let k = i * 7;
                    sql.push_str(&format!("{}(${}, ${}, ${}, ${}, ${}, ${}, ${})", if i == 0 { "" } else { ", " }, k + 1, k + 2, k + 3, k + 4, k + 5, k + 6, k + 7));
                }
                let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
                for (domain, vm, tenant, dy, id) in part {
                    q = q.bind(host.clone()).bind(a.seq as i64).bind(domain.clone()).bind(vm.clone()).bind(tenant.clone()).bind(*dy).bind(*id);
                }
                q.execute(&mut *tx).await?;
            }
            sqlx::query("UPDATE intervals SET model_id = $1 WHERE host = $2 AND seq = $3").bind(model_id).bind(&host).bind(a.seq as i64).execute(&mut *tx).await?;
        }
        for (rollup, acc) in [(Rollup::Hourly, hourly), (Rollup::Daily, daily)] {
            for ((at, host, vm, domain), (tenant, top, dy, id)) in acc {
                add_to_rollup(&mut tx, rollup, at, &host, &vm, &tenant, &domain, top != 0, dy, id).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The ledger's rollup tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rollup {
    Hourly,
    Daily,
}

/// Adds shares to one row of a rollup (`at`: the hour's or day's start, µs).
#[allow(clippy::too_many_arguments)]
pub async fn add_to_rollup(
    conn: &mut sqlx::AnyConnection,
    rollup: Rollup,
    at: i64,
    host: &str,
    vm: &str,
    tenant: &str,
    domain: &str,
    top_level: bool,
    dynamic_uj: i64,
    idle_uj: i64,
) -> Result<()> {
    let (table, col) = match rollup {
        Rollup::Hourly => ("usage_hourly", "hour_us"),
        Rollup::Daily => ("usage_daily", "day_us"),
    };
    // Table and column names come from the match above, never from input.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO {table} ({col}, host, vm, tenant, domain, top_level, dynamic_uj, idle_uj) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT ({col}, host, vm, domain) DO UPDATE SET dynamic_uj = {table}.dynamic_uj + excluded.dynamic_uj, idle_uj = {table}.idle_uj + excluded.idle_uj"
    )))
    .bind(at)
    .bind(host)
    .bind(vm)
    .bind(tenant)
    .bind(domain)
    .bind(top_level as i64)
    .bind(dynamic_uj)
    .bind(idle_uj)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn insert_model(tx: &mut sqlx::AnyConnection, host: &str, method: Method, version: u64, description: &str) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as("INSERT INTO models (host, method, version, created_us, description) VALUES ($1, $2, $3, $4, $5) RETURNING id")
        .bind(host)
        .bind(method.as_str())
        .bind(version as i64)
        .bind(now_us())
        .bind(description)
        .fetch_one(&mut *tx)
        .await?;
    Ok(id)
}
