//! Organizations and their members. An organization is a tenant of the registry; this crate adds
//! who belongs to it and with which role, and the one permission matrix every route consults.
//! No HTTP inside.

mod api_keys;
mod members;
mod roles;
mod team;

pub use api_keys::{ApiKey, KEY_PREFIX, KeyIdentity, NewKey};
pub use members::{Membership, OrgSummary, Orgs, OrgsError, ProfileChange};
pub use roles::{Action, Role};
pub use team::Member;

use tenantry_tenancy::{ControlSchema, MigrationSet};

/// The membership and API-key tables, in the control database's `orgs` schema (after
/// `identity`'s).
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "orgs",
        migrations: MigrationSet::from_files(&[
            (
                "orgs/0001_memberships.sql",
                include_str!("../migrations/0001_memberships.sql"),
            ),
            (
                "orgs/0002_api_keys.sql",
                include_str!("../migrations/0002_api_keys.sql"),
            ),
        ]),
    }
}
