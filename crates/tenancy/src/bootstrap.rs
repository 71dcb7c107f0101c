//! Creating what the engine runs on: the owner role of a managed cluster, the control database,
//! the control schema, the runtime role and the shared tenant schema. Every step is idempotent and
//! safe to run from several processes at once.
//!
//! A managed cluster trusts local connections on its socket, inside the data folder's `0700`
//! socket directory, and listens on no TCP port; its bootstrap superuser `postgres` is left
//! without login once the owner role exists (`postgres --single`, run as the PostgreSQL user,
//! regains it).

use anyhow::Context;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};

use crate::error::sqlstate;
use crate::ids::TenantId;
use crate::migrations::MigrationSet;
use crate::naming::{CONTROL_SCHEMA, Naming, quote_ident, quote_literal};
use crate::secrets::RoleKey;

const ROLE_KEY: &str = "role_password_key";

/// For a managed cluster: connects as the owner role, creating it first through the bootstrap
/// superuser when it does not exist. The superuser then loses its login, so no login role can
/// bypass row-level security.
pub async fn managed_owner(
    superuser: &PgConnectOptions,
    naming: &Naming,
) -> anyhow::Result<PgConnectOptions> {
    let owner = superuser
        .clone()
        .username(&naming.owner_role())
        .disable_statement_logging();
    match owner.connect().await {
        Ok(mut conn) => {
            // A start cut off between creating the owner and closing the superuser's login
            // finishes the job now.
            let superuser_can_login: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1 AND rolcanlogin)",
            )
            .bind(superuser.get_username())
            .fetch_one(&mut conn)
            .await?;
            conn.close().await.ok();
            if !superuser_can_login {
                return Ok(owner);
            }
        }
        // 28000: the role does not exist (or may not log in); create it.
        Err(e) if sqlstate(&e).as_deref() == Some("28000") => {}
        Err(e) => {
            return Err(e).context("failed to connect to the managed PostgreSQL as the owner role");
        }
    }
    let mut conn = superuser
        .connect()
        .await
        .context("failed to connect to the managed PostgreSQL as its bootstrap superuser")?;
    let role = quote_ident(&naming.owner_role());
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(naming.owner_role())
            .fetch_one(&mut conn)
            .await?;
    let create = if exists {
        String::new()
    } else {
        format!("CREATE ROLE {role} LOGIN CREATEDB CREATEROLE;")
    };
    // One transaction: the owner exists exactly when the superuser has lost its login.
    crate::sql::exec(
        &mut conn,
        &format!(
            "BEGIN;
             {create}
             GRANT pg_signal_backend TO {role};
             REVOKE CONNECT ON DATABASE postgres, template1 FROM PUBLIC;
             GRANT CONNECT ON DATABASE postgres TO {role};
             ALTER ROLE CURRENT_USER NOLOGIN;
             COMMIT;"
        ),
    )
    .await
    .context("failed to create the owner role")?;
    conn.close().await.ok();
    Ok(owner)
}

/// Creates the control database when it is missing.
pub async fn ensure_control_database(
    owner: &PgConnectOptions,
    control: &str,
) -> anyhow::Result<()> {
    match owner.clone().database(control).connect().await {
        Ok(mut conn) => {
            crate::sql::exec_idempotent(
                &mut conn,
                &format!(
                    "REVOKE ALL ON DATABASE {} FROM PUBLIC",
                    quote_ident(control)
                ),
            )
            .await
            .context("failed to restrict the control database")?;
            conn.close().await.ok();
            return Ok(());
        }
        // 3D000: the database does not exist yet.
        Err(e) if sqlstate(&e).as_deref() == Some("3D000") => {}
        Err(e) => return Err(e).context("failed to connect to the control database"),
    }
    let mut conn = owner
        .connect()
        .await
        .context("failed to connect to PostgreSQL as the owner role")?;
    tracing::info!(database = control, "creating the control database");
    let name = quote_ident(control);
    match crate::sql::exec(&mut conn, &format!("CREATE DATABASE {name}")).await {
        Ok(_) => {}
        // Another instance created it at the same moment.
        Err(e) if matches!(sqlstate(&e).as_deref(), Some("42P04" | "23505")) => {}
        Err(e) => return Err(e).context("failed to create the control database"),
    }
    crate::sql::exec_idempotent(
        &mut conn,
        &format!("REVOKE ALL ON DATABASE {name} FROM PUBLIC"),
    )
    .await?;
    conn.close().await.ok();
    Ok(())
}

/// Migrates the control schema, loads the role-password key, and creates the runtime role with
/// its grants. Returns the key and the owner role's name.
pub async fn prepare_control(
    conn: &mut PgConnection,
    naming: &Naming,
    control_database: &str,
) -> anyhow::Result<(RoleKey, String)> {
    MigrationSet::control()
        .apply(conn, CONTROL_SCHEMA)
        .await
        .context("failed to migrate the control database")?;
    let owner_role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO control.secrets (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
    )
    .bind(ROLE_KEY)
    .bind(RoleKey::generate())
    .execute(&mut *conn)
    .await?;
    let key: Vec<u8> = sqlx::query_scalar("SELECT value FROM control.secrets WHERE name = $1")
        .bind(ROLE_KEY)
        .fetch_one(&mut *conn)
        .await?;
    let key = RoleKey::new(key);
    let runtime = naming.runtime_role();
    ensure_login_role(conn, &runtime, &key.password_for(&runtime)).await?;
    let role = quote_ident(&runtime);
    crate::sql::exec_idempotent(
        &mut *conn,
        &format!(
            "GRANT CONNECT ON DATABASE {db} TO {role};
         GRANT USAGE ON SCHEMA control TO {role};
         GRANT SELECT ON control.tenants, control.schema_scopes, control.servers TO {role};
         GRANT UPDATE (name, slug, settings, updated_at) ON control.tenants TO {role};",
            db = quote_ident(control_database),
        ),
    )
    .await
    .context("failed to grant the runtime role its privileges")?;
    Ok((key, owner_role))
}

/// Creates a login role that is neither superuser nor BYPASSRLS, or resets its password.
pub async fn ensure_login_role(
    conn: &mut PgConnection,
    role: &str,
    password: &str,
) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(role)
            .fetch_one(&mut *conn)
            .await?;
    let name = quote_ident(role);
    let password = quote_literal(password);
    if !exists {
        let create = format!("CREATE ROLE {name} LOGIN NOINHERIT PASSWORD {password}");
        match crate::sql::exec(&mut *conn, &create).await {
            Ok(_) => return Ok(()),
            // Created by another session in the meantime.
            Err(e) if matches!(sqlstate(&e).as_deref(), Some("42710" | "23505")) => {}
            Err(e) => return Err(e).with_context(|| format!("failed to create role {role}")),
        }
    }
    crate::sql::exec_idempotent(
        &mut *conn,
        &format!("ALTER ROLE {name} LOGIN PASSWORD {password}"),
    )
    .await
    .with_context(|| format!("failed to update role {role}"))
}

/// The start of a table comment marking the table append-only (audit logs): the runtime role may
/// read and insert its rows, never change or remove them.
pub const APPEND_ONLY_COMMENT: &str = "append-only";

/// The start of a table comment marking the table the owner's alone (signing and sealing keys):
/// the runtime role may not even read it, so no statement a request runs can reach its rows.
pub const OWNER_ONLY_COMMENT: &str = "owner-only";

/// Lets `role` read and write the tables of `schema`, but not its migration records
/// (`schema_migrations`, `tenant_migrations`), only read
/// and insert into its append-only tables (those whose comment starts with
/// [`APPEND_ONLY_COMMENT`]), and nothing of its owner-only tables ([`OWNER_ONLY_COMMENT`]). The
/// grant and the revocations run as one implicit transaction, so the role never holds more, even
/// for a moment.
pub async fn grant_tenant_tables(
    conn: &mut PgConnection,
    schema_name: &str,
    role: &str,
) -> anyhow::Result<()> {
    let marked = |comment: &'static str| {
        sqlx::query_scalar::<_, String>(
            "SELECT c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
               AND starts_with(coalesce(obj_description(c.oid, 'pg_class'), ''), $2)
             ORDER BY 1",
        )
        .bind(schema_name)
        .bind(comment)
    };
    let append_only = marked(APPEND_ONLY_COMMENT)
        .fetch_all(&mut *conn)
        .await
        .context("failed to list the append-only tables")?;
    let owner_only = marked(OWNER_ONLY_COMMENT)
        .fetch_all(&mut *conn)
        .await
        .context("failed to list the owner-only tables")?;
    let records: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables
         WHERE schemaname = $1 AND tablename IN ('schema_migrations', 'tenant_migrations')",
    )
    .bind(schema_name)
    .fetch_all(&mut *conn)
    .await
    .context("failed to list the migration records")?;
    let schema = quote_ident(schema_name);
    let role = quote_ident(role);
    let mut sql = format!(
        "GRANT USAGE ON SCHEMA {schema} TO {role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role};"
    );
    for table in &records {
        sql.push_str(&format!(
            "\n         REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {schema}.{} FROM {role};",
            quote_ident(table)
        ));
    }
    for table in &append_only {
        sql.push_str(&format!(
            "\n         REVOKE UPDATE, DELETE, TRUNCATE ON {schema}.{} FROM {role};",
            quote_ident(table)
        ));
    }
    for table in &owner_only {
        sql.push_str(&format!(
            "\n         REVOKE ALL ON {schema}.{} FROM {role};",
            quote_ident(table)
        ));
    }
    crate::sql::exec_idempotent(&mut *conn, &sql)
        .await
        .context("failed to grant access to the tenant tables")?;
    Ok(())
}

/// Pins every tenant table of a tenant's own schema (or database) to that tenant with a
/// restrictive policy: the shared runtime role may reach every tenant schema, and row-level
/// security alone would let a transaction of tenant B write rows carrying B's id into A's schema.
pub async fn pin_to_tenant(
    conn: &mut PgConnection,
    schema: &str,
    tenant: TenantId,
) -> anyhow::Result<()> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE n.nspname = $1 AND c.relkind IN ('r', 'p')
           AND EXISTS (SELECT 1 FROM pg_attribute a
                       WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
           AND NOT EXISTS (SELECT 1 FROM pg_policy p
                           WHERE p.polrelid = c.oid AND p.polname = 'tenant_pin')",
    )
    .bind(schema)
    .fetch_all(&mut *conn)
    .await
    .context("failed to list the tables to pin")?;
    let id = tenant.as_uuid();
    for table in tables {
        crate::sql::exec(
            &mut *conn,
            &format!(
                "CREATE POLICY tenant_pin ON {}.{} AS RESTRICTIVE
                 USING (tenant_id = '{id}'::uuid) WITH CHECK (tenant_id = '{id}'::uuid)",
                quote_ident(schema),
                quote_ident(&table)
            ),
        )
        .await
        .with_context(|| format!("failed to pin {schema}.{table} to its tenant"))?;
    }
    Ok(())
}

/// Connects to `database` as the owner role (a short-lived connection for DDL).
pub async fn owner_connection(
    owner: &PgConnectOptions,
    database: &str,
) -> anyhow::Result<PgConnection> {
    owner
        .clone()
        .database(database)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("failed to connect to database {database} as the owner role"))
}
