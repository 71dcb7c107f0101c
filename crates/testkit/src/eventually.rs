//! [`eventually`]: the one way tests wait for a real process (a server, a sender, a browser)
//! to get somewhere. It polls; it never sleeps to let time pass, and never asserts on time.

use std::time::Duration;

/// How often [`eventually`] asks again.
const EVERY: Duration = Duration::from_millis(50);

/// Asks `probe` until it answers `Ok`, and returns that; `Err` carries what it saw instead.
/// Panics naming `what` and the last thing seen once `within` has passed.
pub async fn eventually<T>(
    what: &str,
    within: Duration,
    mut probe: impl AsyncFnMut() -> Result<T, String>,
) -> T {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match probe().await {
            Ok(value) => return value,
            Err(seen) => assert!(
                tokio::time::Instant::now() < deadline,
                "{what} did not happen within {within:?}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(EVERY).await;
    }
}
