//! HTTP/1.1 by hand over a TCP socket, for clients that hang up mid-request or dribble their
//! bytes: a library client would not let a test choose the moment.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a response may take before the exchange counts as hung.
const RESPONSE_WITHIN: Duration = Duration::from_secs(30);

/// `http://127.0.0.1:PORT` → the socket address.
pub fn address(base: &str) -> SocketAddr {
    base.trim_start_matches("http://").parse().unwrap()
}

/// A request's bytes: `Authorization: Bearer <bearer>`, `X-Tenant` when given, a JSON body when
/// given, keep-alive.
pub fn request(
    method: &str,
    path: &str,
    bearer: &str,
    tenant: Option<&str>,
    body: Option<&str>,
) -> Vec<u8> {
    let mut text = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {bearer}\r\n"
    );
    if let Some(tenant) = tenant {
        text.push_str(&format!("X-Tenant: {tenant}\r\n"));
    }
    match body {
        Some(body) => text.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )),
        None => text.push_str("\r\n"),
    }
    text.into_bytes()
}

/// Sends `request` and reads its whole response (the server always sends `Content-Length`);
/// the status code. Panics when no response comes within [`RESPONSE_WITHIN`].
pub async fn exchange(stream: &mut TcpStream, request: &[u8]) -> std::io::Result<u16> {
    tokio::time::timeout(RESPONSE_WITHIN, async {
        stream.write_all(request).await?;
        let mut buffer = Vec::with_capacity(4096);
        let head_end = loop {
            if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        };
        let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
        let status: u16 = head[9..12].parse().unwrap();
        let length: usize = head
            .lines()
            .find_map(|line| line.strip_prefix("content-length:"))
            .map_or(0, |value| value.trim().parse().unwrap());
        while buffer.len() < head_end + length {
            if stream.read_buf(&mut buffer).await? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(status)
    })
    .await
    .expect("a response within 30 s")
}
