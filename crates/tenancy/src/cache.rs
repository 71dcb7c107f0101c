//! In-process caches of what every request reads before it reaches tenant data (registry
//! records, API keys, memberships, limits, sessions), invalidated at once.
//!
//! - Triggers on the cached tables call `pg_notify('tenantry_invalidate', '<topic>:<id>')`, so
//!   every change, by any instance or the CLI, is announced when it commits.
//! - [`Caches::spawn_listener`] listens on that channel and forgets what each notification
//!   names. While the listener is not connected (before it first is, after its connection is
//!   lost, until it is back) no cache serves anything: every read goes to the database, and the
//!   caches are flushed when it reconnects, since notifications were missed meanwhile.
//! - On the instance that made a change, the caches are also invalidated synchronously, before
//!   the change's response is sent ([`Caches::invalidate`], [`Caches::flush`]), so the next
//!   request never sees the old value even if the notification has not arrived yet.
//! - Other instances have the change before its response is sent too: the instance that made it
//!   sends a marker through the channel after the change committed, and waits until every
//!   listener connected to the control database has acknowledged it ([`Caches::sync`]). A
//!   listener receives notifications in commit order and applies them one by one, so its
//!   acknowledgement means it has applied the change.
//! - A read that raced an invalidation does not fill the cache: a load records the
//!   invalidation generation before it reads, and stores its value only if no invalidation
//!   happened meanwhile.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};

/// The notification channel the invalidation triggers use.
pub const CHANNEL: &str = "tenantry_invalidate";
/// The `application_name` of every invalidation listener's connection: [`Caches::sync`] counts
/// the listeners it waits for by it.
pub const LISTENER_NAME: &str = "tenantry-cache-listener";

/// How long an entry is trusted at most, notifications or not.
const MAX_AGE: Duration = Duration::from_secs(60);

/// The most entries one cache holds; past it, it starts over.
const MAX_ENTRIES: usize = 100_000;

/// Something that forgets entries when told.
pub trait Invalidate: Send + Sync {
    /// Forget what `topic` and `id` name (`topic` is the table's topic, `id` its key text).
    fn invalidate(&self, topic: &str, id: &str);
    /// Forget everything.
    fn flush(&self);
}

/// A marker sent by [`Caches::sync`]: how many listeners have yet to acknowledge it, and its
/// waiter, told once none has.
struct Marker {
    awaited: usize,
    done: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Marker {
    /// One more listener has the marker.
    fn acknowledged(&mut self) {
        self.awaited = self.awaited.saturating_sub(1);
        if self.awaited == 0
            && let Some(done) = self.done.take()
        {
            let _ = done.send(());
        }
    }
}

/// The caches of one process, and whether they may serve.
#[derive(Default)]
pub struct Caches {
    members: RwLock<Vec<Weak<dyn Invalidate>>>,
    /// The listener is connected and listening: entries can be trusted.
    live: AtomicBool,
    /// Bumped by every invalidation; see [`Cache::get_or_load`].
    generation: AtomicU64,
    listening: AtomicBool,
    /// Markers this process sent through the channel, waiting for every listener
    /// ([`Caches::sync`]).
    markers: std::sync::Mutex<HashMap<String, Marker>>,
    /// Set once the engine closes: the listener stops, and losing its connection then is no
    /// news.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl std::fmt::Debug for Caches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Caches")
            .field("live", &self.is_live())
            .finish()
    }
}

impl Caches {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Whether entries may be served (the listener is connected).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Acquire)
    }

    fn register(&self, cache: Weak<dyn Invalidate>) {
        let mut members = self.members.write().unwrap_or_else(|p| p.into_inner());
        members.retain(|m| m.strong_count() > 0);
        members.push(cache);
    }

    fn each(&self, f: impl Fn(&dyn Invalidate)) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let members = self.members.read().unwrap_or_else(|p| p.into_inner());
        for member in members.iter().filter_map(Weak::upgrade) {
            f(member.as_ref());
        }
    }

    /// Forgets, in every cache, what `topic:id` names.
    pub fn invalidate(&self, topic: &str, id: &str) {
        self.each(|c| c.invalidate(topic, id));
    }

    /// Forgets everything in every cache.
    pub fn flush(&self) {
        self.each(|c| c.flush());
    }

    /// Applies one notification payload, `<topic>:<id>`; the acknowledgement to send back
    /// when it is another process's `sync` marker.
    pub fn apply(&self, payload: &str) -> Option<String> {
        match payload.split_once(':') {
            Some((kind @ ("sync" | "ack"), marker)) => {
                let mut markers = self.markers.lock().unwrap_or_else(|p| p.into_inner());
                match markers.get_mut(marker) {
                    // This process's own marker, back, or another listener's acknowledgement.
                    Some(own) => {
                        own.acknowledged();
                        None
                    }
                    // Another process's marker: acknowledged once what came before it applied.
                    None => (kind == "sync").then(|| format!("ack:{marker}")),
                }
            }
            Some((topic, id)) => {
                self.invalidate(topic, id);
                None
            }
            None => {
                self.flush();
                None
            }
        }
    }

    /// Stops the listener for good (the engine is closing): the caches serve nothing from now on.
    pub fn stop_listening(&self) {
        self.stopped.send_replace(true);
        self.live.store(false, Ordering::Release);
        self.flush();
    }

    /// Waits (at most `limit`) until every listener connected to the control database, this
    /// process's and every other instance's, has received every notification committed before
    /// now: it sends a marker through the channel, which this process's listener receives and
    /// every other listener acknowledges once it has applied what came before it (PostgreSQL
    /// delivers notifications in commit order). So a change followed by `sync` is known on
    /// every instance before its response leaves. Does nothing while this process's listener is
    /// not connected; a listener that goes away meanwhile costs the wait, never a stale read
    /// (its caches are off until it is back).
    pub async fn sync(&self, pool: &sqlx::PgPool, limit: Duration) {
        if !self.is_live() {
            return;
        }
        let listeners: Result<i64, _> = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND application_name = $1",
        )
        .bind(LISTENER_NAME)
        .fetch_one(pool)
        .await;
        let Ok(listeners) = listeners else { return };
        let marker = uuid::Uuid::new_v4().simple().to_string();
        let (done, back) = tokio::sync::oneshot::channel();
        self.markers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                marker.clone(),
                Marker {
                    // This process's own listener is among them.
                    awaited: usize::try_from(listeners).unwrap_or(0).max(1),
                    done: Some(done),
                },
            );
        let notified = sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(format!("sync:{marker}"))
            .execute(pool)
            .await;
        if notified.is_ok() {
            let _ = tokio::time::timeout(limit, back).await;
        }
        self.markers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&marker);
    }

    /// Listens for invalidations with `options` (a role that may connect to the control
    /// database), reconnecting after a lost connection; the caches serve only while it is
    /// connected. Starts one listener per process; later calls do nothing.
    pub fn spawn_listener(self: &Arc<Self>, options: PgConnectOptions) {
        if self.listening.swap(true, Ordering::AcqRel) {
            return;
        }
        let options = options.application_name(LISTENER_NAME);
        let weak = Arc::downgrade(self);
        let mut stopped = self.stopped.subscribe();
        tokio::spawn(async move {
            let mut backoff = Duration::from_millis(100);
            loop {
                let listening = tokio::select! {
                    listening = listen(&weak, &options) => listening,
                    _ = stopped.wait_for(|stopped| *stopped) => Ok(()),
                };
                if *stopped.borrow() {
                    // A connection made as the engine closed may have turned the caches on.
                    if let Some(caches) = weak.upgrade() {
                        caches.live.store(false, Ordering::Release);
                        caches.flush();
                    }
                    return;
                }
                let Err(error) = listening else { return };
                let Some(caches) = weak.upgrade() else { return };
                if caches.live.swap(false, Ordering::AcqRel) {
                    tracing::warn!(%error, "cache invalidation listener lost; caches off until it is back");
                }
                caches.flush();
                drop(caches);
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
        });
    }
}

/// A `LISTEN` connection with `options` on a connection of its own: a listener holds its
/// connection as long as it lives, and one taken from a pool would leave that pool a connection
/// short for good.
pub(crate) async fn own_listener(options: &PgConnectOptions) -> Result<PgListener, sqlx::Error> {
    let own = PgPoolOptions::new()
        .max_connections(1)
        .connect_lazy_with(options.clone());
    PgListener::connect_with(&own).await
}

/// Listens until the connection fails (`Err`) or the caches are dropped (`Ok`).
async fn listen(weak: &Weak<Caches>, options: &PgConnectOptions) -> Result<(), sqlx::Error> {
    let mut listener = own_listener(options).await?;
    listener.listen(CHANNEL).await?;
    let Some(caches) = weak.upgrade() else {
        return Ok(());
    };
    // Changes made while nobody listened were missed.
    caches.flush();
    caches.live.store(true, Ordering::Release);
    drop(caches);
    tracing::debug!("cache invalidation listener connected");
    loop {
        // `try_recv` answers `None` once the connection is lost (and would reconnect silently
        // on the next call: the loss is what the caller must see).
        let notification = listener.try_recv().await?;
        let Some(caches) = weak.upgrade() else {
            return Ok(());
        };
        match notification {
            Some(n) => {
                let ack = caches.apply(n.payload());
                drop(caches);
                if let Some(ack) = ack {
                    sqlx::query("SELECT pg_notify($1, $2)")
                        .bind(CHANNEL)
                        .bind(ack)
                        .execute(&mut listener)
                        .await?;
                }
            }
            None => {
                return Err(sqlx::Error::Protocol(
                    "the invalidation listener's connection was lost".into(),
                ));
            }
        }
    }
}

/// One cache: values by key, each forgotten when a notification names it (`names`), when the
/// caches are flushed, or after `MAX_AGE` (a minute).
pub struct Cache<K, V> {
    caches: Arc<Caches>,
    entries: RwLock<HashMap<K, (V, Instant)>>,
    names: fn(&K, &V, &str, &str) -> bool,
}

impl<K, V> std::fmt::Debug for Cache<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cache").finish()
    }
}

impl<K, V> Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache registered with `caches`; `names(key, value, topic, id)` says whether a
    /// notification `topic:id` concerns an entry.
    pub fn new(caches: &Arc<Caches>, names: fn(&K, &V, &str, &str) -> bool) -> Arc<Self> {
        let cache = Arc::new(Self {
            caches: caches.clone(),
            entries: RwLock::new(HashMap::new()),
            names,
        });
        let weak: Weak<dyn Invalidate> = Arc::downgrade(&(cache.clone() as Arc<dyn Invalidate>));
        caches.register(weak);
        cache
    }

    /// The cached value of `key`, if the caches may serve and it is fresh.
    pub fn get(&self, key: &K) -> Option<V> {
        if !self.caches.is_live() {
            return None;
        }
        let entries = self.entries.read().unwrap_or_else(|p| p.into_inner());
        entries
            .get(key)
            .filter(|(_, at)| at.elapsed() < MAX_AGE)
            .map(|(v, _)| v.clone())
    }

    /// The value of `key`: cached, or from `load`, stored when `store` allows it and no
    /// invalidation happened while it loaded.
    pub async fn get_or_load<E, F>(
        &self,
        key: &K,
        store: impl Fn(&V) -> bool,
        load: F,
    ) -> Result<V, E>
    where
        F: Future<Output = Result<V, E>>,
    {
        if let Some(value) = self.get(key) {
            return Ok(value);
        }
        let generation = self.caches.generation.load(Ordering::Acquire);
        let value = load.await?;
        if store(&value) {
            self.put_if_unchanged(key.clone(), value.clone(), generation);
        }
        Ok(value)
    }

    fn put_if_unchanged(&self, key: K, value: V, generation: u64) {
        if !self.caches.is_live() {
            return;
        }
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        // Checked under the lock every invalidation of this cache takes, so an invalidation
        // either sees this entry or bumped the generation first.
        if self.caches.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (value, Instant::now()));
    }

    /// Updates an entry in place, if present (for example a last-use time).
    pub fn touch(&self, key: &K, update: impl FnOnce(&mut V)) {
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if let Some((value, _)) = entries.get_mut(key) {
            update(value);
        }
    }
}

impl<K, V> Invalidate for Cache<K, V>
where
    K: Eq + Hash + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    fn invalidate(&self, topic: &str, id: &str) {
        let names = self.names;
        let mut entries = self.entries.write().unwrap_or_else(|p| p.into_inner());
        entries.retain(|k, (v, _)| !names(k, v, topic, id));
    }

    fn flush(&self) {
        self.entries
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}
