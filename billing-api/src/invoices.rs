//! Invoices: drafts, issue with gap-free numbers, void, credit notes, late
//! data as adjustments, and the invoice run.
//!
//! - A draft is computed from the ledger ([`crate::billing::compute`]) and
//!   may be recomputed any number of times; issuing recomputes it once more
//!   and freezes it. Issued invoices never change.
//! - Numbers are `ISSUER-000001`, gap-free per issuer: the number is taken
//!   from `invoice_counters` in the transaction that flips the invoice from
//!   draft to issued, after the flip succeeded, so a concurrent second
//!   finalisation finds the invoice issued and takes no number.
//! - Late data: when an invoice is computed, every earlier period of the
//!   tenant that has an issued invoice is recomputed; what differs from what
//!   was billed for it (by VM, region and charge) becomes adjustment lines,
//!   marked with the period they are for.
//! - A credit note (issued at once, numbered in the same sequence) negates
//!   lines of an issued invoice; each line is credited at most once.
//!   Credits are corrections of money: they do not put the energy back up
//!   for billing. A voided invoice no longer counts, and its period can be
//!   invoiced again.

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::billing::{CHARGES, Context, Line, Methodology, compute};
use crate::db::now_us;
use crate::error::{ApiError, Result};
use crate::money::{format_minor, minor_exponent};
use crate::params::{format_time, json_body, month_name, parse_period};

/// How far back late data is looked for.
const LOOKBACK_US: i64 = 400 * 86_400_000_000;

#[derive(Clone, Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Invoice {
    pub id: String,
    pub tenant: String,
    pub kind: String,
    pub status: String,
    pub issuer: String,
    pub number: Option<String>,
    pub period: String,
    pub period_start: String,
    pub period_end: String,
    pub currency: String,
    pub total: String,
    pub total_minor: i64,
    pub energy_kwh: f64,
    pub energy_uj: i64,
    pub co2e_location_g: f64,
    pub co2e_market_g: f64,
    pub co2e_embodied_g: f64,
    pub methodology: Methodology,
    pub corrects: Option<String>,
    pub reason: Option<String>,
    pub created: String,
    pub issued: Option<String>,
    pub voided: Option<String>,
    pub lines: Vec<Line>,
}

fn new_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let salt = std::process::id() as u64;
    format!("{prefix}_{:x}{:04x}{:04x}", now_us(), salt & 0xffff, n & 0xffff)
}

fn period_label(start: i64, end: i64) -> String {
    month_name(start, end).unwrap_or_else(|| format!("{}/{}", format_time(start), format_time(end)))
}

async fn tenant_currency(state: &AppState, tenant: &str) -> Result<String> {
    let row: Option<(String,)> = sqlx::query_as("SELECT currency FROM tenants WHERE id = $1").bind(tenant).fetch_optional(&state.db.pool).await?;
    Ok(row.ok_or_else(|| ApiError::NotFound("no such tenant".into()))?.0)
}

/// Lines for `[from, to)`, then adjustments for earlier invoiced periods.
async fn lines_for(state: &AppState, ctx: &mut Context, tenant: &str, currency: &str, from: i64, to: i64) -> Result<(Vec<Line>, Methodology)> {
    let (mut lines, mut m) = compute(&state.db, ctx, tenant, currency, from, to).await?;
    let earlier: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT DISTINCT period_start_us, period_end_us FROM invoices WHERE tenant = $1 AND kind = 'invoice' AND status = 'issued' AND period_end_us <= $2 AND period_start_us >= $3 ORDER BY period_start_us",
    )
    .bind(tenant)
    .bind(from)
    .bind(from - LOOKBACK_US)
    .fetch_all(&state.db.pool)
    .await?;
    for (s, e) in earlier {
        let (now, _) = compute(&state.db, ctx, tenant, currency, s, e).await?;
        type Billed = (String, String, String, i64, i64, i64, i64, i64);
        let billed: Vec<Billed> = sqlx::query_as(
            "SELECT l.vm, l.region, l.charge, CAST(SUM(l.energy_uj) AS BIGINT), CAST(SUM(l.co2_location_mg) AS BIGINT), CAST(SUM(l.co2_market_mg) AS BIGINT), \
             CAST(SUM(l.co2_embodied_mg) AS BIGINT), CAST(SUM(l.cost_minor) AS BIGINT) FROM invoice_lines l JOIN invoices i ON i.id = l.invoice_id \
             WHERE i.tenant = $1 AND i.kind = 'invoice' AND i.status = 'issued' AND l.usage_start_us = $2 AND l.usage_end_us = $3 GROUP BY l.vm, l.region, l.charge",
        )
        .bind(tenant)
        .bind(s)
        .bind(e)
        .fetch_all(&state.db.pool)
        .await?;
        let mut diff: std::collections::BTreeMap<(String, String, usize), Line> = std::collections::BTreeMap::new();
        for l in now {
            let c = CHARGES.iter().position(|c| *c == l.charge).unwrap_or(0);
            diff.insert((l.vm.clone(), l.region.clone(), c), l);
        }
        for (vm, region, charge, en, loc, mkt, emb, cost) in billed {
            let c = CHARGES.iter().position(|x| *x == charge).unwrap_or(0);
            let l = diff.entry((vm.clone(), region.clone(), c)).or_insert_with(|| Line {
                line_no: 0,
                description: format!("{vm}: {charge}"),
                vm,
                region,
                charge,
                usage_start_us: s,
                usage_end_us: e,
                adjustment: true,
                energy_uj: 0,
                co2_location_mg: 0,
                co2_market_mg: 0,
                co2_embodied_mg: 0,
                unit_price: "0".into(),
                cost_minor: 0,
            });
            l.energy_uj -= en;
            l.co2_location_mg -= loc;
            l.co2_market_mg -= mkt;
            l.co2_embodied_mg -= emb;
            l.cost_minor -= cost;
        }
        let label = period_label(s, e);
        for mut l in diff.into_values() {
            if l.energy_uj == 0 && l.co2_location_mg == 0 && l.co2_market_mg == 0 && l.co2_embodied_mg == 0 && l.cost_minor == 0 {
                continue;
            }
            l.adjustment = true;
            l.description = format!("adjustment for {label} (data that arrived after it was invoiced): {}", l.description);
            lines.push(l);
        }
        m.notes.push(format!("adjustments checked against the issued invoice for {label}"));
    }
    for (i, l) in lines.iter_mut().enumerate() {
        l.line_no = i as i64 + 1;
    }
    Ok((lines, m))
}

async fn write_lines(tx: &mut sqlx::AnyConnection, id: &str, lines: &[Line]) -> Result<()> {
    sqlx::query("DELETE FROM invoice_lines WHERE invoice_id = $1").bind(id).execute(&mut *tx).await?;
    for l in lines {
        sqlx::query(
            "INSERT INTO invoice_lines (invoice_id, line_no, vm, region, charge, usage_start_us, usage_end_us, adjustment, energy_uj, co2_location_mg, co2_market_mg, \
             co2_embodied_mg, unit_price, cost_minor, description) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
        )
        .bind(id)
        .bind(l.line_no)
        .bind(&l.vm)
        .bind(&l.region)
        .bind(&l.charge)
        .bind(l.usage_start_us)
        .bind(l.usage_end_us)
        .bind(l.adjustment as i64)
        .bind(l.energy_uj)
        .bind(l.co2_location_mg)
        .bind(l.co2_market_mg)
        .bind(l.co2_embodied_mg)
        .bind(&l.unit_price)
        .bind(l.cost_minor)
        .bind(&l.description)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}

fn totals(lines: &[Line]) -> [i64; 5] {
    let mut t = [0i64; 5];
    for l in lines {
        t[0] += l.cost_minor;
        t[1] += l.energy_uj;
        t[2] += l.co2_location_mg;
        t[3] += l.co2_market_mg;
        t[4] += l.co2_embodied_mg;
    }
    t
}

async fn set_totals(tx: &mut sqlx::AnyConnection, id: &str, lines: &[Line], m: &Methodology) -> Result<()> {
    let t = totals(lines);
    sqlx::query("UPDATE invoices SET total_minor = $1, energy_uj = $2, co2_location_mg = $3, co2_market_mg = $4, co2_embodied_mg = $5, methodology = $6, computed_us = $7 WHERE id = $8")
        .bind(t[0])
        .bind(t[1])
        .bind(t[2])
        .bind(t[3])
        .bind(t[4])
        .bind(serde_json::to_string(m).unwrap_or_default())
        .bind(now_us())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// Creates (or recomputes) the tenant's draft for `[from, to)`; returns its
/// id. With `issue_now` it is issued in the same transaction (one
/// computation instead of two: what the invoice run does).
pub async fn draft(state: &AppState, ctx: &mut Context, tenant: &str, from: i64, to: i64, issue_now: bool) -> Result<String> {
    let currency = tenant_currency(state, tenant).await?;
    let (lines, m) = lines_for(state, ctx, tenant, &currency, from, to).await?;
    let mut tx = state.db.begin_write().await?;
    let live: Option<(String, String)> = sqlx::query_as("SELECT id, status FROM invoices WHERE tenant = $1 AND period_start_us = $2 AND kind = 'invoice' AND status <> 'void'")
        .bind(tenant)
        .bind(from)
        .fetch_optional(&mut *tx)
        .await?;
    let id = match live {
        Some((id, s)) if s == "issued" => return Err(ApiError::Conflict(format!("invoice {id} for this period is issued; late data goes on the next invoice, corrections on a credit note"))),
        Some((id, _)) => id,
        None => {
            let id = new_id("inv");
            sqlx::query(
                "INSERT INTO invoices (id, tenant, kind, status, issuer, period_start_us, period_end_us, currency, total_minor, energy_uj, co2_location_mg, co2_market_mg, \
                 co2_embodied_mg, methodology, computed_us, created_us) VALUES ($1, $2, 'invoice', 'draft', $3, $4, $5, $6, 0, 0, 0, 0, 0, '{}', $7, $7)",
            )
            .bind(&id)
            .bind(tenant)
            .bind(&state.issuer)
            .bind(from)
            .bind(to)
            .bind(&currency)
            .bind(now_us())
            .execute(&mut *tx)
            .await?;
            id
        }
    };
    write_lines(&mut tx, &id, &lines).await?;
    set_totals(&mut tx, &id, &lines, &m).await?;
    if issue_now {
        finalise(&mut tx, &state.issuer, &id).await?;
    }
    tx.commit().await?;
    Ok(id)
}

/// Numbers a draft and flips it to issued, last in its transaction (the
/// store refuses any change to an issued invoice's lines or totals).
async fn finalise(tx: &mut sqlx::AnyConnection, issuer: &str, id: &str) -> Result<String> {
    let number = take_number(&mut *tx, issuer).await?;
    flip(tx, id, number).await
}

async fn flip(tx: &mut sqlx::AnyConnection, id: &str, number: String) -> Result<String> {
    let done = sqlx::query("UPDATE invoices SET status = 'issued', issued_us = $1, number = $2 WHERE id = $3 AND status = 'draft'")
        .bind(now_us())
        .bind(&number)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::Conflict(format!("invoice {id} is no longer a draft")));
    }
    Ok(number)
}

async fn take_number(tx: &mut sqlx::AnyConnection, issuer: &str) -> Result<String> {
    let (n,): (i64,) = sqlx::query_as(
        "INSERT INTO invoice_counters (issuer, last_number) VALUES ($1, 1) ON CONFLICT (issuer) DO UPDATE SET last_number = invoice_counters.last_number + 1 RETURNING last_number",
    )
    .bind(issuer)
    .fetch_one(&mut *tx)
    .await?;
    Ok(format!("{issuer}-{n:06}"))
}

/// Issues a draft: recomputed one last time, frozen, numbered. Issuing an
/// issued invoice returns it unchanged (a retried or concurrent request).
pub async fn issue(state: &AppState, ctx: &mut Context, id: &str) -> Result<()> {
    let row: Option<(String, String, String, i64, i64)> =
        sqlx::query_as("SELECT tenant, status, kind, period_start_us, period_end_us FROM invoices WHERE id = $1").bind(id).fetch_optional(&state.db.pool).await?;
    let (tenant, status, _kind, from, to) = row.ok_or_else(|| ApiError::NotFound("no such invoice".into()))?;
    match status.as_str() {
        "issued" => return Ok(()),
        "void" => return Err(ApiError::Conflict(format!("invoice {id} is void"))),
        _ => {}
    }
    let currency = tenant_currency(state, &tenant).await?;
    let (lines, m) = lines_for(state, ctx, &tenant, &currency, from, to).await?;
    let mut tx = state.db.begin_write().await?;
    // Claim the draft first: a concurrent issuer waits on this row (SQLite:
    // on the write lock), then finds it issued and takes no number.
    let claimed = sqlx::query("UPDATE invoices SET computed_us = $1 WHERE id = $2 AND status = 'draft'").bind(now_us()).bind(id).execute(&mut *tx).await?;
    if claimed.rows_affected() == 0 {
        drop(tx);
        let (s,): (String,) = sqlx::query_as("SELECT status FROM invoices WHERE id = $1").bind(id).fetch_one(&state.db.pool).await?;
        return if s == "issued" { Ok(()) } else { Err(ApiError::Conflict(format!("invoice {id} is {s}"))) };
    }
    write_lines(&mut tx, id, &lines).await?;
    set_totals(&mut tx, id, &lines, &m).await?;
    finalise(&mut tx, &state.issuer, id).await?;
    tx.commit().await?;
    Ok(())
}

pub async fn void(state: &AppState, id: &str, reason: &str) -> Result<()> {
    let mut tx = state.db.begin_write().await?;
    let done = sqlx::query("UPDATE invoices SET status = 'void', voided_us = $1, reason = $2 WHERE id = $3 AND kind = 'invoice' AND status <> 'void'")
        .bind(now_us())
        .bind(reason)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        let row: Option<(String, String)> = sqlx::query_as("SELECT status, kind FROM invoices WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
        return Err(match row {
            None => ApiError::NotFound("no such invoice".into()),
            Some((_, k)) if k != "invoice" => ApiError::Conflict("credit notes cannot be voided".into()),
            Some(_) => ApiError::Conflict(format!("invoice {id} is void already")),
        });
    }
    tx.commit().await?;
    Ok(())
}

/// Issues a credit note for `lines` (all when empty) of an issued invoice.
pub async fn credit(state: &AppState, id: &str, reason: &str, only: &[i64]) -> Result<String> {
    let inv = load(state, id).await?;
    if inv.kind != "invoice" || inv.status != "issued" {
        return Err(ApiError::Conflict(format!("invoice {id} is a {} {}; only issued invoices are credited", inv.status, inv.kind)));
    }
    let mut tx = state.db.begin_write().await?;
    // The number first: its counter row serializes credit notes of an
    // issuer (PostgreSQL), so two at once cannot both credit a line; a
    // refusal below rolls the number back with everything else.
    let number = take_number(&mut tx, &state.issuer).await?;
    let credited: Vec<(i64,)> = sqlx::query_as(
        "SELECT l.line_no FROM invoice_lines l JOIN invoices c ON c.id = l.invoice_id WHERE c.corrects = $1 AND c.kind = 'credit_note' AND c.status = 'issued'",
    )
    .bind(id)
    .fetch_all(&mut *tx)
    .await?;
    let credited: std::collections::BTreeSet<i64> = credited.into_iter().map(|(n,)| n).collect();
    let mut lines = Vec::new();
    for l in &inv.lines {
        if !only.is_empty() && !only.contains(&l.line_no) {
            continue;
        }
        if credited.contains(&l.line_no) {
            return Err(ApiError::Conflict(format!("line {} of {id} is credited already", l.line_no)));
        }
        let mut c = l.clone();
        c.energy_uj = -c.energy_uj;
        c.co2_location_mg = -c.co2_location_mg;
        c.co2_market_mg = -c.co2_market_mg;
        c.co2_embodied_mg = -c.co2_embodied_mg;
        c.cost_minor = -c.cost_minor;
        c.description = format!("credit of line {}: {}", l.line_no, l.description);
        lines.push(c);
    }
    if let Some(n) = only.iter().find(|n| !inv.lines.iter().any(|l| l.line_no == **n)) {
        return Err(ApiError::BadRequest(format!("invoice {id} has no line {n}")));
    }
    if lines.is_empty() {
        return Err(ApiError::BadRequest("nothing to credit".into()));
    }
    let cid = new_id("cn");
    let (from, to): (i64, i64) = sqlx::query_as("SELECT period_start_us, period_end_us FROM invoices WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
    sqlx::query(
        "INSERT INTO invoices (id, tenant, kind, status, issuer, period_start_us, period_end_us, currency, total_minor, energy_uj, co2_location_mg, co2_market_mg, \
         co2_embodied_mg, methodology, corrects, reason, computed_us, created_us) VALUES ($1, $2, 'credit_note', 'draft', $3, $4, $5, $6, 0, 0, 0, 0, 0, '{}', $7, $8, $9, $9)",
    )
    .bind(&cid)
    .bind(&inv.tenant)
    .bind(&state.issuer)
    .bind(from)
    .bind(to)
    .bind(&inv.currency)
    .bind(id)
    .bind(reason)
    .bind(now_us())
    .execute(&mut *tx)
    .await?;
    write_lines(&mut tx, &cid, &lines).await?;
    let m = Methodology { notes: vec![format!("credit note for {} ({id}): {reason}", inv.number.clone().unwrap_or_default())], ..inv.methodology.clone() };
    set_totals(&mut tx, &cid, &lines, &m).await?;
    flip(&mut tx, &cid, number).await?;
    tx.commit().await?;
    Ok(cid)
}

#[derive(sqlx::FromRow)]
struct InvoiceRow {
    id: String,
    tenant: String,
    kind: String,
    status: String,
    issuer: String,
    number: Option<String>,
    period_start_us: i64,
    period_end_us: i64,
    currency: String,
    total_minor: i64,
    energy_uj: i64,
    co2_location_mg: i64,
    co2_market_mg: i64,
    co2_embodied_mg: i64,
    methodology: String,
    corrects: Option<String>,
    reason: Option<String>,
    created_us: i64,
    issued_us: Option<i64>,
    voided_us: Option<i64>,
}

const INVOICE_COLUMNS: &str = "id, tenant, kind, status, issuer, number, period_start_us, period_end_us, currency, total_minor, energy_uj, co2_location_mg, co2_market_mg, \
     co2_embodied_mg, methodology, corrects, reason, created_us, issued_us, voided_us";

fn from_row(r: InvoiceRow, lines: Vec<Line>) -> Result<Invoice> {
    let exp = minor_exponent(&r.currency)?;
    Ok(Invoice {
        period: period_label(r.period_start_us, r.period_end_us),
        period_start: format_time(r.period_start_us),
        period_end: format_time(r.period_end_us),
        total: format_minor(r.total_minor, exp),
        energy_kwh: r.energy_uj as f64 / 3.6e12,
        co2e_location_g: r.co2_location_mg as f64 / 1000.0,
        co2e_market_g: r.co2_market_mg as f64 / 1000.0,
        co2e_embodied_g: r.co2_embodied_mg as f64 / 1000.0,
        methodology: serde_json::from_str(&r.methodology).unwrap_or_default(),
        created: format_time(r.created_us),
        issued: r.issued_us.map(format_time),
        voided: r.voided_us.map(format_time),
        id: r.id,
        tenant: r.tenant,
        kind: r.kind,
        status: r.status,
        issuer: r.issuer,
        number: r.number,
        currency: r.currency,
        total_minor: r.total_minor,
        energy_uj: r.energy_uj,
        corrects: r.corrects,
        reason: r.reason,
        lines,
    })
}

pub async fn load(state: &AppState, id: &str) -> Result<Invoice> {
    let row: Option<InvoiceRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE id = $1"))).bind(id).fetch_optional(&state.db.pool).await?;
    let row = row.ok_or_else(|| ApiError::NotFound("no such invoice".into()))?;
    type LineRow = (i64, String, String, String, i64, i64, i64, i64, i64, i64, i64, String, i64, String);
    let ls: Vec<LineRow> = sqlx::query_as(
        "SELECT line_no, vm, region, charge, usage_start_us, usage_end_us, adjustment, energy_uj, co2_location_mg, co2_market_mg, co2_embodied_mg, unit_price, cost_minor, description \
         FROM invoice_lines WHERE invoice_id = $1 ORDER BY line_no",
    )
    .bind(id)
    .fetch_all(&state.db.pool)
    .await?;
    let lines = ls
        .into_iter()
        .map(|l| Line {
            line_no: l.0,
            vm: l.1,
            region: l.2,
            charge: l.3,
            usage_start_us: l.4,
            usage_end_us: l.5,
            adjustment: l.6 != 0,
            energy_uj: l.7,
            co2_location_mg: l.8,
            co2_market_mg: l.9,
            co2_embodied_mg: l.10,
            unit_price: l.11,
            cost_minor: l.12,
            description: l.13,
        })
        .collect();
    from_row(row, lines)
}

// ---- HTTP ----

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PeriodBody {
    /// `YYYY-MM` or `START/END`; absent: the last whole calendar month.
    #[serde(default)]
    pub period: Option<String>,
    /// Issue at once (default: leave a draft).
    #[serde(default)]
    pub issue: bool,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReasonBody {
    #[serde(default)]
    pub reason: String,
    #[serde(default)]
    pub lines: Vec<i64>,
}

fn ctx_of(state: &AppState) -> Context {
    Context::new(&state.idle_policy)
}

pub async fn post_tenant_invoice(req: HttpRequest, state: web::Data<AppState>, tenant: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: PeriodBody = json_body(&body)?;
    let (from, to) = parse_period(&b.period.unwrap_or_else(crate::params::last_month))?;
    let mut ctx = ctx_of(&state);
    let id = draft(&state, &mut ctx, &tenant, from, to, b.issue).await?;
    Ok(HttpResponse::Created().json(load(&state, &id).await?))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Summary {
    pub id: String,
    pub kind: String,
    pub status: String,
    pub number: Option<String>,
    pub period: String,
    pub currency: String,
    pub total: String,
    pub energy_kwh: f64,
}

pub async fn list_tenant_invoices(req: HttpRequest, state: web::Data<AppState>, tenant: web::Path<String>, page: web::Query<crate::params::Page>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance])?;
    who.may_see(&tenant, "tenant")?;
    let (limit, offset) = page.get()?;
    tenant_currency(&state, &tenant).await?;
    let rows: Vec<InvoiceRow> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("SELECT {INVOICE_COLUMNS} FROM invoices WHERE tenant = $1 ORDER BY period_start_us, created_us LIMIT $2 OFFSET $3")))
            .bind(tenant.as_str())
            .bind(limit)
            .bind(offset)
        .fetch_all(&state.db.pool)
        .await?;
    let mut out = Vec::new();
    for r in rows {
        let i = from_row(r, Vec::new())?;
        out.push(Summary { id: i.id, kind: i.kind, status: i.status, number: i.number, period: i.period, currency: i.currency, total: i.total, energy_kwh: i.energy_kwh });
    }
    Ok(HttpResponse::Ok().json(out))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatQuery {
    #[serde(default)]
    pub format: Option<String>,
}

pub async fn get_invoice(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, q: web::Query<FormatQuery>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance])?;
    let inv = load(&state, &id).await?;
    who.may_see(&inv.tenant, "invoice")?;
    let accept = req.headers().get("accept").and_then(|h| h.to_str().ok()).unwrap_or("");
    let format = match q.format.as_deref() {
        Some(f) => f.to_string(),
        None if accept.contains("application/pdf") => "pdf".into(),
        None if accept.contains("text/csv") => "csv".into(),
        None => "json".into(),
    };
    let name = inv.number.clone().unwrap_or_else(|| inv.id.clone());
    match format.as_str() {
        "json" => Ok(HttpResponse::Ok().json(inv)),
        "csv" => Ok(HttpResponse::Ok().content_type("text/csv; charset=utf-8").insert_header(("Content-Disposition", format!("attachment; filename=\"{name}.csv\""))).body(crate::render::csv(&inv)?)),
        "pdf" => Ok(HttpResponse::Ok().content_type("application/pdf").insert_header(("Content-Disposition", format!("attachment; filename=\"{name}.pdf\""))).body(crate::render::pdf(&inv))),
        other => Err(ApiError::BadRequest(format!("format {other:?}: expected json, csv or pdf"))),
    }
}

pub async fn post_issue(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    issue(&state, &mut ctx_of(&state), &id).await?;
    Ok(HttpResponse::Ok().json(load(&state, &id).await?))
}

pub async fn post_void(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: ReasonBody = if body.is_empty() { ReasonBody::default() } else { json_body(&body)? };
    void(&state, &id, &b.reason).await?;
    Ok(HttpResponse::Ok().json(load(&state, &id).await?))
}

pub async fn post_credit_note(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: ReasonBody = json_body(&body)?;
    if b.reason.trim().is_empty() {
        return Err(ApiError::BadRequest("a credit note needs a reason".into()));
    }
    let cid = credit(&state, &id, &b.reason, &b.lines).await?;
    Ok(HttpResponse::Created().json(load(&state, &cid).await?))
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RunResult {
    pub period: String,
    pub tenants: usize,
    pub issued: usize,
    pub drafts: usize,
    pub failed: Vec<Failure>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Failure {
    pub tenant: String,
    pub error: String,
}

/// Invoices every tenant for `period` (issuing them when asked). A tenant
/// that fails is reported and the run goes on.
pub async fn run(state: &AppState, period: &str, do_issue: bool) -> Result<RunResult> {
    let (from, to) = parse_period(period)?;
    let tenants: Vec<(String,)> = sqlx::query_as("SELECT id FROM tenants ORDER BY id").fetch_all(&state.db.pool).await?;
    let mut ctx = ctx_of(state);
    let mut out = RunResult { period: period.to_string(), tenants: tenants.len(), issued: 0, drafts: 0, failed: Vec::new() };
    for (t,) in tenants {
        match draft(state, &mut ctx, &t, from, to, do_issue).await {
            Ok(_) if do_issue => out.issued += 1,
            Ok(_) => out.drafts += 1,
            Err(ApiError::Conflict(m)) if m.contains("is issued") => {}
            Err(e) => out.failed.push(Failure { tenant: t, error: e.to_string() }),
        }
    }
    Ok(out)
}

pub async fn post_run(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance])?;
    let b: PeriodBody = json_body(&body)?;
    Ok(HttpResponse::Ok().json(run(&state, &b.period.unwrap_or_else(crate::params::last_month), b.issue).await?))
}
