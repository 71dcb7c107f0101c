//! Export and import against a real PostgreSQL: a tenant with rows in every tenant table and a
//! control side (members, plan overrides, an invitation, an API key, usage, both audit chains)
//! is exported from each tier and imported into each tier (9 pairs), then compared row by row;
//! the archive holds no secret hash and nothing of another tenant; damaged, newer or tampered
//! archives are refused before anything is created; a failure midway leaves nothing behind.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tenantry_archive::{ArchiveError, ImportOptions, ImportReport, Quiet};
use tenantry_audit::{Actor, AuditContext, Change};
use tenantry_identity::{Email, Identity, IdentityConfig, User};
use tenantry_mail::Outbox;
use tenantry_orgs::{EntitlementChange, Orgs, ProfileChange, Role};
use tenantry_tenancy::{Isolation, Tenancy, TenantRecord, TenantTable};
use uuid::Uuid;

const TIERS: [Isolation; 3] = [Isolation::Shared, Isolation::Schema, Isolation::Database];

struct World {
    tenancy: Tenancy,
    orgs: Orgs,
    owner: User,
    member: User,
    dir: tempfile::TempDir,
}

async fn world() -> World {
    let tenancy = tenantry_testkit::open(
        tenantry_app::tenant_schema(),
        &tenantry_app::control_schemas(),
    )
    .await;
    let identity = Identity::open(
        &tenancy,
        &tenantry_tenancy::Operator::new(&tenancy),
        IdentityConfig::default(),
    )
    .await
    .unwrap();
    let outbox = Outbox::open(&tenancy, &tenantry_tenancy::Operator::new(&tenancy))
        .await
        .unwrap();
    let orgs =
        Orgs::new(tenancy.clone(), outbox, "http://tenantry.test").with_organization_cap(None);
    let user = |email: &'static str, name: &'static str| {
        let identity = identity.clone();
        async move {
            identity
                .create_user(
                    &Email::parse(email).unwrap(),
                    "a long password",
                    name,
                    false,
                )
                .await
                .unwrap()
        }
    };
    let owner = user("owner@example.com", "Owner").await;
    let member = user("member@example.com", "Member").await;
    World {
        tenancy,
        orgs,
        owner,
        member,
        dir: tempfile::tempdir().unwrap(),
    }
}

fn who(user: &User) -> AuditContext {
    AuditContext {
        actor: Actor::user(user.id),
        ip: Some("203.0.113.7".into()),
        user_agent: Some("test-agent/1.0 \"quoted\"".into()),
        request_id: Some(Uuid::new_v4().to_string()),
    }
}

/// An organization of `tier` with rows in every tenant table and on the control side.
async fn seed(w: &World, tier: Isolation, slug: &str, name: &str) -> TenantRecord {
    let org = w
        .orgs
        .create(w.owner.id, name, Some(slug), tier, &who(&w.owner))
        .await
        .unwrap();
    let org_id = org.id;
    w.orgs
        .update(
            Role::Owner,
            org_id,
            &ProfileChange {
                logo_url: Some("https://example.com/logo.png".into()),
                billing_email: Some("billing@example.com".into()),
                settings: Some(json!({"theme": "dark", "weekly_report": true})),
                ..ProfileChange::default()
            },
            &who(&w.owner),
        )
        .await
        .unwrap();
    w.orgs
        .add_member(
            Role::Owner,
            org_id,
            w.member.id,
            Role::Admin,
            &who(&w.owner),
        )
        .await
        .unwrap();
    let mut limits = serde_json::Map::new();
    limits.insert("max_monitors".into(), json!(42));
    let mut features = serde_json::Map::new();
    features.insert("agents".into(), json!(true));
    w.orgs
        .change_entitlements(
            org_id,
            &EntitlementChange {
                plan: Some("pro".into()),
                limits: Some(limits),
                features: Some(features),
            },
            &AuditContext::system(),
        )
        .await
        .unwrap();
    w.orgs
        .invite(
            Role::Owner,
            org_id,
            "Owner",
            &Email::parse(&format!("invitee-{slug}@example.com")).unwrap(),
            Role::Member,
            &who(&w.owner),
        )
        .await
        .unwrap();
    // An API key, stored as the application stores one: only its hash.
    let mut owner = tenantry_tenancy::Operator::new(&w.tenancy)
        .control()
        .acquire()
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO orgs.api_keys (id, org_id, name, prefix, key_hash, role, created_by)
         VALUES ($1, $2, 'deploys', 'tnt_abcd', $3, 'member', $4)",
    )
    .bind(Uuid::now_v7())
    .bind(org_id)
    .bind(Sha256::digest(Uuid::new_v4().as_bytes()).to_vec())
    .bind(w.owner.id)
    .execute(&mut *owner)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orgs.api_usage (org_id, period_start, api_requests)
         VALUES ($1, '2024-01-01', 1234), ($1, '2024-02-01', 56)",
    )
    .bind(org_id)
    .execute(&mut *owner)
    .await
    .unwrap();
    drop(owner);

    // Tenant data, written through the door as the application writes it.
    let ctx = w.tenancy.resolve(slug).await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "UPDATE tenant_settings SET timezone = 'Europe/Paris',
             data = '{\"theme\": \"dark\", \"n\": 1.25, \"nested\": {\"a\": [1, \"x\", null]}}',
             updated_at = '2024-03-04 05:06:07.891234+00'",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    let monitors = [
        (
            "Café ☕ \"home\"\nline two",
            "keyword",
            Some("https://example.com/ü?q=1"),
            30,
            false,
            Some("Welcome ☕"),
            "down",
        ),
        (
            "Database",
            "tcp",
            Some("db.example.com:5432"),
            300,
            true,
            None,
            "up",
        ),
        ("Cron", "heartbeat", None, 3600, true, None, "pending"),
        (
            "API",
            "http",
            Some("https://api.example.com/health"),
            60,
            true,
            None,
            "up",
        ),
    ];
    for (i, (name, kind, target, interval, enabled, keyword, status)) in
        monitors.into_iter().enumerate()
    {
        sqlx::query(
            "INSERT INTO monitors (tenant_id, id, name, kind, target, interval_seconds, enabled,
                 created_at, updated_at, timeout_seconds, keyword, status)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8::timestamptz, $8::timestamptz + interval '1.5 seconds',
                 $9, $10, $11)",
        )
        .bind(ctx.tenant_id().as_uuid())
        .bind(Uuid::now_v7())
        .bind(name)
        .bind(kind)
        .bind(target)
        .bind(interval)
        .bind(enabled)
        .bind(format!("2024-0{}-0{} 10:11:12.{:06}+00", i + 1, i + 2, 123_456 + i))
        .bind(5 + i as i32)
        .bind(keyword)
        .bind(status)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    // An agent running one of the monitors.
    let agent = Uuid::now_v7();
    tenantry_monitoring::create_agent(&mut tx, agent, "Datacenter ☕")
        .await
        .unwrap();
    sqlx::query("UPDATE monitors SET agent_id = $1 WHERE name = 'API'")
        .bind(agent)
        .execute(&mut *tx)
        .await
        .unwrap();
    // Check results and incidents: down (an incident), up (resolved), down again (open).
    let database: Uuid = sqlx::query_scalar("SELECT id FROM monitors WHERE name = 'Database'")
        .fetch_one(&mut *tx)
        .await
        .unwrap();
    // An alert channel for that monitor (the incidents below make its deliveries) and a status
    // page showing it.
    let keys = tenantry_monitoring::alerts::SecretKeys::load_or_create(
        &tenantry_tenancy::Operator::new(&w.tenancy),
    )
    .await
    .unwrap();
    tenantry_monitoring::alerts::create_channel(
        &mut tx,
        &keys,
        &tenantry_monitoring::alerts::AlertChannelInput {
            name: "Pager ☕".into(),
            kind: "webhook".into(),
            url: Some("https://hooks.example.com/t".into()),
            secret: None,
            email: None,
            monitor_ids: Some(vec![database]),
        },
    )
    .await
    .unwrap();
    let page = tenantry_monitoring::StatusPageInput {
        slug: "main".into(),
        title: "Status ☕".into(),
        monitor_ids: vec![database.to_string()],
        public: true,
    }
    .parse()
    .unwrap();
    tenantry_monitoring::create_page(&mut tx, &page)
        .await
        .unwrap();
    for (n, ok) in [false, true, false].into_iter().enumerate() {
        let at = "2024-05-06T07:08:09.123456Z"
            .parse::<chrono::DateTime<chrono::Utc>>()
            .unwrap()
            + chrono::TimeDelta::seconds(300 * n as i64);
        let seen = tenantry_monitoring::Observation {
            checked_at: at,
            ok,
            latency_ms: Some(17 + n as i32),
            status_code: None,
            error: (!ok).then(|| format!("connection refused ☕ {n}")),
        };
        tenantry_monitoring::record_result(&mut tx, database, at, &seen)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    for n in 1..=4 {
        let mut tx = ctx.begin().await.unwrap();
        tenantry_audit::record_in_tenant(
            &mut tx,
            &who(&w.owner),
            &Change {
                action: tenantry_audit::AuditAction::MonitorUpdated,
                target_kind: "monitor",
                target_id: Some(format!("m-{n}")),
                before: (n > 1).then(|| json!({"name": "Before ☕", "interval": n, "ratio": 0.1})),
                after: Some(json!({"name": "After", "tags": ["a", "b"], "deep": {"x": null}})),
            },
        )
        .await
        .unwrap();
        tx.commit().await.unwrap();
    }
    w.tenancy.find(slug).await.unwrap()
}

/// Another organization in the same tier, whose traces must not be in the archive.
async fn neighbour(w: &World, tier: Isolation, tag: &str) -> (TenantRecord, Uuid) {
    let slug = format!("neighbour-{tag}");
    seed(w, tier, &slug, &format!("Neighbour Zebra {tag}")).await;
    let ctx = w.tenancy.resolve(&slug).await.unwrap();
    let id = Uuid::now_v7();
    let mut tx = ctx.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO monitors (tenant_id, id, name, kind, target) VALUES ($1, $2, 'zebra-only', 'tcp', 'zebra.example.com:1')",
    )
    .bind(ctx.tenant_id().as_uuid())
    .bind(id)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx.commit().await.unwrap();
    (w.tenancy.find(&slug).await.unwrap(), id)
}

async fn export_to(w: &World, record: &TenantRecord, name: &str) -> PathBuf {
    let path = w.dir.path().join(name);
    let file = std::fs::File::create(&path).unwrap();
    let exported = tenantry_archive::export(&w.tenancy, record, file, &Quiet)
        .await
        .unwrap();
    exported.out.sync_all().unwrap();
    path
}

async fn import(
    w: &World,
    path: &Path,
    slug: &str,
    tier: Isolation,
) -> Result<ImportReport, ArchiveError> {
    tenantry_archive::import(
        &w.tenancy,
        path,
        &ImportOptions {
            slug: slug.to_string(),
            isolation: tier,
            name: None,
        },
        &Quiet,
    )
    .await
}

/// Every row of `table`, as JSON without `tenant_id` (and without the chain's hashes).
async fn rows(w: &World, record: &TenantRecord, table: &TenantTable) -> Vec<String> {
    let mut conn = tenantry_tenancy::Operator::new(&w.tenancy)
        .tenant_storage(record)
        .await
        .unwrap();
    let drop = if table.name == "audit_log" {
        " - 'prev_hash' - 'hash'"
    } else {
        ""
    };
    let rows = sqlx::query_scalar(&format!(
        "SELECT (to_jsonb(t) - 'tenant_id'{drop})::text FROM {} t ORDER BY {}",
        table.quoted(),
        table.key_list("t")
    ))
    .fetch_all(&mut conn)
    .await
    .unwrap();
    sqlx::Connection::close(conn).await.unwrap();
    rows
}

async fn scalar_rows(w: &World, sql: &str, org: Uuid) -> Vec<String> {
    sqlx::query_scalar(sql)
        .bind(org)
        .fetch_all(tenantry_tenancy::Operator::new(&w.tenancy).control())
        .await
        .unwrap()
}

/// The archive's bytes, decompressed (tar headers and every file).
fn unpacked(path: &Path) -> String {
    let mut bytes = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap())
        .read_to_end(&mut bytes)
        .unwrap();
    String::from_utf8_lossy(&bytes).into_owned()
}

async fn round_trip_from(source_tier: Isolation) {
    let w = world().await;
    let tag = source_tier.as_str();
    let source = seed(&w, source_tier, &format!("source-{tag}"), "Source ☕ Org").await;
    let (other, other_monitor) = neighbour(&w, source_tier, tag).await;
    let path = export_to(&w, &source, "source.tar.gz").await;

    // Never a secret hash, never a byte of another tenant.
    let text = unpacked(&path);
    let mut secrets: Vec<String> = sqlx::query_scalar("SELECT password_hash FROM identity.users")
        .fetch_all(tenantry_tenancy::Operator::new(&w.tenancy).control())
        .await
        .unwrap();
    for sql in [
        "SELECT encode(key_hash, 'hex') FROM orgs.api_keys",
        "SELECT encode(token_hash, 'hex') FROM orgs.invitations",
    ] {
        let found: Vec<String> = sqlx::query_scalar(sql)
            .fetch_all(tenantry_tenancy::Operator::new(&w.tenancy).control())
            .await
            .unwrap();
        assert!(!found.is_empty(), "{sql}");
        secrets.extend(found);
    }
    for secret in &secrets {
        assert!(
            !text.contains(secret.as_str()),
            "the archive holds a secret hash"
        );
    }
    for trace in [
        other.id.to_string(),
        other.slug.clone(),
        other.name.clone(),
        other_monitor.to_string(),
        "zebra".to_string(),
        "Zebra".to_string(),
    ] {
        assert!(
            !text.contains(&trace),
            "the archive holds {trace:?} of another tenant"
        );
    }
    assert!(text.contains("Europe/Paris") && text.contains("Database"));

    let tables = w.tenancy.tenant_tables().await.unwrap();
    for target_tier in TIERS {
        let slug = format!("copy-{tag}-to-{}", target_tier.as_str());
        let report = import(&w, &path, &slug, target_tier).await.unwrap();
        let copy = &report.tenant;
        assert_eq!(copy.isolation, target_tier);
        assert_ne!(copy.id, source.id);
        assert_eq!(report.source_tenant_id, source.id.as_uuid());

        // Every tenant table, row by row.
        for table in &tables {
            let (theirs, ours) = (rows(&w, &source, table).await, rows(&w, copy, table).await);
            assert!(!theirs.is_empty(), "{}: nothing to compare", table.name);
            assert_eq!(
                theirs,
                ours,
                "{}: {tag} → {}",
                table.name,
                target_tier.as_str()
            );
        }
        // The tenant chain was rebuilt under the new id, and both chains verify.
        let hashes = |r: TenantRecord| {
            let w = &w;
            async move {
                let mut conn = tenantry_tenancy::Operator::new(&w.tenancy)
                    .tenant_storage(&r)
                    .await
                    .unwrap();
                let h: Vec<Vec<u8>> = sqlx::query_scalar("SELECT hash FROM audit_log ORDER BY seq")
                    .fetch_all(&mut conn)
                    .await
                    .unwrap();
                h
            }
        };
        assert_ne!(hashes(source.clone()).await, hashes(copy.clone()).await);
        let verification = tenantry_audit::verify(&w.tenancy, copy).await.unwrap();
        assert!(verification.is_intact(), "{:?}", verification.problems);
        assert_eq!(verification.tenant_entries, 4);

        // The control side.
        assert_eq!(copy.name, source.name);
        assert_eq!(copy.plan, "pro");
        assert_eq!(copy.settings, source.settings);
        let overrides = "SELECT jsonb_build_object('l', limits, 'f', features)::text FROM orgs.plan_overrides WHERE org_id = $1";
        assert_eq!(
            scalar_rows(&w, overrides, source.id.as_uuid()).await,
            scalar_rows(&w, overrides, copy.id.as_uuid()).await
        );
        let members = "SELECT user_id::text || ' ' || role || ' ' || joined_at::text FROM orgs.memberships WHERE org_id = $1 ORDER BY user_id";
        assert_eq!(
            scalar_rows(&w, members, source.id.as_uuid()).await,
            scalar_rows(&w, members, copy.id.as_uuid()).await
        );
        assert_eq!(report.members_restored.len(), 2);
        assert!(report.members_skipped.is_empty());
        assert_eq!(
            (
                report.api_keys_not_restored,
                report.invitations_not_restored
            ),
            (1, 1)
        );
        for table in ["orgs.api_keys", "orgs.invitations"] {
            let n: i64 =
                sqlx::query_scalar(&format!("SELECT count(*) FROM {table} WHERE org_id = $1"))
                    .bind(copy.id.as_uuid())
                    .fetch_one(tenantry_tenancy::Operator::new(&w.tenancy).control())
                    .await
                    .unwrap();
            assert_eq!(n, 0, "{table}");
        }
        let usage = "SELECT period_start::text || ' ' || api_requests FROM orgs.api_usage WHERE org_id = $1 ORDER BY 1";
        assert_eq!(
            scalar_rows(&w, usage, source.id.as_uuid()).await,
            scalar_rows(&w, usage, copy.id.as_uuid()).await
        );
        let chain = "SELECT (to_jsonb(e) - 'org_id' - 'id' - 'prev_hash' - 'hash')::text FROM audit.entries e WHERE org_id = $1 ORDER BY seq";
        let (theirs, mut ours) = (
            scalar_rows(&w, chain, source.id.as_uuid()).await,
            scalar_rows(&w, chain, copy.id.as_uuid()).await,
        );
        let imported: Value = serde_json::from_str(&ours.pop().unwrap()).unwrap();
        assert_eq!(theirs, ours);
        assert!(theirs.len() >= 5, "{theirs:?}");
        assert_eq!(imported["action"], "organization.imported");
        assert_eq!(
            imported["after"]["manifest_sha256"],
            report.manifest_sha256.as_str()
        );
        assert_eq!(imported["after"]["source_tenant_id"], source.id.to_string());
        assert_eq!(report.manifest_sha256.len(), 64);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shared_tier_tenant_round_trips_into_every_tier() {
    round_trip_from(Isolation::Shared).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_tier_tenant_round_trips_into_every_tier() {
    round_trip_from(Isolation::Schema).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_tier_tenant_round_trips_into_every_tier() {
    round_trip_from(Isolation::Database).await;
}

/// The archive's files, in order.
fn entries(path: &Path) -> Vec<(String, Vec<u8>)> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(path).unwrap(),
    ));
    archive
        .entries()
        .unwrap()
        .map(|e| {
            let mut e = e.unwrap();
            let path = e.path().unwrap().to_str().unwrap().to_string();
            let mut bytes = Vec::new();
            e.read_to_end(&mut bytes).unwrap();
            (path, bytes)
        })
        .collect()
}

fn pack(path: &Path, entries: &[(String, Vec<u8>)]) {
    let file = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    for (name, bytes) in entries {
        let mut header = tar::Header::new_ustar();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        tar.append_data(&mut header, name, bytes.as_slice())
            .unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap().flush().unwrap();
}

/// A copy of the archive with `edit` applied to its files; with `reseal`, the manifest's
/// checksums and rows follow the edit (someone who knows the format).
fn altered(
    from: &Path,
    to: &Path,
    reseal: bool,
    edit: impl FnOnce(&mut Vec<(String, Vec<u8>)>, &mut Value),
) {
    let mut files = entries(from);
    let (_, manifest) = files.pop().unwrap();
    let mut manifest: Value = serde_json::from_slice(&manifest).unwrap();
    edit(&mut files, &mut manifest);
    if reseal {
        let mut listed = Vec::new();
        for (name, bytes) in &files {
            listed.push(json!({
                "path": name,
                "rows": bytes.iter().filter(|b| **b == b'\n').count(),
                "sha256": hex::encode(Sha256::digest(bytes)),
            }));
        }
        manifest["files"] = Value::Array(listed);
    }
    files.push((
        "manifest.json".into(),
        serde_json::to_vec_pretty(&manifest).unwrap(),
    ));
    pack(to, &files);
}

fn replace_in(files: &mut [(String, Vec<u8>)], name: &str, from: &str, to: &str) {
    let file = files.iter_mut().find(|(n, _)| n == name).unwrap();
    let text = String::from_utf8(file.1.clone()).unwrap();
    assert!(text.contains(from), "{name} lacks {from:?}");
    file.1 = text.replacen(from, to, 1).into_bytes();
}

async fn tenant_count(w: &World) -> usize {
    w.tenancy.list().await.unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_newer_unknown_or_tampered_archives_are_refused_before_anything_is_made() {
    let w = world().await;
    let source = seed(&w, Isolation::Shared, "acme", "Acme").await;
    let good = export_to(&w, &source, "good.tar.gz").await;
    let before = tenant_count(&w).await;
    let bad = w.dir.path().join("bad.tar.gz");
    let refused = |expected: &'static str| {
        let (w, bad) = (&w, bad.clone());
        async move {
            match import(w, &bad, "imported", Isolation::Database).await {
                Err(ArchiveError::InvalidArchive(text)) => {
                    assert!(
                        text.contains(expected),
                        "{text:?} does not say {expected:?}"
                    )
                }
                other => panic!("expected a refusal saying {expected:?}, got {other:?}"),
            }
        }
    };

    // One changed byte in a file.
    altered(&good, &bad, false, |files, _| {
        replace_in(files, "tenant/monitors.jsonl", "Database", "Datebase")
    });
    refused("tenant/monitors.jsonl does not match its SHA-256").await;
    // A newer format.
    altered(&good, &bad, false, |_, manifest| {
        manifest["format_version"] = json!(2)
    });
    refused("format version 2, made by a newer Tenantry").await;
    // A table this server does not have.
    altered(&good, &bad, true, |files, manifest| {
        files.insert(
            0,
            ("tenant/gadgets.jsonl".into(), b"{\"id\": 1}\n".to_vec()),
        );
        manifest["tenant_tables"].as_array_mut().unwrap().insert(
            0,
            json!({"name": "gadgets", "key": ["id"], "columns": ["id"]}),
        );
    });
    refused("table gadgets is unknown to this server").await;
    // A file not in the manifest.
    altered(&good, &bad, false, |files, _| {
        files.insert(0, ("notes.txt".into(), b"hello\n".to_vec()));
    });
    refused("notes.txt is not listed in the manifest").await;
    // An audit entry rewritten, with every checksum recomputed to match.
    altered(&good, &bad, true, |files, _| {
        replace_in(
            files,
            "tenant/audit_log.jsonl",
            "monitor.updated",
            "monitor.deleted",
        )
    });
    refused("tenant audit chain does not verify (tenant chain: entry 1 was altered)").await;
    altered(&good, &bad, true, |files, _| {
        replace_in(files, "audit.jsonl", "member.added", "member.removed")
    });
    refused("organization audit chain does not verify").await;
    // Cut short.
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&bad, &bytes[..bytes.len() / 2]).unwrap();
    refused("").await;

    assert_eq!(
        tenant_count(&w).await,
        before,
        "a refused import created a tenant"
    );
    assert!(matches!(
        import(&w, &good, "acme", Isolation::Shared).await,
        Err(ArchiveError::SlugTaken(_))
    ));
}

/// Remembers the tenant an import creates.
#[derive(Default)]
struct Created(std::sync::Mutex<Option<TenantRecord>>);

impl tenantry_archive::Progress for Created {
    fn tenant_created(&self, record: &TenantRecord) {
        *self.0.lock().unwrap() = Some(record.clone());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_midway_leaves_nothing_behind() {
    let w = world().await;
    let source = seed(&w, Isolation::Shared, "acme", "Acme").await;
    let good = export_to(&w, &source, "good.tar.gz").await;
    let before = tenant_count(&w).await;
    // Consistent checksums, but a row the database refuses (interval 0), met once the tenant
    // and its database exist.
    let bad = w.dir.path().join("bad.tar.gz");
    altered(&good, &bad, true, |files, _| {
        replace_in(
            files,
            "tenant/monitors.jsonl",
            "\"interval_seconds\": 300",
            "\"interval_seconds\": 0",
        )
    });
    let created = Created::default();
    let failed = tenantry_archive::import(
        &w.tenancy,
        &bad,
        &ImportOptions {
            slug: "half".into(),
            isolation: Isolation::Database,
            name: None,
        },
        &created,
    )
    .await;
    assert!(failed.is_err(), "{failed:?}");
    let half = created
        .0
        .lock()
        .unwrap()
        .clone()
        .expect("the tenant was created");
    assert_eq!(
        tenant_count(&w).await,
        before,
        "the half-made tenant is still registered"
    );
    let left: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM pg_database WHERE datname = $1)
              + (SELECT count(*) FROM pg_roles WHERE rolname = $1)",
    )
    .bind(&half.database_name)
    .fetch_one(tenantry_tenancy::Operator::new(&w.tenancy).control())
    .await
    .unwrap();
    assert_eq!(left, 0, "the half-made tenant's database or role is left");
    for sql in [
        "SELECT count(*) FROM orgs.memberships WHERE org_id = $1",
        "SELECT count(*) FROM audit.entries WHERE org_id = $1",
        "SELECT count(*) FROM orgs.plan_overrides WHERE org_id = $1",
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .bind(half.id.as_uuid())
            .fetch_one(tenantry_tenancy::Operator::new(&w.tenancy).control())
            .await
            .unwrap();
        assert_eq!(n, 0, "{sql}");
    }
    // The slug is free again, and the good archive imports.
    import(&w, &good, "half", Isolation::Database)
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_without_an_account_here_are_skipped_and_named() {
    let w = world().await;
    let source = seed(&w, Isolation::Schema, "acme", "Acme").await;
    let path = export_to(&w, &source, "acme.tar.gz").await;
    // The member's account is gone by the time the archive is imported.
    sqlx::query("DELETE FROM identity.users WHERE id = $1")
        .bind(w.member.id)
        .execute(tenantry_tenancy::Operator::new(&w.tenancy).control())
        .await
        .unwrap();
    let report = import(&w, &path, "restored", Isolation::Shared)
        .await
        .unwrap();
    assert_eq!(report.members_restored, ["owner@example.com"]);
    assert_eq!(report.members_skipped, ["member@example.com"]);
}
