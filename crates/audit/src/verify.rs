//! Verification: every entry of a chain read back as the owner role (which sees every row),
//! rehashed in order, and compared with its neighbours and, on the control side, with the
//! chain's head.

use anyhow::Context;
use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgConnection;
use tenantry_tenancy::{ControlDb, Operator, ProvisionStep, Tenancy, TenantCtx, TenantRecord};
use uuid::Uuid;

use crate::TENANT_SET;
use crate::chain::{Chain, Checker, Head, Link};

/// What [`verify`] found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verification {
    /// Entries of the organization's control-side chain (for [`verify_platform`]: of the
    /// platform's chain).
    pub organization_entries: u64,
    /// Entries of the tenant-side chain.
    pub tenant_entries: u64,
    /// Each problem names its chain and the entry: "tenant chain: entry 7 was altered",
    /// "organization chain: entry 3 is missing".
    pub problems: Vec<String>,
}

impl Verification {
    /// No problem found.
    pub fn is_intact(&self) -> bool {
        self.problems.is_empty()
    }
}

/// Recomputes both chains of a tenant (read as the owner role, which sees everything), whatever
/// its status.
pub async fn verify(tenancy: &Tenancy, record: &TenantRecord) -> anyhow::Result<Verification> {
    let org = record.id.as_uuid();
    let (organization_entries, mut problems) =
        verify_control(tenancy, Chain::Organization(org)).await?;
    let (tenant_entries, tenant_problems) = verify_tenant(tenancy, record).await?;
    problems.extend(tenant_problems);
    Ok(Verification {
        organization_entries,
        tenant_entries,
        problems,
    })
}

/// Recomputes both chains of the tenant behind `ctx` as the runtime role: the organization's
/// control-side chain through the runtime pool of the control database, its tenant-side chain
/// through its door. This is the check a request may run (the console shows its outcome); the
/// owner role's [`verify`] also sees rows the door would not.
pub async fn verify_through_door(
    control: &ControlDb,
    ctx: &TenantCtx,
) -> anyhow::Result<Verification> {
    let org = ctx.tenant_id().as_uuid();
    let mut conn = control.acquire().await?;
    let (organization_entries, mut problems) =
        control_chain(&mut conn, Chain::Organization(org)).await?;
    drop(conn);
    let chain = Chain::Tenant(org);
    let mut tx = ctx.begin_read().await?;
    let checker = check(
        &mut tx,
        chain,
        &format!("SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 ORDER BY tenant_id, seq"),
    )
    .await?;
    tx.commit().await?;
    let (tenant_entries, tenant_problems) = checker.finish(None);
    problems.extend(tenant_problems);
    Ok(Verification {
        organization_entries,
        tenant_entries,
        problems,
    })
}

/// Recomputes the platform's chain.
pub async fn verify_platform(tenancy: &Tenancy) -> anyhow::Result<Verification> {
    let (organization_entries, problems) = verify_control(tenancy, Chain::Platform).await?;
    Ok(Verification {
        organization_entries,
        tenant_entries: 0,
        problems,
    })
}

const COLUMNS: &str = "seq, id, at, actor_kind, actor_id, action, target_kind, target_id, \
    before::text AS before, after::text AS after, ip, user_agent, request_id, prev_hash, hash";

#[derive(sqlx::FromRow)]
struct StoredEntry {
    seq: i64,
    id: Uuid,
    at: DateTime<Utc>,
    actor_kind: String,
    actor_id: Option<Uuid>,
    action: String,
    target_kind: String,
    target_id: Option<String>,
    before: Option<String>,
    after: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
}

async fn verify_control(tenancy: &Tenancy, chain: Chain) -> anyhow::Result<(u64, Vec<String>)> {
    let mut conn = Operator::new(tenancy)
        .control()
        .acquire()
        .await
        .context("failed to reach the control database")?;
    control_chain(&mut conn, chain).await
}

/// Reads `chain` of the control database and its head in one `REPEATABLE READ` snapshot (an
/// append in between is no problem) on `conn`, and checks it.
async fn control_chain(
    conn: &mut PgConnection,
    chain: Chain,
) -> anyhow::Result<(u64, Vec<String>)> {
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await?;
    let checker = check(
        &mut tx,
        chain,
        &format!(
            "SELECT {COLUMNS} FROM audit.entries
             WHERE coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid) = $1
             ORDER BY coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid), seq"
        ),
    )
    .await?;
    let head: Option<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT seq, hash FROM audit.heads
         WHERE coalesce(org_id, '00000000-0000-0000-0000-000000000000'::uuid) = $1",
    )
    .bind(chain.control_key())
    .fetch_optional(&mut *tx)
    .await
    .context("failed to read the chain's head")?;
    tx.commit().await?;
    Ok(checker.finish(Some(head.map(|(seq, hash)| Head { seq, hash }))))
}

async fn verify_tenant(
    tenancy: &Tenancy,
    record: &TenantRecord,
) -> anyhow::Result<(u64, Vec<String>)> {
    let chain = Chain::Tenant(record.id.as_uuid());
    if record.purging || record.provision_step < ProvisionStep::TablesCreated {
        return Ok((0, Vec::new()));
    }
    let mut conn = Operator::new(tenancy)
        .tenant_storage(record)
        .await
        .with_context(|| format!("failed to reach the storage of tenant {}", record.slug))?;
    let result = async {
        let exists: bool = sqlx::query_scalar("SELECT to_regclass('audit_log') IS NOT NULL")
            .fetch_one(&mut conn)
            .await?;
        if !exists {
            // Not migrated that far yet (the registry says so), or dropped.
            let problems = if record.schema_versions.get(TENANT_SET) >= 1 {
                vec![format!(
                    "{}: the audit_log table of the tenant's storage is missing",
                    chain.label()
                )]
            } else {
                Vec::new()
            };
            return Ok((0, problems));
        }
        let mut tx = sqlx::Connection::begin(&mut conn).await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await?;
        let checker = check(
            &mut tx,
            chain,
            &format!(
                "SELECT {COLUMNS} FROM audit_log WHERE tenant_id = $1 ORDER BY tenant_id, seq"
            ),
        )
        .await?;
        tx.commit().await?;
        anyhow::Ok(checker.finish(None))
    }
    .await;
    sqlx::Connection::close(conn).await.ok();
    result
}

/// Streams the chain's entries (`sql`, `$1` = the chain's key) through a [`Checker`].
async fn check(conn: &mut PgConnection, chain: Chain, sql: &str) -> anyhow::Result<Checker> {
    let mut checker = Checker::new(chain);
    let mut rows = sqlx::query_as::<_, StoredEntry>(sql)
        .bind(chain.control_key())
        .fetch(&mut *conn);
    while let Some(row) = rows
        .try_next()
        .await
        .with_context(|| format!("failed to read the {}", chain.label()))?
    {
        let parse = |text: &Option<String>| -> anyhow::Result<Option<serde_json::Value>> {
            text.as_deref()
                .map(serde_json::from_str)
                .transpose()
                .with_context(|| {
                    format!("entry {} of the {} holds bad JSON", row.seq, chain.label())
                })
        };
        let (before, after) = (parse(&row.before)?, parse(&row.after)?);
        let link = Link {
            chain,
            seq: row.seq,
            id: row.id,
            at: row.at,
            actor_kind: &row.actor_kind,
            actor_id: row.actor_id,
            action: &row.action,
            target_kind: &row.target_kind,
            target_id: row.target_id.as_deref(),
            before: before.as_ref(),
            after: after.as_ref(),
            ip: row.ip.as_deref(),
            user_agent: row.user_agent.as_deref(),
            request_id: row.request_id.as_deref(),
        };
        checker.push(&link, &row.prev_hash, &row.hash);
    }
    Ok(checker)
}
