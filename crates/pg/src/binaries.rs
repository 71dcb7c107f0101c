//! Finding the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`) on this machine.

use std::path::{Path, PathBuf};
use std::process::Command;

const REQUIRED: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// A folder holding `initdb`, `pg_ctl` and `postgres` of one PostgreSQL version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bindir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum FindError {
    #[error(
        "{0} does not hold initdb, pg_ctl and postgres: point the PostgreSQL bin folder setting at one that does"
    )]
    IncompleteBinDir(PathBuf),
    #[error(
        "the cluster in the data folder was made by PostgreSQL {0}, and no server binaries of that \
         version were found: install them (Debian/Ubuntu: `apt-get install postgresql-{0}`) or point \
         the pg_bindir setting at them"
    )]
    NoMatchingVersion(u32),
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found on PATH, through \
         `pg_config --bindir`, or in /usr/lib/postgresql/*/bin. Install the PostgreSQL server \
         (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; \
         macOS: `brew install postgresql@16`), or set TENANTRY_DATABASE_URL to an existing server \
         (a URL for a role with CREATEDB and CREATEROLE)"
    )]
    NotFound,
}

impl PgBinaries {
    /// Uses `bindir` if given, else searches PATH, `pg_config --bindir` and the usual install
    /// folders, preferring the newest version among the install folders.
    pub fn find(bindir: Option<&Path>) -> Result<Self, FindError> {
        if let Some(dir) = bindir {
            return if holds_all(dir) {
                Ok(Self {
                    bindir: dir.to_path_buf(),
                })
            } else {
                Err(FindError::IncompleteBinDir(dir.to_path_buf()))
            };
        }
        candidates()
            .into_iter()
            .find(|dir| holds_all(dir))
            .map(|bindir| Self { bindir })
            .ok_or(FindError::NotFound)
    }

    /// Like [`PgBinaries::find`], but of major version `major` when one is given (an existing
    /// cluster can only be run by its own major version).
    pub fn find_for(bindir: Option<&Path>, major: Option<u32>) -> Result<Self, FindError> {
        let Some(major) = major else {
            return Self::find(bindir);
        };
        if bindir.is_some() {
            return Self::find(bindir);
        }
        let mut any = false;
        for dir in candidates() {
            if holds_all(&dir) {
                any = true;
                let bins = Self { bindir: dir };
                if bins.major_version() == Some(major) {
                    return Ok(bins);
                }
            }
        }
        Err(if any {
            FindError::NoMatchingVersion(major)
        } else {
            FindError::NotFound
        })
    }

    /// The major version, from `postgres --version` ("postgres (PostgreSQL) 15.18 ...").
    pub fn major_version(&self) -> Option<u32> {
        let version = self.version()?;
        let number = version.split(") ").nth(1)?;
        number.split(['.', ' ']).next()?.parse().ok()
    }

    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// The major version printed by `postgres --version`, for logs and diagnostics.
    pub fn version(&self) -> Option<String> {
        let out = Command::new(self.tool("postgres"))
            .arg("--version")
            .output()
            .ok()?;
        Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

fn holds_all(dir: &Path) -> bool {
    REQUIRED.iter().all(|tool| is_executable(&dir.join(tool)))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

fn candidates() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            // A PATH entry may hold symlinks to the real binaries; resolve pg_ctl's folder too.
            if let Ok(real) = std::fs::canonicalize(dir.join("pg_ctl"))
                && let Some(parent) = real.parent()
            {
                dirs.push(parent.to_path_buf());
            }
            dirs.push(dir);
        }
    }
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output()
        && out.status.success()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    dirs.extend(versioned_dirs("/usr/lib/postgresql", |v| v.join("bin")));
    dirs.extend(versioned_dirs("/usr/local/opt", |v| v.join("bin")));
    dirs.extend(versioned_dirs("/opt/homebrew/opt", |v| v.join("bin")));
    dirs.extend(versioned_dirs("/usr", |v| v.join("bin")));
    dirs.push(PathBuf::from("/usr/local/pgsql/bin"));
    dirs
}

/// Subfolders of `root` that look like PostgreSQL installs (`15`, `postgresql@16`, `pgsql-17`),
/// newest version first.
fn versioned_dirs(root: &str, bin: impl Fn(&Path) -> PathBuf) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut found: Vec<(u32, PathBuf)> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let digits = name
                .strip_prefix("postgresql@")
                .or_else(|| name.strip_prefix("pgsql-"))
                .unwrap_or(if root == "/usr/lib/postgresql" {
                    &name
                } else {
                    ""
                });
            let major: u32 = digits.split('.').next()?.parse().ok()?;
            Some((major, bin(&entry.path())))
        })
        .collect();
    found.sort_by_key(|(major, _)| std::cmp::Reverse(*major));
    found.into_iter().map(|(_, dir)| dir).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_explicit_folder_without_the_binaries_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = PgBinaries::find(Some(dir.path())).unwrap_err();
        assert!(matches!(err, FindError::IncompleteBinDir(_)));
    }

    #[test]
    fn the_binaries_on_this_machine_report_their_major_version() {
        // The test suite runs PostgreSQL, so its binaries are on this machine.
        let bins = PgBinaries::find(None).unwrap();
        let major = bins.major_version().unwrap();
        assert!(major >= 13, "{major}");
        assert_eq!(
            PgBinaries::find_for(None, Some(major))
                .unwrap()
                .major_version(),
            Some(major)
        );
        assert!(matches!(
            PgBinaries::find_for(None, Some(9)),
            Err(FindError::NoMatchingVersion(9))
        ));
    }

    #[test]
    fn the_not_found_message_names_the_package_and_the_database_url() {
        let message = FindError::NotFound.to_string();
        assert!(message.contains("apt-get install postgresql"));
        assert!(message.contains("TENANTRY_DATABASE_URL"));
    }
}
