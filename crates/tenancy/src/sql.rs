//! Running statements that take no parameters (DDL, several statements at once).

use sqlx::{Executor, PgConnection};

/// Runs `sql` with the simple-query protocol. Goes through `Executor::execute`, whose boxed
/// future is `Send` (the future of `RawSql::execute` is not provably so across the engine's
/// generic code).
pub(crate) async fn exec(conn: &mut PgConnection, sql: &str) -> Result<(), sqlx::Error> {
    conn.execute(sqlx::raw_sql(sql)).await.map(|_| ())
}
