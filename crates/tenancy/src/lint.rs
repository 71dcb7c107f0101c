//! Catalog checks behind the isolation promise: every table with `tenant_id` has row-level
//! security enabled and forced with a policy on `app.tenant_id`, and no login role bypasses it.
//!
//! The policy reads `nullif(current_setting('app.tenant_id', true), '')`: once a
//! transaction-scoped setting ends, PostgreSQL leaves it at `''` rather than unset, and without
//! `nullif` the `::uuid` cast would raise an error instead of showing no rows. Tables of the
//! application's control schemas are read across tenants, so they name a tenant by another
//! column (referencing `control.tenants`, cascading on a hard delete), never `tenant_id`.

use sqlx::PgConnection;

/// Tables of the connected database that carry `tenant_id` without row-level security enabled
/// and forced, and exactly one permissive policy: for all commands, with the same `USING` and
/// `WITH CHECK` expression, comparing `tenant_id` with `app.tenant_id` and nothing that could
/// widen it (`OR`, `IS NULL`). Restrictive policies can only narrow access and are allowed.
pub async fn rls_violations(conn: &mut PgConnection) -> anyhow::Result<Vec<String>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        name: String,
        enabled: bool,
        forced: bool,
        permissive: Vec<String>,
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT format('%I.%I', n.nspname, c.relname) AS name,
                c.relrowsecurity AS enabled, c.relforcerowsecurity AS forced,
                coalesce(array(
                    SELECT concat_ws(E'\\x1f', p.polcmd::text,
                                     coalesce(pg_get_expr(p.polqual, p.polrelid), ''),
                                     coalesce(pg_get_expr(p.polwithcheck, p.polrelid), ''))
                    FROM pg_policy p WHERE p.polrelid = c.oid AND p.polpermissive), '{}') AS permissive
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
        .filter_map(|row| {
            let mut missing = Vec::new();
            if !row.enabled {
                missing.push("row-level security is not enabled".to_string());
            }
            if !row.forced {
                missing.push("row-level security is not forced".to_string());
            }
            match row.permissive.as_slice() {
                [] => missing
                    .push("no policy tests app.tenant_id in USING and WITH CHECK".to_string()),
                [one] => {
                    if let Some(problem) = policy_problem(one) {
                        missing.push(problem);
                    }
                }
                many => missing.push(format!(
                    "{} permissive policies: any of them can widen access",
                    many.len()
                )),
            }
            (!missing.is_empty()).then(|| format!("{}: {}", row.name, missing.join("; ")))
        })
        .collect())
}

/// What is wrong with the one permissive policy (command, USING, WITH CHECK), if anything.
fn policy_problem(policy: &str) -> Option<String> {
    let mut parts = policy.split('\u{1f}');
    let (command, using, check) = (parts.next()?, parts.next()?, parts.next()?);
    let lower = using.to_lowercase();
    if command != "*" {
        Some(format!(
            "the policy covers command {command:?} only, not all commands"
        ))
    } else if using != check {
        Some("the policy's USING and WITH CHECK differ".to_string())
    } else if !(lower.contains("tenant_id =") && lower.contains("current_setting('app.tenant_id'"))
    {
        Some("no policy tests app.tenant_id in USING and WITH CHECK".to_string())
    } else if lower.contains(" or ") || lower.contains("is null") {
        Some(format!(
            "the policy can match rows of other tenants: {using}"
        ))
    } else {
        None
    }
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

/// Keys of the tables of `schema` that carry `tenant_id` and do not begin with it: a primary key,
/// unique constraint or foreign key whose first column is another, or a foreign key whose first
/// referenced column is another. With `tenant_id` leading every key, a tenant's rows never refer
/// across tenants, the tiers are interchangeable, and the shared schema can be distributed by
/// `tenant_id` with every key co-located.
pub async fn keys_not_led_by_tenant_id(
    conn: &mut PgConnection,
    schema: &str,
) -> anyhow::Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT format('%I.%I: %s', n.nspname, c.relname, pg_get_constraintdef(k.oid))
         FROM pg_constraint k
         JOIN pg_class c ON c.oid = k.conrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         LEFT JOIN pg_attribute first ON first.attrelid = k.conrelid AND first.attnum = k.conkey[1]
         LEFT JOIN pg_attribute referenced
             ON referenced.attrelid = k.confrelid AND referenced.attnum = k.confkey[1]
         WHERE n.nspname = $1 AND k.contype IN ('p', 'u', 'f')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           AND (first.attname IS DISTINCT FROM 'tenant_id'
                OR (k.contype = 'f' AND referenced.attname IS DISTINCT FROM 'tenant_id'))
         ORDER BY 1",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await?)
}

/// Tables a tenant migration creates without enabling and forcing row-level security and adding
/// the `tenant_isolation` policy, in the same text: for a unit test over each tenant migration
/// set, ahead of [`rls_violations`] on a live database.
pub fn tables_without_rls(sql: &str) -> Vec<String> {
    let sql = sql.to_lowercase();
    sql.split("create table ")
        .skip(1)
        .filter_map(|table| table.split_whitespace().next())
        .filter(|name| {
            ![
                format!("alter table {name} enable row level security"),
                format!("alter table {name} force row level security"),
                format!("create policy tenant_isolation on {name}"),
            ]
            .iter()
            .all(|needed| sql.contains(needed))
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::policy_problem;

    const GOOD: &str = "(tenant_id = ( SELECT (NULLIF(current_setting('app.tenant_id'::text, true), ''::text))::uuid AS \"nullif\"))";

    fn policy(command: &str, using: &str, check: &str) -> String {
        format!("{command}\u{1f}{using}\u{1f}{check}")
    }

    #[test]
    fn the_tenant_policy_passes() {
        assert_eq!(policy_problem(&policy("*", GOOD, GOOD)), None);
    }

    #[test]
    fn widened_or_partial_policies_fail() {
        let widened = format!("({GOOD} OR (current_setting('app.tenant_id'::text, true) IS NULL))");
        for bad in [
            policy("r", GOOD, ""),
            policy("*", GOOD, "true"),
            policy("*", &widened, &widened),
            policy("*", "true", "true"),
        ] {
            assert!(policy_problem(&bad).is_some(), "{bad}");
        }
    }
}
