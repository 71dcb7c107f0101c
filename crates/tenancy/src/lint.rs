//! Catalog checks behind the isolation promise: every table with `tenant_id` has row-level
//! security enabled and forced with a policy on `app.tenant_id`, and no login role bypasses it.

use sqlx::PgConnection;

/// Tables of the connected database that carry `tenant_id` without enabled and forced RLS and a
/// policy whose USING and WITH CHECK both test `app.tenant_id`.
pub async fn rls_violations(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    let rows: Vec<(String, bool, bool, bool)> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname), c.relrowsecurity, c.relforcerowsecurity,
                EXISTS (
                    SELECT 1 FROM pg_policy p
                    WHERE p.polrelid = c.oid AND p.polcmd = '*' AND p.polpermissive
                      AND pg_get_expr(p.polqual, p.polrelid) LIKE '%app.tenant_id%'
                      AND pg_get_expr(p.polwithcheck, p.polrelid) LIKE '%app.tenant_id%')
         FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
         ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(table, enabled, forced, policy)| {
            let mut missing = Vec::new();
            if !enabled {
                missing.push("row-level security is not enabled");
            }
            if !forced {
                missing.push("row-level security is not forced");
            }
            if !policy {
                missing.push("no policy tests app.tenant_id in USING and WITH CHECK");
            }
            (!missing.is_empty()).then(|| format!("{table}: {}", missing.join("; ")))
        })
        .collect())
}

/// Login roles that are superusers or have BYPASSRLS.
pub async fn login_roles_bypassing_rls(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT rolname::text FROM pg_roles WHERE rolcanlogin AND (rolsuper OR rolbypassrls) ORDER BY 1",
    )
    .fetch_all(&mut *conn)
    .await?)
}

/// Names of the relations `role` owns in the connected database.
pub async fn relations_owned_by(
    conn: &mut PgConnection,
    role: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_roles r ON r.oid = c.relowner
         WHERE r.rolname = $1 ORDER BY 1",
    )
    .bind(role)
    .fetch_all(&mut *conn)
    .await?)
}
