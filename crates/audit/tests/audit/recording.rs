//! Writing and reading: transactions, concurrent appends, the platform chain, listing, and a
//! hard delete.

use std::collections::HashSet;

use chrono::Utc;
use tenantry_audit::{Actor, AuditContext, Filter, InvalidCursor, Source, verify};
use tenantry_tenancy::Isolation;
use uuid::Uuid;

use crate::{change, engine, per_tier, record_org, record_tenant, tenant, user_ctx};

per_tier!(entries_of_a_rolled_back_transaction_do_not_exist);
async fn entries_of_a_rolled_back_transaction_do_not_exist(tier: Isolation) {
    let engine = engine().await;
    let (record, ctx) = tenant(&engine, tier).await;
    let who = user_ctx(Uuid::now_v7());

    let mut tx = engine.control_db().begin().await.unwrap();
    tenantry_audit::record(
        &mut tx,
        Some(ctx.tenant_id().as_uuid()),
        &who,
        &change("member.added", "member", 1),
    )
    .await
    .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    tenantry_audit::record_in_tenant(&mut tx, &who, &change("monitor.created", "monitor", 1))
        .await
        .unwrap();
    tx.rollback().await.unwrap();

    let (entries, next) = tenantry_audit::list(&engine, &ctx, &Filter::default())
        .await
        .unwrap();
    assert!(entries.is_empty(), "{entries:?}");
    assert_eq!(next, None);

    // The chains go on from nothing: the next entries are number 1.
    record_org(
        &engine,
        Some(ctx.tenant_id().as_uuid()),
        &who,
        &change("member.added", "member", 1),
    )
    .await;
    record_tenant(&ctx, &who, &change("monitor.created", "monitor", 1)).await;
    let (entries, _) = tenantry_audit::list(&engine, &ctx, &Filter::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    assert!(entries.iter().all(|e| e.seq == 1), "{entries:?}");
    let report = verify(&engine, &record).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!((report.organization_entries, report.tenant_entries), (1, 1));
}

per_tier!(concurrent_appends_chain_one_after_the_other);
async fn concurrent_appends_chain_one_after_the_other(tier: Isolation) {
    let engine = engine().await;
    let (record, ctx) = tenant(&engine, tier).await;
    let org = ctx.tenant_id().as_uuid();
    let mut tasks = Vec::new();
    for n in 1..=20u32 {
        let engine = engine.clone();
        let ctx = ctx.clone();
        tasks.push(tokio::spawn(async move {
            let who = user_ctx(Uuid::now_v7());
            if n % 2 == 0 {
                record_tenant(&ctx, &who, &change("monitor.updated", "monitor", n)).await;
            }
            record_org(
                &engine,
                Some(org),
                &who,
                &change("member.added", "member", n),
            )
            .await;
            record_tenant(&ctx, &who, &change("monitor.created", "monitor", n)).await;
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = tenantry_audit::list(
            &engine,
            &ctx,
            &Filter {
                limit: 7,
                cursor,
                ..Filter::default()
            },
        )
        .await
        .unwrap();
        seen.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let seqs = |source: Source| {
        let mut seqs: Vec<i64> = seen
            .iter()
            .filter(|e| e.source == source)
            .map(|e| e.seq)
            .collect();
        seqs.sort();
        seqs
    };
    assert_eq!(seqs(Source::Organization), (1..=20).collect::<Vec<_>>());
    assert_eq!(seqs(Source::Tenant), (1..=30).collect::<Vec<_>>());
    let report = verify(&engine, &record).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(
        (report.organization_entries, report.tenant_entries),
        (20, 30)
    );
}

per_tier!(the_trail_merges_both_chains_newest_first_with_filters_and_pages);
async fn the_trail_merges_both_chains_newest_first_with_filters_and_pages(tier: Isolation) {
    let engine = engine().await;
    let (_, ctx) = tenant(&engine, tier).await;
    let (_, other) = tenant(&engine, tier).await;
    let org = Some(ctx.tenant_id().as_uuid());
    let alice = Uuid::now_v7();
    let key = Uuid::now_v7();
    let by_key = AuditContext {
        actor: Actor::api_key(key),
        ..user_ctx(alice)
    };
    record_org(
        &engine,
        org,
        &user_ctx(alice),
        &change("member.added", "member", 1),
    )
    .await;
    record_tenant(&ctx, &by_key, &change("monitor.created", "monitor", 1)).await;
    let middle = Utc::now();
    record_org(
        &engine,
        org,
        &user_ctx(alice),
        &change("member.role_changed", "member", 2),
    )
    .await;
    record_tenant(
        &ctx,
        &user_ctx(alice),
        &change("monitor.updated", "monitor", 2),
    )
    .await;
    record_org(
        &engine,
        org,
        &by_key,
        &change("api_key.created", "api_key", 1),
    )
    .await;
    // Someone else's, and the platform's: never in this trail.
    record_org(
        &engine,
        Some(other.tenant_id().as_uuid()),
        &user_ctx(alice),
        &change("member.added", "member", 9),
    )
    .await;
    record_tenant(
        &other,
        &user_ctx(alice),
        &change("monitor.created", "monitor", 9),
    )
    .await;
    record_org(
        &engine,
        None,
        &AuditContext::system(),
        &change("tenant.created", "tenant", 1),
    )
    .await;

    let list = |filter: Filter| {
        let engine = engine.clone();
        let ctx = ctx.clone();
        async move { tenantry_audit::list(&engine, &ctx, &filter).await.unwrap() }
    };
    let (all, next) = list(Filter::default()).await;
    assert_eq!(next, None);
    let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "api_key.created",
            "monitor.updated",
            "member.role_changed",
            "monitor.created",
            "member.added"
        ]
    );
    let sources: Vec<Source> = all.iter().map(|e| e.source).collect();
    assert_eq!(
        sources,
        [
            Source::Organization,
            Source::Tenant,
            Source::Organization,
            Source::Tenant,
            Source::Organization
        ]
    );
    // Every field comes back.
    let created = &all[3];
    assert_eq!(created.actor_kind, tenantry_audit::ActorKind::ApiKey);
    assert_eq!(created.actor_id, Some(key));
    assert_eq!(created.target_kind, "monitor");
    assert_eq!(created.target_id.as_deref(), Some("monitor-1"));
    assert_eq!(created.before, None);
    assert_eq!(created.after.as_ref().unwrap()["tags"][1], "y");
    assert_eq!(created.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(created.user_agent.as_deref(), Some("Mozilla/5.0"));
    assert!(created.request_id.as_deref().unwrap().starts_with("req-"));
    assert_eq!(all[1].before.as_ref().unwrap()["nested"]["a"], 1.5);

    let actions_of = |entries: &[tenantry_audit::Entry]| -> Vec<String> {
        entries.iter().map(|e| e.action.clone()).collect()
    };
    let (members, _) = list(Filter {
        action: Some("member.".parse().unwrap()),
        ..Filter::default()
    })
    .await;
    assert_eq!(
        actions_of(&members),
        ["member.role_changed", "member.added"]
    );
    let (exact, _) = list(Filter {
        action: Some("monitor.created".parse().unwrap()),
        ..Filter::default()
    })
    .await;
    assert_eq!(actions_of(&exact), ["monitor.created"]);
    // Without the dot, a prefix is not a prefix: it is refused, as is an action nobody records.
    for unknown in ["member", "member.dropped", "nothing."] {
        assert!(
            unknown.parse::<tenantry_audit::ActionFilter>().is_err(),
            "{unknown}"
        );
    }
    let (by_actor, _) = list(Filter {
        actor: Some(key),
        ..Filter::default()
    })
    .await;
    assert_eq!(
        actions_of(&by_actor),
        ["api_key.created", "monitor.created"]
    );
    let (recent, _) = list(Filter {
        since: Some(middle),
        ..Filter::default()
    })
    .await;
    assert_eq!(
        actions_of(&recent),
        ["api_key.created", "monitor.updated", "member.role_changed"]
    );

    // Pages of two, across both chains, without repeats or gaps.
    let mut paged = Vec::new();
    let mut cursor = None;
    let mut pages = 0;
    loop {
        let (page, next) = list(Filter {
            limit: 2,
            cursor,
            ..Filter::default()
        })
        .await;
        pages += 1;
        assert!(page.len() <= 2);
        paged.extend(page);
        match next {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(actions_of(&paged), actions_of(&all));
    let ids: HashSet<Uuid> = paged.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 5);

    let err = tenantry_audit::list(
        &engine,
        &ctx,
        &Filter {
            cursor: Some("garbage".into()),
            ..Filter::default()
        },
    )
    .await
    .unwrap_err();
    assert!(err.downcast_ref::<InvalidCursor>().is_some(), "{err:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_chain_has_no_organization() {
    let engine = engine().await;
    let (_, ctx) = tenant(&engine, Isolation::Shared).await;
    let admin = Uuid::now_v7();
    for n in 1..=3 {
        record_org(
            &engine,
            None,
            &user_ctx(admin),
            &change("tenant.suspended", "tenant", n),
        )
        .await;
    }
    record_org(
        &engine,
        Some(ctx.tenant_id().as_uuid()),
        &user_ctx(admin),
        &change("member.added", "member", 1),
    )
    .await;
    let (entries, next) = tenantry_audit::list_platform(engine.control_db(), &Filter::default())
        .await
        .unwrap();
    assert_eq!(next, None);
    assert_eq!(entries.iter().map(|e| e.seq).collect::<Vec<_>>(), [3, 2, 1]);
    assert!(entries.iter().all(|e| e.source == Source::Platform));
    let report = tenantry_audit::verify_platform(&engine).await.unwrap();
    assert!(report.is_intact(), "{report:?}");
    assert_eq!(report.organization_entries, 3);
    let (org, _) = tenantry_audit::list(&engine, &ctx, &Filter::default())
        .await
        .unwrap();
    assert_eq!(org.len(), 1);
    let nulls: i64 = sqlx::query_scalar("SELECT count(*) FROM audit.entries WHERE org_id IS NULL")
        .fetch_one(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    assert_eq!(nulls, 3);
}

per_tier!(a_hard_delete_leaves_no_audit_row_of_the_tenant);
async fn a_hard_delete_leaves_no_audit_row_of_the_tenant(tier: Isolation) {
    let engine = engine().await;
    let (record, ctx) = tenant(&engine, tier).await;
    let (_, keep) = tenant(&engine, tier).await;
    let who = user_ctx(Uuid::now_v7());
    for ctx in [&ctx, &keep] {
        record_org(
            &engine,
            Some(ctx.tenant_id().as_uuid()),
            &who,
            &change("member.added", "member", 1),
        )
        .await;
        record_tenant(ctx, &who, &change("monitor.created", "monitor", 1)).await;
    }
    let id = record.id.as_uuid();
    engine
        .hard_delete(&record.slug, &record.slug)
        .await
        .unwrap();

    let mut conn = crate::control_as_superuser(&engine).await;
    for table in ["audit.entries", "audit.heads"] {
        let left: i64 =
            sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE org_id = $1"))
                .bind(id)
                .fetch_one(&mut conn)
                .await
                .unwrap();
        assert_eq!(left, 0, "{table}");
    }
    let shared_left: i64 =
        sqlx::query_scalar("SELECT count(*) FROM shared.audit_log WHERE tenant_id = $1")
            .bind(id)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(shared_left, 0);
    let schema_left: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1) AND $1 <> 'shared'",
    )
    .bind(&record.schema_name)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(!schema_left);
    let database_left: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&record.database_name)
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(database_left, tier != Isolation::Database);

    // The other tenant's trail is untouched and intact.
    let (entries, _) = tenantry_audit::list(&engine, &keep, &Filter::default())
        .await
        .unwrap();
    assert_eq!(entries.len(), 2);
    let kept = engine.find(keep.slug()).await.unwrap();
    assert!(verify(&engine, &kept).await.unwrap().is_intact());
}
