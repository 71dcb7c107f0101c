//! `tenantry mail list`: with no SMTP server configured, the running server keeps emails in the
//! dev mailbox and the CLI reads them beside it; a bad SMTP URL stops `serve` with advice.

use std::process::{Command, Stdio};
use std::time::Duration;

use nix::sys::signal::Signal;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tenantry_mail::{Email, Outbox};

use crate::support::{BIN, Server, data_dir, stdout, tenantry, wait_with_deadline};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dev_mailbox_is_read_with_mail_list_beside_the_server() {
    let dir = data_dir();
    let server = Server::start(dir.path());
    assert_eq!(
        stdout(&tenantry(dir.path(), &["mail", "list"])),
        "no emails\n"
    );

    // An email queued as the application does it: through the runtime role, in a transaction.
    let pool = PgPoolOptions::new()
        .max_connections(2)
        .connect_with(
            PgConnectOptions::new()
                .socket(
                    std::fs::canonicalize(dir.path())
                        .unwrap()
                        .join("tenantry-data/run"),
                )
                .port(5432)
                .username("tenantry_app")
                .database("tenantry"),
        )
        .await
        .unwrap();
    // The outbox's sealing key is the owner's to load, as at the server's start.
    let engine = crate::support::engine(dir.path()).await;
    let outbox = Outbox::open(&engine, &tenantry_tenancy::Operator::new(&engine))
        .await
        .unwrap();
    let mut tx = pool.begin().await.unwrap();
    let id = outbox
        .enqueue(
            &mut tx,
            &Email {
                to: "alice@example.com".into(),
                subject: "Join Acme".into(),
                text: "Accept: http://127.0.0.1/invite?token=s3cret".into(),
                tenant_id: None,
            },
        )
        .await
        .unwrap();
    tx.commit().await.unwrap();
    pool.close().await;

    // The server's sender moves it to the dev mailbox; the CLI shows it with its body.
    let email = tenantry_testkit::eventually(
        "the email moved to the dev mailbox",
        Duration::from_secs(30),
        async || {
            let listed: serde_json::Value = serde_json::from_str(&stdout(&tenantry(
                dir.path(),
                &["mail", "list", "--json", "--limit", "5"],
            )))
            .unwrap();
            let email = listed[0].clone();
            if email["status"] == "dev_mailbox" {
                Ok(email)
            } else {
                Err(listed.to_string())
            }
        },
    )
    .await;
    assert_eq!(email["id"], id.to_string());
    assert_eq!(email["to"], "alice@example.com");
    assert_eq!(
        email["text"],
        "Accept: http://127.0.0.1/invite?token=s3cret"
    );
    let text = stdout(&tenantry(dir.path(), &["mail", "list"]));
    assert!(
        text.contains("dev_mailbox  alice@example.com  Join Acme"),
        "{text}"
    );
    assert!(
        text.contains("    Accept: http://127.0.0.1/invite?token=s3cret"),
        "{text}"
    );
    assert!(server.stop(Signal::SIGTERM).success());

    // Without a server too.
    let text = stdout(&tenantry(dir.path(), &["mail", "list", "--limit", "1"]));
    assert!(text.contains("token=s3cret"), "{text}");

    // A malformed SMTP URL stops `serve` with what to fix, and without echoing the password.
    let mut command = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("TENANTRY_") {
            command.env_remove(key);
        }
    }
    let mut child = command
        .current_dir(dir.path())
        .env(
            "TENANTRY_SMTP_URL",
            "smtp://user:hunter2@mail.example.com?tls=always",
        )
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_with_deadline(&mut child, Duration::from_secs(120));
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!status.success());
    assert!(stderr.contains("TENANTRY_SMTP_URL"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}
