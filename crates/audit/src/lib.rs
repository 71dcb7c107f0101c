//! The audit log: who changed what, from where, when. Every change writes an entry in the same
//! transaction as the change, so a change and its entry commit or roll back together. No HTTP
//! inside.
//!
//! # Two stores, three kinds of chain
//!
//! Changes happen in two places, so entries are kept in two:
//!
//! - **the control database**, table `audit.entries`: organization-level changes (members,
//!   invitations, API keys, profile, plan, lifecycle), written with [`record`] in a transaction
//!   of the runtime pool, one chain per organization (`org_id`); `org_id` NULL is the
//!   **platform** chain, for platform administrators' actions;
//! - **the tenant's own storage**, table `audit_log` of the tenant schema (shared schema, the
//!   tenant's schema, or the tenant's database): tenant-scoped changes (monitors, later alert
//!   channels, status pages, agents), written with [`record_in_tenant`] in the change's
//!   [`TenantTx`], one chain per tenant.
//!
//! [`list`] merges an organization's two chains, newest first; [`verify`] recomputes both.
//!
//! # Append-only
//!
//! Both tables carry a comment starting with `append-only`; the tenancy engine's grants give the
//! runtime role (and a database-tier tenant's own role) SELECT and INSERT on them, never UPDATE,
//! DELETE or TRUNCATE. The owner role, which runs migrations and hard deletes, keeps every right:
//! a hard delete removes the organization's entries with it (record it in the platform chain).
//!
//! # The chain
//!
//! Entries are numbered 1, 2, 3... per chain (`seq`). Each stores the previous entry's hash
//! (`prev_hash`, 32 zero bytes for the first) and its own:
//! `hash = SHA-256(prev_hash || canonical bytes)`. The canonical bytes are the UTF-8 text of a
//! JSON object holding every other column — `org_id` (control side, `null` for the platform) or
//! `tenant_id` (tenant side), `seq`, `id`, `at` (RFC 3339, UTC, exactly six fractional digits,
//! `Z`), `actor_kind`, `actor_id`, `action`, `target_kind`, `target_id`, `before`, `after`, `ip`,
//! `user_agent`, `request_id` — written compactly with the keys of every object sorted by their
//! bytes; `before` and `after` are the values as PostgreSQL stores them (`jsonb`, read back as
//! text). Appending takes a transaction-scoped advisory lock per chain
//! (`pg_advisory_xact_lock(hashtextextended('tenantry:audit:<chain>', 0))`), reads the last
//! entry and inserts the next, so concurrent writers chain one after the other (callers use the
//! default READ COMMITTED isolation). On the control side, the chain's last `(seq, hash)` is also
//! written to `audit.heads` in the same transaction.
//!
//! # What verification proves, and what it does not
//!
//! [`verify`] reads both chains as the owner role and reports an entry whose content no longer
//! matches its hash (altered), a gap in the numbering or a broken link (removed), and, for the
//! control side, newest entries removed (the chain is shorter than its head) or a chain whose end
//! differs from its head. Limits, honestly:
//!
//! - the hash is not keyed: someone who can rewrite the tables (the owner role, a superuser)
//!   and recomputes every hash after the entries they change leaves a consistent chain; on the
//!   control side they must also rewrite `audit.heads`, which the runtime role may update, so it
//!   is a second place to change, not a proof;
//! - removing the newest entries of a **tenant-side** chain is not detected: its head would have
//!   to live in the tenant's storage too, where it could be rewound with them;
//! - a copy of the chain heads kept elsewhere (exported regularly) is what would turn these into
//!   proofs; it is not done yet.
//!
//! The runtime role alone can neither alter nor remove an entry: the database refuses it.
//!
//! [`TenantTx`]: tenantry_tenancy::TenantTx

mod action;
mod append;
mod chain;
mod context;
mod list;
mod verify;

pub use action::{ActionFilter, AuditAction};
pub use append::{record, record_in_tenant};
/// The chain itself, for code that must rebuild a chain under another id (archive import).
pub use chain::{Chain, Checker, GENESIS, Link, write_canonical};
pub use context::{Actor, ActorKind, AuditContext, Change};
pub use list::{Entry, Filter, InvalidCursor, MAX_LIMIT, Source, list, list_platform};
pub use verify::{Verification, verify, verify_platform, verify_through_door};

use tenantry_tenancy::{ControlSchema, MigrationSet, TenantSet};

/// The name of the tenant migration set holding the tenant-side audit log.
pub const TENANT_SET: &str = "audit";

/// The tenant-side audit log. Releases before tenant migration sets numbered these 3 and 9 of
/// their single tenant set.
pub fn tenant_set() -> TenantSet {
    TenantSet::new(
        TENANT_SET,
        MigrationSet::from_files(&[
            (
                "audit/tenant/0001_audit_log.sql",
                include_str!("../migrations/tenant/0001_audit_log.sql"),
            ),
            (
                "audit/tenant/0002_audit_target_index.sql",
                include_str!("../migrations/tenant/0002_audit_target_index.sql"),
            ),
        ]),
    )
    .adopting(&[3, 9])
}

/// The control-side tables, in the control database's `audit` schema (after the registry, which
/// `org_id` references).
pub fn control_schema() -> ControlSchema {
    ControlSchema {
        name: "audit",
        migrations: MigrationSet::from_files(&[(
            "audit/0001_entries.sql",
            include_str!("../migrations/0001_entries.sql"),
        )]),
    }
}
