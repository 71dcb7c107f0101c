//! What the figures were measured on: cores, CPU model, memory and the PostgreSQL version.

use std::process::Command;

#[derive(Debug, Clone)]
pub struct Machine {
    pub cores: String,
    pub cpu: String,
    pub memory: String,
    pub postgres_binaries: String,
}

impl Machine {
    pub fn detect() -> Self {
        Self {
            cores: cores(),
            cpu: cpu_model().unwrap_or_else(|| "unknown".to_string()),
            memory: memory().unwrap_or_else(|| "unknown".to_string()),
            postgres_binaries: tenantry_pg::PgBinaries::find(None)
                .ok()
                .and_then(|b| b.version())
                .unwrap_or_else(|| "not found on this machine".to_string()),
        }
    }

    pub fn print(&self) {
        println!("Machine");
        println!("  cores (nproc):   {}", self.cores);
        println!("  CPU:             {}", self.cpu);
        println!("  memory:          {}", self.memory);
        println!("  postgres binary: {}", self.postgres_binaries);
    }
}

/// `nproc`, or the parallelism Rust sees when `nproc` cannot run.
fn cores() -> String {
    Command::new("nproc")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .or_else(|| {
            std::thread::available_parallelism()
                .ok()
                .map(|n| n.to_string())
        })
        .unwrap_or_else(|| "unknown".to_string())
}

fn cpu_model() -> Option<String> {
    let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
    text.lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

fn memory() -> Option<String> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let kib: f64 = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()?;
    Some(format!("{:.1} GiB", kib / 1024.0 / 1024.0))
}
