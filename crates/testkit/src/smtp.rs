//! An SMTP sink for tests: a real SMTP server on 127.0.0.1 (no TLS, no authentication) that
//! keeps every message it accepts, and can be told to answer with temporary (`451`) or
//! permanent (`550`) failures to exercise retries.
//!
//! ```no_run
//! # async fn example() {
//! use std::time::Duration;
//! use tenantry_testkit::smtp::SmtpSink;
//!
//! let sink = SmtpSink::start().await;
//! // Configure the application with `sink.url()` as its SMTP URL, then make it send...
//! let got = sink.wait_for(|m| m.len() == 1, Duration::from_secs(30)).await;
//! assert!(got[0].text().contains("token"));
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// How the sink answers a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SinkMode {
    /// Accept every message.
    #[default]
    Accept,
    /// Answer `451` (try again later) to `MAIL FROM`.
    TemporaryFailure,
    /// Answer `550` (mailbox unavailable) to `RCPT TO`.
    PermanentFailure,
}

/// A message the sink accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// The envelope sender (`MAIL FROM`).
    pub from: String,
    /// The envelope recipients (`RCPT TO`).
    pub recipients: Vec<String>,
    /// The message as sent after `DATA`, dot-unstuffed, with CRLF line endings.
    pub data: String,
}

impl ReceivedMessage {
    /// The first header named `name`, decoded (RFC 2047 encoded words included).
    pub fn header(&self, name: &str) -> Option<String> {
        use mailparse::MailHeaderMap;
        let parsed = mailparse::parse_mail(self.data.as_bytes()).ok()?;
        parsed.get_headers().get_first_value(name)
    }

    pub fn subject(&self) -> Option<String> {
        self.header("Subject")
    }

    /// The plain-text body, decoded from its transfer encoding (quoted-printable, base64...)
    /// and charset: the first `text/plain` part of a multipart message. Line endings are `\n`,
    /// and trailing line endings are removed.
    pub fn text(&self) -> String {
        let parsed = mailparse::parse_mail(self.data.as_bytes())
            .unwrap_or_else(|e| panic!("the sink received a malformed message: {e}"));
        let body = plain_part(&parsed)
            .unwrap_or(&parsed)
            .get_body()
            .unwrap_or_else(|e| panic!("the message body does not decode: {e}"));
        body.replace("\r\n", "\n")
            .trim_end_matches(['\r', '\n'])
            .to_string()
    }
}

fn plain_part<'a>(mail: &'a mailparse::ParsedMail<'a>) -> Option<&'a mailparse::ParsedMail<'a>> {
    if mail.subparts.is_empty() {
        return (mail.ctype.mimetype == "text/plain").then_some(mail);
    }
    mail.subparts.iter().find_map(plain_part)
}

#[derive(Default)]
struct State {
    messages: Vec<ReceivedMessage>,
    mode: SinkMode,
}

/// The running sink; it stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for SmtpSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSink")
            .field("addr", &self.addr)
            .finish()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl SmtpSink {
    /// Listens on a free port of 127.0.0.1.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the SMTP sink");
        let addr = listener.local_addr().expect("the SMTP sink's address");
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    // A client hanging up mid-session is no concern of the sink.
                    let _ = session(stream, state).await;
                });
            }
        });
        SmtpSink { addr, state, task }
    }

    /// `smtp://127.0.0.1:PORT`, for `TENANTRY_SMTP_URL`.
    pub fn url(&self) -> String {
        format!("smtp://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<ReceivedMessage> {
        self.lock().messages.clone()
    }

    /// Changes how the following messages are answered.
    pub fn set_mode(&self, mode: SinkMode) {
        self.lock().mode = mode;
    }

    /// Waits until `done` holds for the messages accepted so far, and returns them; panics
    /// after `timeout`.
    pub async fn wait_for(
        &self,
        done: impl Fn(&[ReceivedMessage]) -> bool,
        timeout: Duration,
    ) -> Vec<ReceivedMessage> {
        let deadline = Instant::now() + timeout;
        loop {
            let messages = self.messages();
            if done(&messages) {
                return messages;
            }
            assert!(
                Instant::now() < deadline,
                "the SMTP sink did not receive the expected messages in {timeout:?}; it has {} \
                 message(s)",
                messages.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One SMTP session, enough of RFC 5321 for `lettre`.
async fn session(stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read);
    let mode = || state.lock().unwrap_or_else(PoisonError::into_inner).mode;
    write
        .write_all(b"220 sink.localhost ESMTP ready\r\n")
        .await?;
    let mut from: Option<String> = None;
    let mut recipients: Vec<String> = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let command = line.trim_end_matches(['\r', '\n']);
        let verb = command
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let reply: &[u8] = match verb.as_str() {
            "EHLO" => {
                b"250-sink.localhost\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 SIZE 10485760\r\n"
            }
            "HELO" => b"250 sink.localhost\r\n",
            "MAIL" if mode() == SinkMode::TemporaryFailure => {
                b"451 4.3.0 Temporary failure, try again later\r\n"
            }
            "MAIL" => {
                from = Some(address(command));
                recipients.clear();
                b"250 2.1.0 OK\r\n"
            }
            "RCPT" if from.is_none() => b"503 5.5.1 MAIL first\r\n",
            "RCPT" if mode() == SinkMode::PermanentFailure => b"550 5.1.1 Mailbox unavailable\r\n",
            "RCPT" => {
                recipients.push(address(command));
                b"250 2.1.5 OK\r\n"
            }
            "DATA" if recipients.is_empty() => b"503 5.5.1 RCPT first\r\n",
            "DATA" => {
                write
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let data = read_data(&mut lines).await?;
                let message = ReceivedMessage {
                    from: from.take().unwrap_or_default(),
                    recipients: std::mem::take(&mut recipients),
                    data,
                };
                state
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .messages
                    .push(message);
                b"250 2.0.0 OK queued\r\n"
            }
            "RSET" => {
                from = None;
                recipients.clear();
                b"250 2.0.0 OK\r\n"
            }
            "NOOP" => b"250 2.0.0 OK\r\n",
            "QUIT" => {
                write.write_all(b"221 2.0.0 Bye\r\n").await?;
                return Ok(());
            }
            _ => b"502 5.5.2 Command not implemented\r\n",
        };
        write.write_all(reply).await?;
    }
}

/// The message after `DATA`, up to the line holding a single dot, with leading dots unstuffed.
async fn read_data<R: AsyncBufReadExt + Unpin>(lines: &mut R) -> std::io::Result<String> {
    let mut data = String::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        let content = line.trim_end_matches(['\r', '\n']);
        if content == "." {
            return Ok(data);
        }
        data.push_str(content.strip_prefix('.').unwrap_or(content));
        data.push_str("\r\n");
    }
}

/// The address of `MAIL FROM:<a@b> SIZE=..` or `RCPT TO:<a@b>`.
fn address(command: &str) -> String {
    let after = command.split_once(':').map_or("", |(_, rest)| rest);
    let after = after.trim_start();
    match after.strip_prefix('<') {
        Some(rest) => rest.split('>').next().unwrap_or("").to_string(),
        None => after.split_whitespace().next().unwrap_or("").to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_addresses_are_read_with_or_without_brackets() {
        assert_eq!(address("MAIL FROM:<a@b.c> SIZE=12"), "a@b.c");
        assert_eq!(address("RCPT TO: <x@y.z>"), "x@y.z");
        assert_eq!(address("MAIL FROM:a@b.c"), "a@b.c");
    }

    #[tokio::test]
    async fn dots_are_unstuffed_and_the_body_decoded() {
        let raw = "Subject: =?utf-8?b?R3LDvMOfZQ==?=\r\nContent-Type: text/plain; charset=utf-8\r\n\
                   Content-Transfer-Encoding: quoted-printable\r\n\r\n..leading dot =C3=A9t=\r\n\
                   =C3=A9\r\n.\r\n";
        let data = read_data(&mut BufReader::new(raw.as_bytes()))
            .await
            .unwrap();
        let message = ReceivedMessage {
            from: String::new(),
            recipients: vec![],
            data,
        };
        assert_eq!(message.subject().as_deref(), Some("Grüße"));
        assert_eq!(message.text(), ".leading dot été");
    }
}
