//! Append-only for the roles the server runs as: the runtime role (and a database-tier tenant's
//! own role) may insert and read entries, never update, delete or truncate them.

use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{change, engine, per_tier, record_org, record_tenant, sqlstate, tenant, user_ctx};

per_tier!(the_runtime_role_cannot_change_or_remove_entries);
async fn the_runtime_role_cannot_change_or_remove_entries(tier: Isolation) {
    let engine = engine().await;
    let (record, ctx) = tenant(&engine, tier).await;
    let org = ctx.tenant_id().as_uuid();
    let who = user_ctx(Uuid::now_v7());
    // Inserting works: that is how entries are written.
    record_org(
        &engine,
        Some(org),
        &who,
        &change("member.added", "member", 1),
    )
    .await;
    record_tenant(&ctx, &who, &change("monitor.created", "monitor", 1)).await;

    for statement in [
        "UPDATE audit.entries SET action = 'member.removed' WHERE org_id = $1",
        "DELETE FROM audit.entries WHERE org_id = $1",
        "TRUNCATE audit.entries",
    ] {
        let mut tx = engine.control_db().begin().await.unwrap();
        let query = sqlx::query(statement);
        let query = if statement.contains("$1") {
            query.bind(org)
        } else {
            query
        };
        let err = query.execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{statement}: {err}"
        );
    }
    for statement in [
        "UPDATE audit_log SET action = 'monitor.deleted'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
    ] {
        let mut tx = ctx.begin().await.unwrap();
        let err = sqlx::query(statement).execute(&mut *tx).await.unwrap_err();
        assert_eq!(
            sqlstate(&err).as_deref(),
            Some("42501"),
            "{tier:?} {statement}: {err}"
        );
    }
    let report = tenantry_audit::verify(&engine, &record).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.organization_entries, report.tenant_entries), (1, 1));
}
