//! `tenantry mail list`: the outbox, newest first. With no SMTP server configured this is the
//! dev mailbox, where emails (invitations and their links) are read.

use tenantry_mail::{MailStatus, Outbox, StoredEmail};
use tenantry_tenancy::{Operator, Tenancy};

use crate::cli::MailCommand;

pub async fn run(tenancy: &Tenancy, command: MailCommand) -> anyhow::Result<()> {
    let outbox = Outbox::open(tenancy, &Operator::new(tenancy)).await?;
    match command {
        MailCommand::List { limit, output } => {
            let emails = outbox.list(limit).await?;
            if output.json {
                println!("{}", serde_json::to_string_pretty(&emails)?);
            } else if emails.is_empty() {
                println!("no emails");
            } else {
                for email in &emails {
                    print!("{}", render(email));
                }
            }
            Ok(())
        }
    }
}

/// One email: a header line (time, status, recipient, subject), then its body indented.
fn render(email: &StoredEmail) -> String {
    let mut out = format!(
        "{}  {:<11}  {}  {}\n",
        email.created_at.format("%Y-%m-%d %H:%M:%S UTC"),
        email.status.as_str(),
        email.to,
        email.subject
    );
    if let Some(error) = &email.last_error {
        out.push_str(&format!(
            "    (attempts: {}, last error: {error})\n",
            email.attempts
        ));
    }
    match (&email.text, email.status) {
        (Some(text), _) => {
            for line in text.lines() {
                if !line.is_empty() {
                    out.push_str("    ");
                }
                out.push_str(line);
                out.push('\n');
            }
        }
        (None, MailStatus::Sent) => out.push_str("    (body erased after delivery)\n"),
        (None, _) => out.push_str("    (body unavailable)\n"),
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_shows_its_header_line_and_indented_body() {
        let email = StoredEmail {
            id: uuid::Uuid::nil(),
            to: "a@example.com".into(),
            subject: "Join Acme".into(),
            text: Some("Hello\n\nhttp://x/invite?token=t".into()),
            status: MailStatus::DevMailbox,
            attempts: 1,
            created_at: chrono::DateTime::from_timestamp(0, 0).unwrap(),
            sent_at: None,
            last_error: None,
            tenant_id: None,
        };
        assert_eq!(
            render(&email),
            "1970-01-01 00:00:00 UTC  dev_mailbox  a@example.com  Join Acme\n    Hello\n\n    \
             http://x/invite?token=t\n\n"
        );
    }
}
