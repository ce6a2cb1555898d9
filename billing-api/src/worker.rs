//! The attribution worker: turns ingested intervals into the energy ledger.
//!
//! Per host, one [`Attributor`] (the attribution crate's online model) is fed
//! the host's intervals in sequence order as they arrive. Every interval it
//! attributes is written in one transaction with the others of the pass:
//! the per-VM shares (`ledger`), the host side of each split
//! (`ledger_domains`: measured, idle, unattributed), the hourly rollups
//! (`usage_hourly`), and the model version that produced it (`models`,
//! with its coefficients, window and error), marked on the interval with
//! the model's error on it (`intervals.model_error_mw`). Every split is
//! checked to conserve energy exactly before it is written.
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
/// Ledger rows per INSERT by default (at most 8 columns: 320 parameters).
pub const ROWS_PER_STATEMENT: usize = 40;

pub struct Worker {
    db: Db,
    cfg: AttributorConfig,
    hosts: HashMap<String, HostWorker>,
    /// VM → tenant from the registry, filled as VMs are met.
    tenants: HashMap<String, String>,
    rows_per_statement: usize,
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
        Ok(Worker { db, cfg, hosts: HashMap::new(), tenants: HashMap::new(), rows_per_statement: ROWS_PER_STATEMENT })
    }

    /// Ledger rows per INSERT (`fairwatt bench worker` compares them).
    pub fn with_rows_per_statement(mut self, rows: usize) -> Worker {
        self.rows_per_statement = rows.max(1);
        self
    }

    /// One pass over the unattributed intervals; returns how many reached the ledger.
    pub async fn run_once(&mut self) -> Result<usize> {
        let rows: Vec<(String, i64, String)> = sqlx::query_as("SELECT host, seq, record FROM intervals WHERE model_id IS NULL ORDER BY host, seq LIMIT $1")
            .bind(PASS)
            .fetch_all(&self.db.pool)
            .await?;
        // Each attribution with the model's error on its interval (W), where the attributor gives one.
        let mut out: Vec<(IntervalAttribution, Option<f64>)> = Vec::new();
        let mut versions: Vec<(String, ModelVersion)> = Vec::new();
        let mut seen_hosts = BTreeSet::new();
        let fetched = rows.len();
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
                    Ok(a) => out.push((a, None)),
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
                            out.push((s.attribution, s.error_w));
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
                        out.push((s.attribution, s.error_w));
                    }
                }
                hw.held_since = None;
            }
        }
        let n = out.len();
        let t = Instant::now();
        if n > 0 || !versions.is_empty() {
            self.write(versions, out).await?;
        }
        tracing::debug!(fetched, attributed = n, held = self.hosts.values().map(|h| h.held.len()).sum::<usize>(), write_ms = t.elapsed().as_millis() as u64, "attribution pass");
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
    async fn write(&mut self, versions: Vec<(String, ModelVersion)>, out: Vec<(IntervalAttribution, Option<f64>)>) -> Result<()> {
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
            let chunk: Vec<(IntervalAttribution, Option<f64>)> = out.by_ref().take(CHUNK).collect();
            self.write_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn write_chunk(&mut self, out: Vec<(IntervalAttribution, Option<f64>)>) -> Result<()> {
        let unknown: std::collections::BTreeSet<&str> =
            out.iter().flat_map(|(a, _)| a.domains.iter().flat_map(|d| d.vms.iter().map(|v| v.vm.as_str()))).filter(|vm| !self.tenants.contains_key(*vm)).collect();
        if !unknown.is_empty() {
            let found = crate::registry::tenants_of(&self.db.pool, &unknown.into_iter().collect::<Vec<_>>()).await?;
            self.tenants.extend(found);
        }
        type Sums = std::collections::BTreeMap<(i64, String, String, String), (String, i64, i64, i64)>;
        let (mut hourly, mut daily): (Sums, Sums) = Default::default();
        let mut doms: Vec<(String, i64, String, i64, i64, i64, i64)> = Vec::new();
        let mut shares: Vec<(String, i64, String, String, String, i64, i64)> = Vec::new();
        let mut tx = self.db.begin_write().await?;
        for (a, error_w) in out {
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
            let seq = a.seq as i64;
            for d in &a.domains {
                let domain = d.domain.to_string();
                let top = d.domain.is_top_level() as i64;
                doms.push((host.clone(), seq, domain.clone(), d.measured_uj.as_uj() as i64, d.idle_uj.as_uj() as i64, d.unattributed_uj.as_uj() as i64, model_id));
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
                    shares.push((host.clone(), seq, domain.clone(), v.vm.to_string(), tenant, dy, id));
                }
            }
            // Integer milliwatts, as the store keeps energy and time in integers; never negative.
            let error_mw = error_w.filter(|e| e.is_finite()).map(|e| (e.abs() * 1000.0).round() as i64);
            sqlx::query("UPDATE intervals SET model_id = $1, model_error_mw = $2 WHERE host = $3 AND seq = $4")
                .bind(model_id)
                .bind(error_mw)
                .bind(&host)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        // The chunk's rows in multi-row statements: one statement per row
        // made the worker the demo's bottleneck (a month of a 40-VM fleet
        // took minutes). Not many more rows a statement, though: SQLite finds
        // a parameter's name by walking its list, so binding costs the
        // square of the parameters (4,000 a statement spent two thirds of
        // the worker's time there).
        for part in doms.chunks(self.rows_per_statement) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(values_sql("INSERT INTO ledger_domains (host, seq, domain, measured_uj, idle_uj, unattributed_uj, model_id) VALUES ", part.len(), 7, "")));
            for (host, seq, domain, m, i, u, model) in part {
                q = q.bind(host).bind(seq).bind(domain).bind(m).bind(i).bind(u).bind(model);
            }
            q.execute(&mut *tx).await?;
        }
        for part in shares.chunks(self.rows_per_statement) {
            let mut q = sqlx::query(sqlx::AssertSqlSafe(values_sql("INSERT INTO ledger (host, seq, domain, vm, tenant, dynamic_uj, idle_uj) VALUES ", part.len(), 7, "")));
            for (host, seq, domain, vm, tenant, dy, id) in part {
                q = q.bind(host).bind(seq).bind(domain).bind(vm).bind(tenant).bind(dy).bind(id);
            }
            q.execute(&mut *tx).await?;
        }
        for (rollup, acc) in [(Rollup::Hourly, hourly), (Rollup::Daily, daily)] {
            let rows: Vec<_> = acc.into_iter().collect();
            for part in rows.chunks(self.rows_per_statement) {
                let (table, col) = rollup.table();
                // Keys are unique within a statement (a map's), as PostgreSQL's upsert needs.
                let conflict = format!(" ON CONFLICT ({col}, host, vm, domain) DO UPDATE SET dynamic_uj = {table}.dynamic_uj + excluded.dynamic_uj, idle_uj = {table}.idle_uj + excluded.idle_uj");
                let head = format!("INSERT INTO {table} ({col}, host, vm, tenant, domain, top_level, dynamic_uj, idle_uj) VALUES ");
                let mut q = sqlx::query(sqlx::AssertSqlSafe(values_sql(&head, part.len(), 8, &conflict)));
                for ((at, host, vm, domain), (tenant, top, dy, id)) in part {
                    q = q.bind(at).bind(host).bind(vm).bind(tenant).bind(domain).bind(top).bind(dy).bind(id);
                }
                q.execute(&mut *tx).await?;
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

impl Rollup {
    /// The table and its time column.
    fn table(self) -> (&'static str, &'static str) {
        match self {
            Rollup::Hourly => ("usage_hourly", "hour_us"),
            Rollup::Daily => ("usage_daily", "day_us"),
        }
    }
}

/// `head` followed by `rows` placeholder tuples of `cols` each ($1, $2, …), then `tail`.
fn values_sql(head: &str, rows: usize, cols: usize, tail: &str) -> String {
    let mut sql = String::with_capacity(head.len() + rows * cols * 5 + tail.len());
    sql.push_str(head);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(tail);
    sql
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
    // Table and column names are fixed by the variant, never from input.
    let (table, col) = rollup.table();
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
