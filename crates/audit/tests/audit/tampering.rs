//! Tampering, done as a superuser (the runtime roles cannot): `verify` names every altered or
//! removed entry, in either chain, in every tier.

use tenantry_audit::verify;
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{
    change, control_as_superuser, engine, per_tier, record_org, record_tenant, tenant,
    tenant_storage_as_superuser, user_ctx,
};

per_tier!(altered_and_removed_entries_are_named);
async fn altered_and_removed_entries_are_named(tier: Isolation) {
    let engine = engine().await;
    let (record, ctx) = tenant(&engine, tier).await;
    let (bystander, bystander_ctx) = tenant(&engine, tier).await;
    let org = ctx.tenant_id().as_uuid();
    let who = user_ctx(Uuid::now_v7());
    for n in 1..=5 {
        record_org(
            &engine,
            Some(org),
            &who,
            &change("member.added", "member", n),
        )
        .await;
        record_tenant(&ctx, &who, &change("monitor.created", "monitor", n)).await;
        record_org(
            &engine,
            Some(bystander.id.as_uuid()),
            &who,
            &change("member.added", "member", n),
        )
        .await;
        record_tenant(
            &bystander_ctx,
            &who,
            &change("monitor.created", "monitor", n),
        )
        .await;
    }
    let clean = verify(&engine, &record).await.unwrap();
    assert!(clean.is_intact(), "{clean:?}");
    assert_eq!((clean.organization_entries, clean.tenant_entries), (5, 5));

    let (mut storage, table) = tenant_storage_as_superuser(&engine, &record).await;
    let mut control = control_as_superuser(&engine).await;
    let problems = || async { verify(&engine, &record).await.unwrap().problems };

    // A summary rewritten in the tenant's storage.
    sqlx::query(&format!(
        "UPDATE {table} SET after = '{{\"n\": 99}}' WHERE tenant_id = $1 AND seq = 3"
    ))
    .bind(org)
    .execute(&mut storage)
    .await
    .unwrap();
    assert_eq!(problems().await, ["tenant chain: entry 3 was altered"]);

    // An entry removed from the middle of the tenant's chain.
    sqlx::query(&format!(
        "DELETE FROM {table} WHERE tenant_id = $1 AND seq = 2"
    ))
    .bind(org)
    .execute(&mut storage)
    .await
    .unwrap();
    assert_eq!(
        problems().await,
        [
            "tenant chain: entry 2 is missing",
            "tenant chain: entry 3 was altered"
        ]
    );

    // The actor of an organization entry changed; a timestamp moved by a microsecond.
    sqlx::query("UPDATE audit.entries SET actor_id = $2 WHERE org_id = $1 AND seq = 2")
        .bind(org)
        .bind(Uuid::now_v7())
        .execute(&mut control)
        .await
        .unwrap();
    sqlx::query(
        "UPDATE audit.entries SET at = at + interval '1 microsecond' WHERE org_id = $1 AND seq = 4",
    )
    .bind(org)
    .execute(&mut control)
    .await
    .unwrap();
    assert_eq!(
        problems().await,
        [
            "organization chain: entry 2 was altered",
            "organization chain: entry 4 was altered",
            "tenant chain: entry 2 is missing",
            "tenant chain: entry 3 was altered"
        ]
    );

    // The newest organization entry removed: the head still names it.
    sqlx::query("DELETE FROM audit.entries WHERE org_id = $1 AND seq = 5")
        .bind(org)
        .execute(&mut control)
        .await
        .unwrap();
    // And one from the middle.
    sqlx::query("DELETE FROM audit.entries WHERE org_id = $1 AND seq = 3")
        .bind(org)
        .execute(&mut control)
        .await
        .unwrap();
    let report = verify(&engine, &record).await.unwrap();
    assert_eq!(
        report.problems,
        [
            "organization chain: entry 2 was altered",
            "organization chain: entry 3 is missing",
            "organization chain: entry 4 was altered",
            "organization chain: entry 5 is missing",
            "tenant chain: entry 2 is missing",
            "tenant chain: entry 3 was altered"
        ]
    );
    assert_eq!((report.organization_entries, report.tenant_entries), (3, 4));

    // The other tenant, in the same tables or not, is untouched.
    let bystander_report = verify(&engine, &bystander).await.unwrap();
    assert!(bystander_report.is_intact(), "{bystander_report:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_newest_platform_entry_and_a_rewound_head_are_named() {
    let engine = engine().await;
    let who = user_ctx(Uuid::now_v7());
    for n in 1..=3 {
        record_org(&engine, None, &who, &change("tenant.created", "tenant", n)).await;
    }
    let mut control = control_as_superuser(&engine).await;
    sqlx::query("DELETE FROM audit.entries WHERE org_id IS NULL AND seq = 3")
        .execute(&mut control)
        .await
        .unwrap();
    let report = tenantry_audit::verify_platform(&engine).await.unwrap();
    assert_eq!(report.problems, ["platform chain: entry 3 is missing"]);
    // Rewinding the head too hides it: the head is a second place to change, not a proof (the
    // runtime role, which may update heads, still cannot delete the entry).
    sqlx::query(
        "UPDATE audit.heads SET (seq, hash) = (SELECT seq, hash FROM audit.entries
             WHERE org_id IS NULL AND seq = 2)
         WHERE org_id IS NULL",
    )
    .execute(&mut control)
    .await
    .unwrap();
    assert!(
        tenantry_audit::verify_platform(&engine)
            .await
            .unwrap()
            .is_intact()
    );
    // A head rewound without removing entries is named.
    record_org(&engine, None, &who, &change("tenant.created", "tenant", 4)).await;
    sqlx::query("UPDATE audit.heads SET seq = 2 WHERE org_id IS NULL")
        .execute(&mut control)
        .await
        .unwrap();
    let problems = tenantry_audit::verify_platform(&engine)
        .await
        .unwrap()
        .problems;
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .starts_with("platform chain: its head names entry 2, but entries up to 3 exist"),
        "{problems:?}"
    );
}
