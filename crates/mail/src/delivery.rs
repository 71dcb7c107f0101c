//! Handing one email over: to an SMTP server through `lettre` (async, rustls), or, with no
//! server configured, to the dev mailbox (the outbox row itself). Each message carries a
//! `Message-ID` derived from its outbox id, so a copy sent again after a crash is recognisable.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::message::header::ContentType;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use uuid::Uuid;

use crate::config::MailConfig;

const URL_FORMS: &str = "set TENANTRY_SMTP_URL to smtp://HOST:PORT (plain, no TLS), \
     smtps://USER:PASSWORD@HOST:465 (TLS) or smtp://USER:PASSWORD@HOST:587?tls=required \
     (STARTTLS), or unset it to keep emails in the dev mailbox";

/// Why a delivery failed.
pub(crate) enum Failure {
    /// Worth trying again: the server could not be reached, or answered 4xx.
    Transient(String),
    /// Not worth trying again: the server answered 5xx, or the email cannot be built.
    Permanent(String),
}

pub(crate) struct Delivery {
    transport: Option<AsyncSmtpTransport<Tokio1Executor>>,
    from: Mailbox,
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("smtp", &self.transport.is_some())
            .field("from", &self.from.to_string())
            .finish()
    }
}

impl Delivery {
    pub fn new(config: &MailConfig) -> anyhow::Result<Self> {
        let from: Mailbox = config.from.parse().map_err(|e| {
            anyhow::anyhow!(
                "TENANTRY_SMTP_FROM {:?} is not an email address ({e}): set it to an address \
                 such as `Tenantry <no-reply@example.com>`",
                config.from
            )
        })?;
        let url = config
            .smtp_url
            .as_deref()
            .map(str::trim)
            .filter(|url| !url.is_empty());
        let transport = match url {
            None => None,
            Some(url) => {
                // The URL is not repeated in the error: it may carry a password.
                let builder = AsyncSmtpTransport::<Tokio1Executor>::from_url(url).map_err(|e| {
                    anyhow::anyhow!("TENANTRY_SMTP_URL is not a usable SMTP URL ({e}): {URL_FORMS}")
                })?;
                Some(builder.timeout(Some(Duration::from_secs(30))).build())
            }
        };
        Ok(Self { transport, from })
    }

    pub fn is_dev_mailbox(&self) -> bool {
        self.transport.is_none()
    }

    /// Sends the email: `Ok(true)` when the SMTP server accepted it, `Ok(false)` when it is
    /// left in the dev mailbox.
    pub async fn send(
        &self,
        id: Uuid,
        to: &str,
        subject: &str,
        text: String,
    ) -> Result<bool, Failure> {
        let Some(transport) = &self.transport else {
            return Ok(false);
        };
        let message = self.message(id, to, subject, text)?;
        match transport.send(message).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_permanent() => Err(Failure::Permanent(e.to_string())),
            Err(e) => Err(Failure::Transient(e.to_string())),
        }
    }

    fn message(&self, id: Uuid, to: &str, subject: &str, text: String) -> Result<Message, Failure> {
        let to: Mailbox = to.parse().map_err(|e| {
            Failure::Permanent(format!("the recipient is not an email address: {e}"))
        })?;
        Message::builder()
            .message_id(Some(message_id(id, &self.from)))
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN)
            .body(text)
            .map_err(|e| Failure::Permanent(format!("the email cannot be built: {e}")))
    }
}

/// `<ID@DOMAIN-OF-FROM>`: the same for every attempt at one outbox email.
pub(crate) fn message_id(id: Uuid, from: &Mailbox) -> String {
    format!("<{}@{}>", id.simple(), from.email.domain())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(url: Option<&str>) -> MailConfig {
        MailConfig {
            smtp_url: url.map(str::to_string),
            ..MailConfig::default()
        }
    }

    #[test]
    fn the_message_id_is_derived_from_the_outbox_id() {
        let from: Mailbox = "Tenantry <no-reply@example.com>".parse().unwrap();
        let id = Uuid::now_v7();
        assert_eq!(message_id(id, &from), message_id(id, &from));
        assert_eq!(
            message_id(id, &from),
            format!("<{}@example.com>", id.simple())
        );
    }

    #[test]
    fn the_documented_url_forms_are_accepted() {
        for url in [
            "smtp://127.0.0.1:2525",
            "smtps://user:pass@mail.example.com:465",
            "smtp://user:pass@mail.example.com:587?tls=required",
            "smtp://mail.example.com?tls=opportunistic",
        ] {
            let delivery = Delivery::new(&config(Some(url))).unwrap();
            assert!(!delivery.is_dev_mailbox(), "{url}");
        }
        assert!(Delivery::new(&config(None)).unwrap().is_dev_mailbox());
        assert!(Delivery::new(&config(Some(" "))).unwrap().is_dev_mailbox());
    }

    #[test]
    fn a_bad_url_says_what_to_fix_without_repeating_the_password() {
        for url in [
            "http://user:hunter2@mail.example.com",
            "smtp://user:hunter2@mail.example.com?tls=always",
            "not a url hunter2",
        ] {
            let error = Delivery::new(&config(Some(url))).unwrap_err().to_string();
            assert!(error.contains("TENANTRY_SMTP_URL"), "{error}");
            assert!(error.contains("smtps://"), "{error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
    }

    #[test]
    fn a_bad_from_address_is_an_error() {
        let config = MailConfig {
            from: "no address".into(),
            ..MailConfig::default()
        };
        let error = Delivery::new(&config).unwrap_err().to_string();
        assert!(error.contains("TENANTRY_SMTP_FROM"), "{error}");
    }
}
