//! The HTTP server: shared state, routes, and the payload limits.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{App, HttpResponse, HttpServer, web};

use crate::db::Db;
use crate::error::{ApiError, Result};
use crate::{ingest, usage};

/// Largest request body accepted (a batch of a few hundred 60-VM intervals).
pub const MAX_BODY: usize = 8 << 20;

pub struct AppState {
    pub db: Db,
    pub max_body: usize,
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
    let state = web::Data::new(AppState { db, max_body: MAX_BODY });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            // Bodies are read raw up to one byte past the limit, so an
            // oversize one is refused with 413 rather than cut.
            .app_data(web::PayloadConfig::new(MAX_BODY + 1))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/v1/ingest", web::post().to(ingest::handler))
            .route("/v1/usage", web::get().to(usage::handler))
            .default_service(web::to(|| async { Err::<HttpResponse, _>(ApiError::NotFound("no such endpoint".into())) }))
    })
    .listen(listener)
    .map_err(|e| ApiError::Config(format!("listening: {e}")))?
    .run();
    Ok(server)
}
