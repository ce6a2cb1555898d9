//! The authorization matrix: every route of the API's table × every role
//! × an object of the caller's own tenant and of another tenant. A role
//! the route does not name gets 403; a tenant key reaching another
//! tenant's object gets 404; everyone else gets past authorization (no
//! 401/403/404, no 5xx). No key, or an unknown one, is 401 everywhere.

use std::net::TcpListener;

use fairwatt_billing_api::auth::create_key;
use fairwatt_billing_api::openapi::{PUBLIC, ROUTES};
use fairwatt_billing_api::{Role, serve};
use serde_json::{Value, json};

mod common;
use common::request;

fn body_for(method: &str, path: &str, tenant: &str) -> Value {
    match (method, path) {
        ("POST", "/v1/ingest") => json!({"batch_id": "m-1", "records": []}),
        ("PUT", "/v1/tenants/{id}") => json!({"name": "Renamed", "currency": "EUR"}),
        ("POST", "/v1/tenants/{id}/invoices") | ("POST", "/v1/invoice-runs") => json!({"period": "2026-10"}),
        ("POST", "/v1/tenants/{id}/instruments") => json!({"id": format!("i-{}", fastrand()), "kind": "ppa", "from": "2026-10-01T00:00:00Z", "to": "2026-11-01T00:00:00Z", "gco2e_per_kwh": 10}),
        ("PUT", "/v1/hosts/{id}") => json!({"region": "DE", "pue": 1.3, "embodied_kgco2e": 1000, "lifetime_years": 4, "vcpus": 16, "memory_mib": 65536}),
        ("PUT", "/v1/vms/{id}") => json!({"tenant": tenant, "flavor": "m1", "vcpus": 1, "memory_mib": 1024}),
        ("POST", "/v1/tariffs") => json!({"id": format!("t-{}", fastrand()), "region": format!("R{}", fastrand()), "currency": "EUR", "price_per_kwh": "0.2", "valid_from": "2026-01-01T00:00:00Z"}),
        ("POST", "/v1/invoices/{id}/credit-notes") => json!({"reason": "matrix"}),
        ("POST", "/v1/placement/decide") => json!({"vcpus": 1, "memory_mib": 512}),
        _ => Value::Null,
    }
}

fn fastrand() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn query_for(path: &str) -> &'static str {
    match path {
        "/v1/usage" | "/v1/placement/power" => "?from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z",
        "/v1/carbon/intensity" => "?region=DE&from=2026-10-01T00:00:00Z&to=2026-10-02T00:00:00Z",
        "/v1/exports/focus" => "?period=2026-10",
        _ => "",
    }
}

#[tokio::test]
async fn every_role_on_every_route_for_own_and_other_tenants() {
    let dir = tempfile::tempdir().unwrap();
    let db = common::test_db(dir.path()).await;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, db.clone()).unwrap());
    let mut keys = std::collections::BTreeMap::new();
    for role in Role::ALL {
        let tenant = (role == Role::Tenant).then_some("acme");
        keys.insert(role.as_str(), create_key(&db, role, tenant).await.unwrap().secret);
    }
    let (ops, finance) = (keys["ops"].clone(), keys["finance"].clone());
    let send = |method: &'static str, path: String, key: Option<String>, body: Value| async move {
        let b = if body.is_null() { Vec::new() } else { body.to_string().into_bytes() };
        let (s, _, out) = request(addr, method, &path, key.as_deref(), &[], &b).await;
        (s, String::from_utf8_lossy(&out).to_string())
    };
    for t in ["acme", "beta"] {
        assert_eq!(send("PUT", format!("/v1/tenants/{t}"), Some(ops.clone()), json!({"name": t, "currency": "EUR"})).await.0, 200);
    }
    assert_eq!(send("PUT", "/v1/hosts/h1".into(), Some(ops.clone()), body_for("PUT", "/v1/hosts/{id}", "")).await.0, 200);
    let mut invoice = std::collections::BTreeMap::new();
    for t in ["acme", "beta"] {
        assert_eq!(send("PUT", format!("/v1/vms/{t}-1"), Some(ops.clone()), json!({"tenant": t, "flavor": "m1", "vcpus": 1, "memory_mib": 1024, "host": "h1"})).await.0, 200);
        let (s, b) = send("POST", format!("/v1/tenants/{t}/invoices"), Some(finance.clone()), json!({"period": "2026-09", "issue": true})).await;
        assert_eq!(s, 201, "{b}");
        let v: Value = serde_json::from_str(&b).unwrap();
        invoice.insert(t, v["id"].as_str().unwrap().to_string());
    }

    let mut checked = 0;
    for route in ROUTES {
        for role in Role::ALL {
            for (target, own) in [("acme", true), ("beta", false)] {
                let id = if route.path.starts_with("/v1/tenants/") {
                    target.to_string()
                } else if route.path.starts_with("/v1/invoices/") {
                    invoice[target].clone()
                } else if route.path == "/v1/vms/{id}" && route.method == "DELETE" {
                    // A VM of its own for each delete, so every call finds one alive.
                    let vm = format!("del-{}", fastrand());
                    assert_eq!(send("PUT", format!("/v1/vms/{vm}"), Some(ops.clone()), json!({"tenant": target, "flavor": "m1", "vcpus": 1, "memory_mib": 1024})).await.0, 200);
                    vm
                } else if route.path.starts_with("/v1/vms/") {
                    format!("{target}-1")
                } else {
                    "h1".to_string()
                };
                let path = format!("{}{}", route.path.replace("{id}", &id), query_for(route.path));
                let body = body_for(route.method, route.path, target);
                let (s, b) = send(route.method, path.clone(), Some(keys[role.as_str()].clone()), body.clone()).await;
                let what = format!("{} {path} as {role} ({}): {s} {b}", route.method, if own { "own" } else { "other" });
                if !route.roles.contains(&role) {
                    assert_eq!(s, 403, "{what}");
                } else if role == Role::Tenant && route.scoped && !own {
                    assert_eq!(s, 404, "{what}");
                } else {
                    assert!(!matches!(s, 401 | 403 | 404) && s < 500, "{what}");
                }
                checked += 1;
                if own && role == Role::Ops {
                    assert_eq!(send(route.method, path.clone(), None, body.clone()).await.0, 401, "{} {path} without a key", route.method);
                    assert_eq!(send(route.method, path, Some("fw_0000".into()), body).await.0, 401);
                }
            }
        }
    }
    assert_eq!(checked, ROUTES.len() * 10);

    for (m, p) in PUBLIC {
        let (s, b) = send(m, p.to_string(), None, Value::Null).await;
        assert_eq!(s, 200, "{m} {p}: {b}");
    }
    // The spec lists exactly the routes of the table.
    let (_, spec) = send("GET", "/openapi.json".into(), None, Value::Null).await;
    let spec: Value = serde_json::from_str(&spec).unwrap();
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."), "{spec}");
    let mut listed: Vec<String> = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for m in item.as_object().unwrap().keys() {
            listed.push(format!("{} {path}", m.to_uppercase()));
        }
    }
    let mut table: Vec<String> = ROUTES.iter().map(|r| format!("{} {}", r.method, r.path)).collect();
    listed.sort();
    table.sort();
    assert_eq!(listed, table);
    assert!(spec["components"]["schemas"]["Invoice"].is_object() && spec["components"]["schemas"]["Line"].is_object(), "nested schemas are included");
    // /metrics counted the matrix's requests by route pattern.
    let (_, m) = send("GET", "/metrics".into(), None, Value::Null).await;
    assert!(m.contains("route=\"/v1/invoices/{id}\"") && m.contains("status=\"403\""), "{m}");
    assert!(m.contains("fairwatt_api_intervals_unattributed"), "{m}");
}
