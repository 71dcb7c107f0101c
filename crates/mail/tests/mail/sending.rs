//! Sending over SMTP: headers and body, erasure, retries, giving up, concurrent senders, the
//! notification that wakes a running sender.

use std::collections::HashSet;
use std::time::Duration;

use tenantry_mail::{MailConfig, MailStatus, RetryPolicy, Sender};
use tenantry_testkit::smtp::{SinkMode, SmtpSink};
use uuid::Uuid;

use crate::{PATIENCE, email, enqueue, outbox, raw, sender, superuser};

#[tokio::test]
async fn a_committed_email_is_delivered_once_and_its_body_erased() {
    let (outbox, engine) = outbox().await;
    let sink = SmtpSink::start().await;
    // Non-ASCII and a long line, so the body travels quoted-printable or base64.
    let text = format!(
        "Grüße!\n\nAccept the invitation: https://tenantry.example/invite?token=SECRET{}\n",
        "x".repeat(120)
    );
    let id = enqueue(
        &outbox,
        &engine,
        &email("alice@example.org", "Join Acme on Tenantry", &text),
    )
    .await;

    let sender = sender(&outbox, Some(sink.url()));
    assert_eq!(sender.send_due().await.unwrap(), 1);
    assert_eq!(sender.send_due().await.unwrap(), 0);

    let messages = sink.messages();
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    assert_eq!(message.from, "no-reply@example.com");
    assert_eq!(message.recipients, ["alice@example.org"]);
    assert_eq!(
        message.header("From").as_deref(),
        Some("Tenantry <no-reply@example.com>")
    );
    assert_eq!(message.header("To").as_deref(), Some("alice@example.org"));
    assert_eq!(message.subject().as_deref(), Some("Join Acme on Tenantry"));
    assert_eq!(
        message.header("Message-ID"),
        Some(format!("<{}@example.com>", id.simple()))
    );
    assert_eq!(message.text(), text.trim_end());
    assert!(
        ["quoted-printable", "base64"].iter().any(|e| message
            .data
            .contains(&format!("Content-Transfer-Encoding: {e}"))),
        "{}",
        message.data
    );

    let mut conn = superuser(&engine).await;
    let (status, attempts, body) = raw(&mut conn, id).await;
    assert_eq!((status.as_str(), attempts, body), ("sent", 1, None));
    let listed = outbox.list(10).await.unwrap();
    assert_eq!(listed[0].status, MailStatus::Sent);
    assert_eq!(listed[0].text, None);
    assert_eq!(listed[0].subject, "Join Acme on Tenantry");
    assert!(listed[0].sent_at.is_some());
}

#[tokio::test]
async fn a_temporary_failure_is_retried_later_and_then_delivered_once() {
    let (outbox, engine) = outbox().await;
    let sink = SmtpSink::start().await;
    sink.set_mode(SinkMode::TemporaryFailure);
    let id = enqueue(
        &outbox,
        &engine,
        &email("a@example.com", "retry me", "body"),
    )
    .await;
    let sender = sender(&outbox, Some(sink.url()));
    assert_eq!(sender.send_due().await.unwrap(), 0);

    let mut conn = superuser(&engine).await;
    let (status, attempts, body) = raw(&mut conn, id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
    assert!(body.is_some());
    let (backed_off, error): (bool, Option<String>) = sqlx::query_as(
        "SELECT next_attempt_at >= created_at + interval '10 seconds', last_error
         FROM mail.outbox WHERE id = $1",
    )
    .bind(id)
    .fetch_one(&mut conn)
    .await
    .unwrap();
    assert!(backed_off);
    assert!(error.unwrap().contains("451"));

    // The retry falls due (instead of waiting 10 s) and the server accepts it this time.
    sink.set_mode(SinkMode::Accept);
    sqlx::query("UPDATE mail.outbox SET next_attempt_at = now() WHERE id = $1")
        .bind(id)
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(sender.send_due().await.unwrap(), 1);
    assert_eq!(sender.send_due().await.unwrap(), 0);
    assert_eq!(sink.messages().len(), 1);
    let (status, attempts, body) = raw(&mut conn, id).await;
    assert_eq!((status.as_str(), attempts, body), ("sent", 2, None));
    let listed = outbox.list(1).await.unwrap();
    assert_eq!(listed[0].last_error, None);
}

#[tokio::test]
async fn an_email_is_given_up_after_its_last_attempt_or_a_permanent_rejection() {
    let (outbox, engine) = outbox().await;
    let sink = SmtpSink::start().await;
    let sender = sender(&outbox, Some(sink.url())).with_retry(RetryPolicy {
        first_delay: Duration::ZERO,
        max_delay: Duration::ZERO,
        max_attempts: 3,
    });

    sink.set_mode(SinkMode::TemporaryFailure);
    let busy = enqueue(&outbox, &engine, &email("a@example.com", "busy", "x")).await;
    let mut conn = superuser(&engine).await;
    for attempt in 1..=3 {
        assert_eq!(sender.send_due().await.unwrap(), 0);
        let (status, attempts, _) = raw(&mut conn, busy).await;
        let expected = if attempt < 3 { "queued" } else { "failed" };
        assert_eq!((status.as_str(), attempts), (expected, attempt));
    }
    assert_eq!(sender.send_due().await.unwrap(), 0);
    assert_eq!(raw(&mut conn, busy).await.1, 3);

    sink.set_mode(SinkMode::PermanentFailure);
    let rejected = enqueue(&outbox, &engine, &email("nobody@example.com", "no", "x")).await;
    assert_eq!(sender.send_due().await.unwrap(), 0);
    let (status, attempts, _) = raw(&mut conn, rejected).await;
    assert_eq!((status.as_str(), attempts), ("failed", 1));
    let listed = outbox.list(10).await.unwrap();
    assert!(listed[0].last_error.as_deref().unwrap().contains("550"));
    assert!(listed[1].last_error.as_deref().unwrap().contains("451"));
    assert!(sink.messages().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_senders_deliver_each_of_forty_emails_exactly_once() {
    let (outbox, engine) = outbox().await;
    let sink = SmtpSink::start().await;
    let mut stops = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..2 {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let sender = sender(&outbox, Some(sink.url()))
            .with_batch_size(4)
            .with_poll_interval(Duration::from_millis(50));
        runs.push(tokio::spawn(sender.run(async move {
            let _ = stopped.await;
        })));
        stops.push(stop);
    }
    // One transaction: its commit wakes both senders at once.
    let mut tx = engine.control_db().begin().await.unwrap();
    let mut ids = HashSet::new();
    for n in 0..40 {
        let queued = email(&format!("user{n}@example.com"), &format!("n{n}"), "x");
        ids.insert(outbox.enqueue(&mut tx, &queued).await.unwrap());
    }
    tx.commit().await.unwrap();

    sink.wait_for(|m| m.len() >= 40, PATIENCE).await;
    // Every row marked sent means every delivery has happened (each is marked before its
    // transaction commits); a duplicate would be in the sink by now.
    tenantry_testkit::eventually("all 40 emails marked sent", PATIENCE, async || {
        let sent: i64 =
            sqlx::query_scalar("SELECT count(*) FROM mail.outbox WHERE status = 'sent'")
                .fetch_one(engine.control_db())
                .await
                .unwrap();
        if sent == 40 {
            Ok(())
        } else {
            Err(format!("{sent} of 40 sent"))
        }
    })
    .await;
    for stop in stops {
        stop.send(()).unwrap();
    }
    for run in runs {
        tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
    }

    let messages = sink.messages();
    assert_eq!(messages.len(), 40);
    let delivered: HashSet<Uuid> = messages
        .iter()
        .map(|m| {
            let id = m.header("Message-ID").unwrap();
            let simple = id.trim_start_matches('<').split('@').next().unwrap();
            Uuid::parse_str(simple).unwrap()
        })
        .collect();
    assert_eq!(delivered, ids);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_sender_wakes_when_an_enqueuing_transaction_commits() {
    let (outbox, engine) = outbox().await;
    let sink = SmtpSink::start().await;
    enqueue(&outbox, &engine, &email("a@example.com", "first", "x")).await;
    // Polling once an hour: only the notification can bring the second email in time.
    let sender = sender(&outbox, Some(sink.url())).with_poll_interval(Duration::from_secs(3600));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(sender.run(async move {
        let _ = stopped.await;
    }));
    // The first pass (after the sender started listening) sends the first email.
    sink.wait_for(|m| m.len() == 1, PATIENCE).await;
    enqueue(&outbox, &engine, &email("b@example.com", "second", "y")).await;
    let messages = sink.wait_for(|m| m.len() == 2, PATIENCE).await;
    assert_eq!(messages[1].subject().as_deref(), Some("second"));
    stop.send(()).unwrap();
    tokio::time::timeout(PATIENCE, run).await.unwrap().unwrap();
}

#[tokio::test]
async fn a_bad_smtp_url_is_refused_with_what_to_fix() {
    let (outbox, _engine) = outbox().await;
    for url in [
        "smtp://mail.example.com?tls=sometimes",
        "http://mail.example.com",
    ] {
        let error = Sender::new(
            outbox.clone(),
            &MailConfig {
                smtp_url: Some(url.to_string()),
                ..MailConfig::default()
            },
        )
        .unwrap_err()
        .to_string();
        assert!(error.contains("TENANTRY_SMTP_URL"), "{error}");
        assert!(error.contains("smtps://"), "{error}");
    }
}

#[tokio::test]
async fn an_unreachable_server_is_a_temporary_failure() {
    let (outbox, engine) = outbox().await;
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let id = enqueue(&outbox, &engine, &email("a@example.com", "s", "x")).await;
    let sender = sender(&outbox, Some(format!("smtp://127.0.0.1:{port}")));
    assert_eq!(sender.send_due().await.unwrap(), 0);
    let (status, attempts, _) = raw(&mut superuser(&engine).await, id).await;
    assert_eq!((status.as_str(), attempts), ("queued", 1));
}
