use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Duration;
use tenantry_identity::{IdentityConfig, IdentityError};

use crate::{email, identity, identity_with};

fn part(token: &str, i: usize) -> serde_json::Value {
    let segment = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

fn with_part(token: &str, i: usize, value: &serde_json::Value) -> String {
    let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
    parts[i] = URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap());
    parts.join(".")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_tokens_carry_the_claims_and_name_a_published_key() {
    let (identity, _engine) = identity().await;
    let (user, tokens) = identity
        .signup(&email("ivy@example.com"), "password-1", "Ivy")
        .await
        .unwrap();
    let header = part(&tokens.access_token, 0);
    assert_eq!(header["alg"], "EdDSA");
    let claims = part(&tokens.access_token, 1);
    assert_eq!(claims["sub"], user.id.to_string());
    assert_eq!(claims["iss"], "http://127.0.0.1:8080");
    assert_eq!(claims["aud"], "tenantry");
    assert_eq!(
        claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
        900
    );
    let jwks = identity.keys().jwks();
    let key = &jwks["keys"][0];
    assert_eq!(key["kid"], header["kid"]);
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    assert!(
        key.get("d").is_none(),
        "the private key must not be published"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_tampered_foreign_and_expired_tokens_are_refused() {
    let (identity, _engine) = identity().await;
    let (_, tokens) = identity
        .signup(&email("jo@example.com"), "password-1", "Jo")
        .await
        .unwrap();
    let token = tokens.access_token.as_str();
    let mut refused = Vec::new();

    // alg: none, with the signature dropped.
    let mut header = part(token, 0);
    header["alg"] = "none".into();
    refused.push(format!(
        "{}.",
        with_part(token, 0, &header).rsplit_once('.').unwrap().0
    ));
    // A claim changed under the original signature.
    let mut claims = part(token, 1);
    claims["sub"] = uuid::Uuid::new_v4().to_string().into();
    refused.push(with_part(token, 1, &claims));
    // Claims without exp, iss or aud.
    for missing in ["exp", "iss", "aud"] {
        let mut claims = part(token, 1);
        claims.as_object_mut().unwrap().remove(missing);
        refused.push(with_part(token, 1, &claims));
    }
    // Signed by another server's key.
    let (other, _other_engine) = crate::identity().await;
    let (_, foreign) = other
        .signup(&email("jo@example.com"), "password-1", "Jo")
        .await
        .unwrap();
    refused.push(foreign.access_token);
    // Expired.
    let (expired_issuer, _e) = identity_with(IdentityConfig {
        access_ttl: Duration::minutes(-2),
        ..IdentityConfig::default()
    })
    .await;
    let (_, old) = expired_issuer
        .signup(&email("jo@example.com"), "password-1", "Jo")
        .await
        .unwrap();
    assert!(
        expired_issuer
            .authenticate(&old.access_token)
            .await
            .is_err()
    );
    // Another audience.
    let (elsewhere, _e2) = identity_with(IdentityConfig {
        audience: "someone-else".to_string(),
        ..IdentityConfig::default()
    })
    .await;
    let (_, elsewhere_tokens) = elsewhere
        .signup(&email("jo@example.com"), "password-1", "Jo")
        .await
        .unwrap();
    let mut claims = part(&elsewhere_tokens.access_token, 1);
    claims["aud"] = "tenantry".into();
    assert!(
        elsewhere
            .authenticate(&elsewhere_tokens.access_token)
            .await
            .is_ok()
    );
    assert!(matches!(
        elsewhere
            .authenticate(&with_part(&elsewhere_tokens.access_token, 1, &claims))
            .await,
        Err(IdentityError::InvalidToken)
    ));
    refused.push("not.a.jwt".to_string());

    for bad in refused {
        assert!(
            matches!(
                identity.authenticate(&bad).await,
                Err(IdentityError::InvalidToken)
            ),
            "{bad}"
        );
    }
    identity.authenticate(token).await.unwrap();
}
