//! The email outbox. An email is written to `mail.outbox` in the transaction of the change that
//! causes it ([`Outbox::enqueue`]), so it exists if and only if that change committed; a
//! background [`Sender`] delivers it over SMTP, retrying with backoff, or keeps it in the dev
//! mailbox when no SMTP server is configured. Bodies (which carry secrets such as invitation
//! tokens) are sealed at rest, erased once an SMTP server accepted them, and never logged.
//! No HTTP inside.

mod config;
mod delivery;
mod outbox;
mod sender;

pub use config::{MailConfig, RetryPolicy};
pub use outbox::{Email, MailStatus, Outbox, StoredEmail};
pub use sender::Sender;

use tenantry_tenancy::{ControlSchema, MigrationSet};

/// The outbox and its key, in the control database's `mail` schema (its emails reference
/// `control.tenants`).
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "mail",
        migrations: MigrationSet::from_files(&[
            (
                "mail/0001_outbox.sql",
                include_str!("../migrations/0001_outbox.sql"),
            ),
            (
                "mail/0002_owner_only_keys.sql",
                include_str!("../migrations/0002_owner_only_keys.sql"),
            ),
        ]),
    }
}
