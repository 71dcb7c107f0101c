//! [`Identity`]: sign-up, login, refresh, logout, and authenticating an access token. Shared by
//! the HTTP layer and the CLI.

use std::sync::Arc;

use chrono::{Duration, Utc};
use serde::Serialize;
use sqlx::PgConnection;
use tenantry_tenancy::cache::{Cache, Caches, Invalidate};
use tenantry_tenancy::{ControlDb, Operator, Tenancy};
use uuid::Uuid;

use crate::browser::{BrowserSession, SessionInfo, SignedInBrowser};
use crate::error::IdentityError;
use crate::keys::{AccessClaims, SigningKeys};
use crate::password::{PasswordHasher, Verified};
use crate::sessions;
use crate::users::{self, User};
use tenantry_base::Email;

#[derive(Debug, Clone)]
pub struct IdentityConfig {
    /// `iss` of access tokens (the server's public URL).
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub argon_memory_kib: u32,
    pub argon_iterations: u32,
    /// Password hashes computed at once.
    pub hash_concurrency: usize,
}

impl Default for IdentityConfig {
    fn default() -> Self {
        Self {
            issuer: "http://127.0.0.1:8080".to_string(),
            audience: "tenantry".to_string(),
            access_ttl: Duration::minutes(15),
            refresh_ttl: Duration::days(30),
            argon_memory_kib: crate::password::MIN_MEMORY_KIB,
            argon_iterations: crate::password::MIN_ITERATIONS,
            hash_concurrency: 4,
        }
    }
}

/// An access token and the refresh token that renews it.
#[derive(Clone, Serialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

impl std::fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// A user checked and hashed, not yet stored.
pub struct NewUser {
    email: Email,
    name: String,
    password_hash: String,
    platform_admin: bool,
}

impl std::fmt::Debug for NewUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("email", &self.email)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone)]
pub struct Identity {
    pool: ControlDb,
    hasher: PasswordHasher,
    keys: Arc<SigningKeys>,
    config: IdentityConfig,
    /// Open sessions, by id, once [`Identity::with_caches`] set them up.
    sessions: Option<Arc<Cache<Uuid, bool>>>,
}

const MIN_PASSWORD: usize = 8;
const MAX_PASSWORD: usize = 1024;

impl Identity {
    /// Requests are served through the runtime role's pool of the control database; the signing
    /// keys, owner-only, are loaded (or made, at first start) with `keys`, the owner role's
    /// handle that the program's start-up hands over.
    pub async fn open(
        tenancy: &Tenancy,
        keys: &Operator,
        config: IdentityConfig,
    ) -> anyhow::Result<Self> {
        let pool = tenancy.control_db().clone();
        let keys = SigningKeys::load_or_create(keys, &config.issuer, &config.audience).await?;
        let hasher = PasswordHasher::new(
            config.argon_memory_kib,
            config.argon_iterations,
            config.hash_concurrency,
        )?;
        Ok(Self {
            pool,
            hasher,
            keys: Arc::new(keys),
            config,
            sessions: None,
        })
    }

    /// Caches which sessions are open, invalidated through `caches` (see
    /// `tenantry_tenancy::cache`): a revoked session is refused on the next request, on every
    /// instance.
    pub fn with_caches(mut self, caches: &Arc<Caches>) -> Self {
        self.sessions = Some(Cache::new(caches, |sid: &Uuid, _, topic, id| {
            topic == "session" && sid.to_string() == id
        }));
        self
    }

    /// Creates a user (sign-up, or the CLI's `user create`).
    pub async fn create_user(
        &self,
        email: &Email,
        password: &str,
        name: &str,
        platform_admin: bool,
    ) -> Result<User, IdentityError> {
        let mut new = self.prepare_user(email, password, name).await?;
        new.platform_admin = platform_admin;
        let mut conn = self.pool.acquire().await?;
        self.insert_user(&mut conn, &new).await
    }

    /// Checks and hashes a new user's details, without storing anything: the slow part of
    /// creating a user, done before a transaction that inserts it with [`Identity::insert_user`].
    pub async fn prepare_user(
        &self,
        email: &Email,
        password: &str,
        name: &str,
    ) -> Result<NewUser, IdentityError> {
        check_password(password)?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(IdentityError::Invalid(
                "name: 1 to 200 characters".to_string(),
            ));
        }
        Ok(NewUser {
            email: email.clone(),
            name: name.to_string(),
            password_hash: self.hasher.hash(password).await?,
            platform_admin: false,
        })
    }

    /// Stores a prepared user on `conn` (in the caller's transaction, when it has one).
    pub async fn insert_user(
        &self,
        conn: &mut PgConnection,
        new: &NewUser,
    ) -> Result<User, IdentityError> {
        users::insert(
            conn,
            new.email.as_str(),
            &new.name,
            &new.password_hash,
            new.platform_admin,
        )
        .await
    }

    /// Starts a session for `user` with `org_id` active: a user just created or just admitted.
    pub async fn sign_in(
        &self,
        user: &User,
        org_id: Option<Uuid>,
    ) -> Result<TokenPair, IdentityError> {
        self.start_session(user, org_id).await
    }

    /// Creates a user and signs them in.
    pub async fn signup(
        &self,
        email: &Email,
        password: &str,
        name: &str,
    ) -> Result<(User, TokenPair), IdentityError> {
        let user = self.register(email, password, name).await?;
        let tokens = self.start_session(&user, None).await?;
        Ok((user, tokens))
    }

    /// Creates a user without signing them in. Everything is checked before the password is
    /// hashed (the costly part): the input, then whether the address is taken (the insert
    /// checks again, for a race).
    pub async fn register(
        &self,
        email: &Email,
        password: &str,
        name: &str,
    ) -> Result<User, IdentityError> {
        check_password(password)?;
        let taken: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM identity.users WHERE lower(email) = lower($1))",
        )
        .bind(email.as_str())
        .fetch_one(&self.pool)
        .await?;
        if taken {
            return Err(IdentityError::EmailTaken);
        }
        self.create_user(email, password, name, false).await
    }

    /// The user with this email and password. An unknown email and a wrong password cost the
    /// same and fail the same way.
    async fn verify_login(&self, email: &str, password: &str) -> Result<User, IdentityError> {
        let found = users::with_password(&self.pool, email).await?;
        let verified = self
            .hasher
            .verify(password, found.as_ref().map(|(_, hash)| hash.as_str()))
            .await?;
        let Some((user, _)) = found else {
            return Err(IdentityError::InvalidCredentials);
        };
        match verified {
            Verified::No => return Err(IdentityError::InvalidCredentials),
            Verified::YesRehash => {
                let hash = self.hasher.hash(password).await?;
                users::set_password_hash(&self.pool, user.id, &hash).await?;
            }
            Verified::Yes => {}
        }
        Ok(user)
    }

    /// Signs a user in, in their default organization. An unknown email and a wrong password
    /// cost the same and fail the same way.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
    ) -> Result<(User, TokenPair), IdentityError> {
        let user = self.verify_login(email, password).await?;
        let tokens = self.start_session(&user, user.default_org_id).await?;
        Ok((user, tokens))
    }

    /// Signs a user in from the console: a browser session, whose cookie token is returned.
    pub async fn login_browser(
        &self,
        email: &str,
        password: &str,
        user_agent: Option<&str>,
    ) -> Result<(User, SignedInBrowser), IdentityError> {
        let user = self.verify_login(email, password).await?;
        let signed = self.sign_in_browser(user.id, user_agent).await?;
        Ok((user, signed))
    }

    /// Starts a browser session for `user_id` (after a sign-up or an accepted invitation).
    pub async fn sign_in_browser(
        &self,
        user_id: Uuid,
        user_agent: Option<&str>,
    ) -> Result<SignedInBrowser, IdentityError> {
        crate::browser::start(&self.pool, user_id, user_agent, self.config.refresh_ttl).await
    }

    /// The open browser session a cookie token belongs to (rotating the token when it is due);
    /// `InvalidToken` for an unknown, expired or revoked one, `RefreshReused` (and the session
    /// revoked) for one replaced a while ago.
    pub async fn browser_session(
        &self,
        cookie_token: &str,
    ) -> Result<BrowserSession, IdentityError> {
        crate::browser::resume(&self.pool, cookie_token, self.config.refresh_ttl).await
    }

    /// The user's open sessions, browser and API, the most recently used first.
    pub async fn sessions(&self, user_id: Uuid) -> Result<Vec<SessionInfo>, IdentityError> {
        crate::browser::list(&self.pool, user_id).await
    }

    /// Revokes one of the user's sessions; `false` when it is not an open session of theirs.
    pub async fn revoke_session(
        &self,
        user_id: Uuid,
        session_id: Uuid,
    ) -> Result<bool, IdentityError> {
        let revoked = crate::browser::revoke_own(&self.pool, user_id, session_id).await?;
        if revoked && let Some(cache) = &self.sessions {
            cache.invalidate("session", &session_id.to_string());
        }
        Ok(revoked)
    }

    /// Ends a browser session (the console's "Log out").
    pub async fn logout_browser(&self, session_id: Uuid) -> Result<(), IdentityError> {
        sessions::revoke(&self.pool, session_id, "logout").await?;
        if let Some(cache) = &self.sessions {
            cache.invalidate("session", &session_id.to_string());
        }
        Ok(())
    }

    /// A new pair for a refresh token, which stops working.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenPair, IdentityError> {
        let rotated = sessions::rotate(&self.pool, refresh_token, self.config.refresh_ttl).await?;
        let access_token = self.sign(rotated.user_id, rotated.session_id, rotated.org_id)?;
        Ok(TokenPair {
            access_token,
            refresh_token: rotated.refresh_token,
            expires_in: self.config.access_ttl.num_seconds(),
        })
    }

    /// A new pair in the same session with `org_id` as the active organization (switching).
    pub async fn reissue(
        &self,
        claims: &AccessClaims,
        org_id: Option<Uuid>,
    ) -> Result<TokenPair, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let refresh_token =
            sessions::issue(&mut conn, claims.sid, org_id, self.config.refresh_ttl).await?;
        Ok(TokenPair {
            access_token: self.sign(claims.sub, claims.sid, org_id)?,
            refresh_token,
            expires_in: self.config.access_ttl.num_seconds(),
        })
    }

    /// Ends the session: its access and refresh tokens stop working.
    pub async fn logout(&self, claims: &AccessClaims) -> Result<(), IdentityError> {
        sessions::revoke(&self.pool, claims.sid, "logout").await?;
        if let Some(cache) = &self.sessions {
            cache.invalidate("session", &claims.sid.to_string());
        }
        Ok(())
    }

    /// Whether session `session_id` is still open (not logged out, revoked or found reused):
    /// what a long-lived request, such as an event stream, checks as it goes.
    pub async fn session_open(&self, session_id: Uuid) -> Result<bool, IdentityError> {
        match &self.sessions {
            Some(cache) => {
                cache
                    .get_or_load(&session_id, |open| *open, async {
                        sessions::is_active(&self.pool, session_id).await
                    })
                    .await
            }
            None => sessions::is_active(&self.pool, session_id).await,
        }
    }

    /// The claims of a valid access token whose session is still open.
    pub async fn authenticate(&self, access_token: &str) -> Result<AccessClaims, IdentityError> {
        let claims = self.keys.verify(access_token)?;
        if !self.session_open(claims.sid).await? {
            return Err(IdentityError::InvalidToken);
        }
        Ok(claims)
    }

    pub async fn user(&self, id: Uuid) -> Result<Option<User>, IdentityError> {
        users::get(&self.pool, id).await
    }

    /// Sets (or clears) the organization the user's logins start in. The caller checks the
    /// membership.
    pub async fn set_default_org(
        &self,
        user_id: Uuid,
        org_id: Option<Uuid>,
    ) -> Result<User, IdentityError> {
        users::set_default_org(&self.pool, user_id, org_id).await?;
        users::get(&self.pool, user_id)
            .await?
            .ok_or_else(|| IdentityError::Unexpected(anyhow::anyhow!("user {user_id} vanished")))
    }

    pub fn keys(&self) -> &SigningKeys {
        &self.keys
    }

    async fn start_session(
        &self,
        user: &User,
        org_id: Option<Uuid>,
    ) -> Result<TokenPair, IdentityError> {
        let (session_id, refresh_token) =
            sessions::start(&self.pool, user.id, org_id, self.config.refresh_ttl).await?;
        Ok(TokenPair {
            access_token: self.sign(user.id, session_id, org_id)?,
            refresh_token,
            expires_in: self.config.access_ttl.num_seconds(),
        })
    }

    fn sign(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        org_id: Option<Uuid>,
    ) -> Result<String, IdentityError> {
        let now = Utc::now().timestamp();
        Ok(self.keys.sign(&AccessClaims {
            sub: user_id,
            org_id,
            sid: session_id,
            iss: self.keys.issuer().to_string(),
            aud: self.keys.audience().to_string(),
            iat: now,
            exp: now + self.config.access_ttl.num_seconds(),
        })?)
    }
}

fn check_password(password: &str) -> Result<(), IdentityError> {
    let n = password.chars().count();
    if !(MIN_PASSWORD..=MAX_PASSWORD).contains(&n) {
        return Err(IdentityError::Invalid(format!(
            "password: {MIN_PASSWORD} to {MAX_PASSWORD} characters"
        )));
    }
    Ok(())
}
