use tenantry_identity::IdentityError;

use crate::{email, identity};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_rotates_and_a_reused_token_revokes_the_session() {
    let (identity, _engine) = identity().await;
    let (_, first) = identity
        .signup(&email("dan@example.com"), "password-1", "Dan")
        .await
        .unwrap();
    let second = identity.refresh(&first.refresh_token).await.unwrap();
    assert_ne!(second.refresh_token, first.refresh_token);
    identity.authenticate(&second.access_token).await.unwrap();

    // The first token again: reuse. The whole session ends, including the newer tokens.
    let err = identity.refresh(&first.refresh_token).await.unwrap_err();
    assert!(matches!(err, IdentityError::RefreshReused), "{err}");
    assert!(matches!(
        identity.refresh(&second.refresh_token).await,
        Err(IdentityError::InvalidToken)
    ));
    assert!(matches!(
        identity.authenticate(&second.access_token).await,
        Err(IdentityError::InvalidToken)
    ));

    // Another login starts a fresh session.
    let (_, fresh) = identity
        .login("dan@example.com", "password-1")
        .await
        .unwrap();
    identity.refresh(&fresh.refresh_token).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_ends_the_session() {
    let (identity, _engine) = identity().await;
    let (_, tokens) = identity
        .signup(&email("fay@example.com"), "password-1", "Fay")
        .await
        .unwrap();
    let claims = identity.authenticate(&tokens.access_token).await.unwrap();
    identity.logout(&claims).await.unwrap();
    assert!(matches!(
        identity.authenticate(&tokens.access_token).await,
        Err(IdentityError::InvalidToken)
    ));
    assert!(identity.refresh(&tokens.refresh_token).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_tokens_are_stored_only_as_hashes() {
    let (identity, engine) = identity().await;
    let (_, tokens) = identity
        .signup(&email("gil@example.com"), "password-1", "Gil")
        .await
        .unwrap();
    let stored: Vec<Vec<u8>> = sqlx::query_scalar("SELECT token_hash FROM identity.refresh_tokens")
        .fetch_all(tenantry_tenancy::Operator::new(&engine).control())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].len(), 32);
    assert_ne!(stored[0], tokens.refresh_token.as_bytes());
    assert!(matches!(
        identity.refresh("not-a-token").await,
        Err(IdentityError::InvalidToken)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_refreshes_of_one_token_make_at_most_one_pair() {
    let (identity, _engine) = identity().await;
    let (_, tokens) = identity
        .signup(&email("hal@example.com"), "password-1", "Hal")
        .await
        .unwrap();
    let (a, b) = tokio::join!(
        identity.refresh(&tokens.refresh_token),
        identity.refresh(&tokens.refresh_token)
    );
    // One use wins; the other is a reuse, which revokes the session.
    assert!(
        !(a.is_ok() && b.is_ok()),
        "one refresh token made two pairs"
    );
    let loser = if a.is_ok() { b } else { a };
    assert!(matches!(loser, Err(IdentityError::RefreshReused)));
}
