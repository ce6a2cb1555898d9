//! Shared by the API tests: a fresh migrated store per test.

use fairwatt_billing_api::Db;

/// SQLite in `dir`, or a new database on the PostgreSQL server named by
/// `FAIRWATT_TEST_POSTGRES_URL` when that is set.
pub async fn test_db(dir: &std::path::Path) -> Db {
    match std::env::var("FAIRWATT_TEST_POSTGRES_URL") {
        Ok(admin) => {
            let name = format!("fw_test_{}", std::process::id() as u64 * 1_000_000 + (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos() as u64 % 1_000_000));
            sqlx::any::install_default_drivers();
            let pool = sqlx::AnyPool::connect(&admin).await.expect("the PostgreSQL server in FAIRWATT_TEST_POSTGRES_URL");
            // The name is made here from digits: nothing to inject.
            sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.unwrap();
            let (base, _) = admin.rsplit_once('/').unwrap();
            Db::connect(&format!("{base}/{name}")).await.unwrap()
        }
        Err(_) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| eprintln!("FAIRWATT_TEST_POSTGRES_URL is not set: these tests run on SQLite only (.ci/run also runs them on PostgreSQL)"));
            Db::connect(&format!("sqlite://{}", dir.join("fairwatt.db").display())).await.unwrap()
        }
    }
}
