//! Closing an organization. A hard delete leaves nothing of it: no row in any table of the
//! control database that references or names it (the platform's own audit log excepted, which
//! keeps the act), no schema, database or role, no Redis key, no email in the outbox; and an
//! organization next to it keeps all of its data. A Redis that is down does not stop a hard
//! delete. A soft delete emails every owner the purge date and where to download the data
//! before it.
//!
//! The leftovers are found from the catalog, not from a list of tables: every column of every
//! table of every schema is searched, as the test cluster's superuser (which row-level security
//! does not bind).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};
use sqlx::{Connection, PgConnection, Row};
use tenantry_orgs::EntitlementChange;
use tenantry_ratelimit::server::RedisServer;
use tenantry_tenancy::Isolation;
use tenantry_testkit::smtp::SinkMode;
use uuid::Uuid;

use crate::{Caller, PUBLIC_URL, Spawn, TestApp, caller, platform_admin};

use tenantry_testkit::per_tier;

/// The organization's budget: small, so that its Redis key lives long (4 s per request) and
/// no test here is refused (each makes fewer than 15 requests in an organization).
const BUDGET: i64 = 15;

async fn redis() -> RedisServer {
    RedisServer::start()
        .await
        .unwrap_or_else(|e| panic!("the hard-delete tests need a redis-server: {e}"))
}

async fn spawn_with_redis(server: &RedisServer) -> TestApp {
    TestApp::spawn_with(Spawn {
        redis_url: Some(server.url()),
        ..Spawn::default()
    })
    .await
}

/// An organization made through the platform admin API, its owner signed up through the
/// invitation the creation sent.
struct Org {
    id: Uuid,
    slug: String,
    owner: Caller,
    /// API keys: one with a budget of its own (1 request per minute), one without.
    keys: Vec<Value>,
}

/// Creates the organization (tier `tier`) with `owner_email` as its owner, accepting the
/// invitation email (the sink must accept mail).
async fn create_org(
    app: &TestApp,
    root: &str,
    slug: &str,
    owner_email: &str,
    tier: Isolation,
) -> Org {
    let created = app
        .as_(root)
        .admin_tenants()
        .create(json!({
            "name": format!("Org {slug}"),
            "slug": slug,
            "admin_email": owner_email,
            "plan": "pro",
            "isolation": tier,
        }))
        .await;
    let id: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    // Before the organization's first counted request: budgets are remembered 30 s.
    let mut limits = Map::new();
    limits.insert("api_requests_per_minute".to_string(), json!(BUDGET));
    app.orgs
        .change_entitlements(
            id,
            &EntitlementChange {
                limits: Some(limits),
                ..EntitlementChange::default()
            },
            &tenantry_audit::AuditContext::system(),
        )
        .await
        .unwrap();
    let token = app.invitation_token(owner_email, 0).await;
    let accepted = app
        .anonymous()
        .invitation(&token)
        .accept_signing_up("Owner", "owner password")
        .await;
    Org {
        id,
        slug: slug.to_string(),
        owner: Caller {
            id: accepted["user"]["id"].as_str().unwrap().parse().unwrap(),
            token: accepted["access_token"].as_str().unwrap().to_string(),
        },
        keys: Vec::new(),
    }
}

/// Gives the organization data everywhere: a member (`member`), monitors (in its own storage,
/// with their audit entries), an invitation (its email stays queued while the sink refuses
/// mail), API keys, and requests made with them (Redis keys, the key's own included); then
/// flushes the request counters. Nine requests of the organization's budget.
async fn populate(app: &TestApp, org: &mut Org, member: &Caller, invitee: &str) {
    let owner = app.as_(&org.owner);
    let orgs = owner.organizations();
    orgs.members(org.id).add(member.id, "member").await;
    for name in ["Home", "Api"] {
        owner
            .monitors()
            .create(json!({"name": name, "kind": "http", "target": "https://example.test"}))
            .await;
    }
    orgs.invitations(org.id).invite(invitee, "viewer").await;
    let keys = orgs.api_keys(org.id);
    let limited = keys
        .create(json!({"name": "limited", "role": "member", "requests_per_minute": 1}))
        .await;
    let plain = keys
        .create(json!({"name": "plain", "role": "viewer"}))
        .await;
    for key in [&limited, &plain] {
        let secret = key["secret"].as_str().unwrap();
        app.as_(secret).monitors().list().await;
    }
    org.keys = vec![limited, plain];
    app.orgs.flush_requests().await.unwrap();
}

/// A table column, as `schema.table.column`.
struct Column {
    schema: String,
    table: String,
    column: String,
    kind: ColumnKind,
}

enum ColumnKind {
    Uuid,
    UuidArray,
    Text,
}

/// Every column of every table of the connected database that can hold an id or a name.
async fn columns(conn: &mut PgConnection) -> Vec<Column> {
    let rows = sqlx::query(
        "SELECT n.nspname::text, c.relname::text, a.attname::text, t.typname::text
         FROM pg_attribute a
         JOIN pg_class c ON c.oid = a.attrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         JOIN pg_type t ON t.oid = a.atttypid
         WHERE c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'
           AND t.typname IN ('uuid', '_uuid', 'text', 'varchar', 'bpchar', 'name', 'json', 'jsonb')
         ORDER BY 1, 2, 3",
    )
    .fetch_all(&mut *conn)
    .await
    .unwrap();
    rows.into_iter()
        .map(|row| {
            let kind = match row.get::<String, _>(3).as_str() {
                "uuid" => ColumnKind::Uuid,
                "_uuid" => ColumnKind::UuidArray,
                _ => ColumnKind::Text,
            };
            Column {
                schema: row.get(0),
                table: row.get(1),
                column: row.get(2),
                kind,
            }
        })
        .collect()
}

fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// For every column holding organization `id` (as a uuid, or its id, hex id or `slug` inside
/// text or JSON), the number of rows that do: `schema.table.column` → count. Rows of the
/// platform's own audit log (`audit.entries` without an organization) are left out: they
/// record the platform's acts on tenants, the purge included, by design.
async fn references(conn: &mut PgConnection, id: Uuid, slug: &str) -> BTreeMap<String, i64> {
    let patterns = vec![
        format!("%{id}%"),
        format!("%{}%", id.simple()),
        format!("%{slug}%"),
    ];
    let mut found = BTreeMap::new();
    for column in columns(conn).await {
        let table = format!("{}.{}", ident(&column.schema), ident(&column.table));
        let col = ident(&column.column);
        let test = match column.kind {
            ColumnKind::Uuid => format!("{col} = $1"),
            ColumnKind::UuidArray => format!("$1 = ANY ({col})"),
            ColumnKind::Text => format!("{col}::text LIKE ANY ($2)"),
        };
        // A purged organization's former slug stays reserved for 30 days (without its id).
        if column.schema == "control" && column.table == "released_slugs" && column.column == "slug"
        {
            continue;
        }
        let platform_log = column.schema == "audit" && column.table == "entries";
        let except = if platform_log {
            " AND org_id IS NOT NULL"
        } else {
            ""
        };
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {table} WHERE ({test}){except}"
        ))
        .bind(id)
        .bind(&patterns)
        .fetch_one(&mut *conn)
        .await
        .unwrap_or_else(|e| panic!("{table}.{col}: {e}"));
        if count > 0 {
            found.insert(
                format!("{}.{}.{}", column.schema, column.table, column.column),
                count,
            );
        }
    }
    found
}

/// The schemas, databases and roles of the cluster whose name carries the organization's id.
async fn storage(conn: &mut PgConnection, id: Uuid) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname LIKE $1
         UNION ALL SELECT 'database ' || datname FROM pg_database WHERE datname LIKE $1
         UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname LIKE $1
         ORDER BY 1",
    )
    .bind(format!("%{}%", id.simple()))
    .fetch_all(&mut *conn)
    .await
    .unwrap()
}

/// The Redis keys of organization `id`, sorted.
async fn redis_keys(server: &RedisServer, id: Uuid) -> Vec<String> {
    let client = redis::Client::open(server.url()).unwrap();
    let mut connection = client.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("tenantry:{id}:*"))
        .query_async(&mut connection)
        .await
        .unwrap();
    keys.sort();
    keys
}

/// The statuses of the organization's emails in the outbox, sorted.
async fn outbox_statuses(app: &TestApp, id: Uuid) -> Vec<String> {
    sqlx::query_scalar("SELECT status FROM mail.outbox WHERE org_id = $1 ORDER BY status")
        .bind(id)
        .fetch_all(tenantry_tenancy::Operator::new(&app.tenancy).control())
        .await
        .unwrap()
}

/// Waits (up to a deadline, nothing is measured) until the organization's outbox holds a sent
/// email and a queued one.
async fn until_sent_and_queued(app: &TestApp, id: Uuid) -> Vec<String> {
    let what = format!("a sent and a queued email in the outbox of {id}");
    tenantry_testkit::eventually(&what, Duration::from_secs(30), async || {
        let statuses = outbox_statuses(app, id).await;
        if statuses.iter().any(|s| s == "sent") && statuses.iter().any(|s| s == "queued") {
            Ok(statuses)
        } else {
            Err(format!("{statuses:?}"))
        }
    })
    .await
}

/// Rows of every table of the tenant's own database (database tier), by table.
async fn database_rows(database: &str) -> BTreeMap<String, i64> {
    let mut conn = tenantry_testkit::superuser_conn(database).await;
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT n.nspname::text, c.relname::text FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND n.nspname NOT LIKE 'pg_toast%'",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    let mut rows = BTreeMap::new();
    for (schema, table) in tables {
        let count: i64 = sqlx::query_scalar(&format!(
            "SELECT count(*) FROM {}.{}",
            ident(&schema),
            ident(&table)
        ))
        .fetch_one(&mut conn)
        .await
        .unwrap();
        rows.insert(format!("{schema}.{table}"), count);
    }
    conn.close().await.unwrap();
    rows
}

per_tier!(a_hard_delete_leaves_nothing_of_the_organization_and_spares_its_neighbour);
async fn a_hard_delete_leaves_nothing_of_the_organization_and_spares_its_neighbour(
    tier: Isolation,
) {
    let server = redis().await;
    let app = spawn_with_redis(&server).await;
    let root = platform_admin(&app).await;
    let bob = caller(&app, "bob@example.com").await;
    let mut gone = create_org(
        &app,
        &root,
        &format!("gone-{tier}"),
        "ada@example.com",
        tier,
    )
    .await;
    let mut kept = create_org(
        &app,
        &root,
        &format!("kept-{tier}"),
        "sam@example.com",
        tier,
    )
    .await;
    // From here, emails stay queued: each organization keeps a sent one and a pending one.
    app.mail.set_mode(SinkMode::TemporaryFailure);
    populate(&app, &mut gone, &bob, "carol@example.com").await;
    populate(&app, &mut kept, &bob, "dave@example.com").await;
    // Bob's logins start in the organization about to go.
    app.as_(&bob).user().set_default_organization(gone.id).await;

    // The organization is everywhere.
    let mut control = tenantry_testkit::superuser_conn(app.tenancy.control_database()).await;
    let before = references(&mut control, gone.id, &gone.slug).await;
    for table in [
        "control.tenants.id",
        "orgs.memberships.org_id",
        "orgs.invitations.org_id",
        "orgs.api_keys.org_id",
        "orgs.api_usage.org_id",
        "audit.entries.org_id",
        "mail.outbox.org_id",
        "identity.users.default_org_id",
    ] {
        assert!(before.contains_key(table), "{table} not in {before:?}");
    }
    match tier {
        Isolation::Shared => assert!(
            before.keys().any(|k| k.starts_with("shared.monitors.")),
            "{before:?}"
        ),
        Isolation::Schema => assert!(
            before
                .keys()
                .any(|k| k.starts_with(&format!("t_{}.monitors.", gone.id.simple()))),
            "{before:?}"
        ),
        Isolation::Database => {}
    }
    let expected_storage: Vec<String> = match tier {
        Isolation::Shared => vec![],
        Isolation::Schema => vec![format!("schema t_{}", gone.id.simple())],
        Isolation::Database => vec![
            format!("database tt_t_{}", gone.id.simple()),
            format!("role tt_t_{}", gone.id.simple()),
        ],
    };
    assert_eq!(storage(&mut control, gone.id).await, expected_storage);
    if tier == Isolation::Database {
        let rows = database_rows(&format!("tt_t_{}", gone.id.simple())).await;
        assert!(rows.values().any(|n| *n > 0), "{rows:?}");
    }
    let statuses = until_sent_and_queued(&app, gone.id).await;
    assert!(statuses.len() >= 2, "{statuses:?}");
    let limited_key = gone.keys[0]["id"].as_str().unwrap();
    let keys = redis_keys(&server, gone.id).await;
    assert!(
        keys.contains(&format!("tenantry:{}:api_requests", gone.id)),
        "{keys:?}"
    );
    assert!(
        keys.contains(&format!("tenantry:{}:api_key:{limited_key}", gone.id)),
        "{keys:?}"
    );
    // What the neighbour has, to compare after.
    until_sent_and_queued(&app, kept.id).await;
    let kept_before = references(&mut control, kept.id, &kept.slug).await;
    let kept_storage = storage(&mut control, kept.id).await;
    let kept_database = format!("tt_t_{}", kept.id.simple());
    let kept_rows = match tier {
        Isolation::Database => Some(database_rows(&kept_database).await),
        _ => None,
    };
    let kept_outbox = outbox_statuses(&app, kept.id).await;

    app.as_(&gone.owner)
        .organizations()
        .hard_delete(gone.id, gone.slug.as_str())
        .await;

    // Nothing left: no row naming it in any table of any schema, no schema, database or
    // role, no Redis key, no email.
    let after = references(&mut control, gone.id, &gone.slug).await;
    assert!(after.is_empty(), "left behind: {after:?}");
    assert_eq!(storage(&mut control, gone.id).await, Vec::<String>::new());
    assert_eq!(redis_keys(&server, gone.id).await, Vec::<String>::new());
    assert_eq!(outbox_statuses(&app, gone.id).await, Vec::<String>::new());
    // The platform's log keeps the act, and only that.
    let platform: Vec<String> = sqlx::query_scalar(
        "SELECT action FROM audit.entries WHERE org_id IS NULL AND target_id = $1 ORDER BY seq",
    )
    .bind(gone.id.to_string())
    .fetch_all(&mut control)
    .await
    .unwrap();
    assert_eq!(
        platform.last().map(String::as_str),
        Some("organization.purged")
    );

    // The neighbour keeps everything: the same rows, storage, emails and Redis keys.
    assert_eq!(
        references(&mut control, kept.id, &kept.slug).await,
        kept_before
    );
    assert_eq!(storage(&mut control, kept.id).await, kept_storage);
    if let Some(rows) = kept_rows {
        assert_eq!(database_rows(&kept_database).await, rows);
    }
    assert_eq!(outbox_statuses(&app, kept.id).await, kept_outbox);
    let kept_key = kept.keys[0]["id"].as_str().unwrap();
    assert!(
        redis_keys(&server, kept.id)
            .await
            .contains(&format!("tenantry:{}:api_key:{kept_key}", kept.id))
    );
    let monitors = app.as_(&kept.owner).monitors().list().await;
    assert_eq!(monitors["items"].as_array().unwrap().len(), 2);
    // Bob is a member of the neighbour only now, and starts nowhere in particular.
    let mine = app.as_(&bob).user().organizations().await;
    let ids: Vec<&str> = mine
        .as_array()
        .or_else(|| mine["items"].as_array())
        .unwrap()
        .iter()
        .map(|o| o["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [kept.id.to_string()]);
    let me = app.as_(&bob).user().get().await;
    assert_eq!(me["default_org_id"], Value::Null);
    control.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_hard_delete_removes_the_redis_keys_and_a_redis_down_stops_no_delete() {
    let mut server = redis().await;
    let app = spawn_with_redis(&server).await;
    let root = platform_admin(&app).await;
    let bob = caller(&app, "bob@example.com").await;
    let mut first = create_org(&app, &root, "first", "ada@example.com", Isolation::Schema).await;
    let mut second = create_org(&app, &root, "second", "sam@example.com", Isolation::Shared).await;
    populate(&app, &mut first, &bob, "carol@example.com").await;
    populate(&app, &mut second, &bob, "dave@example.com").await;
    assert_eq!(redis_keys(&server, first.id).await.len(), 2);
    assert_eq!(redis_keys(&server, second.id).await.len(), 2);

    // The platform admin's hard delete removes the keys too.
    app.as_(&root)
        .admin_tenants()
        .hard_delete(first.id, first.slug.as_str())
        .await;
    assert_eq!(redis_keys(&server, first.id).await, Vec::<String>::new());
    assert_eq!(redis_keys(&server, second.id).await.len(), 2);

    // Redis down: the hard delete still happens (the keys would expire on their own).
    server.stop().await;
    let orgs = app.as_(&second.owner).organizations();
    orgs.hard_delete(second.id, second.slug.as_str()).await;
    let mut control = tenantry_testkit::superuser_conn(app.tenancy.control_database()).await;
    let after = references(&mut control, second.id, &second.slug).await;
    assert!(after.is_empty(), "left behind: {after:?}");
    let gone = orgs.try_get(second.id).await;
    assert_eq!(gone.problem(404)["code"], "not_found");
    control.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_soft_delete_emails_every_owner_the_purge_date_and_the_export_link() {
    let app = TestApp::spawn().await;
    let ada = caller(&app, "ada@example.com").await;
    let sam = caller(&app, "sam@example.com").await;
    let bob = caller(&app, "bob@example.com").await;
    let acme = crate::new_org(&app, &ada, "Acme Widgets").await;
    let orgs = app.as_(&ada).organizations();
    let members = orgs.members(&acme);
    for (user, role) in [(&sam, "owner"), (&bob, "admin")] {
        // Owners are made by promotion.
        members.add(user.id, "member").await;
        members.change_role(user.id, role).await;
    }

    orgs.delete(&acme).await;
    let deleted_at: chrono::DateTime<chrono::Utc> =
        sqlx::query_scalar("SELECT deleted_at FROM control.tenants WHERE id = $1")
            .bind(acme.parse::<Uuid>().unwrap())
            .fetch_one(tenantry_tenancy::Operator::new(&app.tenancy).control())
            .await
            .unwrap();
    let purge = deleted_at + chrono::Duration::days(30);

    let messages = app
        .mail
        .wait_for(
            |m| {
                ["ada@example.com", "sam@example.com"].iter().all(|owner| {
                    m.iter().any(|m| {
                        m.recipients.iter().any(|r| r == owner)
                            && !m
                                .subject()
                                .unwrap_or_default()
                                .starts_with("You were added")
                    })
                })
            },
            Duration::from_secs(30),
        )
        .await;
    let export = format!("{PUBLIC_URL}/api/v1/organizations/{acme}/export");
    for owner in ["ada@example.com", "sam@example.com"] {
        let email = messages
            .iter()
            .find(|m| {
                m.recipients.iter().any(|r| r == owner)
                    && !m
                        .subject()
                        .unwrap_or_default()
                        .starts_with("You were added")
            })
            .unwrap();
        let subject = email.subject().unwrap();
        assert!(subject.contains("Acme Widgets"), "{subject}");
        assert!(
            subject.contains(&purge.format("%Y-%m-%d").to_string()),
            "{subject}"
        );
        let text = email.text();
        assert!(text.contains(&export), "{text}");
        assert!(
            text.contains(&format!(
                "It will be purged on {}",
                purge.format("%Y-%m-%d %H:%M UTC")
            )),
            "{text}"
        );
        assert!(
            text.contains("can\nbe restored") || text.contains("can be restored"),
            "{text}"
        );
        assert!(text.contains("ada@example.com"), "who deleted it: {text}");
    }
    // Owners only: the admin is not told. The emails were queued together, in one
    // transaction, so they are all in the outbox already.
    // (Bob and Sam were also told when they were added.)
    let recipients: Vec<String> = sqlx::query_scalar(
        "SELECT recipient FROM mail.outbox WHERE org_id = $1 AND subject NOT LIKE 'You were added%'
         ORDER BY recipient",
    )
    .bind(acme.parse::<Uuid>().unwrap())
    .fetch_all(tenantry_tenancy::Operator::new(&app.tenancy).control())
    .await
    .unwrap();
    assert_eq!(recipients, ["ada@example.com", "sam@example.com"]);
    assert!(
        app.mail
            .messages()
            .iter()
            .filter(|m| !m
                .subject()
                .unwrap_or_default()
                .starts_with("You were added"))
            .all(|m| m.recipients.iter().all(|r| r != "bob@example.com"))
    );
}
