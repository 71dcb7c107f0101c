//! Organizations and their members. An organization is a tenant of the registry; this crate adds
//! who belongs to it and with which role, and the one permission matrix every route consults.
//! No HTTP inside.

mod api_keys;
mod auth_cache;
mod closing;
mod entitlements;
mod error;
mod invitations;
mod limits;
mod members;
mod orgs;
mod plans;
mod roles;
mod team;
mod usage;

pub use api_keys::{ApiKey, KEY_PREFIX, KeyIdentity, KeySpec, MAX_KEY_REQUESTS_PER_MINUTE, NewKey};
pub use closing::DEFAULT_DELETED_RETENTION_DAYS;
pub use entitlements::{Feature, Limit};
pub use error::OrgsError;
pub use invitations::{
    INVITATION_TTL_DAYS, Invitation, InvitationPreview, OpenInvitation, PreviewOrg,
};
pub use members::{Membership, OrgSummary, ProfileChange};
pub use orgs::{DEFAULT_ORGANIZATION_CAP, Orgs};
pub use plans::{EntitlementChange, Entitlements, LIMIT_KEYS, OrgDetails, Overrides, Plan};
pub use roles::{Action, Role};
pub use team::Member;
pub use usage::{OrgCounts, Used};

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
            (
                "orgs/0003_invitations.sql",
                include_str!("../migrations/0003_invitations.sql"),
            ),
            (
                "orgs/0004_plans.sql",
                include_str!("../migrations/0004_plans.sql"),
            ),
            (
                "orgs/0005_api_usage.sql",
                include_str!("../migrations/0005_api_usage.sql"),
            ),
            (
                "orgs/0006_key_budgets_and_org_references.sql",
                include_str!("../migrations/0006_key_budgets_and_org_references.sql"),
            ),
            (
                "orgs/0007_cache_invalidation.sql",
                include_str!("../migrations/0007_cache_invalidation.sql"),
            ),
            (
                "orgs/0008_api_usage_daily.sql",
                include_str!("../migrations/0008_api_usage_daily.sql"),
            ),
            (
                "orgs/0009_scheduler_weights.sql",
                include_str!("../migrations/0009_scheduler_weights.sql"),
            ),
        ]),
    }
}
