//! `POST /v1/placement/decide` (placement, ops): the host a new VM should
//! go to, from the registered fleet (vCPUs and memory held by live VMs and
//! by this endpoint's recent decisions) and the power the ledger attributes
//! on each host over the last hours with data. A request no host can take
//! gets 409 saying which limit and what the best host has free.
//!
//! Each decision reserves its vCPUs and memory on the host for
//! [`RESERVATION_S`] or until the VM shows up placed in the registry, so
//! concurrent requests do not all land on the same last slot. The fleet's
//! capacity is re-read only when the registry's generation moves (a
//! trigger bumps it with every host, VM or placement change).

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::{HttpRequest, HttpResponse, web};
use fairwatt_placement::live::{self, LiveHost, LivePolicy};
use serde::{Deserialize, Serialize};

use crate::app::AppState;
use crate::auth::{Role, authenticate};
use crate::error::{ApiError, Result};
use crate::params::{HOUR_US, check_id, format_time, json_body};

/// How long a decision holds its capacity without the VM appearing.
pub const RESERVATION_S: i64 = 600;
/// The ledger window the power figures average over.
const WINDOW_HOURS: i64 = 3;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecideBody {
    pub vcpus: u32,
    pub memory_mib: u64,
    /// Only hosts in this region.
    #[serde(default)]
    pub region: Option<String>,
    /// The VM's id, when known: its reservation ends once it is placed.
    #[serde(default)]
    pub vm: Option<String>,
    /// energy (the default without a model), first-fit, best-fit, or rl
    /// (the served model; the default when one is loaded).
    #[serde(default)]
    pub policy: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Decision {
    pub host: String,
    pub region: String,
    pub policy: String,
    /// Power the VM is estimated to add on that host, watts.
    pub added_w: f64,
    /// Hosts that could have taken it.
    pub candidates: usize,
    pub reserved_until: String,
}

struct Reservation {
    host: String,
    vcpus: u32,
    mib: u64,
    until_us: i64,
    vm: Option<String>,
}

/// Hosts with the vCPUs and MiB live VMs hold on them.
type Capacity = Vec<(String, String, i64, i64, i64, i64)>;

/// Capacity held by recent decisions; the registry's capacity cached by
/// registry generation and the ledger's power per host by ledger generation.
#[derive(Default)]
pub struct Placement {
    cache: bool,
    model: Option<std::sync::Arc<dyn live::LiveChooser>>,
    reservations: Mutex<Vec<Reservation>>,
    capacity: Mutex<Option<(i64, std::sync::Arc<Capacity>)>>,
    power: Mutex<Option<(i64, std::sync::Arc<HashMap<String, (f64, f64)>>)>>,
}

impl Placement {
    pub fn new(cache: bool, model: Option<std::sync::Arc<dyn live::LiveChooser>>) -> Placement {
        Placement { cache, model, ..Placement::default() }
    }
}

pub async fn decide(req: HttpRequest, state: web::Data<AppState>, body: web::Bytes) -> Result<HttpResponse> {
    authenticate(&state.db, &req).await?.require(&[Role::Placement, Role::Ops])?;
    let b: DecideBody = json_body(&body)?;
    if let Some(vm) = &b.vm {
        check_id("VM", vm)?;
    }
    let model = &state.placement.model;
    let name = b.policy.as_deref().unwrap_or(if model.is_some() { "rl" } else { "energy" });
    let now = crate::db::now_us();
    let mut hosts = fleet(&state, now).await?;
    let request = live::Request { vcpus: b.vcpus, memory_mib: b.memory_mib, region: b.region.clone() };
    let (picked, policy) = if name == "rl" {
        let agent = model.as_ref().ok_or_else(|| ApiError::BadRequest("this server has no placement model: start it with `fairwatt serve --placement-model FILE` (from `fairwatt place train`)".into()))?;
        (live::decide_with(&hosts, &request, agent.as_ref()), agent.name())
    } else {
        let p = LivePolicy::by_name(name).map_err(|e| ApiError::BadRequest(format!("{e}, or rl with a model loaded")))?;
        (live::decide(&hosts, &request, p), p.as_str().to_string())
    };
    let pick = picked.map_err(|e| match e {
        fairwatt_placement::PlaceError::NoCapacity(m) => ApiError::Conflict(format!("no capacity: {m}")),
        fairwatt_placement::PlaceError::Model(m) => ApiError::Unavailable(format!("placement model: {m}")),
        other => ApiError::BadRequest(other.to_string()),
    })?;
    let h = hosts.swap_remove(pick.host);
    let until = now + RESERVATION_S * 1_000_000;
    state.placement.reservations.lock().expect("reservations lock").push(Reservation { host: h.id.clone(), vcpus: b.vcpus, mib: b.memory_mib, until_us: until, vm: b.vm.clone() });
    let out = Decision { host: h.id, region: h.region, policy, added_w: pick.added_w, candidates: pick.candidates, reserved_until: format_time(until) };
    Ok(HttpResponse::Ok().json(out))
}

/// Every host with what is taken on it now and its recent power.
async fn fleet(state: &AppState, now: i64) -> Result<Vec<LiveHost>> {
    let pool = &state.db.pool;
    // Both generations in one round trip: each costs a hop to SQLite's
    // connection thread, most of a cached decision's time.
    let (generation, ledger_generation): (i64, i64) =
        sqlx::query_as("SELECT r.gen, l.gen FROM registry_generation r, ledger_generation l WHERE r.id = 1 AND l.id = 1").fetch_one(pool).await?;
    let cached = state.placement.capacity.lock().expect("capacity lock").as_ref().filter(|(g, _)| state.placement.cache && *g == generation).map(|(_, c)| c.clone());
    let rows = match cached {
        Some(rows) => rows,
        None => {
            let rows: Capacity = sqlx::query_as(
                "SELECT h.id, h.region, h.vcpus, h.memory_mib, CAST(COALESCE(SUM(v.vcpus), 0) AS BIGINT), CAST(COALESCE(SUM(v.memory_mib), 0) AS BIGINT) FROM hosts h \
                 LEFT JOIN vm_placements p ON p.host = h.id AND p.to_us IS NULL LEFT JOIN vms v ON v.id = p.vm AND v.deleted_us IS NULL \
                 GROUP BY h.id, h.region, h.vcpus, h.memory_mib ORDER BY h.id",
            )
            .fetch_all(pool)
            .await?;
            // The registry moved: reservations whose VM is now placed are
            // counted by it and end.
            let named: Vec<String> = state.placement.reservations.lock().expect("reservations lock").iter().filter_map(|r| r.vm.clone()).collect();
            let mut placed = std::collections::HashSet::new();
            for vm in named {
                let open: Option<(String,)> = sqlx::query_as("SELECT vm FROM vm_placements WHERE vm = $1 AND to_us IS NULL").bind(&vm).fetch_optional(pool).await?;
                if open.is_some() {
                    placed.insert(vm);
                }
            }
            state.placement.reservations.lock().expect("reservations lock").retain(|r| !r.vm.as_ref().is_some_and(|v| placed.contains(v)));
            let rows = std::sync::Arc::new(rows);
            *state.placement.capacity.lock().expect("capacity lock") = Some((generation, rows.clone()));
            rows
        }
    };
    let power = power(state, ledger_generation).await?;
    let mut res = state.placement.reservations.lock().expect("reservations lock");
    res.retain(|r| r.until_us > now);
    let mut held: HashMap<&str, (u32, u64)> = HashMap::new();
    for r in res.iter() {
        let e = held.entry(r.host.as_str()).or_default();
        *e = (e.0 + r.vcpus, e.1 + r.mib);
    }
    Ok(rows
        .iter()
        .map(|(id, region, vcpus, mib, used_v, used_m)| {
            let (rv, rm) = held.get(id.as_str()).copied().unwrap_or_default();
            let (idle_w, dynamic_w) = power.get(id).map_or((None, None), |(i, d)| (Some(*i), Some(*d)));
            LiveHost {
                id: id.clone(),
                region: region.clone(),
                vcpus: (*vcpus).max(0) as u32,
                memory_mib: (*mib).max(0) as u64,
                used_vcpus: (*used_v).max(0) as u32 + rv,
                used_mib: (*used_m).max(0) as u64 + rm,
                idle_w,
                dynamic_w,
            }
        })
        .collect())
}

/// Idle and attributed dynamic watts per host over the last
/// [`WINDOW_HOURS`] hours with data, recomputed when the ledger moves.
async fn power(state: &AppState, generation: i64) -> Result<std::sync::Arc<HashMap<String, (f64, f64)>>> {
    let pool = &state.db.pool;
    if let Some((g, map)) = state.placement.power.lock().expect("power lock").as_ref()
        && *g == generation
    {
        return Ok(map.clone());
    }
    let last: Option<(Option<i64>,)> = sqlx::query_as("SELECT MAX(hour_us) FROM usage_hourly").fetch_optional(pool).await?;
    let mut map = HashMap::new();
    if let Some((Some(last),)) = last {
        let (from, to) = (last - (WINDOW_HOURS - 1) * HOUR_US, last + HOUR_US);
        let secs = (to - from) as f64 / 1e6;
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT host, CAST(SUM(idle_uj) AS BIGINT), CAST(SUM(dynamic_uj) AS BIGINT) FROM usage_hourly WHERE hour_us >= $1 AND hour_us < $2 AND top_level = 1 GROUP BY host",
        )
        .bind(from)
        .bind(to)
        .fetch_all(pool)
        .await?;
        for (host, idle, dynamic) in rows {
            map.insert(host, (idle as f64 / 1e6 / secs, dynamic as f64 / 1e6 / secs));
        }
    }
    let map = std::sync::Arc::new(map);
    *state.placement.power.lock().expect("power lock") = Some((generation, map.clone()));
    Ok(map)
}
