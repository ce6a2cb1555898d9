//! The agent's HTTP endpoint: `/metrics` (Prometheus text format) and
//! `/healthz` (sensor statuses as JSON). One worker thread is plenty and
//! keeps the agent's footprint small.

use std::sync::{Arc, RwLock};

use actix_web::{App, HttpResponse, HttpServer, web};
use fairwatt_core::SensorStatus;

use super::metrics::Metrics;

#[derive(Clone)]
pub struct Shared {
    pub metrics: Arc<Metrics>,
    pub sensors: Arc<RwLock<Vec<SensorStatus>>>,
}

async fn metrics(s: web::Data<Shared>) -> HttpResponse {
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(s.metrics.encode())
}

async fn healthz(s: web::Data<Shared>) -> HttpResponse {
    let sensors = s.sensors.read().map(|v| v.clone()).unwrap_or_default();
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok", "sensors": sensors }))
}

/// Binds and returns the server with the addresses it actually listens on (port 0 picks one).
pub fn build(shared: Shared, listen: &str) -> std::io::Result<(actix_web::dev::Server, Vec<std::net::SocketAddr>)> {
    let data = web::Data::new(shared);
    let bound = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
            .route("/healthz", web::get().to(healthz))
    })
    .workers(1)
    .disable_signals()
    .bind(listen)?;
    let addrs = bound.addrs();
    Ok((bound.run(), addrs))
}
