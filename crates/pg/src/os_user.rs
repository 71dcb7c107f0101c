//! The operating-system user PostgreSQL runs as. PostgreSQL refuses to run as root, so a root
//! process runs it as an unprivileged system user, created on first use.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use nix::unistd::{Gid, Uid, User};

/// Who runs the PostgreSQL processes: this process's own user, or an unprivileged one.
#[derive(Debug, Clone)]
pub enum RunAs {
    CurrentUser,
    User { name: String, uid: Uid, gid: Gid },
}

/// The system user created to run PostgreSQL when Tenantry itself runs as root.
pub const SYSTEM_USER: &str = "tenantry";

impl RunAs {
    /// The current user when it is not root; else the `tenantry` system user, created if needed.
    pub fn detect() -> anyhow::Result<Self> {
        if !Uid::effective().is_root() {
            return Ok(Self::CurrentUser);
        }
        let user = match User::from_name(SYSTEM_USER).context("failed to look up users")? {
            Some(user) => user,
            None => {
                create_system_user(SYSTEM_USER)?;
                User::from_name(SYSTEM_USER)
                    .context("failed to look up users")?
                    .with_context(|| format!("user {SYSTEM_USER} is missing after creating it"))?
            }
        };
        Ok(Self::User {
            name: user.name,
            uid: user.uid,
            gid: user.gid,
        })
    }

    pub fn name(&self) -> String {
        match self {
            Self::CurrentUser => User::from_uid(Uid::effective())
                .ok()
                .flatten()
                .map(|u| u.name)
                .unwrap_or_else(|| Uid::effective().to_string()),
            Self::User { name, .. } => name.clone(),
        }
    }

    /// A command that runs as this user.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut command = Command::new(program);
        if let Self::User { uid, gid, .. } = self {
            command.uid(uid.as_raw()).gid(gid.as_raw());
        }
        command
    }

    /// Fails with advice when a folder above `path` cannot be entered by this user.
    pub fn check_reachable(&self, path: &Path) -> anyhow::Result<()> {
        let Self::User { uid, gid, name } = self else {
            return Ok(());
        };
        use std::os::unix::fs::MetadataExt;
        for dir in path.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            let mode = meta.mode();
            let can_enter = if meta.uid() == uid.as_raw() {
                mode & 0o100 != 0
            } else if meta.gid() == gid.as_raw() {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !can_enter {
                bail!(
                    "PostgreSQL runs as the unprivileged user {name}, which cannot enter {}: choose a \
                     --data-dir it can reach (for example under /var/lib or /srv), or let it in with \
                     `chmod o+x {}`",
                    dir.display(),
                    dir.display()
                );
            }
        }
        Ok(())
    }
}

fn create_system_user(name: &str) -> anyhow::Result<()> {
    tracing::info!(user = name, "creating a system user to run PostgreSQL");
    let status = Command::new("useradd")
        .args([
            "--system",
            "--user-group",
            "--no-create-home",
            "--home-dir",
            "/nonexistent",
            "--shell",
            "/usr/sbin/nologin",
            name,
        ])
        .status();
    match status {
        Ok(s) if s.success() => Ok(()),
        // Another process may have created it at the same moment.
        _ if User::from_name(name).ok().flatten().is_some() => Ok(()),
        Ok(s) => bail!(
            "failed to create the system user {name} to run PostgreSQL (useradd exited with {s}): \
             create it yourself, or run tenantry as an unprivileged user"
        ),
        Err(e) => bail!(
            "failed to run useradd to create the system user {name} ({e}): create the user \
             yourself, or run tenantry as an unprivileged user"
        ),
    }
}
