//! The HTTP server: shared state, routes, and the payload limits.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::db::Db;
use crate::error::{ApiError, Result};
use crate::{carbon, focus, ingest, invoices, money, placement, registry, usage};

/// Largest request body accepted (a batch of a few hundred 60-VM intervals).
pub const MAX_BODY: usize = 8 << 20;

pub struct AppState {
    pub db: Db,
    pub max_body: usize,
    /// Who issues invoices: their numbers are `ISSUER-000001`.
    pub issuer: String,
    /// The attribution worker's idle policy, stamped on invoices.
    pub idle_policy: String,
    pub metrics: crate::metrics::Metrics,
    /// Month-long usage queries read the daily rollups (off: hourly only,
    /// the benchmark's baseline).
    pub daily_rollups: bool,
    /// Usage answers kept until the ledger's generation moves (None: off).
    pub usage_cache: Option<crate::usage::Cache>,
    /// Live placement: reservations and the ledger's power per host.
    pub placement: crate::decide::Placement,
}

impl AppState {
    pub fn new(db: Db, s: Settings) -> AppState {
        AppState { db, max_body: MAX_BODY, issuer: s.issuer, idle_policy: s.idle_policy, metrics: Default::default(), daily_rollups: s.daily_rollups, usage_cache: s.usage_cache.then(Default::default), placement: crate::decide::Placement::new(s.placement_cache, s.placement_model) }
    }
}

/// What `fairwatt serve` is configured with besides the store.
#[derive(Clone, Debug)]
pub struct Settings {
    pub issuer: String,
    pub idle_policy: String,
    pub daily_rollups: bool,
    pub usage_cache: bool,
    /// The placement endpoint keeps the fleet's capacity until the registry
    /// moves (off: re-read on every decision, the benchmark's baseline).
    pub placement_cache: bool,
    /// A trained placement agent (`fairwatt serve --placement-model`):
    /// `POST /v1/placement/decide` uses it unless asked for another policy.
    pub placement_model: Option<std::sync::Arc<dyn fairwatt_placement::live::LiveChooser>>,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings { issuer: "FW".into(), idle_policy: "reservation".into(), daily_rollups: true, usage_cache: true, placement_cache: true, placement_model: None }
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Ready when the database answers: a load balancer stops sending traffic otherwise.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse> {
    state.db.ping().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}

/// Starts the server on `listener` (port 0 in tests); the future runs it.
pub fn serve(listener: TcpListener, db: Db) -> Result<Server> {
    serve_with(listener, db, Settings::default())
}

pub fn serve_with(listener: TcpListener, db: Db, settings: Settings) -> Result<Server> {
    crate::params::check_id("issuer", &settings.issuer)?;
    let state = web::Data::new(AppState::new(db, settings));
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .wrap(actix_web::middleware::from_fn(crate::metrics::track))
            // Bodies are read raw up to one byte past the limit, so an
            // oversize one is refused with 413 rather than cut.
            .app_data(web::PayloadConfig::new(MAX_BODY + 1))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(crate::metrics::handler))
            .route("/openapi.json", web::get().to(crate::openapi::openapi_json))
            .route("/docs", web::get().to(crate::openapi::docs))
            .route("/v1/ingest", web::post().to(ingest::handler))
            .route("/v1/usage", web::get().to(usage::handler))
            .route("/v1/tenants", web::get().to(registry::list_tenants))
            .route("/v1/tenants/{id}", web::put().to(registry::put_tenant))
            .route("/v1/tenants/{id}", web::get().to(registry::get_tenant))
            .route("/v1/tenants/{id}/vms", web::get().to(registry::list_tenant_vms))
            .route("/v1/tenants/{id}/invoices", web::get().to(invoices::list_tenant_invoices))
            .route("/v1/tenants/{id}/invoices", web::post().to(invoices::post_tenant_invoice))
            .route("/v1/tenants/{id}/instruments", web::post().to(carbon::post_instrument))
            .route("/v1/hosts", web::get().to(registry::list_hosts))
            .route("/v1/hosts/{id}", web::put().to(registry::put_host))
            .route("/v1/vms/{id}", web::put().to(registry::put_vm))
            .route("/v1/vms/{id}", web::get().to(registry::get_vm))
            .route("/v1/vms/{id}", web::delete().to(registry::delete_vm))
            .route("/v1/tariffs", web::get().to(money::list_tariffs))
            .route("/v1/tariffs", web::post().to(money::post_tariff))
            .route("/v1/carbon/intensity", web::get().to(carbon::get_intensity))
            .route("/v1/invoices/{id}", web::get().to(invoices::get_invoice))
            .route("/v1/invoices/{id}/issue", web::post().to(invoices::post_issue))
            .route("/v1/invoices/{id}/void", web::post().to(invoices::post_void))
            .route("/v1/invoices/{id}/credit-notes", web::post().to(invoices::post_credit_note))
            .route("/v1/invoice-runs", web::post().to(invoices::post_run))
            .route("/v1/exports/focus", web::get().to(focus::handler))
            .route("/v1/placement/power", web::get().to(placement::power))
            .route("/v1/placement/decide", web::post().to(crate::decide::decide))
            .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::NotFound("no such endpoint".into())) }))
    })
    .listen(listener)
    .map_err(|e| ApiError::Config(format!("listening: {e}")))?
    .run();
    Ok(server)
}
