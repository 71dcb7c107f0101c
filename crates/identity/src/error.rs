//! What identity operations report.

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("an account with this email exists")]
    EmailTaken,
    /// Unknown email or wrong password: the same error for both.
    #[error("the email or password is wrong")]
    InvalidCredentials,
    /// A malformed, expired, tampered or revoked token.
    #[error("the token is not valid")]
    InvalidToken,
    /// A refresh token was used twice: the whole session is revoked.
    #[error("the refresh token was already used; the session is revoked")]
    RefreshReused,
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Unexpected(#[from] anyhow::Error),
}

impl From<sqlx::Error> for IdentityError {
    fn from(e: sqlx::Error) -> Self {
        Self::Unexpected(e.into())
    }
}
