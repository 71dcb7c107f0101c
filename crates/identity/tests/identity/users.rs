use tenantry_identity::{IdentityConfig, IdentityError};

use crate::{email, identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signup_then_login_and_both_failures_look_the_same() {
    let (identity, _engine) = identity().await;
    let (user, tokens) = identity
        .signup(&email("ada@example.com"), "correct horse", "Ada")
        .await
        .unwrap();
    assert_eq!(user.email, "ada@example.com");
    assert!(!user.platform_admin);
    assert_eq!(tokens.expires_in, 900);
    let claims = identity.authenticate(&tokens.access_token).await.unwrap();
    assert_eq!(claims.sub, user.id);
    assert_eq!(claims.org_id, None);

    let (again, _) = identity
        .login("ADA@example.com", "correct horse")
        .await
        .unwrap();
    assert_eq!(again.id, user.id);
    for (who, password) in [
        ("ada@example.com", "wrong horse"),
        ("nobody@example.com", "correct horse"),
    ] {
        let err = identity.login(who, password).await.unwrap_err();
        assert!(
            matches!(err, IdentityError::InvalidCredentials),
            "{who}: {err}"
        );
        assert_eq!(err.to_string(), "the email or password is wrong");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_is_taken_whatever_its_case() {
    let (identity, _engine) = identity().await;
    identity
        .signup(&email("bob@example.com"), "password-1", "Bob")
        .await
        .unwrap();
    let err = identity
        .signup(&email("BOB@Example.com"), "password-2", "Bob")
        .await
        .unwrap_err();
    assert!(matches!(err, IdentityError::EmailTaken));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weak_passwords_and_empty_names_are_refused() {
    let (identity, _engine) = identity().await;
    for (password, name) in [("short", "Eve"), ("long enough", "  ")] {
        let err = identity
            .signup(&email("eve@example.com"), password, name)
            .await
            .unwrap_err();
        assert!(matches!(err, IdentityError::Invalid(_)), "{err}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_are_stored_as_argon2id_hashes_and_upgraded_on_login() {
    let (identity, engine) = identity().await;
    identity
        .signup(&email("cy@example.com"), "correct horse", "Cy")
        .await
        .unwrap();
    let stored: String = sqlx::query_scalar("SELECT password_hash FROM identity.users")
        .fetch_one(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert!(!stored.contains("correct horse"));

    // The same users, served with stronger parameters: the next login rehashes.
    let stronger = tenantry_identity::Identity::open(
        &engine,
        &tenantry_tenancy::Operator::new(&engine),
        IdentityConfig {
            argon_iterations: 3,
            ..IdentityConfig::default()
        },
    )
    .await
    .unwrap();
    stronger
        .login("cy@example.com", "correct horse")
        .await
        .unwrap();
    let upgraded: String = sqlx::query_scalar("SELECT password_hash FROM identity.users")
        .fetch_one(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=3,p=1$"),
        "{upgraded}"
    );
    stronger
        .login("cy@example.com", "correct horse")
        .await
        .unwrap();
}
