//! Each tenant's budget, remembered for a short time ([`LIMIT_TTL`] by default) so that it is not
//! looked up on every request: a changed limit applies within that time.

use std::future::Future;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use uuid::Uuid;

/// How long a tenant's budget is remembered.
pub const LIMIT_TTL: Duration = Duration::from_secs(30);

pub(crate) struct LimitCache {
    ttl: Duration,
    entries: DashMap<Uuid, (Instant, Option<i64>)>,
}

impl LimitCache {
    pub(crate) fn new(ttl: Duration) -> Self {
        LimitCache {
            ttl,
            entries: DashMap::new(),
        }
    }

    /// The tenant's budget (`None`: unlimited): remembered, or from `load` when not known or
    /// older than the TTL. A failed `load` is not remembered.
    pub(crate) async fn get<F, Fut, E>(&self, tenant: Uuid, load: F) -> Result<Option<i64>, E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Option<i64>, E>>,
    {
        let now = Instant::now();
        if let Some(entry) = self.entries.get(&tenant)
            && now.duration_since(entry.0) < self.ttl
        {
            return Ok(entry.1);
        }
        let value = load().await?;
        self.entries.insert(tenant, (now, value));
        Ok(value)
    }

    /// Forgets the tenant's budget (a deleted tenant).
    pub(crate) fn forget(&self, tenant: Uuid) {
        self.entries.remove(&tenant);
    }

    /// Forgets what is out of date.
    pub(crate) fn forget_stale(&self) {
        let now = Instant::now();
        self.entries
            .retain(|_, (at, _)| now.duration_since(*at) < self.ttl);
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use super::*;

    #[tokio::test]
    async fn a_budget_is_loaded_once_within_the_ttl_and_again_after_it() {
        let tenant = Uuid::new_v4();
        let long = LimitCache::new(Duration::from_secs(3600));
        assert_eq!(
            long.get(tenant, || async { Ok::<_, Infallible>(Some(5)) })
                .await,
            Ok(Some(5))
        );
        // Within the TTL the loader is not called.
        assert_eq!(
            long.get(tenant, || async {
                unreachable!("cached") as Result<_, Infallible>
            })
            .await,
            Ok(Some(5))
        );
        // With no TTL every call loads.
        let none = LimitCache::new(Duration::ZERO);
        assert_eq!(
            none.get(tenant, || async { Ok::<_, Infallible>(Some(5)) })
                .await,
            Ok(Some(5))
        );
        assert_eq!(
            none.get(tenant, || async { Ok::<_, Infallible>(None) })
                .await,
            Ok(None)
        );
        none.forget_stale();
        assert!(none.entries.is_empty());
        // A failed load is not remembered.
        assert_eq!(
            none.get(tenant, || async { Err("down") }).await,
            Err("down")
        );
        assert!(none.entries.is_empty());
    }
}
