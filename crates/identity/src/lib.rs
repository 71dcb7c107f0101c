//! Identity: users and their passwords (argon2id), sessions whose refresh tokens rotate on every
//! use (a reused one revokes the session), and short-lived access tokens signed with Ed25519
//! keys published as a JWKS. No HTTP inside.

mod browser;
mod error;
mod keys;
mod password;
mod service;
mod sessions;
mod users;

pub use browser::{BrowserSession, SessionInfo, SignedInBrowser};
pub use error::IdentityError;
pub use keys::{AccessClaims, SigningKeys};
pub use password::PasswordHasher;
pub use service::{Identity, IdentityConfig, NewUser, TokenPair};
pub use tenantry_base::Email;
pub use users::User;

use tenantry_tenancy::{ControlSchema, MigrationSet};

/// The identity tables, in the control database's `identity` schema.
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "identity",
        migrations: MigrationSet::from_files(&[
            (
                "identity/0001_users_sessions.sql",
                include_str!("../migrations/0001_users_sessions.sql"),
            ),
            (
                "identity/0002_session_invalidation.sql",
                include_str!("../migrations/0002_session_invalidation.sql"),
            ),
            (
                "identity/0003_owner_only_keys.sql",
                include_str!("../migrations/0003_owner_only_keys.sql"),
            ),
            (
                "identity/0004_browser_sessions.sql",
                include_str!("../migrations/0004_browser_sessions.sql"),
            ),
        ]),
    }
}
