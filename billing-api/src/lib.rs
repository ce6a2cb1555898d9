//! fairwatt-billing-api: the service agents ship to and tenants, finance and
//! the placement engine talk to.
//!
//! Planned (issue 4): idempotent ingest of trace-format batches, the energy
//! ledger, invoices with energy, carbon and money, FOCUS export and role-based
//! access, on SQLite (embedded) and PostgreSQL (production).
