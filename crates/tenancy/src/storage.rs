//! How much storage a tenant takes, measured the way its tier allows: a database-tier tenant is
//! its database, a schema-tier tenant its schema's relations (indexes and TOAST included), and a
//! shared-tier tenant the bytes of its rows in the shared tables (read through its own door, so
//! only its rows are summed; shared indexes are not apportioned).

use crate::door::TenantCtx;
use crate::engine::Tenancy;
use crate::error::TenancyError;
use crate::ids::Isolation;
use crate::naming::quote_ident;

impl Tenancy {
    /// The tenant's storage in bytes.
    pub async fn storage_bytes(&self, ctx: &TenantCtx) -> Result<i64, TenancyError> {
        match ctx.isolation() {
            // Through the door: the tenant's own role may connect to its database.
            Isolation::Database => {
                let mut tx = ctx.begin_read().await?;
                let size = sqlx::query_scalar("SELECT pg_database_size(current_database())")
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(size)
            }
            Isolation::Schema => Ok(sqlx::query_scalar(
                "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0)::bigint
                 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                 WHERE n.nspname = $1 AND c.relkind IN ('r', 'm')",
            )
            .bind(ctx.schema_name())
            .fetch_one(self.runtime_pool())
            .await?),
            Isolation::Shared => {
                let tables: Vec<String> = sqlx::query_scalar(
                    "SELECT c.relname::text FROM pg_class c
                     JOIN pg_namespace n ON n.oid = c.relnamespace
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = 'tenant_id'
                     WHERE n.nspname = $1 AND c.relkind = 'r' AND NOT a.attisdropped
                     ORDER BY 1",
                )
                .bind(ctx.schema_name())
                .fetch_all(self.runtime_pool())
                .await?;
                if tables.is_empty() {
                    return Ok(0);
                }
                let sum = tables
                    .iter()
                    .map(|t| {
                        let t = quote_ident(t);
                        format!("(SELECT coalesce(sum(pg_column_size(r.*)), 0) FROM {t} r)")
                    })
                    .collect::<Vec<_>>()
                    .join(" + ");
                let mut tx = ctx.begin_read().await?;
                let bytes: i64 = sqlx::query_scalar(&format!("SELECT ({sum})::bigint"))
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(bytes)
            }
        }
    }
}
