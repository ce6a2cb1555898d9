//! `fairwatt bench worker`: the attribution worker turning a backlog of
//! ingested intervals into the ledger, on a fresh SQLite store per
//! configuration. The store holds the `demo` fleet's registry and
//! `--intervals` 5-minute intervals per host (the simulator's, ground truth
//! stripped), stored through the ingest path; then one worker (linear model,
//! idle by reservation) runs passes until nothing is left. Configurations
//! differ only in ledger rows per INSERT: one row per statement is the
//! baseline, the default is the worker's, and a large one shows SQLite's
//! binding cost growing with the parameters of a statement.

use std::time::Instant;

use anyhow::{Context, ensure};
use clap::Args;
use fairwatt_billing_api::ingest::Batch;
use fairwatt_billing_api::worker::{ROWS_PER_STATEMENT, Worker};
use fairwatt_billing_api::{AppState, Db, Role, Settings, auth};
use fairwatt_collector::sampler::{IntervalSource, SimSource};
use fairwatt_core::{Micros, Timestamp};

#[derive(Args, Debug)]
pub struct WorkerBenchArgs {
    /// Hosts of the `demo` fleet.
    #[arg(long, default_value_t = 4)]
    hosts: usize,
    /// 5-minute intervals per host.
    #[arg(long, default_value_t = 2_000)]
    intervals: usize,
    /// Ledger rows per INSERT, one configuration each.
    #[arg(long, value_delimiter = ',', default_values_t = [1, ROWS_PER_STATEMENT, 500])]
    rows: Vec<usize>,
}

pub fn run(a: WorkerBenchArgs) -> anyhow::Result<()> {
    ensure!(a.hosts > 0 && a.intervals > 0, "--hosts and --intervals must be positive");
    let step = Micros::from_secs(300);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_micros() as i64;
    let start = Timestamp::from_micros((now - (a.intervals as i64 + 1) * step.0 as i64) / 3_600_000_000 * 3_600_000_000).context("start")?;
    let reg = crate::demo::fleet::registry(a.hosts, 42, start)?;
    let mut batches = Vec::new();
    let mut vm_intervals = 0usize;
    for (i, host) in reg.hosts.keys().enumerate() {
        let mut sim = SimSource::nth(crate::demo::fleet::SCENARIO, i, host, 42, step, start)?;
        let mut records = Vec::with_capacity(a.intervals);
        for seq in 0..a.intervals as u64 {
            let mut r = sim.sample(start).record.context("the simulator gave no record")?;
            r.seq = seq;
            r.truth = None;
            r.vms.iter_mut().for_each(|v| v.truth = None);
            vm_intervals += r.vms.len();
            records.push(r);
        }
        for (k, chunk) in records.chunks(500).enumerate() {
            batches.push(Batch { batch_id: format!("{host}-{k}"), records: chunk.to_vec() });
        }
    }
    let intervals = a.hosts * a.intervals;
    println!("attribution worker: {} hosts × {} intervals ({intervals} intervals, {vm_intervals} VM-intervals), fresh SQLite store each", a.hosts, a.intervals);
    println!("{:>14} {:>9} {:>13} {:>16} {:>10}", "rows/INSERT", "wall s", "intervals/s", "VM-intervals/s", "vs first");
    let mut base = None;
    for rows in &a.rows {
        let dir = tempfile::tempdir()?;
        let url = format!("sqlite://{}", dir.path().join("worker.db").display());
        let secs = actix_web::rt::System::new().block_on(async {
            let db = Db::connect(&url).await?;
            fairwatt_billing_api::registry::import(&db, &reg).await?;
            let key = auth::create_key(&db, Role::Collector, None).await?;
            let state = AppState::new(db.clone(), Settings::default());
            for b in &batches {
                fairwatt_billing_api::ingest::store(&state, &key.id, b).await?;
            }
            let mut worker = Worker::new(db.clone(), fairwatt_attribution::Method::Linear, fairwatt_attribution::IdlePolicy::Reservation)?.with_rows_per_statement(*rows);
            let t = Instant::now();
            loop {
                let n = worker.run_once().await?;
                let (left,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").fetch_one(&db.pool).await?;
                if left == 0 {
                    break;
                }
                ensure!(n > 0, "the worker stopped with {left} intervals left");
            }
            anyhow::Ok(t.elapsed().as_secs_f64())
        })?;
        let ratio = base.map_or_else(|| "1.00×".to_string(), |b: f64| format!("{:.2}×", b / secs));
        base.get_or_insert(secs);
        println!("{rows:>14} {secs:>9.2} {:>13.0} {:>16.0} {ratio:>10}", intervals as f64 / secs, vm_intervals as f64 / secs);
    }
    Ok(())
}
