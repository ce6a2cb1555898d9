//! The store: an `AnyPool` over SQLite (`sqlite://PATH`, created when
//! missing) or PostgreSQL (`postgres://…`), with the migrations of
//! `migrations/sqlite` or `migrations/postgres` embedded and run at connect.
//! Queries are written once with `$N` placeholders, which both drivers take.

use std::time::Duration;

use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;

use crate::error::{ApiError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Db {
    pub pool: AnyPool,
    pub backend: Backend,
    /// SQLite writers of this process take turns here before `BEGIN
    /// IMMEDIATE`: left to SQLite's busy handler, concurrent writers
    /// (agents' ingest, the attribution worker) sleep in growing steps of
    /// up to 100 ms while the lock is free, and the process idles.
    write_turn: std::sync::Arc<tokio::sync::Mutex<()>>,
}

/// A write transaction ([`Db::begin_write`]); it holds this process's
/// write turn on SQLite until committed or dropped (rolled back).
pub struct WriteTx {
    tx: sqlx::Transaction<'static, sqlx::Any>,
    // Declared after `tx`, so a dropped transaction rolls back before the turn passes on.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl WriteTx {
    pub async fn commit(self) -> std::result::Result<(), sqlx::Error> {
        self.tx.commit().await
    }
}

impl std::ops::Deref for WriteTx {
    type Target = sqlx::AnyConnection;
    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Db {
    /// Connects and migrates. A SQLite URL without `mode=` opens read-write
    /// and creates the file.
    pub async fn connect(url: &str) -> Result<Db> {
        sqlx::any::install_default_drivers();
        let (backend, url) = if let Some(rest) = url.strip_prefix("sqlite:") {
            let url = if rest.contains("mode=") { url.to_string() } else { format!("{url}{}mode=rwc", if rest.contains('?') { "&" } else { "?" }) };
            (Backend::Sqlite, url)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            (Backend::Postgres, url.to_string())
        } else {
            return Err(ApiError::Config(format!("database URL {url:?}: expected sqlite://PATH or postgres://…")));
        };
        // SQLite in WAL mode: readers run beside the one writer; writers
        // queue on the lock (busy timeout) and take it at BEGIN IMMEDIATE.
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let mut opts = AnyPoolOptions::new().max_connections(max).acquire_timeout(Duration::from_secs(5));
        if backend == Backend::Sqlite {
            // Per connection: SQLite checks foreign keys only when asked.
            opts = opts.after_connect(|conn, _| {
                Box::pin(async move {
                    for pragma in ["PRAGMA foreign_keys = ON", "PRAGMA journal_mode = WAL", "PRAGMA busy_timeout = 10000", "PRAGMA cache_size = -32768", "PRAGMA mmap_size = 268435456"] {
                        sqlx::Executor::execute(&mut *conn, pragma).await?;
                    }
                    Ok(())
                })
            });
        }
        let pool = opts.connect(&url).await?;
        let db = Db { pool, backend, write_turn: Default::default() };
        match backend {
            Backend::Sqlite => SQLITE.run(&db.pool).await?,
            Backend::Postgres => POSTGRES.run(&db.pool).await?,
        }
        Ok(db)
    }

    /// A transaction that will write: on SQLite it takes the write lock at
    /// once (`BEGIN IMMEDIATE`), so a read inside it cannot be overtaken by
    /// another writer and fail; PostgreSQL's row locks need nothing more.
    pub async fn begin_write(&self) -> Result<WriteTx> {
        Ok(match self.backend {
            Backend::Sqlite => {
                // The turn first, then a connection: waiting writers hold none of the pool's few.
                let turn = self.write_turn.clone().lock_owned().await;
                WriteTx { tx: self.pool.begin_with("BEGIN IMMEDIATE").await?, _turn: Some(turn) }
            }
            Backend::Postgres => WriteTx { tx: self.pool.begin().await?, _turn: None },
        })
    }

    /// True when the store answers a trivial query.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}

/// Marks, inside a write transaction, that usage answers may have changed.
pub async fn bump_generation(tx: &mut sqlx::AnyConnection) -> Result<()> {
    sqlx::query("UPDATE ledger_generation SET gen = gen + 1 WHERE id = 1").execute(&mut *tx).await?;
    Ok(())
}

/// The current generation (see [`bump_generation`]).
pub async fn generation(pool: &AnyPool) -> Result<i64> {
    let (g,): (i64,) = sqlx::query_as("SELECT gen FROM ledger_generation WHERE id = 1").fetch_one(pool).await?;
    Ok(g)
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros() as i64)
}
