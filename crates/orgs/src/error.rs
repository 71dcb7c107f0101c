//! What the organization services report.

use tenantry_tenancy::TenancyError;

#[derive(Debug, thiserror::Error)]
pub enum OrgsError {
    /// No such organization, or the caller is not a member: the same answer for both.
    #[error("no such organization")]
    NotFound,
    #[error("the slug {0:?} is taken")]
    SlugTaken(String),
    #[error("{field}: {detail}")]
    Invalid { field: &'static str, detail: String },
    /// The caller's role does not allow the change.
    #[error("{0}")]
    Forbidden(String),
    /// The change would break a rule (the last owner, an existing member).
    #[error("{0}")]
    Conflict(String),
    /// An invitation that was valid once and is not any more.
    #[error("{0}")]
    Gone(String),
    /// The organization is suspended.
    #[error("the organization is suspended")]
    Suspended,
    /// The plan allows no more of something; `limit` is the limit's key.
    #[error("{detail}")]
    LimitExceeded { limit: &'static str, detail: String },
    /// The organization's plan does not include this feature.
    #[error("the organization's plan does not include {0}")]
    FeatureUnavailable(crate::Feature),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for OrgsError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}

impl From<TenancyError> for OrgsError {
    fn from(e: TenancyError) -> Self {
        match e {
            TenancyError::NotFound(_) => OrgsError::NotFound,
            TenancyError::SlugTaken(slug) => OrgsError::SlugTaken(slug),
            TenancyError::Invalid(detail) => OrgsError::Invalid {
                field: "name",
                detail,
            },
            TenancyError::NotActive {
                status: tenantry_tenancy::TenantStatus::Suspended,
                ..
            } => OrgsError::Suspended,
            e @ TenancyError::InvalidState { .. } => OrgsError::Conflict(format!("{e}.")),
            other => OrgsError::Unexpected(other.into()),
        }
    }
}
