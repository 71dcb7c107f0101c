//! Database-tier tenants over two PostgreSQL servers: placement, isolation across servers,
//! moves between servers while the tenant is written, and a server that dies taking only its
//! own tenants with it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sqlx::{ConnectOptions, Connection, PgConnection};
use tenantry_tenancy::{
    DEFAULT_SERVER, Isolation, MoveOptions, NewServer, NewTenant, PoolConfig, Tenancy,
    TenancyError, TenantRecord,
};
use tenantry_testkit::server::SecondServer;
use tokio::sync::Mutex;
use uuid::Uuid;

use crate::support::{insert_note, new_tenant, note_names, tenancy};

/// An engine with the second cluster added as server `b`.
async fn two_servers() -> (Tenancy, SecondServer) {
    let engine = tenancy().await;
    let second = SecondServer::start().await;
    let added = engine
        .add_server(&NewServer {
            name: "b".into(),
            url: second.url(),
            max_connections: Some(8),
        })
        .await
        .unwrap();
    assert_eq!(added.max_connections, 8);
    assert!(added.reachable);
    (engine, second)
}

fn on(server: &str) -> NewTenant {
    NewTenant {
        server: Some(server.to_string()),
        ..new_tenant(Isolation::Database)
    }
}

async fn second_conn(second: &SecondServer, database: &str) -> Result<PgConnection, sqlx::Error> {
    second
        .url()
        .parse::<sqlx::postgres::PgConnectOptions>()
        .unwrap()
        .database(database)
        .connect()
        .await
}

async fn database_exists(conn: &mut PgConnection, name: &str) -> bool {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_are_placed_on_the_server_named_or_the_least_loaded_one() {
    let (engine, second) = two_servers().await;
    let on_b = engine.create_tenant(&on("b")).await.unwrap();
    assert_eq!(on_b.server, "b");
    let ctx = engine.resolve(&on_b.slug).await.unwrap();
    assert_eq!(ctx.server_name(), "b");
    insert_note(&ctx, "on b").await;
    assert_eq!(note_names(&ctx).await, ["on b"]);
    let mut b = second_conn(&second, "postgres").await.unwrap();
    assert!(database_exists(&mut b, &on_b.database_name).await);
    let mut a = tenantry_testkit::superuser_conn("postgres").await;
    assert!(!database_exists(&mut a, &on_b.database_name).await);

    // b has one database-tier tenant per 8 connections, default none per 64: default is the
    // least loaded.
    let unnamed = engine
        .create_tenant(&new_tenant(Isolation::Database))
        .await
        .unwrap();
    assert_eq!(unnamed.server, DEFAULT_SERVER);
    // Draining takes a server out of placement, named or not.
    engine.drain_server(DEFAULT_SERVER, true).await.unwrap();
    let placed = engine
        .create_tenant(&new_tenant(Isolation::Database))
        .await
        .unwrap();
    assert_eq!(placed.server, "b");
    let refused = engine.create_tenant(&on(DEFAULT_SERVER)).await.unwrap_err();
    assert!(refused.to_string().contains("draining"), "{refused}");
    engine.drain_server("b", true).await.unwrap();
    let nowhere = engine
        .create_tenant(&new_tenant(Isolation::Database))
        .await
        .unwrap_err();
    assert!(
        nowhere.to_string().contains("every server is draining"),
        "{nowhere}"
    );
    // Other tiers live with the control database, draining or not.
    let shared = engine
        .create_tenant(&new_tenant(Isolation::Shared))
        .await
        .unwrap();
    assert_eq!(shared.server, DEFAULT_SERVER);
    let wrong = engine
        .create_tenant(&NewTenant {
            server: Some("b".into()),
            ..new_tenant(Isolation::Schema)
        })
        .await
        .unwrap_err();
    assert!(matches!(wrong, TenancyError::Invalid(_)), "{wrong}");

    let servers = engine.servers().await.unwrap();
    let names: Vec<_> = servers.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, [DEFAULT_SERVER, "b"]);
    assert_eq!(servers[1].tenants["database"], 2);
    assert!(servers[1].draining && servers[1].reachable);
    assert!(!servers[1].address.contains("password"));

    // Deleting a tenant removes its database and role from its own server.
    engine.hard_delete(&on_b.slug, &on_b.slug).await.unwrap();
    assert!(!database_exists(&mut b, &on_b.database_name).await);
    b.close().await.ok();
    a.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_url_is_stored_sealed_and_checked_before_it_is_added() {
    let engine = tenancy().await;
    let second = SecondServer::start().await;
    let url = second
        .url()
        .replace("postgres://postgres@", "postgres://postgres:s3cr3t-pw@");
    engine
        .add_server(&NewServer {
            name: "b".into(),
            url,
            max_connections: None,
        })
        .await
        .unwrap();
    let mut control = tenantry_testkit::superuser_conn(engine.control_database()).await;
    let (address, sealed): (String, Vec<u8>) =
        sqlx::query_as("SELECT address, url_sealed FROM control.servers WHERE name = 'b'")
            .fetch_one(&mut control)
            .await
            .unwrap();
    assert!(!address.contains("s3cr3t"), "{address}");
    assert!(!String::from_utf8_lossy(&sealed).contains("s3cr3t"));
    for (name, url) in [
        ("b", second.url()),
        ("default", second.url()),
        ("Bad Name", second.url()),
        (
            "c",
            "postgres://nobody@localhost/postgres?host=/nonexistent".to_string(),
        ),
        ("d", "https://example.invalid/".to_string()),
    ] {
        let refused = engine
            .add_server(&NewServer {
                name: name.into(),
                url,
                max_connections: None,
            })
            .await
            .unwrap_err();
        assert!(
            matches!(refused, TenancyError::Invalid(_)),
            "{name}: {refused}"
        );
    }
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM control.servers")
        .fetch_one(&mut control)
        .await
        .unwrap();
    assert_eq!(count, 2);
    control.close().await.ok();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_role_reaches_only_its_own_database_on_its_own_server() {
    let (engine, second) = two_servers().await;
    let on_b = engine.create_tenant(&on("b")).await.unwrap();
    let other_b = engine.create_tenant(&on("b")).await.unwrap();
    let on_a = engine.create_tenant(&on(DEFAULT_SERVER)).await.unwrap();
    let role = engine.naming().tenant_role(on_b.id);
    let as_role = |database: &str| {
        second
            .url()
            .parse::<sqlx::postgres::PgConnectOptions>()
            .unwrap()
            .username(&role)
            .database(database)
    };
    // Its own database on b: yes. Another tenant's database on b: no.
    PgConnection::connect_with(&as_role(&on_b.database_name))
        .await
        .unwrap()
        .close()
        .await
        .ok();
    let denied = PgConnection::connect_with(&as_role(&other_b.database_name))
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    // On the control database's server the role does not exist at all.
    let absent = crate::support::connect_as(&role, &on_a.database_name)
        .await
        .unwrap_err();
    assert!(absent.to_string().contains("does not exist"), "{absent}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tenant_moves_between_servers_while_written_and_keeps_every_write() {
    let (engine, second) = two_servers().await;
    let record = engine.create_tenant(&on(DEFAULT_SERVER)).await.unwrap();
    let ctx = engine.resolve(&record.slug).await.unwrap();
    insert_note(&ctx, "before").await;
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..3 {
        let (engine, slug, stop, written) = (
            engine.clone(),
            record.slug.clone(),
            stop.clone(),
            written.clone(),
        );
        writers.push(tokio::spawn(async move {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let id = Uuid::now_v7();
                let ctx = engine.resolve(&slug).await.unwrap();
                let mut tx = ctx.begin().await.unwrap();
                sqlx::query("INSERT INTO notes (tenant_id, id, name) VALUES ($1, $2, $3)")
                    .bind(ctx.tenant_id().as_uuid())
                    .bind(id)
                    .bind(format!("writer {w} #{n}"))
                    .execute(&mut *tx)
                    .await
                    .unwrap();
                tx.commit().await.unwrap();
                written.lock().await.push(id);
            }
        }));
    }
    let options = MoveOptions {
        drain: Duration::from_millis(300),
        gate_timeout: Duration::from_secs(30),
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let there = engine
        .move_tenant_to(
            &record.slug,
            Isolation::Database,
            Some("b"),
            &options,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(
        (there.from_server.as_str(), there.to_server.as_str()),
        (DEFAULT_SERVER, "b")
    );
    assert_eq!(engine.find(&record.slug).await.unwrap().server, "b");
    let mut a = tenantry_testkit::superuser_conn("postgres").await;
    assert!(!database_exists(&mut a, &record.database_name).await);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = engine
        .move_tenant_to(
            &record.slug,
            Isolation::Database,
            Some(DEFAULT_SERVER),
            &options,
            &|_| {},
        )
        .await
        .unwrap();
    assert_eq!(back.to_server, DEFAULT_SERVER);
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    let mut b = second_conn(&second, "postgres").await.unwrap();
    assert!(!database_exists(&mut b, &record.database_name).await);
    let role: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(engine.naming().tenant_role(record.id))
            .fetch_one(&mut b)
            .await
            .unwrap();
    assert!(
        !role,
        "the tenant's role is left on the server it moved away from"
    );

    let written = written.lock().await.clone();
    assert!(
        written.len() > 10,
        "the writers wrote {} notes",
        written.len()
    );
    let ctx = engine.resolve(&record.slug).await.unwrap();
    let mut tx = ctx.begin_read().await.unwrap();
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM notes WHERE name <> 'before'")
        .fetch_all(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let mut sorted = ids.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted.len(), ids.len(), "a note is there twice");
    for id in &written {
        assert!(ids.contains(id), "acknowledged note {id} is missing");
    }
    // Moving to where it is, or to a server that does not exist, is refused.
    for server in [DEFAULT_SERVER, "nowhere"] {
        let refused = engine
            .move_tenant_to(
                &record.slug,
                Isolation::Database,
                Some(server),
                &options,
                &|_| {},
            )
            .await
            .unwrap_err();
        assert!(matches!(refused, TenancyError::Invalid(_)), "{refused}");
    }
    a.close().await.ok();
    b.close().await.ok();
}

async fn read_notes(engine: &Tenancy, record: &TenantRecord) -> Result<usize, TenancyError> {
    let ctx = engine.resolve(&record.slug).await?;
    let mut tx = ctx.begin_read().await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM notes")
        .fetch_one(&mut *tx)
        .await
        .map_err(TenancyError::from)?;
    tx.commit().await?;
    Ok(n as usize)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_server_takes_only_its_own_tenants_down_and_they_recover_with_it() {
    let (engine, second) = two_servers().await;
    let on_b = engine.create_tenant(&on("b")).await.unwrap();
    let on_a = engine.create_tenant(&on(DEFAULT_SERVER)).await.unwrap();
    let shared = engine
        .create_tenant(&new_tenant(Isolation::Shared))
        .await
        .unwrap();
    for record in [&on_b, &on_a, &shared] {
        insert_note(&engine.resolve(&record.slug).await.unwrap(), "x").await;
    }
    // The tenant's pool holds as many idle connections as it may, all of which the kill breaks.
    let ctx = engine.resolve(&on_b.slug).await.unwrap();
    let mut open = Vec::new();
    for _ in 0..PoolConfig::default().per_tenant_max {
        open.push(ctx.begin_read().await.unwrap());
    }
    for tx in open {
        tx.commit().await.unwrap();
    }
    second.kill();
    // Requests for b's tenant fail as unavailable, and soon; the others go on as usual.
    let mut failures = 0;
    for _ in 0..20 {
        match read_notes(&engine, &on_b).await {
            Err(TenancyError::Unavailable { server, .. }) => {
                assert_eq!(server, "b");
                failures += 1;
            }
            other => panic!("a read on the dead server answered {other:?}"),
        }
        assert_eq!(read_notes(&engine, &on_a).await.unwrap(), 1);
        assert_eq!(read_notes(&engine, &shared).await.unwrap(), 1);
    }
    assert_eq!(failures, 20);
    let servers = engine.servers().await.unwrap();
    assert!(!servers[1].reachable && servers[1].error.is_some());
    assert!(servers[0].reachable);

    second.restart().await;
    let back = tenantry_testkit::eventually(
        "the tenant on the restarted server is served again",
        Duration::from_secs(20),
        async || read_notes(&engine, &on_b).await.map_err(|e| e.to_string()),
    )
    .await;
    assert_eq!(back, 1);
    insert_note(&engine.resolve(&on_b.slug).await.unwrap(), "after").await;
}
