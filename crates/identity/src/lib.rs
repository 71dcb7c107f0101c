//! Identity: users and their passwords (argon2id), sessions whose refresh tokens rotate on every
//! use (a reused one revokes the session), and short-lived access tokens signed with Ed25519
//! keys published as a JWKS. No HTTP inside.

mod email;
mod error;
mod keys;
mod password;
mod service;
mod sessions;
mod users;

pub use email::Email;
pub use error::IdentityError;
pub use keys::{AccessClaims, SigningKeys};
pub use password::PasswordHasher;
pub use service::{Identity, IdentityConfig, TokenPair};
pub use users::User;

use std::borrow::Cow;

use tenantry_tenancy::{ControlSchema, Migration, MigrationSet};

/// The identity tables, in the control database's `identity` schema.
pub fn control_schema() -> ControlSchema {
    let migrations = MigrationSet::new(vec![Migration {
        version: 1,
        name: Cow::Borrowed("identity/0001_users_sessions.sql"),
        sql: Cow::Borrowed(include_str!("../migrations/0001_users_sessions.sql")),
    }]);
    ControlSchema {
        name: "identity",
        // The list above is numbered by hand; `new` only rejects a gap.
        migrations: migrations.unwrap_or_else(|e| unreachable!("{e}")),
    }
}
