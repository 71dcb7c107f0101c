//! Reading an archive file: its entries in order, each as lines whose bytes are hashed and
//! counted as they are read. Blocking: called on blocking threads.
//!
//! The manifest, which holds every file's SHA-256, can only come last, so an import reads the
//! archive three times (the manifest, the check, the restore) rather than hold it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::Context;
use flate2::read::GzDecoder;
use sha2::{Digest, Sha256};

/// The longest line read (a row of JSON).
const MAX_LINE: u64 = 64 * 1024 * 1024;

/// Calls `visit` with the path and the content of every entry of the archive, in order, until
/// it returns `false`.
pub(crate) fn for_each_file(
    archive: &Path,
    mut visit: impl FnMut(&str, &mut dyn BufRead) -> anyhow::Result<bool>,
) -> anyhow::Result<()> {
    let file =
        File::open(archive).with_context(|| format!("failed to open {}", archive.display()))?;
    let mut tar = tar::Archive::new(GzDecoder::new(BufReader::new(file)));
    let entries = tar
        .entries()
        .context("not a .tar.gz archive: export it again with `tenantry tenant export`")?;
    for entry in entries {
        let entry = entry.context("the archive is damaged (not a complete .tar.gz)")?;
        let path = entry
            .path()
            .context("an entry of the archive has an unreadable path")?
            .to_str()
            .map(str::to_owned)
            .context("an entry of the archive has a path that is not UTF-8")?;
        let mut content = BufReader::new(entry);
        if !visit(&path, &mut content)? {
            break;
        }
    }
    Ok(())
}

/// The lines of one file, with the SHA-256 and count of what was read.
pub(crate) struct Lines<'a> {
    inner: &'a mut dyn BufRead,
    digest: Sha256,
    rows: u64,
    unterminated: bool,
    buffer: Vec<u8>,
}

impl<'a> Lines<'a> {
    pub fn new(inner: &'a mut dyn BufRead) -> Self {
        Self {
            inner,
            digest: Sha256::new(),
            rows: 0,
            unterminated: false,
            buffer: Vec::new(),
        }
    }

    /// The next line, without its newline; `None` at the end.
    pub fn next_line(&mut self) -> anyhow::Result<Option<&str>> {
        self.buffer.clear();
        let read = (&mut self.inner)
            .take(MAX_LINE)
            .read_until(b'\n', &mut self.buffer)
            .context("failed to read the archive")?;
        if read == 0 {
            return Ok(None);
        }
        self.digest.update(&self.buffer);
        if self.buffer.last() == Some(&b'\n') {
            self.buffer.pop();
            self.rows += 1;
        } else {
            anyhow::ensure!(
                (read as u64) < MAX_LINE,
                "a line of the archive is longer than {MAX_LINE} bytes"
            );
            self.unterminated = true;
        }
        let text = std::str::from_utf8(&self.buffer)
            .context("the archive holds text that is not UTF-8")?;
        Ok(Some(text))
    }

    /// Reads what is left, for the checksum.
    pub fn drain(&mut self) -> anyhow::Result<()> {
        while self.next_line()?.is_some() {}
        Ok(())
    }

    /// Rows (complete lines) and the hex SHA-256 of every byte read; an unterminated last line
    /// counts as no row, so it shows as a difference from the manifest.
    pub fn finish(self) -> (u64, String, bool) {
        (
            self.rows,
            hex::encode(self.digest.finalize()),
            self.unterminated,
        )
    }
}
