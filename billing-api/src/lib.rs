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
//! - [`app`]: the HTTP server and its routes (`/healthz`, `/readyz`).
//! - [`error`]: the crate's error enum and its HTTP statuses.
//!
//! Still to come (issue 4): the registry,
//! carbon, invoices, finance queries, FOCUS export, OpenAPI.

pub mod app;
pub mod auth;
pub mod db;
pub mod error;
pub mod ingest;
pub mod usage;
pub mod worker;

pub use app::{AppState, serve};
pub use auth::{ApiKey, Principal, Role};
pub use db::Db;
pub use error::{ApiError, Result};
