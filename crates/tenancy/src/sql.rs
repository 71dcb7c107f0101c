//! Running statements that take no parameters (DDL, several statements at once).

use std::time::Duration;

use sqlx::{Executor, PgConnection};

/// Runs `sql` with the simple-query protocol. Goes through `Executor::execute`, whose boxed
/// future is `Send` (the future of `RawSql::execute` is not provably so across the engine's
/// generic code).
pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(|_| ())
}

/// Runs an idempotent statement outside a transaction (GRANT, REVOKE, ALTER ROLE), trying again
/// when another session updated the same catalog row at the same moment ("tuple concurrently
/// updated", XX000), as concurrent starts and provisioning do.
pub(crate) async fn exec_idempotent(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        match exec(conn, sql).await {
            Err(e) if attempt < 10 && crate::error::sqlstate(&e).as_deref() == Some("XX000") => {
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            result => return result,
        }
    }
}
