//! The outbox against a real PostgreSQL and a real SMTP conversation (the testkit's sink):
//! transactional enqueueing, bodies sealed at rest and erased after sending, retries, the dev
//! mailbox, and concurrent senders.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod outbox;
mod sending;

use std::time::Duration;

use sqlx::PgConnection;
use tenantry_mail::{Email, MailConfig, Outbox, Sender};
use tenantry_tenancy::{Tenancy, TenantSchema};
use uuid::Uuid;

/// Long enough for a loaded machine; only a failing test waits this long.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// An engine with the mail schema on a fresh control database, and its outbox.
pub async fn outbox() -> (Outbox, Tenancy) {
    let engine =
        tenantry_testkit::open(TenantSchema::default(), &[tenantry_mail::control_schema()]).await;
    let outbox = Outbox::open(&engine, &tenantry_tenancy::Operator::new(&engine))
        .await
        .unwrap();
    (outbox, engine)
}

pub fn email(to: &str, subject: &str, text: &str) -> Email {
    Email {
        to: to.to_string(),
        subject: subject.to_string(),
        text: text.to_string(),
        tenant_id: None,
    }
}

/// Enqueues `email` in a transaction of its own, committed.
pub async fn enqueue(outbox: &Outbox, engine: &Tenancy, email: &Email) -> Uuid {
    let mut tx = engine.control_db().begin().await.unwrap();
    let id = outbox.enqueue(&mut tx, email).await.unwrap();
    tx.commit().await.unwrap();
    id
}

pub fn sender(outbox: &Outbox, smtp_url: Option<String>) -> Sender {
    Sender::new(
        outbox.clone(),
        &MailConfig {
            smtp_url,
            from: "Tenantry <no-reply@example.com>".to_string(),
        },
    )
    .unwrap()
}

/// A superuser connection to the engine's control database, to look at raw rows.
pub async fn superuser(engine: &Tenancy) -> PgConnection {
    tenantry_testkit::superuser_conn(engine.control_database()).await
}

/// The raw outbox row: status, attempts, whether the body is still there, and the sealed bytes.
pub async fn raw(conn: &mut PgConnection, id: Uuid) -> (String, i32, Option<Vec<u8>>) {
    sqlx::query_as("SELECT status, attempts, body FROM mail.outbox WHERE id = $1")
        .bind(id)
        .fetch_one(conn)
        .await
        .unwrap()
}
