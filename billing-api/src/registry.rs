//! The registry: tenants, hosts (region, PUE, embodied carbon, size) and
//! VMs (tenant, flavor, placement history).
//!
//! - `PUT /v1/tenants/{id}`, `PUT /v1/hosts/{id}`, `PUT /v1/vms/{id}`
//!   create or update (ops; tenants also finance); `DELETE /v1/vms/{id}`
//!   ends a VM. Reads: `GET /v1/tenants`, `/v1/tenants/{id}`,
//!   `/v1/tenants/{id}/vms`, `/v1/hosts`, `/v1/vms/{id}`.
//! - A VM's tenant never changes: its energy account is the VM id, whichever
//!   host it runs on. A live migration (a `PUT` naming another host, or an
//!   agent on another host reporting it) closes one placement and opens the
//!   next; invoices and usage follow the VM across hosts.
//! - Ingest checks every batch against the registry ([`check_batch`]):
//!   unknown hosts, unknown VMs, and VMs reported under another tenant are
//!   refused with the name of the offender.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use fairwatt_core::IntervalRecord;

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::db::{Db, now_us};
use crate::error::{ApiError, Result};
use crate::money::minor_exponent;
use crate::params::{Page, check_id, format_time, json_body, parse_time};

const YEAR_S: f64 = 365.25 * 86_400.0;

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    pub name: String,
    pub currency: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Tenant {
    pub id: String,
    pub name: String,
    pub currency: String,
    pub created: String,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HostBody {
    /// The grid zone whose intensity applies and whose tariff is charged.
    pub region: String,
    pub pue: f64,
    pub embodied_kgco2e: f64,
    pub lifetime_years: f64,
    pub vcpus: i64,
    pub memory_mib: i64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Host {
    pub id: String,
    pub region: String,
    pub pue: f64,
    pub embodied_kgco2e: f64,
    pub lifetime_years: f64,
    pub vcpus: i64,
    pub memory_mib: i64,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VmBody {
    pub tenant: String,
    pub flavor: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    /// Where it runs now; a different host than before is a migration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// When the placement began (RFC 3339; default now).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Placement {
    pub host: String,
    pub from: String,
    pub to: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Vm {
    pub id: String,
    pub tenant: String,
    pub flavor: String,
    pub vcpus: i64,
    pub memory_mib: i64,
    pub created: String,
    pub deleted: Option<String>,
    pub placements: Vec<Placement>,
}

fn ok_json<T: Serialize>(v: &T) -> Result<HttpResponse> {
    Ok(HttpResponse::Ok().json(v))
}

pub async fn put_tenant(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Ops, Role::Finance])?;
    upsert_tenant(&state.db, &id, &json_body(&body)?).await?;
    get_tenant_row(&state, &id).await.and_then(|t| ok_json(&t))
}

pub async fn upsert_tenant(db: &Db, id: &str, b: &TenantBody) -> Result<()> {
    check_id("tenant", id)?;
    if b.name.trim().is_empty() || b.name.len() > 200 {
        return Err(ApiError::BadRequest("name must be 1–200 characters".into()));
    }
    minor_exponent(&b.currency)?;
    let mut tx = db.begin_write().await?;
    let old: Option<(String,)> = sqlx::query_as("SELECT currency FROM tenants WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
    if let Some((cur,)) = &old
        && *cur != b.currency
    {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM invoices WHERE tenant = $1 AND status = 'issued'").bind(id).fetch_one(&mut *tx).await?;
        if n > 0 {
            return Err(ApiError::Conflict(format!("tenant {id} has issued invoices in {cur}; its currency cannot change")));
        }
    }
    sqlx::query("INSERT INTO tenants (id, name, currency, created_us) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO UPDATE SET name = excluded.name, currency = excluded.currency")
        .bind(id)
        .bind(b.name.trim())
        .bind(&b.currency)
        .bind(now_us())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

async fn get_tenant_row(state: &AppState, id: &str) -> Result<Tenant> {
    let row: Option<(String, String, String, i64)> =
        sqlx::query_as("SELECT id, name, currency, created_us FROM tenants WHERE id = $1").bind(id).fetch_optional(&state.db.pool).await?;
    let (id, name, currency, created) = row.ok_or_else(|| ApiError::NotFound("no such tenant".into()))?;
    Ok(Tenant { id, name, currency, created: format_time(created) })
}

pub async fn get_tenant(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance, Role::Ops])?;
    who.may_see(&id, "tenant")?;
    ok_json(&get_tenant_row(&state, &id).await?)
}

pub async fn list_tenants(req: HttpRequest, state: web::Data<AppState>, page: web::Query<Page>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Finance, Role::Ops])?;
    let (limit, offset) = page.get()?;
    let rows: Vec<(String, String, String, i64)> =
        sqlx::query_as("SELECT id, name, currency, created_us FROM tenants ORDER BY id LIMIT $1 OFFSET $2").bind(limit).bind(offset).fetch_all(&state.db.pool).await?;
    let out: Vec<Tenant> = rows.into_iter().map(|(id, name, currency, c)| Tenant { id, name, currency, created: format_time(c) }).collect();
    ok_json(&out)
}

pub async fn put_host(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Ops])?;
    upsert_host(&state.db, &id, &json_body(&body)?).await?;
    ok_json(&host_rows(&state, Some(&id), (1, 0)).await?.remove(0))
}

pub async fn upsert_host(db: &Db, id: &str, b: &HostBody) -> Result<()> {
    check_id("host", id)?;
    check_id("region", &b.region)?;
    let bad = |m: &str| Err(ApiError::BadRequest(format!("host {id}: {m}")));
    if !(1.0..=5.0).contains(&b.pue) {
        return bad("pue must be between 1.0 and 5.0");
    }
    if !(0.0..=1e6).contains(&b.embodied_kgco2e) {
        return bad("embodied_kgco2e must be between 0 and 1,000,000");
    }
    if !(b.lifetime_years > 0.0 && b.lifetime_years <= 30.0) {
        return bad("lifetime_years must be above 0 and at most 30");
    }
    if !(1..=100_000).contains(&b.vcpus) || !(1..=1 << 40).contains(&b.memory_mib) {
        return bad("vcpus and memory_mib must be positive");
    }
    let mut tx = db.begin_write().await?;
    sqlx::query(
        "INSERT INTO hosts (id, region, pue_milli, embodied_gco2e, lifetime_s, vcpus, memory_mib, created_us) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
         ON CONFLICT (id) DO UPDATE SET region = excluded.region, pue_milli = excluded.pue_milli, embodied_gco2e = excluded.embodied_gco2e, \
         lifetime_s = excluded.lifetime_s, vcpus = excluded.vcpus, memory_mib = excluded.memory_mib",
    )
    .bind(id)
    .bind(&b.region)
    .bind((b.pue * 1000.0).round() as i64)
    .bind((b.embodied_kgco2e * 1000.0).round() as i64)
    .bind((b.lifetime_years * YEAR_S).round() as i64)
    .bind(b.vcpus)
    .bind(b.memory_mib)
    .bind(now_us())
    .execute(&mut *tx)
    .await?;
    // A host's region groups usage and prices it.
    crate::db::bump_generation(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

async fn host_rows(state: &AppState, id: Option<&str>, (limit, offset): (i64, i64)) -> Result<Vec<Host>> {
    let rows: Vec<(String, String, i64, i64, i64, i64, i64)> =
        sqlx::query_as("SELECT id, region, pue_milli, embodied_gco2e, lifetime_s, vcpus, memory_mib FROM hosts WHERE ($1 = '' OR id = $1) ORDER BY id LIMIT $2 OFFSET $3")
            .bind(id.unwrap_or(""))
            .bind(limit)
            .bind(offset)
            .fetch_all(&state.db.pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(id, region, pue, emb, life, vcpus, memory_mib)| Host {
            id,
            region,
            pue: pue as f64 / 1000.0,
            embodied_kgco2e: emb as f64 / 1000.0,
            lifetime_years: (life as f64 / YEAR_S * 1000.0).round() / 1000.0,
            vcpus,
            memory_mib,
        })
        .collect())
}

pub async fn list_hosts(req: HttpRequest, state: web::Data<AppState>, page: web::Query<Page>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Ops, Role::Finance, Role::Placement])?;
    ok_json(&host_rows(&state, None, page.get()?).await?)
}

pub async fn put_vm(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Ops])?;
    upsert_vm(&state.db, &id, &json_body(&body)?).await?;
    ok_json(&vm_row(&state, &id).await?)
}

pub async fn upsert_vm(db: &Db, id: &str, b: &VmBody) -> Result<()> {
    check_id("VM", id)?;
    check_id("tenant", &b.tenant)?;
    if b.flavor.is_empty() || b.flavor.len() > 128 {
        return Err(ApiError::BadRequest(format!("VM {id}: flavor must be 1–128 characters")));
    }
    if !(1..=100_000).contains(&b.vcpus) || b.memory_mib < 0 {
        return Err(ApiError::BadRequest(format!("VM {id}: vcpus must be positive and memory_mib not negative")));
    }
    let at = match &b.at {
        Some(s) => parse_time("at", s)?,
        None => now_us(),
    };
    let mut tx = db.begin_write().await?;
    let tenant: Option<(String,)> = sqlx::query_as("SELECT id FROM tenants WHERE id = $1").bind(&b.tenant).fetch_optional(&mut *tx).await?;
    if tenant.is_none() {
        return Err(ApiError::BadRequest(format!("unknown tenant {:?}: register it with PUT /v1/tenants/{}", b.tenant, b.tenant)));
    }
    let old: Option<(String, Option<i64>)> = sqlx::query_as("SELECT tenant, deleted_us FROM vms WHERE id = $1").bind(id).fetch_optional(&mut *tx).await?;
    match &old {
        Some((t, _)) if *t != b.tenant => return Err(ApiError::Conflict(format!("VM {id} belongs to tenant {t}; a VM's tenant never changes"))),
        Some((_, Some(_))) => return Err(ApiError::Conflict(format!("VM {id} was deleted; register a new VM id"))),
        _ => {}
    }
    sqlx::query(
        "INSERT INTO vms (id, tenant, flavor, vcpus, memory_mib, created_us) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (id) DO UPDATE SET flavor = excluded.flavor, vcpus = excluded.vcpus, memory_mib = excluded.memory_mib",
    )
    .bind(id)
    .bind(&b.tenant)
    .bind(&b.flavor)
    .bind(b.vcpus)
    .bind(b.memory_mib)
    .bind(at)
    .execute(&mut *tx)
    .await?;
    if let Some(host) = &b.host {
        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM hosts WHERE id = $1").bind(host).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(ApiError::BadRequest(format!("unknown host {host:?}: register it with PUT /v1/hosts/{host}")));
        }
        place(&mut tx, id, host, at).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// A whole registry in one file (`fairwatt registry import`): entries by id.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantBody>,
    #[serde(default)]
    pub hosts: BTreeMap<String, HostBody>,
    #[serde(default)]
    pub vms: BTreeMap<String, VmBody>,
}

impl RegistryFile {
    /// The registry implied by agent records: their hosts (in `region`,
    /// PUE 1.4, 64 vCPUs, 1,500 kgCO2e over 4 years, unless already given),
    /// their VMs placed where first seen, and their tenants in `currency`.
    /// For simulations, benchmarks and tests, where no control plane exists.
    pub fn from_records(records: &[IntervalRecord], region: &str, currency: &str) -> RegistryFile {
        let mut f = RegistryFile::default();
        for r in records {
            f.hosts.entry(r.host.to_string()).or_insert_with(|| HostBody { region: region.into(), pue: 1.4, embodied_kgco2e: 1500.0, lifetime_years: 4.0, vcpus: 64, memory_mib: 262_144 });
            for v in &r.vms {
                let tenant = v.tenant.as_ref().map_or_else(|| "default".to_string(), |t| t.to_string());
                f.tenants.entry(tenant.clone()).or_insert_with(|| TenantBody { name: tenant.clone(), currency: currency.into() });
                let (vcpus, memory_mib) = v.flavor.as_ref().map_or((1, 1024), |fl| (fl.vcpus.max(1) as i64, fl.memory_mib as i64));
                f.vms.entry(v.vm.to_string()).or_insert_with(|| VmBody {
                    tenant,
                    flavor: format!("{vcpus}c{}g", memory_mib / 1024),
                    vcpus,
                    memory_mib,
                    host: Some(r.host.to_string()),
                    at: Some(format_time(r.start.as_micros())),
                });
            }
        }
        f
    }
}

/// Registers tenants, then hosts, then VMs; stops at the first bad entry
/// (entries before it stay registered: each is an idempotent upsert, so
/// the fixed file can simply be imported again).
pub async fn import(db: &Db, f: &RegistryFile) -> Result<(usize, usize, usize)> {
    for (id, t) in &f.tenants {
        upsert_tenant(db, id, t).await?;
    }
    for (id, h) in &f.hosts {
        upsert_host(db, id, h).await?;
    }
    for (id, v) in &f.vms {
        upsert_vm(db, id, v).await?;
    }
    Ok((f.tenants.len(), f.hosts.len(), f.vms.len()))
}

/// Moves `vm` to `host` from `at`: closes the open placement on another
/// host (only forward in time) and opens one here. Returns whether it moved.
async fn place(tx: &mut sqlx::AnyConnection, vm: &str, host: &str, at: i64) -> Result<bool> {
    let open: Option<(String, i64)> = sqlx::query_as("SELECT host, from_us FROM vm_placements WHERE vm = $1 AND to_us IS NULL").bind(vm).fetch_optional(&mut *tx).await?;
    match open {
        Some((h, _)) if h == host => return Ok(false),
        Some((_, from)) if at <= from => return Ok(false),
        Some((_, from)) => {
            sqlx::query("UPDATE vm_placements SET to_us = $1 WHERE vm = $2 AND from_us = $3").bind(at).bind(vm).bind(from).execute(&mut *tx).await?;
        }
        None => {}
    }
    sqlx::query("INSERT INTO vm_placements (vm, host, from_us) VALUES ($1, $2, $3) ON CONFLICT (vm, from_us) DO NOTHING").bind(vm).bind(host).bind(at).execute(&mut *tx).await?;
    Ok(true)
}

pub async fn delete_vm(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Ops])?;
    let now = now_us();
    let mut tx = state.db.begin_write().await?;
    let done = sqlx::query("UPDATE vms SET deleted_us = $1 WHERE id = $2 AND deleted_us IS NULL").bind(now).bind(id.as_str()).execute(&mut *tx).await?;
    if done.rows_affected() == 0 {
        return Err(ApiError::NotFound("no such live VM".into()));
    }
    sqlx::query("UPDATE vm_placements SET to_us = $1 WHERE vm = $2 AND to_us IS NULL").bind(now).bind(id.as_str()).execute(&mut *tx).await?;
    tx.commit().await?;
    ok_json(&vm_row(&state, &id).await?)
}

async fn vm_row(state: &AppState, id: &str) -> Result<Vm> {
    type Row = (String, String, String, i64, i64, i64, Option<i64>);
    let row: Option<Row> =
        sqlx::query_as("SELECT id, tenant, flavor, vcpus, memory_mib, created_us, deleted_us FROM vms WHERE id = $1").bind(id).fetch_optional(&state.db.pool).await?;
    let (id, tenant, flavor, vcpus, memory_mib, created, deleted) = row.ok_or_else(|| ApiError::NotFound("no such VM".into()))?;
    let ps: Vec<(String, i64, Option<i64>)> = sqlx::query_as("SELECT host, from_us, to_us FROM vm_placements WHERE vm = $1 ORDER BY from_us").bind(&id).fetch_all(&state.db.pool).await?;
    let placements = ps.into_iter().map(|(host, f, t)| Placement { host, from: format_time(f), to: t.map(format_time) }).collect();
    Ok(Vm { id, tenant, flavor, vcpus, memory_mib, created: format_time(created), deleted: deleted.map(format_time), placements })
}

pub async fn get_vm(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance, Role::Ops, Role::Placement])?;
    let vm = vm_row(&state, &id).await?;
    who.may_see(&vm.tenant, "VM")?;
    ok_json(&vm)
}

pub async fn list_tenant_vms(req: HttpRequest, state: web::Data<AppState>, id: web::Path<String>, page: web::Query<Page>) -> Result<HttpResponse> {
    let who = authenticate(&state.db, &req).await?;
    who.require(&[Role::Tenant, Role::Finance, Role::Ops])?;
    who.may_see(&id, "tenant")?;
    let (limit, offset) = page.get()?;
    get_tenant_row(&state, &id).await?;
    let ids: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM vms WHERE tenant = $1 ORDER BY id LIMIT $2 OFFSET $3").bind(id.as_str()).bind(limit).bind(offset).fetch_all(&state.db.pool).await?;
    let mut out = Vec::with_capacity(ids.len());
    for (vm,) in ids {
        out.push(vm_row(&state, &vm).await?);
    }
    ok_json(&out)
}

/// Checks a batch's hosts and VMs against the registry inside the ingest
/// transaction, and records migrations the agents saw (a VM reported by a
/// host other than its current one, later than its placement began).
pub async fn check_batch(tx: &mut sqlx::AnyConnection, records: &[IntervalRecord]) -> Result<()> {
    let mut hosts: BTreeMap<&str, ()> = BTreeMap::new();
    // Per VM: the tenant claimed, its sightings (start → host) and the first record naming it.
    type Seen<'a> = (Option<&'a str>, BTreeMap<i64, &'a str>, usize);
    let mut vms: BTreeMap<&str, Seen> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        hosts.insert(r.host.as_str(), ());
        for v in &r.vms {
            let e = vms.entry(v.vm.as_str()).or_insert((None, BTreeMap::new(), i));
            if let Some(t) = &v.tenant {
                match e.0 {
                    Some(prev) if prev != t.as_str() => return Err(ApiError::BadRequest(format!("records[{i}]: VM {} is reported under tenants {prev} and {t}", v.vm))),
                    _ => e.0 = Some(t.as_str()),
                }
            }
            e.1.entry(r.start.as_micros()).or_insert(r.host.as_str());
        }
    }
    for host in hosts.keys() {
        let known: Option<(String,)> = sqlx::query_as("SELECT id FROM hosts WHERE id = $1").bind(*host).fetch_optional(&mut *tx).await?;
        if known.is_none() {
            return Err(ApiError::BadRequest(format!("unknown host {host:?}: register it with PUT /v1/hosts/{host} before its agent ships")));
        }
    }
    for (vm, (claimed, sightings, first)) in &vms {
        let row: Option<(String, Option<i64>)> = sqlx::query_as("SELECT tenant, deleted_us FROM vms WHERE id = $1").bind(*vm).fetch_optional(&mut *tx).await?;
        let Some((tenant, deleted)) = row else {
            return Err(ApiError::BadRequest(format!("records[{first}]: unknown VM {vm:?}: register it with PUT /v1/vms/{vm}")));
        };
        if let Some(c) = claimed
            && *c != tenant
        {
            return Err(ApiError::BadRequest(format!("records[{first}]: VM {vm} belongs to tenant {tenant}, not {c}")));
        }
        if let Some(d) = deleted
            && sightings.keys().next_back().is_some_and(|s| *s >= d)
        {
            return Err(ApiError::BadRequest(format!("records[{first}]: VM {vm} was deleted at {} but is reported after it", format_time(d))));
        }
        // Only the changes of host matter: one look-up per VM in the usual batch.
        let mut last: Option<&str> = None;
        for (at, host) in sightings {
            if last != Some(*host) {
                place(&mut *tx, vm, host, *at).await?;
                last = Some(*host);
            }
        }
    }
    Ok(())
}

/// The registry's tenant of each VM in `vms` (the ledger's owner).
pub async fn tenants_of(pool: &sqlx::AnyPool, vms: &[&str]) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for vm in vms {
        let row: Option<(String,)> = sqlx::query_as("SELECT tenant FROM vms WHERE id = $1").bind(*vm).fetch_optional(pool).await?;
        if let Some((t,)) = row {
            out.insert(vm.to_string(), t);
        }
    }
    Ok(out)
}
