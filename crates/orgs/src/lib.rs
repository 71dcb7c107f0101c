//! Organizations and their members. An organization is a tenant of the registry; this crate adds
//! who belongs to it and with which role, and the one permission matrix every route consults.
//! No HTTP inside.

mod api_keys;
mod members;
mod roles;
mod team;

pub use api_keys::{ApiKey, KEY_PREFIX, KeyIdentity, NewKey};
pub use members::{Membership, OrgSummary, Orgs, OrgsError};
pub use roles::{Action, Role};
pub use team::Member;

use std::borrow::Cow;

use tenantry_tenancy::{ControlSchema, Migration, MigrationSet};

/// The membership tables, in the control database's `orgs` schema (after `identity`'s).
pub fn control_schema() -> ControlSchema {
    let migrations = MigrationSet::new(vec![
        Migration {
            version: 1,
            name: Cow::Borrowed("orgs/0001_memberships.sql"),
            sql: Cow::Borrowed(include_str!("../migrations/0001_memberships.sql")),
        },
        Migration {
            version: 2,
            name: Cow::Borrowed("orgs/0002_api_keys.sql"),
            sql: Cow::Borrowed(include_str!("../migrations/0002_api_keys.sql")),
        },
    ]);
    ControlSchema {
        name: "orgs",
        migrations: migrations.unwrap_or_else(|e| unreachable!("{e}")),
    }
}
