//! `/metrics` for Prometheus: requests by route pattern, method and status,
//! their latency, and the store's backlog (intervals waiting for the
//! attribution worker), read at scrape time.
//!
//! Routes are labelled by their pattern (`/v1/invoices/{id}`), never the
//! raw path, so ids do not blow up the series count.

use std::sync::atomic::AtomicU64;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{HttpResponse, web};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use crate::app::AppState;

type Labels = Vec<(String, String)>;

pub struct Metrics {
    registry: Registry,
    requests: Family<Labels, Counter>,
    latency: Family<Labels, Histogram, fn() -> Histogram>,
    unattributed: Gauge<i64, std::sync::atomic::AtomicI64>,
    ledger_rows: Gauge<i64, std::sync::atomic::AtomicI64>,
    invoices_issued: Gauge<i64, std::sync::atomic::AtomicI64>,
    scrape_errors: Counter<u64, AtomicU64>,
}

fn latency_buckets() -> Histogram {
    Histogram::new([0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0])
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("fairwatt_api");
        let requests = Family::<Labels, Counter>::default();
        let latency = Family::<Labels, Histogram, fn() -> Histogram>::new_with_constructor(latency_buckets as fn() -> Histogram);
        let (unattributed, ledger_rows, invoices_issued) = (Gauge::default(), Gauge::default(), Gauge::default());
        let scrape_errors = Counter::default();
        registry.register("http_requests", "HTTP requests by route pattern, method and status", requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request latency by route pattern", latency.clone());
        registry.register("intervals_unattributed", "Ingested intervals the attribution worker has not split yet", unattributed.clone());
        registry.register("usage_hourly_rows", "Rows in the ledger's hourly rollups", ledger_rows.clone());
        registry.register("invoices_issued", "Issued invoices and credit notes", invoices_issued.clone());
        registry.register("scrape_errors", "Scrapes whose store queries failed", scrape_errors.clone());
        Metrics { registry, requests, latency, unattributed, ledger_rows, invoices_issued, scrape_errors }
    }
}

/// Middleware: counts and times every request.
pub async fn track(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let route = req.match_pattern().unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let res = next.call(req).await?;
    if let Some(state) = state {
        let status = res.status().as_u16().to_string();
        state.metrics.requests.get_or_create(&vec![("route".into(), route.clone()), ("method".into(), method), ("status".into(), status)]).inc();
        state.metrics.latency.get_or_create(&vec![("route".into(), route)]).observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

pub async fn handler(state: web::Data<AppState>) -> HttpResponse {
    let m = &state.metrics;
    let pool = &state.db.pool;
    let q = |sql: &'static str| async move { sqlx::query_as::<_, (i64,)>(sql).fetch_one(pool).await.map(|r| r.0) };
    match (
        q("SELECT COUNT(*) FROM intervals WHERE model_id IS NULL").await,
        q("SELECT COUNT(*) FROM usage_hourly").await,
        q("SELECT COUNT(*) FROM invoices WHERE status = 'issued'").await,
    ) {
        (Ok(a), Ok(b), Ok(c)) => {
            m.unattributed.set(a);
            m.ledger_rows.set(b);
            m.invoices_issued.set(c);
        }
        _ => {
            m.scrape_errors.inc();
        }
    }
    let mut out = String::new();
    let _ = prometheus_client::encoding::text::encode(&mut out, &m.registry);
    HttpResponse::Ok().content_type("application/openmetrics-text; version=1.0.0; charset=utf-8").body(out)
}
