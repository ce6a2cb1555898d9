//! fairwatt-billing-api: the service agents ship to and tenants, finance and
//! the placement engine talk to (actix-web over sqlx, on SQLite embedded or
//! PostgreSQL in production).
//!
//! - [`db`]: the store: one `AnyPool`, migrations per backend.
//! - [`auth`]: API keys (stored hashed) and roles; deny by default.
//! - [`ingest`]: `POST /v1/ingest`, idempotent by batch id, each host
//!   interval stored once.
//! - [`worker`]: the attribution worker: ingested intervals → the energy
//!   ledger (per VM, interval and domain, exact integers) and hourly rollups.
//! - [`usage`]: `GET /v1/usage`, attributed energy by tenant, host, VM or
//!   domain over a window; tenants see only their own.
//! - [`registry`]: tenants, hosts, VMs and their placements (migrations).
//! - [`carbon`] and [`carbon_csv`]: grid intensity series and their import,
//!   tenants' certificates and PPAs.
//! - [`money`]: currencies, tariffs with time-of-use windows.
//! - [`billing`]: the invoice computation (kWh, carbon, cost per line).
//! - [`invoices`]: drafts, issue with gap-free numbers, void, credit notes,
//!   adjustments, the invoice run; [`render`] and [`pdf`] their documents.
//! - [`focus`]: the FinOps FOCUS 1.0 export.
//! - [`placement`]: attributed power per host and VM for the placement engine.
//! - [`decide`]: the live placement decision for a new VM.
//! - [`app`]: the HTTP server and its routes (`/healthz`, `/readyz`).
//! - [`error`]: the crate's error enum and its HTTP statuses.
//! - [`params`]: ids, times and periods as requests give them.
//! - [`openapi`]: the route table, `/openapi.json` and `/docs`;
//!   [`metrics`]: `/metrics` for Prometheus.

pub mod app;
pub mod auth;
pub mod billing;
pub mod carbon;
pub mod carbon_csv;
pub mod db;
pub mod decide;
pub mod error;
pub mod focus;
pub mod ingest;
pub mod invoices;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod params;
pub mod pdf;
pub mod placement;
pub mod registry;
pub mod render;
pub mod usage;
pub mod worker;

pub use app::{AppState, Settings, serve, serve_with};
pub use auth::{ApiKey, Principal, Role};
pub use db::Db;
pub use error::{ApiError, Result};
