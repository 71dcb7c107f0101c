//! Filling a control database with many tenants quickly: `create_tenant` called several at a
//! time. The seeding is not a measured figure, but its rate is printed.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantStatus};

/// How many `create_tenant` calls run at once while seeding.
///
/// Provisioning holds one owner-pool connection for its tenant lock and takes a second one for
/// each step, so more concurrent calls than `PoolConfig::owner_max - 1` (3 with the default
/// pools) can leave every pooled connection held by a lock whose holder waits for a second
/// connection, until the pool's acquire timeout fails them all.
pub const SEED_CONCURRENCY: usize = 3;

/// The request for tenant `i` of tier `tier`, slug `<tag>-<tier>-<i>`.
pub fn new_tenant(tag: &str, tier: Isolation, i: usize) -> anyhow::Result<NewTenant> {
    let slug = format!("{tag}-{tier}-{i}");
    Ok(NewTenant {
        name: format!("Bench {tag} {tier} {i}"),
        slug: Slug::parse(&slug).with_context(|| format!("bad slug {slug}"))?,
        isolation: tier,
        plan: None,
    })
}

/// Creates `count` tenants of each tier in `mix`, `concurrency` at a time, and checks that every
/// one ended active. Returns how long it took.
pub async fn create_many(
    engine: &Tenancy,
    tag: &str,
    mix: &[(Isolation, usize)],
    concurrency: usize,
) -> anyhow::Result<Duration> {
    let mut requests = Vec::new();
    for &(tier, count) in mix {
        for i in 0..count {
            requests.push(new_tenant(tag, tier, i)?);
        }
    }
    let total = requests.len();
    let done = AtomicUsize::new(0);
    let start = Instant::now();
    let done_ref = &done;
    futures::stream::iter(requests)
        .map(|new| async move {
            let record = engine
                .create_tenant(&new)
                .await
                .with_context(|| format!("failed to create tenant {}", new.slug))?;
            anyhow::ensure!(
                record.status == TenantStatus::Active,
                "tenant {} ended {} after provisioning",
                record.slug,
                record.status
            );
            let n = done_ref.fetch_add(1, Ordering::Relaxed) + 1;
            if n % 100 == 0 || n == total {
                eprintln!(
                    "    seeded {n}/{total} tenants ({:.0} s)",
                    start.elapsed().as_secs_f64()
                );
            }
            Ok(())
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(start.elapsed())
}
