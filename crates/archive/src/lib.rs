//! Archives of one organization: everything it owns, as a `.tar.gz` that [`export`] streams and
//! [`import`] restores into a new tenant of any tier. No HTTP inside.
//!
//! # What an archive holds
//!
//! - `tenant/<table>.jsonl`, one per tenant table (parents first): each row of the tenant's
//!   storage as `to_jsonb(row) - 'tenant_id'`, one per line, in primary-key order, read as the
//!   owner role on a connection scoped to the tenant
//!   ([`Operator::tenant_storage`](tenantry_tenancy::Operator::tenant_storage)), so row-level security
//!   keeps every other tenant's rows out;
//! - `organization.json` (name, slug, plan, settings, created_at), `plan_overrides.json`,
//!   `members.jsonl` (user id, email, name, role, joined_at), `invitations.jsonl` and
//!   `api_keys.jsonl` (metadata only), `api_usage.jsonl`, and `audit.jsonl` (the organization's
//!   control-side audit chain), each read with a filter on the organization's id;
//! - `manifest.json`, last: format version, source, tables with their columns, and every file's
//!   rows and SHA-256.
//!
//! It never holds a password hash, an API-key hash or an invitation-token hash: the queries
//! name the columns they export. Both sides are read in `REPEATABLE READ, READ ONLY`
//! transactions, so each is one consistent snapshot and the export can write nothing.
//!
//! # Import
//!
//! The archive is checked whole before anything is made (format version, every file's SHA-256
//! and rows, tables and columns against this server's, the audit chains against the source
//! id); then a tenant is created, its tables filled in one transaction and compared with the
//! manifest before it commits, and the control side restored in another. Both audit chains are
//! hashed over the tenant id, so they are rebuilt under the new id with the audit crate's own
//! chain code (every other column kept; control-side entries get new ids, as `audit.entries.id`
//! is unique across organizations), and `organization.imported` is appended. Any failure
//! hard-deletes the half-made tenant. Members are matched by email with this server's users;
//! API keys and invitations cannot be restored (their secrets are not in the archive).

mod control;
mod export;
mod import;
pub mod manifest;
mod reader;
mod rechain;
mod validate;
mod writer;

pub use export::{Exported, export};
pub use import::{ImportOptions, ImportReport, import};
pub use manifest::{FORMAT_VERSION, Manifest};
pub use writer::ChannelWriter;

use tenantry_tenancy::TenancyError;

/// What went wrong with an export or an import.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    /// No tenant with this id or slug.
    #[error("no tenant {0:?}")]
    NotFound(String),
    /// The tenant cannot be exported now (being provisioned or purged).
    #[error("{0}")]
    NotExportable(String),
    /// The archive is not one this server can import; nothing was created.
    #[error("the archive cannot be imported: {0}")]
    InvalidArchive(String),
    /// The slug asked for is taken.
    #[error("the slug {0:?} is taken")]
    SlugTaken(String),
    /// An import option is wrong (the slug, the name).
    #[error("{0}")]
    Invalid(String),
    /// The restored tenant differs from the archive; it was removed again.
    #[error("the imported copy differs from the archive, so it was removed: {0}")]
    Mismatch(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for ArchiveError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<std::io::Error> for ArchiveError {
    fn from(e: std::io::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<TenancyError> for ArchiveError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::NotFound(key) => Self::NotFound(key),
            TenancyError::SlugTaken(slug) => Self::SlugTaken(slug),
            TenancyError::Invalid(detail) => Self::Invalid(detail),
            other => Self::Unexpected(other.into()),
        }
    }
}

/// Told about long work as it goes (the CLI prints it); every method does nothing by default.
pub trait Progress: Send + Sync {
    /// A file of the archive was written (export) or restored (import), with its rows.
    fn file_done(&self, _path: &str, _rows: u64) {}
    /// A step of the work begins.
    fn step(&self, _text: &str) {}
    /// The import created its tenant (removed again should the import fail).
    fn tenant_created(&self, _record: &tenantry_tenancy::TenantRecord) {}
}

/// Progress that tells nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct Quiet;

impl Progress for Quiet {}
