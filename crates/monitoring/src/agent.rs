//! The agent side of remote checks (`tenantry agent`): a [`Runner`] that claims its
//! organization's due checks from a Tenantry server over HTTP(S), runs them here with the
//! [`Checker`], and posts the results back; and the wire types of that exchange, which the
//! server's routes (`/api/v1/agent/claims`, `/api/v1/agent/results`) use too.
//!
//! The runner never claims more checks than it has free workers, posts results in batches,
//! backs off when the server cannot be reached or refuses (saying in the log what to fix), and on
//! shutdown claims nothing more, lets the running checks finish and posts their results. A
//! claimed check whose result never arrives is not lost: its lease expires on the server and
//! the agent claims the same slot again.

use std::future::Future;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::agents::AgentToken;
use crate::checks::{CheckKind, CheckSpec, Checker, CheckerConfig, CheckerError, Outcome};

/// Where an agent claims due checks.
pub const CLAIMS_PATH: &str = "/api/v1/agent/claims";
/// Where an agent posts results.
pub const RESULTS_PATH: &str = "/api/v1/agent/results";
/// The most checks one claim returns.
pub const MAX_CLAIM: i64 = 100;
/// The most results one post carries.
pub const MAX_RESULTS: usize = 100;

/// A claim: up to `max` due checks of the monitors assigned to the calling agent.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimRequest {
    /// How many checks the agent can start now, 1 to 100.
    #[schema(minimum = 1, maximum = 100, example = 8)]
    pub max: i64,
}

/// One check the agent now holds a lease on: run it and post its result with the same
/// `monitor_id` and `due_at`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClaimedCheck {
    pub monitor_id: Uuid,
    /// The slot: when the check was due.
    pub due_at: DateTime<Utc>,
    #[schema(examples("http", "keyword", "tcp"))]
    pub kind: String,
    /// A URL (`http`, `keyword`) or `host:port` (`tcp`).
    #[schema(examples("http://10.0.0.5/health", "db.internal:5432"))]
    pub target: String,
    /// What a `keyword` check looks for in the body.
    pub keyword: Option<String>,
    /// The whole check's time limit.
    #[schema(example = 30_000)]
    pub timeout_ms: u64,
}

/// The checks claimed (none when nothing is due).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Claimed {
    pub checks: Vec<ClaimedCheck>,
}

/// The outcome of one claimed check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ReportedResult {
    pub monitor_id: Uuid,
    /// The slot, as claimed.
    pub due_at: DateTime<Utc>,
    /// When the check started, by the agent's clock (a time ahead of the server's is taken as
    /// the server's now).
    pub checked_at: DateTime<Utc>,
    pub ok: bool,
    #[schema(minimum = 0)]
    pub latency_ms: Option<i32>,
    /// The final HTTP status, when a response arrived.
    #[schema(minimum = 100, maximum = 999)]
    pub status_code: Option<i32>,
    /// Why the check failed (`null` when `ok`); stored cut to 1,000 characters.
    pub error: Option<String>,
}

/// Results of claimed checks, at most 100.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultBatch {
    pub results: Vec<ReportedResult>,
}

/// What became of a batch of results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ResultsAnswer {
    /// Results stored.
    pub recorded: u64,
    /// Results of slots already recorded (a post repeated): nothing changed.
    pub duplicates: u64,
    /// Monitors whose result was refused: no such monitor in the agent's organization, not
    /// assigned to this agent (any more), disabled, or a slot not yet due. Nothing was recorded
    /// for them.
    pub rejected: Vec<Uuid>,
}

/// How a [`Runner`] works.
#[derive(Debug, Clone)]
pub struct RunnerConfig {
    /// The server's base URL (`https://…`; `http://` for a server on a trusted network).
    pub server: String,
    pub token: AgentToken,
    /// Checks run at once.
    pub workers: usize,
    /// How long to wait before asking again when nothing was due.
    pub idle: Duration,
    /// How checks run. An agent watches its own network: private targets are allowed.
    pub checker: CheckerConfig,
}

impl RunnerConfig {
    pub fn new(server: impl Into<String>, token: AgentToken) -> Self {
        Self {
            server: server.into(),
            token,
            workers: 8,
            idle: Duration::from_secs(1),
            checker: CheckerConfig {
                forbid_private_targets: false,
                ..CheckerConfig::default()
            },
        }
    }
}

/// A runner that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    #[error("--server must be an http:// or https:// URL, not {0:?}")]
    Server(String),
    #[error(
        "the agent token must be the `tagt_…` token shown once when the agent was registered (POST /api/v1/agents)"
    )]
    Token,
    #[error("--workers must be at least 1")]
    Workers,
    #[error(transparent)]
    Checker(#[from] CheckerError),
    #[error("failed to build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// What a run did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RunSummary {
    /// Checks run.
    pub checks: u64,
    /// Results the server accepted (recorded or duplicates).
    pub posted: u64,
    /// Results the server rejected (monitor no longer assigned to this agent) or refused.
    pub rejected: u64,
    /// Results that could not be posted before the runner stopped (their slots are claimed and
    /// run again once their leases expire).
    pub unposted: u64,
}

/// Runs an organization's remote checks: see the module documentation.
pub struct Runner {
    client: reqwest::Client,
    server: String,
    token: AgentToken,
    workers: usize,
    idle: Duration,
    checker: Checker,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("server", &self.server)
            .field("workers", &self.workers)
            .finish_non_exhaustive()
    }
}

/// Why a call to the server failed.
#[derive(Debug, Clone, PartialEq, Eq)]
enum CallError {
    /// 401: the token is unknown, revoked, or its organization suspended or deleted.
    Revoked,
    /// 429: wait this long.
    RateLimited(Duration),
    /// Another 4xx, with the problem's detail.
    Refused(u16, String),
    /// 5xx.
    Server(u16),
    /// No answer (connection refused, DNS, TLS, timeout) or an unreadable one.
    Unreachable(String),
}

impl CallError {
    /// A log line saying what went wrong and what to do about it.
    fn advice(&self, server: &str) -> String {
        match self {
            CallError::Revoked => "the agent token was revoked or is wrong (or its organization is suspended): register the agent again (POST /api/v1/agents) and restart `tenantry agent` with the new --token".to_string(),
            CallError::RateLimited(wait) => format!(
                "the organization's API rate limit (api_requests_per_minute) is spent; waiting {} s",
                wait.as_secs().max(1)
            ),
            CallError::Refused(status, detail) => format!(
                "the server refused the request ({status}: {detail}); is this agent's version the server's?"
            ),
            CallError::Server(status) => {
                format!("the server at {server} failed ({status}); retrying")
            }
            CallError::Unreachable(error) => format!(
                "cannot reach the server at {server} ({error}); check --server and the network"
            ),
        }
    }
}

/// The first wait after an error, doubled on each further one up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// Results wait at most this long to be posted with others.
const FLUSH_AFTER: Duration = Duration::from_secs(1);
/// Results kept while the server cannot take them; older ones are dropped past this.
const MAX_UNPOSTED: usize = 10_000;
/// How often a progress line is logged while checks run.
const PROGRESS_EVERY: Duration = Duration::from_secs(60);

impl Runner {
    pub fn new(config: RunnerConfig) -> Result<Self, RunnerError> {
        let server = config.server.trim().trim_end_matches('/').to_string();
        let valid = ["https://", "http://"]
            .iter()
            .any(|scheme| server.strip_prefix(scheme).is_some_and(|h| !h.is_empty()))
            && reqwest::Url::parse(&server).is_ok();
        if !valid {
            return Err(RunnerError::Server(config.server));
        }
        if !config.token.well_formed() {
            return Err(RunnerError::Token);
        }
        if config.workers == 0 {
            return Err(RunnerError::Workers);
        }
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .user_agent(concat!("tenantry-agent/", env!("CARGO_PKG_VERSION")))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(RunnerError::Client)?;
        let checker = Checker::new(CheckerConfig {
            max_in_flight: config.checker.max_in_flight.max(config.workers),
            ..config.checker
        })?;
        Ok(Self {
            client,
            server,
            token: config.token,
            workers: config.workers,
            idle: config.idle,
            checker,
        })
    }

    /// Claims, runs and reports checks until `shutdown` completes; then claims no more, lets the
    /// running checks finish and posts their results.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> RunSummary {
        tokio::pin!(shutdown);
        tracing::info!(server = %self.server, workers = self.workers, "agent started");
        let mut state = State::default();
        let mut running: JoinSet<ReportedResult> = JoinSet::new();
        loop {
            while let Some(done) = running.try_join_next() {
                state.finished(done);
            }
            while state.should_post(running.is_empty(), Instant::now())
                && self.post_some(&mut state).await
            {}
            let free = self.workers.saturating_sub(running.len());
            if free > 0 && Instant::now() >= state.claim_after {
                self.claim_some(&mut state, &mut running, free).await;
            }
            state.progress(false);
            let wait = state.wait(running.len() < self.workers, Instant::now());
            tokio::select! {
                () = &mut shutdown => break,
                Some(done) = running.join_next(), if !running.is_empty() => state.finished(done),
                () = tokio::time::sleep(wait) => {}
            }
        }
        if !running.is_empty() {
            tracing::info!(
                running = running.len(),
                "stopping: letting the running checks finish"
            );
        }
        while let Some(done) = running.join_next().await {
            state.finished(done);
        }
        for attempt in 0..3 {
            if state.unposted.is_empty() {
                break;
            }
            if attempt > 0 {
                tokio::time::sleep(FIRST_BACKOFF).await;
            }
            state.post_after = Instant::now();
            while !state.unposted.is_empty() && self.post_some(&mut state).await {}
        }
        state.summary.unposted = state.unposted.len() as u64;
        if state.summary.unposted > 0 {
            tracing::warn!(
                results = state.summary.unposted,
                "stopped with results the server did not take; their checks run again once their leases expire"
            );
        }
        state.progress(true);
        tracing::info!("agent stopped");
        state.summary
    }

    /// Claims up to `free` checks and starts them.
    async fn claim_some(
        &self,
        state: &mut State,
        running: &mut JoinSet<ReportedResult>,
        free: usize,
    ) {
        let max = (free as i64).min(MAX_CLAIM);
        let claimed: Result<Claimed, CallError> =
            self.call(CLAIMS_PATH, &ClaimRequest { max }).await;
        match claimed {
            Ok(claimed) => {
                state.answered(&self.server);
                let full = claimed.checks.len() as i64 >= max;
                for check in claimed.checks {
                    let checker = self.checker.clone();
                    running.spawn(async move { run_check(&checker, check).await });
                }
                // A full batch: more may be due, ask again as soon as a worker is free.
                state.claim_after = if full {
                    Instant::now()
                } else {
                    Instant::now() + self.idle
                };
            }
            Err(error) => {
                let wait = state.failed(&error, &self.server);
                state.claim_after = Instant::now() + wait;
            }
        }
    }

    /// Posts the oldest results (at most [`MAX_RESULTS`]); whether the server took them.
    async fn post_some(&self, state: &mut State) -> bool {
        let n = state.unposted.len().min(MAX_RESULTS);
        let batch = ResultBatch {
            results: state.unposted[..n].to_vec(),
        };
        match self.call::<_, ResultsAnswer>(RESULTS_PATH, &batch).await {
            Ok(answer) => {
                state.answered(&self.server);
                state.unposted.drain(..n);
                state.oldest = if state.unposted.is_empty() {
                    None
                } else {
                    Some(Instant::now())
                };
                state.summary.posted += answer.recorded + answer.duplicates;
                state.summary.rejected += answer.rejected.len() as u64;
                if !answer.rejected.is_empty() {
                    tracing::warn!(
                        monitors = ?answer.rejected,
                        "results refused: these monitors are no longer assigned to this agent"
                    );
                }
                true
            }
            Err(CallError::Refused(status, detail)) => {
                // Sending the same results again would be refused again: they are dropped, and
                // their slots run again once their leases expire.
                tracing::error!(
                    status,
                    %detail,
                    results = n,
                    "the server refused these results; they are dropped (is this agent's version the server's?)"
                );
                state.unposted.drain(..n);
                state.oldest = (!state.unposted.is_empty()).then(Instant::now);
                state.summary.rejected += n as u64;
                true
            }
            Err(error) => {
                let wait = state.failed(&error, &self.server);
                state.post_after = Instant::now() + wait;
                false
            }
        }
    }

    async fn call<B: Serialize, T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, CallError> {
        let response = self
            .client
            .post(format!("{}{path}", self.server))
            .bearer_auth(self.token.expose())
            .json(body)
            .send()
            .await
            .map_err(|e| CallError::Unreachable(describe(&e)))?;
        let status = response.status();
        if status.is_success() {
            return response
                .json()
                .await
                .map_err(|e| CallError::Unreachable(describe(&e)));
        }
        Err(match status.as_u16() {
            401 => CallError::Revoked,
            429 => CallError::RateLimited(Duration::from_secs(
                response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(5),
            )),
            s if s >= 500 => CallError::Server(s),
            s => {
                let detail = response
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["detail"].as_str().map(str::to_owned))
                    .unwrap_or_default();
                CallError::Refused(s, detail)
            }
        })
    }
}

/// An error and its causes, on one line.
fn describe(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Runs one claimed check.
async fn run_check(checker: &Checker, check: ClaimedCheck) -> ReportedResult {
    let checked_at = Utc::now();
    let kind = match check.kind.as_str() {
        "http" => Some(CheckKind::Http),
        "keyword" => Some(CheckKind::Keyword),
        "tcp" => Some(CheckKind::Tcp),
        _ => None,
    };
    let outcome = match kind {
        Some(kind) => {
            let spec = CheckSpec {
                kind,
                target: check.target.clone(),
                keyword: check.keyword.clone(),
                timeout: Duration::from_millis(check.timeout_ms.clamp(1, 600_000)),
            };
            checker.run(&spec).await
        }
        None => Outcome {
            ok: false,
            latency_ms: 0,
            status_code: None,
            error: Some(format!(
                "this agent cannot run {:?} checks; upgrade it",
                check.kind
            )),
        },
    };
    tracing::debug!(monitor = %check.monitor_id, ok = outcome.ok, "check run");
    ReportedResult {
        monitor_id: check.monitor_id,
        due_at: check.due_at,
        checked_at,
        ok: outcome.ok,
        latency_ms: Some(outcome.latency_ms),
        status_code: outcome.status_code,
        error: outcome.error,
    }
}

/// The runner's bookkeeping.
struct State {
    unposted: Vec<ReportedResult>,
    /// When the oldest result waiting to be posted arrived.
    oldest: Option<Instant>,
    claim_after: Instant,
    post_after: Instant,
    /// The wait after the latest error (`None`: the last call succeeded).
    backoff: Option<Duration>,
    last_error: Option<String>,
    summary: RunSummary,
    ok: u64,
    failed: u64,
    reported: Instant,
    reported_checks: u64,
}

impl Default for State {
    fn default() -> Self {
        let now = Instant::now();
        Self {
            unposted: Vec::new(),
            oldest: None,
            claim_after: now,
            post_after: now,
            backoff: None,
            last_error: None,
            summary: RunSummary::default(),
            ok: 0,
            failed: 0,
            reported: now,
            reported_checks: 0,
        }
    }
}

impl State {
    fn finished(&mut self, done: Result<ReportedResult, tokio::task::JoinError>) {
        match done {
            Ok(result) => {
                self.summary.checks += 1;
                if result.ok {
                    self.ok += 1;
                } else {
                    self.failed += 1;
                }
                if self.unposted.len() >= MAX_UNPOSTED {
                    self.unposted.remove(0);
                    tracing::warn!(
                        kept = MAX_UNPOSTED,
                        "too many results waiting for the server; the oldest is dropped"
                    );
                }
                self.unposted.push(result);
                self.oldest.get_or_insert_with(Instant::now);
            }
            Err(e) => tracing::error!(error = %e, "a check failed to run"),
        }
    }

    /// Whether results should go now (not while backing off): a full batch, nothing else
    /// running, or the oldest waited long enough.
    fn should_post(&self, idle: bool, now: Instant) -> bool {
        !self.unposted.is_empty()
            && now >= self.post_after
            && (self.unposted.len() >= MAX_RESULTS
                || idle
                || self.oldest.is_some_and(|at| now >= at + FLUSH_AFTER))
    }

    /// How long the loop may sleep (unless a check finishes first): until the next claim when a
    /// worker is free, and until the waiting results are due to be posted.
    fn wait(&self, worker_free: bool, now: Instant) -> Duration {
        let mut wake = now + PROGRESS_EVERY;
        if worker_free {
            wake = wake.min(self.claim_after);
        }
        if let Some(oldest) = self.oldest {
            wake = wake.min((oldest + FLUSH_AFTER).max(self.post_after));
        }
        wake.saturating_duration_since(now)
            .max(Duration::from_millis(10))
    }

    /// A call succeeded: any backoff ends.
    fn answered(&mut self, server: &str) {
        if self.backoff.take().is_some() {
            tracing::info!(%server, "the server answers again");
        }
        self.post_after = Instant::now().min(self.post_after);
    }

    /// A call failed: logs what to fix and returns how long to wait.
    fn failed(&mut self, error: &CallError, server: &str) -> Duration {
        let advice = error.advice(server);
        let wait = match error {
            CallError::RateLimited(wait) => *wait,
            _ => self
                .backoff
                .map_or(FIRST_BACKOFF, |b| (b * 2).min(MAX_BACKOFF)),
        };
        // Said at every failure: the waits grow to a minute, so a lasting problem is a line a
        // minute.
        match error {
            CallError::Revoked => tracing::error!(retry_in_s = wait.as_secs(), "{advice}"),
            _ => tracing::warn!(retry_in_s = wait.as_secs(), "{advice}"),
        }
        self.backoff = Some(wait);
        self.last_error = Some(advice);
        wait
    }

    /// A progress line once a minute while checks run (and at the end, when `last`).
    fn progress(&mut self, last: bool) {
        let due = self.reported.elapsed() >= PROGRESS_EVERY;
        if !(last || due && self.summary.checks > self.reported_checks) {
            return;
        }
        tracing::info!(
            checks_run = self.summary.checks,
            ok = self.ok,
            failed = self.failed,
            results_posted = self.summary.posted,
            results_waiting = self.unposted.len(),
            last_error = self.last_error.as_deref().unwrap_or("none"),
            "progress"
        );
        self.reported = Instant::now();
        self.reported_checks = self.summary.checks;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token() -> AgentToken {
        AgentToken::new(format!("tagt_{}", "a".repeat(43)))
    }

    #[test]
    fn the_server_must_be_an_http_url_and_the_token_an_agent_token() {
        let bad_server = Runner::new(RunnerConfig::new("ftp://x", token()));
        assert!(matches!(bad_server, Err(RunnerError::Server(_))));
        let no_host = Runner::new(RunnerConfig::new("https://", token()));
        assert!(matches!(no_host, Err(RunnerError::Server(_))));
        let api_key = Runner::new(RunnerConfig::new(
            "https://up.example.com",
            AgentToken::new(format!("tnt_{}", "a".repeat(43))),
        ));
        assert!(matches!(api_key, Err(RunnerError::Token)));
        let runner = Runner::new(RunnerConfig::new("https://up.example.com/", token())).unwrap();
        assert_eq!(runner.server, "https://up.example.com");
        assert!(!format!("{runner:?}").contains("tagt_"));
    }

    #[test]
    fn errors_say_what_to_fix() {
        let server = "https://up.example.com";
        assert!(
            CallError::Revoked
                .advice(server)
                .contains("revoked or is wrong")
        );
        assert!(
            CallError::Unreachable("connection refused".into())
                .advice(server)
                .contains("check --server")
        );
        assert!(
            CallError::RateLimited(Duration::from_secs(7))
                .advice(server)
                .contains("7 s")
        );
    }

    #[test]
    fn errors_back_off_doubling_up_to_a_minute_and_rate_limits_wait_as_told() {
        let mut state = State::default();
        let server = "https://up.example.com";
        let unreachable = CallError::Unreachable("refused".into());
        let waits: Vec<u64> = (0..8)
            .map(|_| state.failed(&unreachable, server).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
        state.answered(server);
        assert_eq!(state.failed(&unreachable, server).as_secs(), 1);
        let limited = CallError::RateLimited(Duration::from_secs(9));
        assert_eq!(state.failed(&limited, server).as_secs(), 9);
    }
}
