//! The data folder is ours. A process running as root creates, opens for writing, `chmod`s and
//! `chown`s paths inside a folder that the unprivileged PostgreSQL user can also write to; a link
//! planted there (`log -> /etc`) would otherwise make root give away or overwrite whatever it
//! points at. So, when running as root, every such path is opened without following links
//! (`O_NOFOLLOW`), must be owned by root or the PostgreSQL user, and is changed through its open
//! descriptor (`fchmod`, `fchown`), never by name.

use std::fs::{File, Metadata, OpenOptions};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, bail};
use nix::unistd::Uid;

use crate::os_user::RunAs;

/// Who may own the data folder's paths, and whether that is enforced (only when running as
/// root: otherwise nothing we do can reach beyond our own user's files).
#[derive(Debug, Clone)]
pub struct Owners {
    enforce: bool,
    run_as: RunAs,
}

impl Owners {
    pub fn new(run_as: &RunAs) -> Self {
        Self {
            enforce: Uid::effective().is_root(),
            run_as: run_as.clone(),
        }
    }

    /// For this process: root's rules when it runs as root (the PostgreSQL user is looked up,
    /// or created).
    pub fn detect() -> anyhow::Result<Self> {
        Ok(Self::new(&RunAs::detect()?))
    }

    /// Refuses `path` when it is a link (a data folder given as a link included).
    pub fn refuse_link(&self, path: &Path) -> anyhow::Result<()> {
        if !self.enforce {
            return Ok(());
        }
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(link_error(path)),
            _ => Ok(()),
        }
    }

    /// Checks what `path` was opened as: owned by root or the PostgreSQL user, and for a file,
    /// no second name (a hard link to a file elsewhere).
    pub fn check(&self, path: &Path, meta: &Metadata) -> anyhow::Result<()> {
        if !self.enforce {
            return Ok(());
        }
        let uid = meta.uid();
        let pg_uid = match &self.run_as {
            RunAs::User { uid, .. } => uid.as_raw(),
            RunAs::CurrentUser => 0,
        };
        if uid != 0 && uid != pg_uid {
            bail!(
                "{} is owned by user {uid}, neither root nor {}: tenantry run as root uses only \
                 paths in its data folder that belong to one of them; remove it, or give it to \
                 {} (`chown {}: {}`)",
                shown(path).display(),
                self.run_as.name(),
                self.run_as.name(),
                self.run_as.name(),
                shown(path).display()
            );
        }
        if meta.is_file() && meta.nlink() > 1 {
            bail!(
                "{} has another name (a hard link): remove it and start again",
                shown(path).display()
            );
        }
        Ok(())
    }

    /// The folder `path`, opened without following a link and checked.
    pub fn open_dir(&self, path: &Path) -> anyhow::Result<File> {
        let dir = OpenOptions::new()
            .read(true)
            .custom_flags(nix::libc::O_DIRECTORY | nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| self.open_error(path, e))?;
        self.check(path, &dir.metadata()?)?;
        Ok(dir)
    }

    /// The folder `path` (created if missing), restricted to mode 0700 and given to the
    /// PostgreSQL user, through its descriptor.
    pub fn prepare_dir(&self, path: &Path) -> anyhow::Result<()> {
        self.refuse_link(path)?;
        if let Err(e) = std::fs::create_dir(path)
            && e.kind() != std::io::ErrorKind::AlreadyExists
        {
            return Err(e).with_context(|| format!("failed to create {}", shown(path).display()));
        }
        let dir = self.open_dir(path)?;
        dir.set_permissions(std::fs::Permissions::from_mode(0o700))
            .with_context(|| format!("failed to restrict {}", shown(path).display()))?;
        self.give(path, &dir)
    }

    /// Opens the file `path` as `options` say, never through a link, and checks it.
    pub fn open_file(&self, path: &Path, options: &mut OpenOptions) -> anyhow::Result<File> {
        let file = options
            .custom_flags(nix::libc::O_NOFOLLOW | nix::libc::O_CLOEXEC)
            .open(path)
            .map_err(|e| self.open_error(path, e))?;
        self.check(path, &file.metadata()?)?;
        Ok(file)
    }

    /// Writes `text` to the file `path` (replacing what it held) and gives it to the PostgreSQL
    /// user.
    pub fn write_file(&self, path: &Path, text: &str) -> anyhow::Result<()> {
        use std::io::Write;
        let mut file = self.open_file(
            path,
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600),
        )?;
        file.write_all(text.as_bytes())
            .with_context(|| format!("failed to write {}", shown(path).display()))?;
        self.give(path, &file)
    }

    /// Gives the open `file` to the PostgreSQL user (when that is another user).
    fn give(&self, path: &Path, file: &File) -> anyhow::Result<()> {
        if let RunAs::User { uid, gid, .. } = &self.run_as {
            std::os::unix::fs::fchown(file, Some(uid.as_raw()), Some(gid.as_raw())).with_context(
                || {
                    format!(
                        "failed to give {} to user {}",
                        shown(path).display(),
                        self.run_as.name()
                    )
                },
            )?;
        }
        Ok(())
    }

    fn open_error(&self, path: &Path, e: std::io::Error) -> anyhow::Error {
        // O_NOFOLLOW on a link fails with ELOOP (or ENOTDIR with O_DIRECTORY).
        let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if is_link {
            link_error(path)
        } else {
            anyhow::Error::new(e).context(format!("failed to open {}", shown(path).display()))
        }
    }
}

fn link_error(path: &Path) -> anyhow::Error {
    anyhow::anyhow!(
        "{} is a symbolic link: tenantry run as root follows no link in its data folder; replace \
         it with the real folder or file (or choose another --data-dir)",
        shown(path).display()
    )
}

/// `path` as an absolute path (links not resolved), for messages.
fn shown(path: &Path) -> std::path::PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
