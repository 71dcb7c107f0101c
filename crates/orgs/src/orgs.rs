//! [`Orgs`], the organization services: one handle, built at start, whose methods live in the
//! modules of what they do (`members`, `team`, `invitations`, `api_keys`, `plans`, `limits`,
//! `usage`, `closing`, `retention`).

use tenantry_mail::Outbox;
use tenantry_tenancy::{ControlDb, Tenancy};

#[derive(Debug, Clone)]
pub struct Orgs {
    pub(crate) tenancy: Tenancy,
    outbox: Outbox,
    public_url: String,
    pub(crate) organization_cap: Option<i64>,
    deleted_retention_days: u32,
    pending: crate::usage::PendingRequests,
    pub(crate) caches: crate::auth_cache::AuthCaches,
}

/// How many organizations one user may own, unless configured otherwise.
pub const DEFAULT_ORGANIZATION_CAP: i64 = 20;

impl Orgs {
    /// `outbox` carries invitation emails, whose links start with `public_url`.
    pub fn new(tenancy: Tenancy, outbox: Outbox, public_url: &str) -> Self {
        Self {
            outbox,
            public_url: public_url.trim_end_matches('/').to_string(),
            organization_cap: Some(DEFAULT_ORGANIZATION_CAP),
            deleted_retention_days: crate::closing::DEFAULT_DELETED_RETENTION_DAYS,
            pending: Default::default(),
            caches: crate::auth_cache::AuthCaches::new(tenancy.caches()),
            tenancy,
        }
    }

    /// The most organizations one user may own (`None`: no cap).
    pub fn with_organization_cap(mut self, cap: Option<i64>) -> Self {
        self.organization_cap = cap;
        self
    }

    /// How many days a soft-deleted organization stays restorable before it is purged (the
    /// date its owners are told).
    pub fn with_deleted_retention_days(mut self, days: u32) -> Self {
        self.deleted_retention_days = days;
        self
    }

    pub(crate) fn deleted_retention_days(&self) -> u32 {
        self.deleted_retention_days
    }

    pub(crate) fn runtime(&self) -> &ControlDb {
        self.tenancy.control_db()
    }

    pub(crate) fn tenancy(&self) -> &Tenancy {
        &self.tenancy
    }

    pub(crate) fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    pub(crate) fn pending(&self) -> &crate::usage::PendingRequests {
        &self.pending
    }

    pub(crate) fn public_url(&self) -> &str {
        &self.public_url
    }
}
