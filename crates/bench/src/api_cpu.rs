//! Where the CPU goes during a run of benchmark (i): the server process, PostgreSQL (every
//! process of the managed cluster, and the backends that exited meanwhile, whose time the
//! postmaster collects) and this program (the load generator or the ceiling's clients), read
//! from `/proc` in clock ticks.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, anyhow};
use nix::unistd::{SysconfVar, sysconf};

/// CPU time used so far, user and system together.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub server: Duration,
    pub postgres: Duration,
    pub bench: Duration,
}

impl Cpu {
    /// Reads the server `server_pid`'s time, the time of the PostgreSQL processes working in
    /// `data_dir`, and this program's.
    pub fn read(server_pid: u32, data_dir: &Path) -> anyhow::Result<Self> {
        let tick = tick()?;
        let server = times(&server_pid.to_string())?;
        let mut postgres = 0;
        for pid in tenantry_pg::ManagedCluster::processes(data_dir) {
            // A backend may exit between the listing and the read: its time then reaches the
            // postmaster's children's time, read in the same pass.
            if let Ok(t) = times(&pid.to_string()) {
                postgres += t.own + t.children;
            }
        }
        let bench = times("self")?;
        Ok(Self {
            server: tick * u32::try_from(server.own)?,
            postgres: tick * u32::try_from(postgres)?,
            bench: tick * u32::try_from(bench.own)?,
        })
    }

    /// The time used since `earlier`.
    pub fn since(&self, earlier: &Cpu) -> Cpu {
        Cpu {
            server: self.server.saturating_sub(earlier.server),
            postgres: self.postgres.saturating_sub(earlier.postgres),
            bench: self.bench.saturating_sub(earlier.bench),
        }
    }
}

struct Times {
    /// utime + stime, in ticks.
    own: u64,
    /// cutime + cstime: the reaped children's, in ticks.
    children: u64,
}

fn times(pid: &str) -> anyhow::Result<Times> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("failed to read /proc/{pid}/stat"))?;
    // The command name is in parentheses and may hold spaces: the fields follow the last `)`.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or_else(|| anyhow!("unexpected /proc/{pid}/stat"))?
        .1
        .split_whitespace()
        .collect();
    // Field 3 (the state) is the first after the name; utime is field 14.
    let field = |n: usize| -> anyhow::Result<u64> {
        fields
            .get(n - 3)
            .ok_or_else(|| anyhow!("short /proc/{pid}/stat"))?
            .parse()
            .with_context(|| format!("failed to parse field {n} of /proc/{pid}/stat"))
    };
    Ok(Times {
        own: field(14)? + field(15)?,
        children: field(16)? + field(17)?,
    })
}

fn tick() -> anyhow::Result<Duration> {
    let per_second = sysconf(SysconfVar::CLK_TCK)?
        .filter(|t| *t > 0)
        .ok_or_else(|| anyhow!("no clock tick rate"))?;
    Ok(Duration::from_secs(1) / u32::try_from(per_second)?)
}
