//! The `/metrics` token: `metrics_token` when set, else the one kept in the data folder
//! (`metrics-token`, mode 0600, made at the first start), so a scraper can be configured once.

use std::io::{Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::Context;
use rand::RngCore;
use tenantry_http::MetricsAccess;

use crate::settings::Settings;

const FILE: &str = "metrics-token";

/// Who may read `/metrics` on this server.
pub fn access(settings: &Settings) -> anyhow::Result<MetricsAccess> {
    if settings.metrics_public {
        return Ok(MetricsAccess::Public);
    }
    token(settings).map(MetricsAccess::Token)
}

/// The token scrapers send: the setting, or the data folder's (made now if missing).
pub fn token(settings: &Settings) -> anyhow::Result<String> {
    if let Some(token) = &settings.metrics_token {
        let token = token.expose().trim();
        anyhow::ensure!(
            token.len() >= 16,
            "TENANTRY_METRICS_TOKEN (metrics_token) is shorter than 16 characters: choose a longer one, or unset it to use a generated one"
        );
        return Ok(token.to_string());
    }
    in_data_folder(&settings.data_dir)
}

fn in_data_folder(data_dir: &Path) -> anyhow::Result<String> {
    // Run as root, the folder and the file must be ours (see `tenantry_pg::Owners`).
    let owners = tenantry_pg::Owners::detect()?;
    owners.refuse_link(data_dir)?;
    if !data_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(data_dir)
            .with_context(|| format!("cannot create the data folder {}", data_dir.display()))?;
    }
    owners.open_dir(data_dir)?;
    let path = data_dir.join(FILE);
    if std::fs::symlink_metadata(&path).is_err() {
        return create(&owners, &path);
    }
    // Never through a link: the file is opened as itself or not at all.
    let mut file = owners.open_file(&path, std::fs::OpenOptions::new().read(true))?;
    let mode = file.metadata()?.permissions().mode();
    anyhow::ensure!(
        mode & 0o077 == 0,
        "{} is readable by others (mode {:o}): run `chmod 600 {}`",
        path.display(),
        mode & 0o777,
        path.display()
    );
    let mut token = String::new();
    file.read_to_string(&mut token)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let token = token.trim().to_string();
    anyhow::ensure!(
        token.len() >= 16,
        "{} holds no token: remove it, and a new one is made at the next start",
        path.display()
    );
    Ok(token)
}

fn create(owners: &tenantry_pg::Owners, path: &Path) -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    // Written whole under a name of its own, then moved into place: a reader never sees a
    // half-written file, and of two processes making one at once, the first move wins.
    let staged = path.with_extension(format!("{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&staged);
    let mut file = owners.open_file(
        &staged,
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600),
    )?;
    let written = file
        .write_all(format!("{token}\n").as_bytes())
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            // Moved into place only if no token is there (`RENAME_NOREPLACE`).
            nix::fcntl::renameat2(
                nix::fcntl::AT_FDCWD,
                &staged,
                nix::fcntl::AT_FDCWD,
                path,
                nix::fcntl::RenameFlags::RENAME_NOREPLACE,
            )
            .map_err(std::io::Error::from)
        });
    let _ = std::fs::remove_file(&staged);
    match written {
        Ok(()) => Ok(token),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            in_data_folder(path.parent().unwrap_or(Path::new(".")))
        }
        Err(e) => Err(e).with_context(|| format!("cannot create {}", path.display())),
    }
}
