//! The errors the engine reports to its callers.

use crate::ids::TenantStatus;

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    /// No tenant with this id or slug (or it was hard-deleted).
    #[error("no tenant {0:?}")]
    NotFound(String),
    /// The tenant exists but is not active; the door refuses it.
    #[error("tenant {slug} is {status}")]
    NotActive { slug: String, status: TenantStatus },
    #[error("the slug {0:?} is taken")]
    SlugTaken(String),
    /// A lifecycle action that does not apply to the tenant's current status.
    #[error("cannot {action} tenant {slug}: it is {status}")]
    InvalidState {
        slug: String,
        status: TenantStatus,
        action: &'static str,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("the confirmation {given:?} does not match the slug {slug:?}")]
    ConfirmationMismatch { slug: String, given: String },
    /// A move is switching the tenant to its new placement; writes resume in a moment.
    #[error("tenant {0} is being moved; try again in a moment")]
    Moving(String),
    /// The PostgreSQL server holding the tenant's rows cannot be reached or has no connection to
    /// spare; the tenant's requests fail until it is back, other servers' tenants are served.
    #[error(
        "tenant {slug} is unavailable: its server {server} cannot be reached; try again in a moment"
    )]
    Unavailable { slug: String, server: String },
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for TenancyError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

/// The SQLSTATE of a database error, if `e` is one.
pub(crate) fn sqlstate(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(db) => db.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// Whether `e`, met while opening a new connection, says the server could not be reached: the
/// connection failed or timed out, or the server refused it (connection exceptions,
/// `57P03 cannot_connect_now`, `53300 too_many_connections`). Errors of an open connection (a
/// session ended by `DROP DATABASE … WITH (FORCE)`, a database that no longer exists) are not:
/// the door follows the tenant to its new placement on those.
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code == "57P03" || code == "53300"),
        _ => false,
    }
}

/// Whether `e` says an open connection was lost: the socket failed, or the server ended the
/// session (`08…` connection exceptions, `57P01`/`57P02`/`57P03` shutdown or restart).
pub(crate) fn connection_lost(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
        _ => false,
    }
}
