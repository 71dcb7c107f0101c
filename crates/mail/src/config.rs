//! How mail is sent ([`MailConfig`]: the SMTP server and the sender address) and retried
//! ([`RetryPolicy`]).

use std::time::Duration;

/// How email is sent.
#[derive(Clone, PartialEq, Eq)]
pub struct MailConfig {
    /// The SMTP server, as `smtp://HOST:PORT` (plain), `smtps://USER:PASS@HOST:465` (TLS) or
    /// `smtp://USER:PASS@HOST:587?tls=required` (STARTTLS). `None` keeps every email in the dev
    /// mailbox, read with `tenantry mail list`.
    pub smtp_url: Option<String>,
    /// The `From` of every email, such as `Tenantry <no-reply@example.com>`.
    pub from: String,
}

impl Default for MailConfig {
    fn default() -> Self {
        Self {
            smtp_url: None,
            from: "Tenantry <no-reply@localhost>".to_string(),
        }
    }
}

impl std::fmt::Debug for MailConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("MailConfig")
            .field("smtp_url", &self.smtp_url.as_ref().map(|_| "<redacted>"))
            .field("from", &self.from)
            .finish()
    }
}

/// When failed deliveries are tried again: after `first_delay`, doubling up to `max_delay`,
/// until `max_attempts` attempts have failed (the defaults, 10 s doubling to 1 h over 32
/// attempts, keep trying for about a day).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first_delay: Duration,
    pub max_delay: Duration,
    pub max_attempts: i32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            first_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            max_attempts: 32,
        }
    }
}

impl RetryPolicy {
    /// The wait after the `attempts`-th failed attempt (1 for the first).
    pub fn delay(&self, attempts: i32) -> Duration {
        let doublings = attempts.saturating_sub(1).clamp(0, 30) as u32;
        self.first_delay
            .saturating_mul(1u32 << doublings)
            .min(self.max_delay)
    }
}
