//! Benchmark (k): would PgBouncer in transaction pooling mode, in front of database-tier tenants,
//! beat connecting to PostgreSQL directly?
//!
//! The workload: 500 tenant databases on the benchmark's server, each with its own login role
//! (the only role besides the owner that may connect to it) and a small `items` table. 16 clients
//! each loop over the 500 databases round-robin (client `i` starts at database `i × 31`), one
//! request being one transaction: `BEGIN READ ONLY`, `SELECT set_config('app.tenant_id', …)`, a
//! read of one item by primary key, `COMMIT`. At most 100 server connections to PostgreSQL are
//! allowed in all. Four ways to serve it:
//!
//! - A: a new direct connection per request (the floor);
//! - B: a process-wide LRU of idle direct connections keyed by database, at most 100 open;
//! - C: PgBouncer in transaction mode, one new client connection to it per request (an
//!   application without a pool of its own);
//! - C2: the LRU of B, holding client connections to PgBouncer instead.
//!
//! PgBouncer is looked for on `PATH` and at `/usr/sbin/pgbouncer`, never installed; without it
//! the comparison is skipped. It runs as the unprivileged user that runs the managed PostgreSQL,
//! on a Unix socket in a temporary folder. Every database and role is dropped at the end.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{ConnectOptions, Connection, Executor, PgConnection, PgPool};
use tenantry_pg::RunAs;
use tenantry_tenancy::quote_ident;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::api_load::{Answer, Client, Outcome, drive};
use crate::report::Row;
use crate::setup::Bench;
use crate::stats::{Summary, fmt};

const DATABASES: usize = 500;
const CLIENTS: usize = 16;
/// Where client `i` starts: database `i × OFFSET`.
const OFFSET: usize = 31;
/// Server connections to PostgreSQL allowed in all.
const BUDGET: usize = 100;
const ITEMS_PER_DATABASE: usize = 3;
/// Databases created at once while setting up.
const SETUP_CONCURRENCY: usize = 4;
/// Databases dropped at once: each `DROP DATABASE` waits for a checkpoint, and concurrent ones
/// share it.
const DROP_CONCURRENCY: usize = 32;
const BOUNCER_PORT: u16 = 6432;
/// How long PgBouncer keeps an idle server connection. It has no cap on server connections in
/// all, only per pool, database and user, so this timeout is what holds the total down. Its
/// janitor closes idle connections three times a second, so they live up to a third of a second
/// longer whatever the timeout: this one is as short as makes a difference.
const SERVER_IDLE_TIMEOUT: &str = "0.01";
/// Every variant runs once per round; the order is reversed every other round, so that none
/// always runs first (on a cluster still writing out the databases just created) or last.
const ROUNDS: usize = 2;
/// Operations timed by each single-client probe.
const PROBES: usize = 200;
/// How often the number of server connections is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

const TX_READ: &str = "SELECT tenant_id, name FROM items WHERE id = $1";
const TX_SET: &str = "SELECT set_config('app.tenant_id', $1, true)";

pub async fn run(bench: &Bench) -> anyhow::Result<Vec<Row>> {
    println!();
    println!(
        "[k] PgBouncer or direct connections: {DATABASES} tenant databases with a role each, \
         {CLIENTS} clients round-robin (client i starts at i × {OFFSET}), at most {BUDGET} server \
         connections"
    );
    let Some(binary) = find_pgbouncer() else {
        println!(
            "    skipped: pgbouncer is not on PATH nor at /usr/sbin/pgbouncer; install it with \
             `apt-get install pgbouncer` to run this comparison"
        );
        return Ok(Vec::new());
    };
    println!("    {} ({})", bouncer_version(&binary), binary.display());
    let timing = Timing::from_quick(bench.sizes.quick);
    let config = bench.config("k");
    let fleet = Fleet::new(
        config.owner.disable_statement_logging(),
        config.control_database,
    );
    let admin = PgPoolOptions::new()
        .max_connections(DROP_CONCURRENCY as u32)
        .connect_with(fleet.owner.clone())
        .await
        .context("failed to connect as the owner role")?;
    let result = async {
        fleet.create(&admin).await?;
        compare(&fleet, &admin, &binary, timing).await
    }
    .await;
    let dropped = fleet.drop_all(&admin).await;
    admin.close().await;
    match (result, dropped) {
        (Ok(rows), Ok(())) => Ok(rows),
        (Err(e), Ok(())) => Err(e),
        (Ok(_), Err(e)) => Err(e),
        (Err(e), Err(drop)) => {
            eprintln!("tenantry-bench: {drop:#}");
            Err(e)
        }
    }
}

/// Runs the four variants in interleaved rounds and the single-client probes, and makes their
/// rows.
async fn compare(
    fleet: &Fleet,
    admin: &PgPool,
    binary: &Path,
    timing: Timing,
) -> anyhow::Result<Vec<Row>> {
    let tenants = Arc::new(fleet.tenants.clone());
    let direct: Arc<Vec<PgConnectOptions>> = Arc::new(
        tenants
            .iter()
            .map(|t| {
                fleet
                    .owner
                    .clone()
                    .username(&t.role)
                    .password(&t.password)
                    .database(&t.database)
            })
            .collect(),
    );
    let bouncer = Bouncer::start(binary, fleet)?;
    bouncer.wait_ready().await?;
    println!(
        "    PgBouncer: pool_mode = transaction, default_pool_size = max_db_connections = \
         max_user_connections = 1, reserve_pool_size = 0, max_client_conn = {}, \
         server_idle_timeout = {SERVER_IDLE_TIMEOUT} s, auth_type = trust (userlist with the \
         roles' passwords), Unix socket in {}",
        max_client_conn(),
        bouncer.dir.path().display()
    );
    println!(
        "    PgBouncer 1.18 caps server connections per pool, database and user only, not in all: \
         with one pool per tenant the hard limit is {DATABASES} × 1, and the short \
         server_idle_timeout is what keeps the total down (server connections shown per variant)"
    );
    println!(
        "    through PgBouncer, queries are unnamed statements (sqlx .persistent(false)): \
         transaction pooling in 1.18 does not support protocol-level prepared statements; direct \
         connections use sqlx's named, cached statements"
    );
    let bounced: Arc<Vec<PgConnectOptions>> = Arc::new(
        tenants
            .iter()
            .map(|t| {
                PgConnectOptions::new_without_pgpass()
                    .socket(bouncer.dir.path())
                    .port(BOUNCER_PORT)
                    .ssl_mode(PgSslMode::Disable)
                    .username(&t.role)
                    .database(&t.database)
                    .disable_statement_logging()
            })
            .collect(),
    );
    println!(
        "    {ROUNDS} rounds, the order reversed every other round; per variant and round {} s \
         warm-up, {} s measured; backends counted over both from pg_stat_database.sessions once \
         every connection is closed",
        timing.warmup.as_secs_f64(),
        timing.measured.as_secs_f64()
    );
    let mut parts: [Vec<Measured>; 4] = Default::default();
    for round in 0..ROUNDS {
        let mut order = Variant::ALL;
        if round % 2 == 1 {
            order.reverse();
        }
        for variant in order {
            let targets = if variant.bounced() { &bounced } else { &direct };
            let part = measure(fleet, admin, &tenants, targets, variant, timing).await?;
            println!(
                "      round {}, {}: {}",
                round + 1,
                variant.short(),
                part.line()
            );
            parts[variant.index()].push(part);
        }
    }
    let mut measured = Vec::with_capacity(Variant::ALL.len());
    let mut rows = Vec::new();
    for (variant, parts) in Variant::ALL.into_iter().zip(parts) {
        let all = Measured::merge(parts)?;
        println!("    {}: {}", variant.label(), all.line());
        rows.push(all.row(variant));
        measured.push(all);
    }

    println!("    single client, one operation at a time, {PROBES} each:");
    let probes = [
        (
            "direct: connect + close",
            fleet.probe(admin, probe_connect(&direct)).await?,
        ),
        (
            "direct: transaction on an open connection",
            fleet
                .probe(admin, probe_transaction(&direct[0], &tenants[0], true))
                .await?,
        ),
        (
            "PgBouncer: client connect + close",
            fleet.probe(admin, probe_connect(&bounced)).await?,
        ),
        (
            "PgBouncer: transactions back to back on one client connection",
            fleet
                .probe(admin, probe_transaction(&bounced[0], &tenants[0], false))
                .await?,
        ),
    ];
    let log = bouncer.log();
    bouncer.stop().await;
    let trouble: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARNING") || l.contains("ERROR") || l.contains("FATAL"))
        .collect();
    println!(
        "    PgBouncer's log: {} warnings or errors{}",
        trouble.len(),
        trouble
            .iter()
            .take(3)
            .map(|l| format!("\n      {l}"))
            .collect::<String>()
    );
    for (label, probe) in &probes {
        println!("      {label:<62} {}", probe.line());
        rows.push(Row::info(format!("(k) probe: {label}"), probe.figures()));
    }
    let floor = measured[0].outcome.rate().max(f64::MIN_POSITIVE);
    let against: Vec<String> = Variant::ALL
        .iter()
        .zip(&measured)
        .map(|(v, m)| {
            format!(
                "{} {:.2}x, {:.2} backends/request",
                v.short(),
                m.outcome.rate() / floor,
                m.backends_per_request()
            )
        })
        .collect();
    println!("    rate against A: {}", against.join("; "));
    for (variant, m) in Variant::ALL.iter().zip(&measured) {
        if m.over_budget() {
            println!(
                "    {} went over the budget: {} server connections at once ({:.0} on average), \
                 {BUDGET} allowed",
                variant.short(),
                m.servers.peak,
                m.servers.mean()
            );
        }
    }
    Ok(rows)
}

/// One way of serving the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    A,
    B,
    C,
    C2,
}

impl Variant {
    const ALL: [Self; 4] = [Self::A, Self::B, Self::C, Self::C2];

    fn index(self) -> usize {
        match self {
            Self::A => 0,
            Self::B => 1,
            Self::C => 2,
            Self::C2 => 3,
        }
    }

    fn bounced(self) -> bool {
        matches!(self, Self::C | Self::C2)
    }

    fn label(self) -> &'static str {
        match self {
            Self::A => "A direct, new connection per request",
            Self::B => "B direct, LRU of 100 connections by database",
            Self::C => "C PgBouncer, new client connection per request",
            Self::C2 => "C2 PgBouncer, client-side LRU of 100 connections",
        }
    }

    fn short(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::B => "B",
            Self::C => "C",
            Self::C2 => "C2",
        }
    }

    fn cached(self) -> bool {
        matches!(self, Self::B | Self::C2)
    }

    /// Named statements cannot cross PgBouncer's transaction pooling.
    fn persistent(self) -> bool {
        matches!(self, Self::A | Self::B)
    }
}

#[derive(Debug, Clone, Copy)]
struct Timing {
    warmup: Duration,
    measured: Duration,
}

impl Timing {
    fn from_quick(quick: bool) -> Self {
        if quick {
            Self {
                warmup: Duration::from_millis(250),
                measured: Duration::from_secs(1),
            }
        } else {
            Self {
                warmup: Duration::from_secs(1),
                measured: Duration::from_secs(5),
            }
        }
    }
}

/// What one variant came to.
struct Measured {
    outcome: Outcome,
    latency: Summary,
    /// PostgreSQL backends started during warm-up and measurement.
    backends: i64,
    /// Connections the clients opened (to PostgreSQL or to PgBouncer).
    connects: u64,
    /// Server connections to the tenant databases while it ran.
    servers: Servers,
    /// Cache hits and lookups, for the variants with an LRU.
    hits: Option<(u64, u64)>,
}

impl Measured {
    /// The rounds of one variant as one: rates over the summed measured time, latencies pooled,
    /// the highest peak.
    fn merge(parts: Vec<Self>) -> anyhow::Result<Self> {
        let mut outcome = Outcome::default();
        let (mut backends, mut connects) = (0, 0);
        let mut servers = Servers::default();
        let mut hits: Option<(u64, u64)> = None;
        for part in parts {
            outcome.warmup_ops += part.outcome.warmup_ops;
            outcome.measured_ops += part.outcome.measured_ops;
            outcome.measured_for += part.outcome.measured_for;
            outcome.latencies.extend(part.outcome.latencies);
            for (what, n) in part.outcome.wrong {
                *outcome.wrong.entry(what).or_default() += n;
            }
            backends += part.backends;
            connects += part.connects;
            servers.add(part.servers);
            if let Some((h, l)) = part.hits {
                let (sum_h, sum_l) = hits.get_or_insert((0, 0));
                *sum_h += h;
                *sum_l += l;
            }
        }
        Ok(Self {
            latency: Summary::of(&outcome.latencies)?,
            outcome,
            backends,
            connects,
            servers,
            hits,
        })
    }

    fn requests(&self) -> u64 {
        self.outcome.warmup_ops + self.outcome.measured_ops
    }

    fn over_budget(&self) -> bool {
        self.servers.peak > BUDGET as i64
    }

    /// `mean 80, peak 150 (over 100)`.
    fn servers_text(&self) -> String {
        let over = if self.over_budget() {
            format!(" (over {BUDGET})")
        } else {
            String::new()
        };
        format!(
            "mean {:.0}, peak {}{over}",
            self.servers.mean(),
            self.servers.peak
        )
    }

    fn backends_per_request(&self) -> f64 {
        self.backends as f64 / self.requests().max(1) as f64
    }

    fn line(&self) -> String {
        let hits = match self.hits {
            Some((hits, lookups)) => format!(
                ", cache hits {:.1} % ({hits} of {lookups})",
                100.0 * hits as f64 / lookups.max(1) as f64
            ),
            None => String::new(),
        };
        format!(
            "{:.0} req/s, p50 {}, p99 {}; PostgreSQL backends started {} ({:.2} per request), \
             client connects {}{hits}; server connections {}; errors {}",
            self.outcome.rate(),
            fmt(self.latency.p50),
            fmt(self.latency.p99),
            self.backends,
            self.backends_per_request(),
            self.connects,
            self.servers_text(),
            self.outcome.wrong_line()
        )
    }

    fn row(&self, variant: Variant) -> Row {
        Row::info(
            format!("(k) {}", variant.label()),
            format!(
                "{:.0} req/s, p50 {}, p99 {}, {:.2} backends/request, server conns {}",
                self.outcome.rate(),
                fmt(self.latency.p50),
                fmt(self.latency.p99),
                self.backends_per_request(),
                self.servers_text()
            ),
        )
    }
}

/// Runs one variant, then closes its connections and counts the backends it started.
async fn measure(
    fleet: &Fleet,
    admin: &PgPool,
    tenants: &Arc<Vec<Tenant>>,
    targets: &Arc<Vec<PgConnectOptions>>,
    variant: Variant,
    timing: Timing,
) -> anyhow::Result<Measured> {
    let before = fleet.sessions(admin).await?;
    let sampler = Sampler::start(admin.clone(), fleet.prefix());
    let connects = Arc::new(AtomicU64::new(0));
    let cache = variant.cached().then(|| Arc::new(Lru::new(BUDGET)));
    let clients: Vec<LoadClient> = (0..CLIENTS)
        .map(|i| LoadClient {
            tenants: tenants.clone(),
            targets: targets.clone(),
            cache: cache.clone(),
            persistent: variant.persistent(),
            connects: connects.clone(),
            next: (i * OFFSET) % tenants.len(),
            round: 0,
        })
        .collect();
    let outcome = drive(clients, timing.warmup, timing.measured).await?;
    if let Some(cache) = &cache {
        cache.close_all().await;
    }
    fleet.wait_drained(admin).await?;
    let servers = sampler.stop();
    let backends = fleet.sessions(admin).await? - before;
    let latency = Summary::of(&outcome.latencies)
        .with_context(|| format!("{}: no request succeeded", variant.label()))?;
    Ok(Measured {
        outcome,
        latency,
        backends,
        connects: connects.load(Ordering::Relaxed),
        servers,
        hits: cache.as_ref().map(|c| c.hits()),
    })
}

/// One of the 16 clients: walks the databases round-robin, one request at a time.
struct LoadClient {
    tenants: Arc<Vec<Tenant>>,
    /// How to reach each tenant's database: directly or through PgBouncer.
    targets: Arc<Vec<PgConnectOptions>>,
    cache: Option<Arc<Lru>>,
    persistent: bool,
    connects: Arc<AtomicU64>,
    next: usize,
    round: usize,
}

impl LoadClient {
    async fn request(&mut self) -> anyhow::Result<bool> {
        let index = self.next;
        self.next = (self.next + 1) % self.tenants.len();
        self.round += 1;
        let tenant = &self.tenants[index];
        let item = tenant.items[self.round % tenant.items.len()];
        let options = &self.targets[index];
        match &self.cache {
            None => {
                self.connects.fetch_add(1, Ordering::Relaxed);
                let mut conn = options.connect().await?;
                let found = transaction(&mut conn, tenant, item, self.persistent).await?;
                conn.close().await?;
                Ok(found)
            }
            Some(cache) => {
                let (mut lease, fresh) = cache.acquire(index, options).await?;
                if fresh {
                    self.connects.fetch_add(1, Ordering::Relaxed);
                }
                let found = transaction(&mut lease.conn, tenant, item, self.persistent).await?;
                cache.release(index, lease);
                Ok(found)
            }
        }
    }
}

impl Client for LoadClient {
    async fn op(&mut self) -> Answer {
        match self.request().await {
            Ok(true) => Answer::Ok,
            Ok(false) => Answer::Wrong("no row".to_string()),
            // A failed connection is dropped, not cached again.
            Err(e) => Answer::Failed(format!("{e:#}")),
        }
    }

    fn reset(&mut self) {}
}

/// The request: one read-only transaction with the tenant set for it.
async fn transaction(
    conn: &mut PgConnection,
    tenant: &Tenant,
    item: Uuid,
    persistent: bool,
) -> anyhow::Result<bool> {
    // Text without arguments goes as one simple-query message.
    conn.execute("BEGIN READ ONLY").await?;
    sqlx::query(TX_SET)
        .bind(tenant.id.to_string())
        .persistent(persistent)
        .execute(&mut *conn)
        .await?;
    let row: Option<(Uuid, String)> = sqlx::query_as(TX_READ)
        .bind(item)
        .persistent(persistent)
        .fetch_optional(&mut *conn)
        .await?;
    conn.execute("COMMIT").await?;
    Ok(row.is_some_and(|(owner, _)| owner == tenant.id))
}

/// A connection of the LRU with the slot it takes among the open ones.
struct Lease {
    conn: PgConnection,
    _permit: OwnedSemaphorePermit,
}

struct Idle {
    tenant: usize,
    last_used: u64,
    lease: Lease,
}

/// A process-wide cache of idle connections keyed by database. A semaphore caps the connections
/// open in all (idle or in use); when all are open, the least recently used idle one is closed to
/// make room.
struct Lru {
    idle: Mutex<Vec<Idle>>,
    open: Arc<Semaphore>,
    clock: AtomicU64,
    hits: AtomicU64,
    lookups: AtomicU64,
}

impl Lru {
    fn new(capacity: usize) -> Self {
        Self {
            idle: Mutex::new(Vec::with_capacity(capacity)),
            open: Arc::new(Semaphore::new(capacity)),
            clock: AtomicU64::new(0),
            hits: AtomicU64::new(0),
            lookups: AtomicU64::new(0),
        }
    }

    /// An idle connection to `tenant`'s database, else a new one; `true` when new.
    async fn acquire(
        &self,
        tenant: usize,
        options: &PgConnectOptions,
    ) -> anyhow::Result<(Lease, bool)> {
        self.lookups.fetch_add(1, Ordering::Relaxed);
        let (evicted, permit) = {
            let mut idle = self
                .idle
                .lock()
                .map_err(|_| anyhow!("the connection cache is poisoned"))?;
            if let Some(at) = idle.iter().position(|i| i.tenant == tenant) {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return Ok((idle.swap_remove(at).lease, false));
            }
            match self.open.clone().try_acquire_owned() {
                Ok(permit) => (None, Some(permit)),
                Err(_) => {
                    let oldest = idle
                        .iter()
                        .enumerate()
                        .min_by_key(|(_, i)| i.last_used)
                        .map(|(at, _)| at);
                    match oldest {
                        Some(at) => {
                            let Lease { conn, _permit } = idle.swap_remove(at).lease;
                            (Some(conn), Some(_permit))
                        }
                        None => (None, None),
                    }
                }
            }
        };
        if let Some(conn) = evicted {
            let _ = conn.close().await;
        }
        let permit = match permit {
            Some(permit) => permit,
            None => self.open.clone().acquire_owned().await?,
        };
        let conn = options.connect().await?;
        Ok((
            Lease {
                conn,
                _permit: permit,
            },
            true,
        ))
    }

    fn release(&self, tenant: usize, lease: Lease) {
        let last_used = self.clock.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(Idle {
                tenant,
                last_used,
                lease,
            });
        }
    }

    async fn close_all(&self) {
        let all = match self.idle.lock() {
            Ok(mut idle) => std::mem::take(&mut *idle),
            Err(_) => return,
        };
        for idle in all {
            let _ = idle.lease.conn.close().await;
        }
    }

    fn hits(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.lookups.load(Ordering::Relaxed),
        )
    }
}

/// Server connections to the tenant databases, sampled from `pg_stat_activity` while a variant
/// runs.
struct Sampler {
    task: JoinHandle<()>,
    seen: Arc<Mutex<Servers>>,
}

/// The most server connections seen at once, and the sum and number of samples for the mean.
#[derive(Debug, Clone, Copy, Default)]
struct Servers {
    peak: i64,
    sum: i64,
    samples: i64,
}

impl Servers {
    fn mean(&self) -> f64 {
        self.sum as f64 / self.samples.max(1) as f64
    }

    fn add(&mut self, other: Self) {
        self.peak = self.peak.max(other.peak);
        self.sum += other.sum;
        self.samples += other.samples;
    }
}

impl Sampler {
    fn start(admin: PgPool, prefix: String) -> Self {
        let seen = Arc::new(Mutex::new(Servers::default()));
        let shared = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Ok(n) = backends(&admin, &prefix).await
                    && let Ok(mut servers) = shared.lock()
                {
                    servers.add(Servers {
                        peak: n,
                        sum: n,
                        samples: 1,
                    });
                }
                tokio::time::sleep(SAMPLE_EVERY).await;
            }
        });
        Self { task, seen }
    }

    fn stop(self) -> Servers {
        self.task.abort();
        self.seen.lock().map(|s| *s).unwrap_or_default()
    }
}

async fn backends(admin: &PgPool, prefix: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM pg_stat_activity WHERE starts_with(datname, $1)")
        .bind(prefix)
        .fetch_one(admin)
        .await
}

/// The spread of one single-client probe.
struct Probe {
    summary: Summary,
    /// PostgreSQL backends the probe started.
    backends: i64,
}

impl Probe {
    fn line(&self) -> String {
        format!(
            "p50 {}, p99 {}, PostgreSQL backends started {}",
            fmt(self.summary.p50),
            fmt(self.summary.p99),
            self.backends
        )
    }

    fn figures(&self) -> String {
        format!(
            "p50 {}, p99 {}, {} backends",
            fmt(self.summary.p50),
            fmt(self.summary.p99),
            self.backends
        )
    }
}

/// Connects and closes, one database after another.
async fn probe_connect(targets: &[PgConnectOptions]) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::with_capacity(PROBES);
    for k in 0..PROBES {
        let began = Instant::now();
        let conn = targets[(k * 7) % targets.len()].connect().await?;
        conn.close().await?;
        samples.push(began.elapsed());
    }
    Ok(samples)
}

/// Transactions back to back on one open connection, after a few untimed ones.
async fn probe_transaction(
    options: &PgConnectOptions,
    tenant: &Tenant,
    persistent: bool,
) -> anyhow::Result<Vec<Duration>> {
    let mut conn = options.connect().await?;
    let mut samples = Vec::with_capacity(PROBES);
    for k in 0..PROBES + 20 {
        let began = Instant::now();
        let item = tenant.items[k % tenant.items.len()];
        if !transaction(&mut conn, tenant, item, persistent).await? {
            bail!("the probe's read found no row");
        }
        if k >= 20 {
            samples.push(began.elapsed());
        }
    }
    conn.close().await?;
    Ok(samples)
}

/// One tenant: its database, its role and the ids of its items.
#[derive(Debug, Clone)]
struct Tenant {
    database: String,
    role: String,
    password: String,
    id: Uuid,
    items: Vec<Uuid>,
}

/// The tenant databases of the benchmark, named `<stem>_<n>`, with a template they are copied
/// from.
struct Fleet {
    owner: PgConnectOptions,
    stem: String,
    tenants: Vec<Tenant>,
}

impl Fleet {
    fn new(owner: PgConnectOptions, stem: String) -> Self {
        let tenants = (0..DATABASES)
            .map(|i| {
                let name = format!("{stem}_{i:03}");
                Tenant {
                    database: name.clone(),
                    role: name,
                    password: Uuid::new_v4().simple().to_string(),
                    id: Uuid::new_v4(),
                    items: (0..ITEMS_PER_DATABASE).map(|_| Uuid::new_v4()).collect(),
                }
            })
            .collect();
        Self {
            owner,
            stem,
            tenants,
        }
    }

    /// What every tenant database's name starts with (the template's too).
    fn prefix(&self) -> String {
        format!("{}_", self.stem)
    }

    fn template(&self) -> String {
        format!("{}_template", self.stem)
    }

    /// Creates the template with the `items` table, then every tenant's role and database.
    async fn create(&self, admin: &PgPool) -> anyhow::Result<()> {
        let started = Instant::now();
        let template = self.template();
        exec(
            admin,
            &format!("CREATE DATABASE {}", quote_ident(&template)),
        )
        .await?;
        let mut conn = self.owner.clone().database(&template).connect().await?;
        sqlx::raw_sql(
            "CREATE TABLE items (tenant_id uuid NOT NULL, id uuid PRIMARY KEY, name text NOT NULL)",
        )
        .execute(&mut conn)
        .await
        .context("failed to create the items table")?;
        conn.close().await?;
        futures::stream::iter(self.tenants.iter().map(Ok))
            .try_for_each_concurrent(SETUP_CONCURRENCY, |tenant| {
                self.create_tenant(admin, tenant)
            })
            .await?;
        println!(
            "    created {} databases and roles in {}",
            self.tenants.len(),
            fmt(started.elapsed())
        );
        Ok(())
    }

    async fn create_tenant(&self, admin: &PgPool, tenant: &Tenant) -> anyhow::Result<()> {
        let role = quote_ident(&tenant.role);
        let database = quote_ident(&tenant.database);
        exec(
            admin,
            &format!(
                "CREATE ROLE {role} LOGIN PASSWORD '{}'",
                tenant.password.replace('\'', "''")
            ),
        )
        .await?;
        exec(
            admin,
            &format!(
                "CREATE DATABASE {database} TEMPLATE {}",
                quote_ident(&self.template())
            ),
        )
        .await?;
        exec(
            admin,
            &format!(
                "REVOKE ALL ON DATABASE {database} FROM PUBLIC; \
                 GRANT CONNECT ON DATABASE {database} TO {role};"
            ),
        )
        .await?;
        let mut conn = self
            .owner
            .clone()
            .database(&tenant.database)
            .connect()
            .await?;
        sqlx::raw_sql(&format!("GRANT SELECT ON items TO {role}"))
            .execute(&mut conn)
            .await?;
        for (n, item) in tenant.items.iter().enumerate() {
            sqlx::query("INSERT INTO items (tenant_id, id, name) VALUES ($1, $2, $3)")
                .bind(tenant.id)
                .bind(item)
                .bind(format!("item {n}"))
                .execute(&mut conn)
                .await?;
        }
        conn.close().await?;
        Ok(())
    }

    /// Drops every database and role of the fleet that exists, whatever state the run left.
    async fn drop_all(&self, admin: &PgPool) -> anyhow::Result<()> {
        let started = Instant::now();
        let drops = futures::stream::iter(self.tenants.iter())
            .map(|tenant| async move {
                exec(
                    admin,
                    &format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&tenant.database)
                    ),
                )
                .await?;
                exec(
                    admin,
                    &format!("DROP ROLE IF EXISTS {}", quote_ident(&tenant.role)),
                )
                .await
            })
            .buffer_unordered(DROP_CONCURRENCY)
            .collect::<Vec<anyhow::Result<()>>>()
            .await;
        let template = exec(
            admin,
            &format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                quote_ident(&self.template())
            ),
        )
        .await;
        drops
            .into_iter()
            .chain([template])
            .collect::<anyhow::Result<Vec<()>>>()
            .context("failed to drop the databases and roles of (k)")?;
        println!(
            "    dropped the databases and roles in {}",
            fmt(started.elapsed())
        );
        Ok(())
    }

    /// Runs a single-client probe and counts the backends it started.
    async fn probe(
        &self,
        admin: &PgPool,
        probe: impl Future<Output = anyhow::Result<Vec<Duration>>>,
    ) -> anyhow::Result<Probe> {
        self.wait_drained(admin).await?;
        let before = self.sessions(admin).await?;
        let samples = probe.await?;
        self.wait_drained(admin).await?;
        Ok(Probe {
            summary: Summary::of(&samples)?,
            backends: self.sessions(admin).await? - before,
        })
    }

    /// Sessions PostgreSQL has counted on the fleet's databases since they were created.
    async fn sessions(&self, admin: &PgPool) -> anyhow::Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(sum(sessions), 0)::int8 FROM pg_stat_database \
             WHERE starts_with(datname, $1)",
        )
        .bind(self.prefix())
        .fetch_one(admin)
        .await?)
    }

    /// Waits until no backend is left on the fleet's databases, so that every session has been
    /// counted (a backend reports its statistics when it exits).
    async fn wait_drained(&self, admin: &PgPool) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = backends(admin, &self.prefix()).await?;
            if left == 0 {
                // The activity entry goes a moment before the statistics are flushed.
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("{left} backends are still connected to the databases of (k)");
            }
            tokio::time::sleep(SAMPLE_EVERY).await;
        }
    }
}

async fn exec(admin: &PgPool, sql: &str) -> anyhow::Result<()> {
    sqlx::raw_sql(sql)
        .execute(admin)
        .await
        .with_context(|| format!("failed to run {sql}"))?;
    Ok(())
}

/// `pgbouncer` on `PATH`, else `/usr/sbin/pgbouncer` (not on a normal user's `PATH` on Debian).
fn find_pgbouncer() -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("pgbouncer"))
        .chain([PathBuf::from("/usr/sbin/pgbouncer")])
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

fn bouncer_version(binary: &Path) -> String {
    std::process::Command::new(binary)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "PgBouncer, version unknown".to_string())
}

/// Room for the clients' connections (at most 100 held by the LRU) and a margin.
fn max_client_conn() -> usize {
    2 * BUDGET
}

/// A PgBouncer started for the benchmark, stopped when dropped.
struct Bouncer {
    child: Child,
    dir: tempfile::TempDir,
}

impl Bouncer {
    /// Writes its configuration into a temporary folder and starts it there, as the user that
    /// runs the managed PostgreSQL when this process is root (PgBouncer refuses to run as root).
    fn start(binary: &Path, fleet: &Fleet) -> anyhow::Result<Self> {
        let run_as = RunAs::detect()?;
        let dir = tempfile::Builder::new()
            .prefix("tenantry-pgbouncer-")
            .tempdir_in("/tmp")
            .context("failed to create a folder for PgBouncer")?;
        let server_host = match fleet.owner.get_socket() {
            Some(socket) => socket.display().to_string(),
            None => fleet.owner.get_host().to_string(),
        };
        let ini = dir.path().join("pgbouncer.ini");
        let users = dir.path().join("userlist.txt");
        let log = dir.path().join("pgbouncer.log");
        std::fs::write(
            &ini,
            format!(
                "[databases]\n\
                 * = host={server_host} port={port}\n\
                 \n\
                 [pgbouncer]\n\
                 unix_socket_dir = {dir}\n\
                 listen_port = {BOUNCER_PORT}\n\
                 auth_type = trust\n\
                 auth_file = {users}\n\
                 pool_mode = transaction\n\
                 default_pool_size = 1\n\
                 min_pool_size = 0\n\
                 reserve_pool_size = 0\n\
                 max_db_connections = 1\n\
                 max_user_connections = 1\n\
                 max_client_conn = {max_client_conn}\n\
                 server_idle_timeout = {SERVER_IDLE_TIMEOUT}\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 log_connections = 0\n\
                 log_disconnections = 0\n",
                port = fleet.owner.get_port(),
                dir = dir.path().display(),
                users = users.display(),
                max_client_conn = max_client_conn(),
            ),
        )?;
        let userlist: String = fleet
            .tenants
            .iter()
            .map(|t| format!("\"{}\" \"{}\"\n", t.role, t.password))
            .collect();
        std::fs::write(&users, userlist)?;
        let log_file = std::fs::File::create(&log)?;
        if let RunAs::User { uid, gid, .. } = &run_as {
            for path in [dir.path(), &ini, &users, &log] {
                std::os::unix::fs::chown(path, Some(uid.as_raw()), Some(gid.as_raw()))
                    .with_context(|| format!("failed to hand {} to PgBouncer", path.display()))?;
            }
        }
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600))?;
        }
        let child = run_as
            .command(binary)
            .arg(&ini)
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("failed to start {}", binary.display()))?;
        Ok(Self { child, dir })
    }

    /// Waits for its socket, or fails with its log if it exits.
    async fn wait_ready(&self) -> anyhow::Result<()> {
        let socket = self.dir.path().join(format!(".s.PGSQL.{BOUNCER_PORT}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !socket.exists() {
            if Instant::now() > deadline {
                bail!("PgBouncer did not open its socket: {}", self.log());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("pgbouncer.log")).unwrap_or_default()
    }

    /// Asks it to shut down (SIGTERM closes every connection at once).
    async fn stop(mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

impl Drop for Bouncer {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
