//! `POST /v1/placement/decide` over HTTP on a registered fleet with ledger
//! power: it picks the host the VM adds least power to, reserves the
//! capacity it hands out, frees it when the VM shows up, and says why when
//! nothing fits.

use std::net::SocketAddr;

use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::worker::{Rollup, add_to_rollup};
use fairwatt_billing_api::{Db, Role, Settings};
use serde_json::{Value, json};

mod common;

struct App {
    addr: SocketAddr,
    db: Db,
    _dir: tempfile::TempDir,
    ops: String,
    placement: String,
}

async fn spawn() -> App {
    let common::Spawned { addr, db, dir } = common::spawn(Settings::default()).await;
    let ops = create_key(&db, Role::Ops, None).await.unwrap().secret;
    let placement = create_key(&db, Role::Placement, None).await.unwrap().secret;
    App { addr, db, _dir: dir, ops, placement }
}

async fn call(app: &App, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
    common::call(app.addr, method, path, key, body).await
}

async fn ok(app: &App, method: &str, path: &str, key: &str, body: Value) -> Value {
    let (s, v) = call(app, method, path, key, body).await;
    assert!(s == 200 || s == 201, "{method} {path}: {s} {v}");
    v
}

/// Three 16-vCPU hosts in DE: `lean` and `hot` each run an 8-vCPU VM, and
/// over the last hour the ledger attributes 80 W of dynamic power on lean
/// and 160 W on hot; `empty` runs nothing and idles at 90 W (measured when
/// it last ran). One 32-vCPU host in FR.
async fn fleet(app: &App) {
    ok(app, "PUT", "/v1/tenants/acme", &app.ops, json!({"name": "Acme", "currency": "EUR"})).await;
    for (h, region, vcpus) in [("empty", "DE", 16), ("hot", "DE", 16), ("lean", "DE", 16), ("paris", "FR", 32)] {
        ok(app, "PUT", &format!("/v1/hosts/{h}"), &app.ops, json!({"region": region, "pue": 1.2, "embodied_kgco2e": 1000, "lifetime_years": 4, "vcpus": vcpus, "memory_mib": 65536})).await;
    }
    for (vm, host) in [("vm-hot", "hot"), ("vm-lean", "lean")] {
        ok(app, "PUT", &format!("/v1/vms/{vm}"), &app.ops, json!({"tenant": "acme", "flavor": "m8", "vcpus": 8, "memory_mib": 16384, "host": host})).await;
    }
    let hour = 1_790_000_000_000_000i64 / 3_600_000_000 * 3_600_000_000;
    let mut conn = app.db.pool.acquire().await.unwrap();
    // Three hours' window: 80 W for one hour averages to 80/3 W; the ratios are what matter.
    for (host, vm, dynamic_w, idle_w) in [("lean", "vm-lean", 80.0, 95.0), ("hot", "vm-hot", 160.0, 95.0), ("empty", "gone", 0.0, 90.0)] {
        let uj = |w: f64| (w * 3600.0 * 1e6) as i64;
        add_to_rollup(&mut conn, Rollup::Hourly, hour, host, vm, "acme", "package-0", true, uj(dynamic_w), uj(idle_w)).await.unwrap();
    }
    sqlx::query("UPDATE ledger_generation SET gen = gen + 1").execute(&app.db.pool).await.unwrap();
}

#[tokio::test]
async fn decides_by_ledger_power_reserves_and_explains_no_capacity() {
    let app = spawn().await;
    fleet(&app).await;
    let d = ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 4, "memory_mib": 8192, "region": "DE", "vm": "vm-new"})).await;
    assert_eq!(d["host"], "lean", "{d}");
    assert_eq!(d["candidates"], 3);
    // lean: 80/3 W over 8 vCPUs → 3.33 W per vCPU × 4.
    assert!((d["added_w"].as_f64().unwrap() - 80.0 / 3.0 / 8.0 * 4.0).abs() < 1e-6, "{d}");
    // The reservation holds: lean has 4 vCPUs left, so an 8-vCPU request goes
    // to hot (cheaper than waking empty at 30 W idle + its dynamic share).
    let d2 = ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 8, "memory_mib": 8192, "region": "DE"})).await;
    assert_eq!(d2["host"], "hot", "{d2}");
    // Now the DE fleet has empty (16) and lean (4) free: 16 fits only empty.
    let d3 = ok(&app, "POST", "/v1/placement/decide", &app.ops, json!({"vcpus": 16, "memory_mib": 1024, "region": "DE"})).await;
    assert_eq!(d3["host"], "empty");
    let (s, e) = call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 8, "memory_mib": 1024, "region": "DE"})).await;
    assert_eq!(s, 409, "{e}");
    assert!(e["message"].as_str().unwrap().contains("no host has 8 vCPUs and 1024 MiB free now (most free: lean with 4 vCPUs"), "{e}");
    // Once vm-new is registered on lean, its reservation gives way to the registry's count (same total).
    ok(&app, "PUT", "/v1/vms/vm-new", &app.ops, json!({"tenant": "acme", "flavor": "m4", "vcpus": 4, "memory_mib": 8192, "host": "lean"})).await;
    let d4 = ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 4, "memory_mib": 1024, "region": "DE"})).await;
    assert_eq!(d4["host"], "lean", "4 vCPUs left on lean, counted once: {d4}");
    // Larger than any host, an unknown region, a bad body, a bad policy.
    let (s, e) = call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 64, "memory_mib": 1024})).await;
    assert_eq!(s, 409);
    assert!(e["message"].as_str().unwrap().contains("larger than any host (largest: paris with 32 vCPUs"), "{e}");
    let (s, e) = call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 1, "memory_mib": 1, "region": "US"})).await;
    assert_eq!((s, e["message"].as_str().unwrap().contains("no hosts in region US")), (409, true), "{e}");
    assert_eq!(call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": "four"})).await.0, 400);
    assert_eq!(call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 1, "memory_mib": 1, "policy": "magic"})).await.0, 400);
    assert_eq!(call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 0, "memory_mib": 1})).await.0, 400);
    // First fit ignores power: the first host by id with room.
    let ff = ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 1, "memory_mib": 1, "region": "FR", "policy": "first-fit"})).await;
    assert_eq!(ff["host"], "paris");
}

#[tokio::test]
async fn a_served_model_decides_by_default_and_rl_without_one_is_refused() {
    let plain = spawn().await;
    fleet(&plain).await;
    let (s, e) = call(&plain, "POST", "/v1/placement/decide", &plain.placement, json!({"vcpus": 1, "memory_mib": 1024, "policy": "rl"})).await;
    assert_eq!(s, 400, "{e}");
    assert!(e["message"].as_str().unwrap().contains("--placement-model"), "{e}");

    // A tiny trained agent, served.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("q.model");
    let mut cfg = fairwatt_placement::rl::AgentConfig::by_name("q-table").unwrap();
    if let fairwatt_placement::rl::AgentConfig::QTable(c) = &mut cfg {
        c.episodes = 1;
    }
    let mut agent = fairwatt_placement::rl::RlAgent::new(cfg);
    agent.train(&[fairwatt_placement::rl::Scenario::synthetic(10, 20, 12, 1)], &mut |_, _| {}).unwrap();
    agent.save(&path).unwrap();
    let model = fairwatt_placement::rl::live::LiveAgent::spawn(&path).unwrap();
    let common::Spawned { addr, db, dir: store } = common::spawn(Settings { placement_model: Some(std::sync::Arc::new(model)), ..Settings::default() }).await;
    let ops = create_key(&db, Role::Ops, None).await.unwrap().secret;
    let placement = create_key(&db, Role::Placement, None).await.unwrap().secret;
    let app = App { addr, db, _dir: store, ops, placement };
    fleet(&app).await;
    let d = ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 8, "memory_mib": 8192, "region": "DE"})).await;
    assert_eq!(d["policy"], "rl-q-table", "{d}");
    // 8 vCPUs fit empty, hot or lean (8 free each).
    assert!(["empty", "hot", "lean"].contains(&d["host"].as_str().unwrap()), "{d}");
    assert_eq!(d["candidates"], 3);
    // Another policy may still be asked for; no capacity is still a 409.
    assert_eq!(ok(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 1, "memory_mib": 1, "region": "FR", "policy": "first-fit"})).await["host"], "paris");
    assert_eq!(call(&app, "POST", "/v1/placement/decide", &app.placement, json!({"vcpus": 64, "memory_mib": 1})).await.0, 409);
}
