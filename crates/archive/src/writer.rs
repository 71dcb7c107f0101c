//! The archive's bytes: a `.tar.gz` written on a blocking thread from the rows the export task
//! sends it. A tar entry states its size before its content, so each file is first spooled (in
//! memory up to [`SPOOL_IN_MEMORY`], on disk past it) while its SHA-256 and rows are counted,
//! then appended; the archive itself is never held whole. [`ChannelWriter`] turns the bytes into
//! chunks for an HTTP body.

use std::io::{self, Seek, SeekFrom, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::manifest::{FileInfo, MANIFEST, Manifest};

/// A file's bytes kept in memory up to this size before spilling to a temporary file.
const SPOOL_IN_MEMORY: usize = 8 * 1024 * 1024;

/// What the export task sends the writer.
#[derive(Debug)]
pub(crate) enum Event {
    /// A new file starts.
    Begin(String),
    /// Lines of the current file, without their newline.
    Lines(Vec<String>),
    /// The current file is complete.
    End,
    /// Every file is written: add the manifest (its `files` filled in here) and finish.
    Finish(Box<Manifest>),
}

/// The writer's result: the manifest as written, the SHA-256 of its bytes, and the output.
pub(crate) struct Written<W> {
    pub manifest: Manifest,
    pub manifest_sha256: String,
    pub out: W,
}

struct Current {
    path: String,
    spool: tempfile::SpooledTempFile,
    digest: Sha256,
    rows: u64,
}

/// Receives events until [`Event::Finish`] and writes the archive into `out`. Returns an error
/// if the sender goes away before finishing (the export failed): the output is then incomplete.
pub(crate) fn write_archive<W: Write>(
    mut events: mpsc::Receiver<Event>,
    out: W,
    mtime: u64,
) -> anyhow::Result<Written<W>> {
    let mut tar = tar::Builder::new(GzEncoder::new(out, Compression::fast()));
    let mut files: Vec<FileInfo> = Vec::new();
    let mut current: Option<Current> = None;
    while let Some(event) = events.blocking_recv() {
        match event {
            Event::Begin(path) => {
                anyhow::ensure!(current.is_none(), "a file started inside another");
                current = Some(Current {
                    path,
                    spool: tempfile::SpooledTempFile::new(SPOOL_IN_MEMORY),
                    digest: Sha256::new(),
                    rows: 0,
                });
            }
            Event::Lines(lines) => {
                let Some(file) = current.as_mut() else {
                    anyhow::bail!("lines outside a file");
                };
                for line in lines {
                    file.digest.update(line.as_bytes());
                    file.digest.update(b"\n");
                    file.spool.write_all(line.as_bytes())?;
                    file.spool.write_all(b"\n")?;
                    file.rows += 1;
                }
            }
            Event::End => {
                let Some(mut file) = current.take() else {
                    anyhow::bail!("a file ended that never started");
                };
                let size = file.spool.seek(SeekFrom::End(0))?;
                file.spool.seek(SeekFrom::Start(0))?;
                append(&mut tar, &file.path, size, mtime, &mut file.spool)?;
                files.push(FileInfo {
                    path: file.path,
                    rows: file.rows,
                    sha256: hex::encode(file.digest.finalize()),
                });
            }
            Event::Finish(manifest) => {
                anyhow::ensure!(current.is_none(), "the archive ended inside a file");
                let manifest = Manifest { files, ..*manifest };
                let mut bytes = serde_json::to_vec_pretty(&manifest)?;
                bytes.push(b'\n');
                let manifest_sha256 = hex::encode(Sha256::digest(&bytes));
                append(
                    &mut tar,
                    MANIFEST,
                    bytes.len() as u64,
                    mtime,
                    &mut bytes.as_slice(),
                )?;
                let mut out = tar.into_inner()?.finish()?;
                out.flush()?;
                return Ok(Written {
                    manifest,
                    manifest_sha256,
                    out,
                });
            }
        }
    }
    anyhow::bail!("the export stopped before the archive was complete")
}

fn append<W: Write>(
    tar: &mut tar::Builder<W>,
    path: &str,
    size: u64,
    mtime: u64,
    data: &mut impl io::Read,
) -> io::Result<()> {
    let mut header = tar::Header::new_ustar();
    header.set_size(size);
    header.set_mode(0o644);
    header.set_mtime(mtime);
    header.set_entry_type(tar::EntryType::Regular);
    tar.append_data(&mut header, path, data)
}

/// Bytes written to it arrive as chunks of about 64 KiB on a channel, for a streamed response.
/// Made for a blocking thread: a full channel (a slow reader) blocks the writer, which holds
/// the export back. A closed channel (the reader went away) is a write error, ending the export.
#[derive(Debug)]
pub struct ChannelWriter {
    sender: mpsc::Sender<io::Result<Vec<u8>>>,
    buffer: Vec<u8>,
}

const CHUNK: usize = 64 * 1024;

impl ChannelWriter {
    pub fn new(sender: mpsc::Sender<io::Result<Vec<u8>>>) -> Self {
        Self {
            sender,
            buffer: Vec::with_capacity(CHUNK),
        }
    }

    fn send_buffer(&mut self) -> io::Result<()> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let chunk = std::mem::replace(&mut self.buffer, Vec::with_capacity(CHUNK));
        self.sender
            .blocking_send(Ok(chunk))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the reader went away"))
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.buffer.extend_from_slice(bytes);
        if self.buffer.len() >= CHUNK {
            self.send_buffer()?;
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.send_buffer()
    }
}
