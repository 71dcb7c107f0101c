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

/// Whether `e` says the server could not be reached (as opposed to a query that failed).
pub(crate) fn unreachable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) | sqlx::Error::PoolTimedOut => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // connection_exception, operator_intervention (shutdown, cannot connect now),
            // too_many_connections.
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }),
        _ => false,
    }
}
