//! Access tokens: JWTs signed with Ed25519 (`EdDSA`), each naming its key by `kid`. Keys are
//! made at first start and kept in the control database; `jwks()` publishes the public halves.
//! Verification pins the algorithm and requires `exp`, `iss`, `aud` and `sub`.

use std::collections::HashMap;

use anyhow::Context;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tenantry_tenancy::Operator;
use uuid::Uuid;

use crate::error::IdentityError;

/// The claims of an access token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user.
    pub sub: Uuid,
    /// The active organization, when there is one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_id: Option<Uuid>,
    /// The session the token belongs to; revoking the session ends the token.
    pub sid: Uuid,
    pub iss: String,
    pub aud: String,
    pub iat: i64,
    pub exp: i64,
}

pub struct SigningKeys {
    kid: String,
    encoding: EncodingKey,
    decoding: HashMap<String, DecodingKey>,
    public: Vec<(String, Vec<u8>)>,
    issuer: String,
    audience: String,
}

impl std::fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKeys")
            .field("kid", &self.kid)
            .finish()
    }
}

impl SigningKeys {
    /// Loads the keys in use, creating the first one when there is none, with the owner role
    /// (the table is owner-only).
    pub async fn load_or_create(
        operator: &Operator,
        issuer: &str,
        audience: &str,
    ) -> anyhow::Result<Self> {
        let pool = operator.control();
        let mut rows = load(pool).await?;
        if rows.is_empty() {
            let key = ed25519_dalek::SigningKey::generate(&mut rand::rngs::OsRng);
            let private = key
                .to_pkcs8_der()
                .map_err(|e| anyhow::anyhow!("failed to encode the signing key: {e}"))?;
            let public = key.verifying_key().to_bytes().to_vec();
            let kid = hex_prefix(&Sha256::digest(&public));
            sqlx::query(
                "INSERT INTO identity.signing_keys (kid, algorithm, private_key, public_key)
                 VALUES ($1, 'EdDSA', $2, $3) ON CONFLICT (kid) DO NOTHING",
            )
            .bind(&kid)
            .bind(private.as_bytes())
            .bind(&public)
            .execute(pool)
            .await
            .context("failed to store the signing key")?;
            rows = load(pool).await?;
        }
        // Newest first: it signs; every key in use verifies.
        let (kid, private, _) = rows
            .first()
            .cloned()
            .context("no signing key after creating one")?;
        let decoding = rows
            .iter()
            .map(|(kid, _, public)| (kid.clone(), DecodingKey::from_ed_der(public)))
            .collect();
        Ok(Self {
            encoding: EncodingKey::from_ed_der(&private),
            kid,
            decoding,
            public: rows
                .into_iter()
                .map(|(kid, _, public)| (kid, public))
                .collect(),
            issuer: issuer.to_string(),
            audience: audience.to_string(),
        })
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    pub fn sign(&self, claims: &AccessClaims) -> anyhow::Result<String> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .context("failed to sign an access token")
    }

    /// The claims of a token this server signed that has not expired.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, IdentityError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| IdentityError::InvalidToken)?;
        if header.alg != Algorithm::EdDSA {
            return Err(IdentityError::InvalidToken);
        }
        let key = header
            .kid
            .as_ref()
            .and_then(|kid| self.decoding.get(kid))
            .ok_or(IdentityError::InvalidToken)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = 5;
        jsonwebtoken::decode::<AccessClaims>(token, key, &validation)
            .map(|data| data.claims)
            .map_err(|_| IdentityError::InvalidToken)
    }

    /// The public keys, as a JSON Web Key Set.
    pub fn jwks(&self) -> serde_json::Value {
        let keys: Vec<serde_json::Value> = self
            .public
            .iter()
            .map(|(kid, public)| {
                serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "alg": "EdDSA",
                    "use": "sig",
                    "kid": kid,
                    "x": URL_SAFE_NO_PAD.encode(public),
                })
            })
            .collect();
        serde_json::json!({ "keys": keys })
    }
}

async fn load(pool: &sqlx::PgPool) -> anyhow::Result<Vec<(String, Vec<u8>, Vec<u8>)>> {
    sqlx::query_as(
        "SELECT kid, private_key, public_key FROM identity.signing_keys
         WHERE retired_at IS NULL ORDER BY created_at DESC, kid",
    )
    .fetch_all(pool)
    .await
    .context("failed to load the signing keys")
}

fn hex_prefix(digest: &[u8]) -> String {
    digest.iter().take(8).map(|b| format!("{b:02x}")).collect()
}
