//! Running the binary and reaching its managed cluster.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, PgConnection};

pub const BIN: &str = env!("CARGO_BIN_EXE_tenantry");

/// A data folder with a short path (PostgreSQL's socket path is limited to 107 bytes).
pub fn data_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("tenantry-cli-")
        .tempdir_in("/tmp")
        .unwrap()
}

/// `tenantry ARGS` run in `dir` (so the data folder is the default `./tenantry-data`), to
/// completion, with no TENANTRY_* variables inherited.
pub fn tenantry(dir: &Path, args: &[&str]) -> Output {
    command(dir).args(args).output().unwrap()
}

pub fn command(dir: &Path) -> Command {
    let mut command = Command::new(BIN);
    command.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TENANTRY_") {
            command.env_remove(key);
        }
    }
    command
}

/// The engine on the managed cluster of `dir` (a server keeps it running), as the owner role.
pub async fn engine(dir: &Path) -> tenantry_tenancy::Tenancy {
    engine_with(dir, tenantry_app::tenant_schema()).await
}

/// [`engine`] with `schema` as the tenant schema.
pub async fn engine_with(
    dir: &Path,
    schema: tenantry_tenancy::TenantSchema,
) -> tenantry_tenancy::Tenancy {
    let owner = PgConnectOptions::new()
        .socket(
            std::fs::canonicalize(dir)
                .unwrap()
                .join("tenantry-data")
                .join("run"),
        )
        .port(5432)
        .username("tenantry_owner")
        .database("postgres");
    tenantry_tenancy::Tenancy::open_full(
        tenantry_tenancy::EngineConfig {
            owner,
            control_database: "tenantry".into(),
            prefix: "tenantry".into(),
            pools: tenantry_tenancy::PoolConfig::default(),
        },
        schema,
        &tenantry_app::control_schemas(),
    )
    .await
    .unwrap()
}

/// `tenantry tenant create --name NAME --slug SLUG --isolation TIER`, which must succeed.
pub fn create_tenant(dir: &Path, name: &str, slug: &str, tier: &str) {
    let created = tenantry(
        dir,
        &[
            "tenant",
            "create",
            "--name",
            name,
            "--slug",
            slug,
            "--isolation",
            tier,
        ],
    );
    assert!(created.status.success(), "{created:?}");
}

/// A running `tenantry serve`.
pub struct Server {
    pub child: Child,
    pub base: String,
    /// The folder it runs in (its data folder is `tenantry-data` inside).
    pub dir: std::path::PathBuf,
}

impl Server {
    /// Starts `tenantry serve` on a free port and waits for its "listening on" line, as a
    /// self-hoster who monitors their own network runs it: the SSRF guard off
    /// (`TENANTRY_FORBID_PRIVATE_TARGETS=false`), since the tests' targets are on loopback.
    pub fn start(dir: &Path) -> Server {
        Self::spawn(dir, &[("TENANTRY_FORBID_PRIVATE_TARGETS", "false")])
    }

    /// Starts `tenantry serve` with no setting at all: the SSRF guard on.
    pub fn start_with_defaults(dir: &Path) -> Server {
        Self::spawn(dir, &[])
    }

    /// Starts `tenantry serve` with these `TENANTRY_*` variables and no others, on a port the
    /// system picks as it binds (a port found free beforehand may be taken before serve binds
    /// it).
    pub fn spawn(dir: &Path, env: &[(&str, &str)]) -> Server {
        Self::try_spawn_on(dir, 0, env).expect("serve started")
    }

    /// [`Server::spawn`] on `port`; `None` when serve ended without listening (its error is
    /// on the test's standard error: the port was taken, say).
    pub fn try_spawn_on(dir: &Path, port: u16, env: &[(&str, &str)]) -> Option<Server> {
        let mut child = command(dir)
            .envs(env.iter().copied())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        if line.is_empty() {
            let status = child.wait().unwrap();
            assert!(!status.success(), "serve ended at once, and {status}");
            return None;
        }
        assert!(
            line.starts_with("listening on http://"),
            "serve printed {line:?}"
        );
        Some(Server {
            base: line.trim().trim_start_matches("listening on ").to_string(),
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// The metrics token, as `tenantry metrics token` prints it.
    pub fn metrics_token(&self) -> String {
        let printed = tenantry(&self.dir, &["metrics", "token"]);
        assert!(printed.status.success(), "{printed:?}");
        String::from_utf8(printed.stdout)
            .unwrap()
            .trim()
            .to_string()
    }

    /// `/metrics`, read with the metrics token.
    pub async fn metrics(&self) -> String {
        let response = reqwest::Client::new()
            .get(format!("{}/metrics", self.base))
            .bearer_auth(self.metrics_token())
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        reqwest::get(format!("{}{path}", self.base)).await.unwrap()
    }

    /// Signs up ops@example.com and creates the organization "Acme" with it, on the plan
    /// `plan` (set with `tenantry tenant set-plan` in `dir`); the access token and the
    /// organization.
    pub async fn owner_of_new_org(&self, dir: &Path, plan: &str) -> (String, serde_json::Value) {
        let http = reqwest::Client::new();
        let signed = json_of(http
            .post(format!("{}/api/v1/auth/signup", self.base))
            .json(&serde_json::json!({"email": "ops@example.com", "password": "correct horse", "name": "Ops"}))).await;
        let token = signed["access_token"].as_str().unwrap().to_string();
        let org = json_of(
            http.post(format!("{}/api/v1/organizations", self.base))
                .bearer_auth(&token)
                .json(&serde_json::json!({"name": "Acme"})),
        )
        .await;
        let slug = org["slug"].as_str().unwrap();
        stdout(&tenantry(dir, &["tenant", "set-plan", slug, plan]));
        // Changed by another process: the server hears of it on its invalidation channel, at
        // once when idle, a moment later under load.
        let url = format!(
            "{}/api/v1/organizations/{}",
            self.base,
            org["id"].as_str().unwrap()
        );
        tenantry_testkit::eventually(
            &format!("the server seeing the {plan} plan"),
            Duration::from_secs(30),
            async || {
                let seen = try_json_of(http.get(&url).bearer_auth(&token)).await?;
                if seen["plan"] == plan {
                    Ok(())
                } else {
                    Err(format!("plan {}", seen["plan"]))
                }
            },
        )
        .await;
        (token, org)
    }

    /// Sends `signal` and waits for the process to exit.
    pub fn stop(mut self, signal: nix::sys::signal::Signal) -> std::process::ExitStatus {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal).unwrap();
        wait_with_deadline(&mut self.child, Duration::from_secs(60))
    }
}

/// A server left running by a failed test is stopped like a user would (SIGTERM, so that it
/// stops its PostgreSQL), not left to run on in a removed folder.
impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(30);
            while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn wait_with_deadline(child: &mut Child, limit: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the process did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The PostgreSQL processes working in the default data folder under `dir`.
pub fn postgres_processes(dir: &Path) -> Vec<i32> {
    tenantry_pg::ManagedCluster::processes(
        &std::fs::canonicalize(dir).unwrap().join("tenantry-data"),
    )
}

/// A connection to the managed cluster as `role` (the owner `tenantry_owner`, or the runtime
/// role `tenantry_app`).
pub async fn connect(dir: &Path, role: &str, database: &str) -> Result<PgConnection, sqlx::Error> {
    PgConnectOptions::new()
        .socket(
            std::fs::canonicalize(dir)
                .unwrap()
                .join("tenantry-data")
                .join("run"),
        )
        .port(5432)
        .username(role)
        .database(database)
        .connect()
        .await
}

pub fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "tenantry failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// Sends `request` and reads its answer as JSON, whatever the status.
pub async fn json_of(request: reqwest::RequestBuilder) -> serde_json::Value {
    try_json_of(request).await.unwrap()
}

/// [`json_of`], with a failure to send or to read told rather than panicking (for `eventually`).
pub async fn try_json_of(request: reqwest::RequestBuilder) -> Result<serde_json::Value, String> {
    request
        .send()
        .await
        .map_err(|e| e.to_string())?
        .json()
        .await
        .map_err(|e| e.to_string())
}
