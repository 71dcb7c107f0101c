//! Filling a control database with many tenants quickly: `create_tenant` called several at a
//! time. The seeding is not a measured figure, but its rate is printed.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures::{StreamExt, TryStreamExt};
use tenantry_tenancy::{Isolation, NewTenant, Slug, Tenancy, TenantStatus};

/// How many `create_tenant` calls run at once while seeding. The engine lets at most
/// `owner_max - 1` of them hold a tenant lock at a time; the rest queue inside the engine.
pub const SEED_CONCURRENCY: usize = 8;

/// How many times one tenant's provisioning is attempted. A call that fails leaves the tenant
/// `failed`; calling `create_tenant` again with the same slug resumes it, as the engine documents.
/// Resumptions are counted and reported, so a flaky provisioning path does not go unnoticed.
const ATTEMPTS: usize = 3;

/// What seeding did.
#[derive(Debug, Clone)]
pub struct Seeded {
    pub took: Duration,
    /// Calls that failed and were resumed by calling again.
    pub resumed: usize,
    pub first_error: Option<String>,
}

/// The request for tenant `i` of tier `tier`, slug `<tag>-<tier>-<i>`.
pub fn new_tenant(tag: &str, tier: Isolation, i: usize) -> anyhow::Result<NewTenant> {
    let slug = format!("{tag}-{tier}-{i}");
    Ok(NewTenant {
        name: format!("Bench {tag} {tier} {i}"),
        slug: Slug::parse(&slug).with_context(|| format!("bad slug {slug}"))?,
        isolation: tier,
        plan: None,
        server: None,
    })
}

/// Creates `count` tenants of each tier in `mix`, `concurrency` at a time, and checks that every
/// one ended active.
pub async fn create_many(
    engine: &Tenancy,
    tag: &str,
    mix: &[(Isolation, usize)],
    concurrency: usize,
) -> anyhow::Result<Seeded> {
    let mut requests = Vec::new();
    for &(tier, count) in mix {
        for i in 0..count {
            requests.push(new_tenant(tag, tier, i)?);
        }
    }
    let total = requests.len();
    let done = AtomicUsize::new(0);
    let errors = Mutex::new(Vec::new());
    let start = Instant::now();
    let (done_ref, errors_ref) = (&done, &errors);
    futures::stream::iter(requests)
        .map(|new| async move {
            let mut attempt = 1;
            let record = loop {
                match engine.create_tenant(&new).await {
                    Ok(record) => break record,
                    Err(e) if attempt < ATTEMPTS => {
                        attempt += 1;
                        if let Ok(mut errors) = errors_ref.lock() {
                            errors.push(format!("{}: {:#}", new.slug, anyhow::Error::from(e)));
                        }
                    }
                    Err(e) => {
                        return Err(anyhow::Error::from(e)).with_context(|| {
                            format!("failed to create tenant {} ({ATTEMPTS} attempts)", new.slug)
                        });
                    }
                }
            };
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
    let took = start.elapsed();
    let errors = errors
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a seeding task panicked"))?;
    Ok(Seeded {
        took,
        resumed: errors.len(),
        first_error: errors.into_iter().next(),
    })
}
