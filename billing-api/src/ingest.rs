//! `POST /v1/ingest` (collector role): a batch of interval records in the
//! trace format, `{"batch_id": "…", "records": [IntervalRecord, …]}`.
//!
//! - Idempotent by batch id: a resend returns the first result, stores
//!   nothing again.
//! - Each host interval is stored once: a record whose `(host, seq)` is
//!   already stored (an agent resending after a lost acknowledgement under a
//!   new batch id) is counted as a duplicate and skipped, never added twice.
//! - All or nothing: the whole batch is checked before anything is written,
//!   and written in one transaction; a bad record is a 400 naming the record
//!   and the problem, and nothing of the batch is kept.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use fairwatt_core::IntervalRecord;

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::db::now_us;
use crate::error::{ApiError, Result};

/// Records per batch at most.
pub const MAX_RECORDS: usize = 5_000;
/// How far from the server's clock a record may lie: agents buffer for
/// days when the server is down, and a clock may run a little ahead.
pub const MAX_AGE_US: i64 = 400 * 86_400 * 1_000_000;
pub const MAX_AHEAD_US: i64 = 3_600 * 1_000_000;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub batch_id: String,
    pub records: Vec<IntervalRecord>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct IngestResult {
    pub batch_id: String,
    /// Intervals stored from this batch.
    pub accepted: u64,
    /// Intervals already stored by an earlier batch, skipped.
    pub duplicates: u64,
    /// Measured energy of the accepted intervals (top-level domains), µJ.
    pub energy_uj: u64,
    /// True when this is a resend of a batch already taken.
    #[serde(default)]
    pub replay: bool,
}

/// Checks what JSON types cannot: ids, sizes, times, record consistency.
pub fn check(batch: &Batch, now: i64) -> Result<()> {
    let id = &batch.batch_id;
    if id.is_empty() || id.len() > 128 || !id.chars().all(|c| c.is_ascii_alphanumeric() || "-_.:".contains(c)) {
        return Err(ApiError::BadRequest(format!("batch_id {id:?} must be 1–128 characters of A–Z, a–z, 0–9, -, _, ., :")));
    }
    if batch.records.is_empty() {
        return Err(ApiError::BadRequest("a batch needs at least one record".into()));
    }
    if batch.records.len() > MAX_RECORDS {
        return Err(ApiError::BadRequest(format!("{} records in one batch; at most {MAX_RECORDS}", batch.records.len())));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, r) in batch.records.iter().enumerate() {
        let at = |msg: String| ApiError::BadRequest(format!("records[{i}] (host {}, seq {}): {msg}", r.host, r.seq));
        r.validate().map_err(|e| at(e.to_string()))?;
        if r.seq > i64::MAX as u64 {
            return Err(at("seq does not fit a signed 64-bit integer".into()));
        }
        let (start, end) = (r.start.as_micros(), r.end.as_micros());
        if end > now + MAX_AHEAD_US {
            return Err(at(format!("ends {} s in the future", (end - now) / 1_000_000)));
        }
        if start < now - MAX_AGE_US {
            return Err(at(format!("starts {} days ago; at most {} are accepted", (now - start) / 86_400_000_000, MAX_AGE_US / 86_400_000_000)));
        }
        for (d, e) in &r.domains {
            if e.energy_uj.as_uj() > i64::MAX as u64 {
                return Err(at(format!("{d}: energy {} µJ does not fit a signed 64-bit integer", e.energy_uj.as_uj())));
            }
        }
        if !seen.insert((r.host.as_str().to_string(), r.seq)) {
            return Err(at("appears twice in the batch".into()));
        }
    }
    Ok(())
}

pub async fn handler(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse> {
    let db = &state.db;
    let who = authenticate(db, &req).await?;
    who.require(&[Role::Collector])?;
    if body.len() > state.max_body {
        return Err(ApiError::TooLarge { size: body.len(), limit: state.max_body });
    }
    let batch: Batch = serde_json::from_slice(&body).map_err(|e| ApiError::BadRequest(format!("malformed batch: {e}")))?;
    check(&batch, now_us())?;
    let result = store(state.get_ref(), &who.key_id, &batch).await?;
    Ok(HttpResponse::Ok().json(result))
}

async fn previous(tx: &mut sqlx::AnyConnection, batch_id: &str) -> Result<Option<IngestResult>> {
    let row: Option<(i64, i64, i64)> =
        sqlx::query_as("SELECT intervals, duplicates, energy_uj FROM ingest_batches WHERE batch_id = $1").bind(batch_id).fetch_optional(&mut *tx).await?;
    Ok(row.map(|(a, d, e)| IngestResult { batch_id: batch_id.to_string(), accepted: a as u64, duplicates: d as u64, energy_uj: e as u64, replay: true }))
}

/// Writes a checked batch in one transaction (see the module doc).
pub async fn store(state: &AppState, key_id: &str, batch: &Batch) -> Result<IngestResult> {
    let mut tx = state.db.begin_write().await?;
    if let Some(prev) = previous(&mut tx, &batch.batch_id).await? {
        return Ok(prev);
    }
    let claimed = sqlx::query("INSERT INTO ingest_batches (batch_id, key_id, received_us, intervals, duplicates, energy_uj) VALUES ($1, $2, $3, 0, 0, 0)")
        .bind(&batch.batch_id)
        .bind(key_id)
        .bind(now_us())
        .execute(&mut *tx)
        .await;
    match claimed {
        Ok(_) => {}
        // A concurrent request claimed the id between our check and insert
        // (PostgreSQL waits for it to commit, then reports the conflict):
        // its result stands.
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            drop(tx);
            let mut conn = state.db.pool.acquire().await?;
            return previous(&mut conn, &batch.batch_id).await?.ok_or_else(|| ApiError::Unavailable(format!("batch {} was claimed by a request that did not finish; send it again", batch.batch_id)));
        }
        Err(e) => return Err(e.into()),
    }
    crate::registry::check_batch(&mut tx, &batch.records).await?;
    let (mut accepted, mut duplicates, mut energy) = (0u64, 0u64, 0u64);
    for r in &batch.records {
        let record = serde_json::to_string(r).map_err(|e| ApiError::BadRequest(format!("record {}: {e}", r.seq)))?;
        let done = sqlx::query("INSERT INTO intervals (host, seq, start_us, end_us, batch_id, record) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (host, seq) DO NOTHING")
            .bind(r.host.as_str())
            .bind(r.seq as i64)
            .bind(r.start.as_micros())
            .bind(r.end.as_micros())
            .bind(&batch.batch_id)
            .bind(record)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            duplicates += 1;
            continue;
        }
        accepted += 1;
        energy = energy.saturating_add(r.measured_total().as_uj());
        for (d, e) in &r.domains {
            sqlx::query("INSERT INTO interval_energy (host, seq, domain, energy_uj) VALUES ($1, $2, $3, $4)")
                .bind(r.host.as_str())
                .bind(r.seq as i64)
                .bind(d.to_string())
                .bind(e.energy_uj.as_uj() as i64)
                .execute(&mut *tx)
                .await?;
        }
    }
    sqlx::query("UPDATE ingest_batches SET intervals = $1, duplicates = $2, energy_uj = $3 WHERE batch_id = $4")
        .bind(accepted as i64)
        .bind(duplicates as i64)
        .bind(energy.min(i64::MAX as u64) as i64)
        .bind(&batch.batch_id)
        .execute(&mut *tx)
        .await?;
    match tx.commit().await {
        Ok(()) => Ok(IngestResult { batch_id: batch.batch_id.clone(), accepted, duplicates, energy_uj: energy, replay: false }),
        // Another request took the same batch id first: its result stands.
        Err(e) => {
            let mut conn = state.db.pool.acquire().await?;
            previous(&mut conn, &batch.batch_id).await?.ok_or_else(|| e.into())
        }
    }
}
