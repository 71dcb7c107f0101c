//! `tenantry agent --server URL --token TOKEN`: runs an organization's checks from this machine
//! (`tenantry_monitoring::agent::Runner`) until SIGINT or SIGTERM, then finishes the running
//! checks, posts their results and exits.

use tenantry_monitoring::AgentToken;
use tenantry_monitoring::agent::{Runner, RunnerConfig};

use super::serve::Shutdown;
use crate::cli::AgentArgs;

pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let shutdown = Shutdown::install()?;
    let mut config = RunnerConfig::new(args.server, AgentToken::new(args.token));
    config.workers = usize::from(args.workers);
    let server = config.server.trim_end_matches('/').to_string();
    let runner = Runner::new(config)?;
    println!(
        "agent running checks for {server} ({} at once); Ctrl-C stops it",
        args.workers
    );
    let summary = runner.run(shutdown.wait_owned()).await;
    println!(
        "agent stopped: {} checks run, {} results posted, {} not posted",
        summary.checks, summary.posted, summary.unposted
    );
    Ok(())
}
