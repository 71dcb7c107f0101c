//! The check-result state machine against a real PostgreSQL, in every tier: monitors move
//! `pending` → `up`/`down`, incidents open after `confirmations` failures and resolve on the next
//! success, a check slot is recorded once however many recorders race for it, heartbeat pings
//! and their tokens, pruning past the retention, and the lists' pages.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, TimeDelta, Utc};
use tenantry_monitoring::{
    self as monitoring, After, MonitorInput, MonitorStatus, Observation, Ping, Recorded, TimeRange,
    Transition,
};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantCtx};
use uuid::Uuid;

use tenantry_testkit::per_tier;

/// A fresh engine (with this crate's control schema) and an active tenant of `tier`.
async fn tenant(tier: Isolation) -> (Tenancy, TenantCtx) {
    let engine = tenantry_testkit::open(
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await;
    let slug = format!("m{}", &Uuid::new_v4().simple().to_string()[..12]);
    let record = engine
        .create_tenant(&NewTenant {
            name: format!("Tenant {slug}"),
            slug: Slug::parse(&slug).unwrap(),
            isolation: tier,
            plan: None,
            server: None,
        })
        .await
        .unwrap();
    let ctx = engine.resolve_id(record.id).await.unwrap();
    (engine, ctx)
}

/// A monitor of `kind` needing `confirmations` failures; returns its id.
async fn monitor(ctx: &TenantCtx, kind: &str, confirmations: i32) -> Uuid {
    let input = MonitorInput {
        name: format!("{kind} monitor"),
        kind: kind.to_string(),
        target: (kind == "tcp").then(|| "db.internal:5432".to_string()),
        interval_seconds: None,
        timeout_seconds: None,
        keyword: None,
        enabled: None,
        confirmations: Some(confirmations),
        agent_id: None,
    };
    input.validate().unwrap();
    let mut tx = ctx.begin().await.unwrap();
    let created = monitoring::create(&mut tx, &input).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(created.status, "pending");
    assert_eq!(created.confirmations, confirmations);
    created.id
}

/// A fixed origin for the slots of a test, an hour ago (to the microsecond, as stored).
fn origin() -> DateTime<Utc> {
    let now = Utc::now() - TimeDelta::hours(1);
    DateTime::from_timestamp_micros(now.timestamp_micros()).unwrap()
}

fn slot(origin: DateTime<Utc>, n: i64) -> DateTime<Utc> {
    origin + TimeDelta::seconds(60 * n)
}

fn failed(at: DateTime<Utc>, error: &str) -> Observation {
    Observation {
        latency_ms: Some(3),
        status_code: Some(503),
        ..Observation::down(at, error)
    }
}

/// Records one observation in a transaction of its own.
async fn record(ctx: &TenantCtx, id: Uuid, due_at: DateTime<Utc>, seen: &Observation) -> Recorded {
    let mut tx = ctx.begin().await.unwrap();
    let recorded = monitoring::record_result(&mut tx, id, due_at, seen)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    recorded
}

fn status_of(recorded: &Recorded) -> MonitorStatus {
    match recorded {
        Recorded::Stored { status, .. } => *status,
        other => panic!("expected a stored result, got {other:?}"),
    }
}

fn transition_of(recorded: Recorded) -> Option<Transition> {
    match recorded {
        Recorded::Stored { transition, .. } => transition,
        other => panic!("expected a stored result, got {other:?}"),
    }
}

/// The monitor's status, failure run and last check, and its result count.
async fn state(ctx: &TenantCtx, id: Uuid) -> (String, i32, Option<DateTime<Utc>>, i64) {
    let mut tx = ctx.begin_read().await.unwrap();
    let (status, failures, last): (String, i32, Option<DateTime<Utc>>) = sqlx::query_as(
        "SELECT status, consecutive_failures, last_checked_at FROM monitors WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    let results: i64 =
        sqlx::query_scalar("SELECT count(*) FROM check_results WHERE monitor_id = $1")
            .bind(id)
            .fetch_one(&mut *tx)
            .await
            .unwrap();
    tx.commit().await.unwrap();
    (status, failures, last, results)
}

async fn a_first_success_moves_pending_to_up(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let t0 = origin();
    let recorded = record(&ctx, id, t0, &Observation::up(t0, Some(12))).await;
    let Recorded::Stored {
        result,
        status,
        transition,
    } = recorded
    else {
        panic!("not stored: {recorded:?}");
    };
    assert_eq!(status, MonitorStatus::Up);
    assert_eq!(transition, None);
    assert_eq!(
        (
            result.monitor_id,
            result.checked_at,
            result.ok,
            result.latency_ms
        ),
        (id, t0, true, Some(12))
    );
    assert_eq!(state(&ctx, id).await, ("up".to_string(), 0, Some(t0), 1));
    let mut tx = ctx.begin_read().await.unwrap();
    let read = monitoring::get(&mut tx, id).await.unwrap().unwrap();
    assert_eq!(
        (read.status.as_str(), read.last_checked_at),
        ("up", Some(t0))
    );
}
per_tier!(a_first_success_moves_pending_to_up);

async fn three_confirmations_need_three_failures_and_a_success_resolves(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 3).await;
    let t0 = origin();
    // Unconfirmed failures leave the status as it was (pending, never checked up).
    for n in 0..2 {
        let recorded = record(&ctx, id, slot(t0, n), &failed(slot(t0, n), "refused")).await;
        assert_eq!(status_of(&recorded), MonitorStatus::Pending, "failure {n}");
        assert_eq!(transition_of(recorded), None);
    }
    let mut tx = ctx.begin_read().await.unwrap();
    assert_eq!(monitoring::open_incident(&mut tx, id).await.unwrap(), None);
    drop(tx);
    let third = record(
        &ctx,
        id,
        slot(t0, 2),
        &failed(slot(t0, 2), "connection refused"),
    )
    .await;
    assert_eq!(status_of(&third), MonitorStatus::Down);
    let Some(Transition::Opened(opened)) = transition_of(third) else {
        panic!("the third failure opens an incident");
    };
    assert_eq!(opened.monitor_id, id);
    assert_eq!(opened.cause, "connection refused");
    // It started with the first failure of the run that confirmed it.
    assert_eq!(opened.started_at, t0);
    assert_eq!(opened.resolved_at, None);
    // Down already: another failure opens nothing.
    let fourth = record(&ctx, id, slot(t0, 3), &failed(slot(t0, 3), "refused")).await;
    assert_eq!(status_of(&fourth), MonitorStatus::Down);
    assert_eq!(transition_of(fourth), None);
    assert_eq!(state(&ctx, id).await.1, 4);

    let back = record(
        &ctx,
        id,
        slot(t0, 4),
        &Observation::up(slot(t0, 4), Some(5)),
    )
    .await;
    assert_eq!(status_of(&back), MonitorStatus::Up);
    let Some(Transition::Resolved(resolved)) = transition_of(back) else {
        panic!("the success resolves the incident");
    };
    assert_eq!(resolved.id, opened.id);
    assert_eq!(resolved.resolved_at, Some(slot(t0, 4)));
    assert_eq!(
        state(&ctx, id).await,
        ("up".to_string(), 0, Some(slot(t0, 4)), 5)
    );

    // Up again: two failures are not an outage yet; a third opens a second incident.
    for n in 5..7 {
        let recorded = record(&ctx, id, slot(t0, n), &failed(slot(t0, n), "refused")).await;
        assert_eq!(status_of(&recorded), MonitorStatus::Up);
    }
    let again = record(&ctx, id, slot(t0, 7), &failed(slot(t0, 7), "timed out")).await;
    let Some(Transition::Opened(second)) = transition_of(again) else {
        panic!("a second run of failures opens a second incident");
    };
    assert_eq!(
        (second.started_at, second.cause.as_str()),
        (slot(t0, 5), "timed out")
    );
    let mut tx = ctx.begin_read().await.unwrap();
    assert_eq!(
        monitoring::open_incident(&mut tx, id).await.unwrap(),
        Some(second.clone())
    );
    let listed = monitoring::list_incidents(&mut tx, id, 10, None)
        .await
        .unwrap();
    assert_eq!(listed, [second, resolved]);
}
per_tier!(three_confirmations_need_three_failures_and_a_success_resolves);

async fn a_slot_recorded_twice_changes_nothing_the_second_time(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 2).await;
    let t0 = origin();
    let first = record(&ctx, id, t0, &failed(t0, "refused")).await;
    assert_eq!(status_of(&first), MonitorStatus::Pending);
    // The same slot again, even reported differently: a duplicate, not the second failure.
    for seen in [failed(t0, "refused"), failed(slot(t0, 1), "other")] {
        assert_eq!(record(&ctx, id, t0, &seen).await, Recorded::Duplicate);
    }
    assert_eq!(
        state(&ctx, id).await,
        ("pending".to_string(), 1, Some(t0), 1)
    );
    let mut tx = ctx.begin_read().await.unwrap();
    assert_eq!(monitoring::open_incident(&mut tx, id).await.unwrap(), None);
    drop(tx);
    // A monitor that does not exist records nothing.
    assert_eq!(
        record(&ctx, Uuid::new_v4(), t0, &failed(t0, "x")).await,
        Recorded::NoMonitor
    );
}
per_tier!(a_slot_recorded_twice_changes_nothing_the_second_time);

async fn concurrent_recorders_of_one_slot_make_one_result(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let t0 = origin();
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let ctx = ctx.clone();
            tokio::spawn(async move { record(&ctx, id, t0, &failed(t0, "refused")).await })
        })
        .collect();
    let mut stored = 0;
    let mut opened = 0;
    for task in tasks {
        match task.await.unwrap() {
            Recorded::Duplicate => {}
            Recorded::Stored { transition, .. } => {
                stored += 1;
                opened += usize::from(matches!(transition, Some(Transition::Opened(_))));
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((stored, opened), (1, 1));
    assert_eq!(state(&ctx, id).await, ("down".to_string(), 1, Some(t0), 1));
}
per_tier!(concurrent_recorders_of_one_slot_make_one_result);

async fn concurrent_failures_of_different_slots_confirm_one_incident(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 8).await;
    let t0 = origin();
    // A backlog of eight slots, checked at the same moment and recorded at once (results that
    // ran earlier than the monitor's latest check would not move it).
    let checked_at = slot(t0, 10);
    let tasks: Vec<_> = (0..8)
        .map(|n| {
            let ctx = ctx.clone();
            tokio::spawn(async move {
                record(&ctx, id, slot(t0, n), &failed(checked_at, "refused")).await
            })
        })
        .collect();
    let mut opened = 0;
    for task in tasks {
        let recorded = task.await.unwrap();
        opened += usize::from(matches!(
            transition_of(recorded),
            Some(Transition::Opened(_))
        ));
    }
    // Serialized by the monitor row's lock: every failure counted, the eighth confirms.
    assert_eq!(opened, 1);
    let (status, failures, _, results) = state(&ctx, id).await;
    assert_eq!((status.as_str(), failures, results), ("down", 8, 8));
}
per_tier!(concurrent_failures_of_different_slots_confirm_one_incident);

async fn a_late_result_is_kept_without_moving_the_monitor(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let t0 = origin();
    record(&ctx, id, slot(t0, 1), &Observation::up(slot(t0, 1), None)).await;
    let late = record(&ctx, id, t0, &failed(t0, "slow and refused")).await;
    assert_eq!(status_of(&late), MonitorStatus::Up);
    assert_eq!(transition_of(late), None);
    assert_eq!(
        state(&ctx, id).await,
        ("up".to_string(), 0, Some(slot(t0, 1)), 2)
    );
}
per_tier!(a_late_result_is_kept_without_moving_the_monitor);

async fn results_older_than_the_retention_are_pruned(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let now = origin() + TimeDelta::hours(1);
    let ages = [10, 8, 6, 1];
    for days in ages {
        let at = now - TimeDelta::days(days);
        record(&ctx, id, at, &Observation::up(at, None)).await;
    }
    let mut tx = ctx.begin().await.unwrap();
    assert_eq!(monitoring::prune_results(&mut tx, 7).await.unwrap(), 2);
    tx.commit().await.unwrap();
    let mut tx = ctx.begin_read().await.unwrap();
    let kept = monitoring::list_results(&mut tx, id, 10, None, TimeRange::default())
        .await
        .unwrap();
    let kept: Vec<_> = kept.iter().map(|r| r.checked_at).collect();
    assert_eq!(kept, [now - TimeDelta::days(1), now - TimeDelta::days(6)]);
}
per_tier!(results_older_than_the_retention_are_pruned);

async fn results_are_listed_newest_first_in_pages_and_ranges(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let other = monitor(&ctx, "tcp", 1).await;
    let t0 = origin();
    for n in 0..5 {
        record(
            &ctx,
            id,
            slot(t0, n),
            &Observation::up(slot(t0, n), Some(n as i32)),
        )
        .await;
    }
    record(&ctx, other, t0, &Observation::up(t0, None)).await;
    let mut tx = ctx.begin_read().await.unwrap();
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = monitoring::list_results(&mut tx, id, 2, after, TimeRange::default())
            .await
            .unwrap();
        seen.extend(page.iter().map(|r| r.latency_ms.unwrap()));
        match page.last() {
            Some(last) if page.len() == 2 => {
                after = Some(After {
                    at: last.checked_at,
                    id: last.id,
                })
            }
            _ => break,
        }
    }
    assert_eq!(seen, [4, 3, 2, 1, 0]);
    let range = TimeRange {
        since: Some(slot(t0, 1)),
        until: Some(slot(t0, 3)),
    };
    let within = monitoring::list_results(&mut tx, id, 10, None, range)
        .await
        .unwrap();
    let within: Vec<_> = within.iter().map(|r| r.latency_ms.unwrap()).collect();
    assert_eq!(within, [2, 1]);
}
per_tier!(results_are_listed_newest_first_in_pages_and_ranges);

async fn pings_note_the_time_and_bring_a_heartbeat_monitor_up(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "heartbeat", 1).await;
    let t0 = origin();
    // Missed: down, with an incident.
    let missed = record(&ctx, id, t0, &failed(t0, "no ping within the interval")).await;
    assert!(matches!(transition_of(missed), Some(Transition::Opened(_))));

    let ping = |at: DateTime<Utc>, monitor: Uuid| {
        let ctx = ctx.clone();
        async move {
            let mut tx = ctx.begin().await.unwrap();
            let ping = monitoring::record_ping(&mut tx, monitor, at).await.unwrap();
            tx.commit().await.unwrap();
            ping
        }
    };
    let Ping::Recovered(recorded) = ping(slot(t0, 1), id).await else {
        panic!("a ping on a down heartbeat monitor records a success");
    };
    assert!(matches!(
        transition_of(recorded),
        Some(Transition::Resolved(_))
    ));
    assert_eq!(ping(slot(t0, 2), id).await, Ping::Noted);
    // An older ping arriving late does not move the last ping back.
    assert_eq!(ping(t0, id).await, Ping::Noted);
    let mut tx = ctx.begin_read().await.unwrap();
    let read = monitoring::get(&mut tx, id).await.unwrap().unwrap();
    drop(tx);
    assert_eq!(
        (read.status.as_str(), read.last_ping_at),
        ("up", Some(slot(t0, 2)))
    );
    // One result for the miss, one for the recovering ping; a ping on an up monitor adds none.
    assert_eq!(state(&ctx, id).await.3, 2);

    // Only enabled heartbeat monitors take pings.
    let tcp = monitor(&ctx, "tcp", 1).await;
    assert_eq!(ping(t0, tcp).await, Ping::NoMonitor);
    assert_eq!(ping(t0, Uuid::new_v4()).await, Ping::NoMonitor);
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query("UPDATE monitors SET enabled = false WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(ping(slot(t0, 3), id).await, Ping::NoMonitor);
}
per_tier!(pings_note_the_time_and_bring_a_heartbeat_monitor_up);

async fn deleting_a_monitor_removes_its_results_and_incidents(tier: Isolation) {
    let (_engine, ctx) = tenant(tier).await;
    let id = monitor(&ctx, "tcp", 1).await;
    let t0 = origin();
    record(&ctx, id, t0, &failed(t0, "refused")).await;
    let mut tx = ctx.begin().await.unwrap();
    assert!(monitoring::delete(&mut tx, id).await.unwrap());
    tx.commit().await.unwrap();
    let mut tx = ctx.begin_read().await.unwrap();
    let left: (i64, i64) = sqlx::query_as(
        "SELECT (SELECT count(*) FROM check_results), (SELECT count(*) FROM incidents)",
    )
    .fetch_one(&mut *tx)
    .await
    .unwrap();
    assert_eq!(left, (0, 0));
}
per_tier!(deleting_a_monitor_removes_its_results_and_incidents);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeat_tokens_are_stored_hashed_and_rotate() {
    let (engine, ctx) = tenant(Isolation::Database).await;
    let pool = engine.control_db();
    let org = ctx.tenant_id().as_uuid();
    let id = monitor(&ctx, "heartbeat", 1).await;
    let token = monitoring::issue_heartbeat(pool, org, id).await.unwrap();
    let target = monitoring::find_heartbeat(pool, token.expose())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((target.org_id, target.monitor_id), (org, id));
    assert!(
        monitoring::has_heartbeat_token(pool, org, id)
            .await
            .unwrap()
    );
    assert!(
        token
            .url("http://up.test/")
            .ends_with(&format!("/api/v1/heartbeat/{}", token.expose()))
    );
    // Only the hash is stored.
    let stored: Vec<u8> = sqlx::query_scalar("SELECT token_hash FROM monitoring.heartbeats")
        .fetch_one(pool)
        .await
        .unwrap();
    assert_eq!(stored.len(), 32);
    assert!(
        !String::from_utf8_lossy(&stored).contains(token.expose()),
        "the token itself is not stored"
    );
    // A new token replaces the old one.
    let rotated = monitoring::issue_heartbeat(pool, org, id).await.unwrap();
    assert_ne!(rotated, token);
    assert_eq!(
        monitoring::find_heartbeat(pool, token.expose())
            .await
            .unwrap(),
        None
    );
    assert!(
        monitoring::find_heartbeat(pool, rotated.expose())
            .await
            .unwrap()
            .is_some()
    );
    for unknown in ["", "nope", &"A".repeat(43)] {
        assert_eq!(
            monitoring::find_heartbeat(pool, unknown).await.unwrap(),
            None
        );
    }
    assert!(monitoring::forget_heartbeat(pool, org, id).await.unwrap());
    assert!(!monitoring::forget_heartbeat(pool, org, id).await.unwrap());
    assert_eq!(
        monitoring::find_heartbeat(pool, rotated.expose())
            .await
            .unwrap(),
        None
    );
}
