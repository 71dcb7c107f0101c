//! Queueing: transactions, sealing, the key, the dev mailbox, listing.

use tenantry_mail::{MailStatus, Outbox};
use tenantry_tenancy::{Isolation, NewTenant, Slug};

use crate::{email, enqueue, outbox, raw, sender, superuser};

#[tokio::test]
async fn an_email_of_a_rolled_back_transaction_is_never_sent() {
    let (outbox, engine) = outbox().await;
    let sink = tenantry_testkit::smtp::SmtpSink::start().await;
    let mut tx = engine.control_db().begin().await.unwrap();
    outbox
        .enqueue(&mut tx, &email("a@example.com", "rolled back", "nothing"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    enqueue(
        &outbox,
        &engine,
        &email("b@example.com", "committed", "something"),
    )
    .await;

    let sender = sender(&outbox, Some(sink.url()));
    assert_eq!(sender.send_due().await.unwrap(), 1);
    assert_eq!(sender.send_due().await.unwrap(), 0);
    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].subject().as_deref(), Some("committed"));
    let listed = outbox.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subject, "committed");
}

#[tokio::test]
async fn the_body_is_sealed_at_rest() {
    let (outbox, engine) = outbox().await;
    let id = enqueue(
        &outbox,
        &engine,
        &email("a@example.com", "Your invitation", "token=SECRET-TOKEN-123"),
    )
    .await;
    let mut conn = superuser(&engine).await;
    let (status, attempts, body) = raw(&mut conn, id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 0));
    let body = body.unwrap();
    assert!(!body.windows(12).any(|w| w == b"SECRET-TOKEN"));
    // Nowhere in the row, in any column.
    let row_text: String = sqlx::query_scalar("SELECT o::text FROM mail.outbox o WHERE id = $1")
        .bind(id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert!(!row_text.contains("SECRET-TOKEN"), "{row_text}");
    // The sealed body belongs to its row: moved to another, it no longer opens.
    let other = enqueue(&outbox, &engine, &email("b@example.com", "other", "x")).await;
    sqlx::query(
        "UPDATE mail.outbox SET (key_id, nonce, body) =
            (SELECT key_id, nonce, body FROM mail.outbox WHERE id = $1) WHERE id = $2",
    )
    .bind(id)
    .bind(other)
    .execute(&mut conn)
    .await
    .unwrap();
    let listed = outbox.list(10).await.unwrap();
    let text = |wanted| listed.iter().find(|e| e.id == wanted).unwrap().text.clone();
    assert_eq!(text(id).as_deref(), Some("token=SECRET-TOKEN-123"));
    assert_eq!(text(other), None);
}

#[tokio::test]
async fn without_an_smtp_url_email_stays_in_the_dev_mailbox_with_its_body() {
    let (outbox, engine) = outbox().await;
    let id = enqueue(
        &outbox,
        &engine,
        &email(
            "a@example.com",
            "Join Acme",
            "Accept: http://x/invite?token=abc",
        ),
    )
    .await;
    let sender = sender(&outbox, None);
    assert_eq!(sender.send_due().await.unwrap(), 1);
    assert_eq!(sender.send_due().await.unwrap(), 0);

    let listed = outbox.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    let stored = &listed[0];
    assert_eq!(stored.id, id);
    assert_eq!(stored.status, MailStatus::DevMailbox);
    assert_eq!(stored.to, "a@example.com");
    assert_eq!(stored.subject, "Join Acme");
    assert_eq!(
        stored.text.as_deref(),
        Some("Accept: http://x/invite?token=abc")
    );
    assert_eq!(stored.attempts, 1);
    assert!(stored.sent_at.is_some());
    let json = serde_json::to_value(stored).unwrap();
    assert_eq!(json["status"], "dev_mailbox");
    // Still sealed at rest.
    let (_, _, body) = raw(&mut superuser(&engine).await, id).await;
    assert!(!body.unwrap().windows(5).any(|w| w == b"token"));
}

#[tokio::test]
async fn list_is_newest_first_and_limited() {
    let (outbox, engine) = outbox().await;
    for n in 0..5 {
        enqueue(
            &outbox,
            &engine,
            &email("a@example.com", &format!("n{n}"), "x"),
        )
        .await;
    }
    let listed = outbox.list(3).await.unwrap();
    let subjects: Vec<&str> = listed.iter().map(|e| e.subject.as_str()).collect();
    assert_eq!(subjects, ["n4", "n3", "n2"]);
    assert!(listed.iter().all(|e| e.status == MailStatus::Queued));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_share_one_key() {
    let (first, engine) = outbox().await;
    // The first open made the key; remove it to race the creation itself.
    sqlx::query("DELETE FROM mail.keys")
        .execute(&mut superuser(&engine).await)
        .await
        .unwrap();
    let opened = futures_join(
        (0..6)
            .map(|_| {
                let engine = engine.clone();
                tokio::spawn(async move {
                    Outbox::open(&engine, &tenantry_tenancy::Operator::new(&engine))
                        .await
                        .unwrap()
                })
            })
            .collect(),
    )
    .await;
    drop(first);
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM mail.keys")
        .fetch_one(&mut superuser(&engine).await)
        .await
        .unwrap();
    assert_eq!(keys, 1);
    // What one process sealed, another opens.
    enqueue(
        &opened[0],
        &engine,
        &email("a@example.com", "s", "shared key"),
    )
    .await;
    for outbox in &opened {
        let listed = outbox.list(1).await.unwrap();
        assert_eq!(listed[0].text.as_deref(), Some("shared key"));
    }
}

#[tokio::test]
async fn a_hard_deleted_organization_takes_its_emails_along() {
    let (outbox, engine) = outbox().await;
    let tenant = engine
        .create_tenant(&NewTenant {
            name: "Acme".into(),
            slug: Slug::parse("acme").unwrap(),
            isolation: Isolation::Shared,
            plan: None,
            server: None,
        })
        .await
        .unwrap();
    let mut about = email("a@example.com", "Join Acme", "x");
    about.tenant_id = Some(tenant.id.as_uuid());
    enqueue(&outbox, &engine, &about).await;
    enqueue(&outbox, &engine, &email("b@example.com", "other", "y")).await;
    assert_eq!(
        outbox.list(10).await.unwrap()[1].tenant_id,
        Some(tenant.id.as_uuid())
    );
    engine.hard_delete("acme", "acme").await.unwrap();
    let listed = outbox.list(10).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].subject, "other");
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<Outbox>>) -> Vec<Outbox> {
    let mut done = Vec::new();
    for handle in handles {
        done.push(handle.await.unwrap());
    }
    done
}
