//! The `tcp` check: up when a TCP connection to `host:port` is established. The connection is
//! closed at once; nothing is sent.

use std::io;
use std::time::Instant;

use tokio::net::TcpStream;

use super::Outcome;
use super::guard::Guard;

pub(crate) async fn check(guard: &Guard, target: &str, started: Instant) -> Outcome {
    let (host, port) = match parse_target(target) {
        Ok(parsed) => parsed,
        Err(message) => return Outcome::down(started.elapsed(), None, message),
    };
    let addrs = match guard.resolve(host, port).await {
        Ok(addrs) => addrs,
        Err(e) => return Outcome::down(started.elapsed(), None, e.to_string()),
    };
    let mut last_error = None;
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(_stream) => return Outcome::up(started.elapsed(), None),
            Err(e) => last_error = Some(e),
        }
    }
    let message = last_error.map_or_else(
        || "no address to connect to".to_owned(),
        |e| describe_io(&e),
    );
    Outcome::down(started.elapsed(), None, message)
}

/// `host:port`, `[v6 address]:port`.
pub(crate) fn parse_target(target: &str) -> Result<(&str, u16), String> {
    let invalid = || format!("invalid target {target:?}: expected host:port");
    let (host, port) = target.trim().rsplit_once(':').ok_or_else(invalid)?;
    let host = match host.strip_prefix('[') {
        Some(rest) => rest.strip_suffix(']').ok_or_else(invalid)?,
        None if host.contains(':') => return Err(invalid()),
        None => host,
    };
    let port = port
        .parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .ok_or_else(invalid)?;
    if host.is_empty() {
        return Err(invalid());
    }
    Ok((host, port))
}

/// A connection failure in a few words.
pub(crate) fn describe_io(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".to_owned(),
        io::ErrorKind::ConnectionReset => "connection reset".to_owned(),
        io::ErrorKind::ConnectionAborted => "connection aborted".to_owned(),
        io::ErrorKind::HostUnreachable => "host unreachable".to_owned(),
        io::ErrorKind::NetworkUnreachable => "network unreachable".to_owned(),
        io::ErrorKind::TimedOut => "connection timed out".to_owned(),
        io::ErrorKind::UnexpectedEof => "connection closed by the server".to_owned(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse() {
        assert_eq!(parse_target("db.internal:5432"), Ok(("db.internal", 5432)));
        assert_eq!(parse_target("127.0.0.1:80"), Ok(("127.0.0.1", 80)));
        assert_eq!(parse_target("[::1]:443"), Ok(("::1", 443)));
        for bad in [
            "db.internal",
            "::1:443",
            ":80",
            "host:0",
            "host:99999",
            "[::1:80",
            "host:",
        ] {
            assert!(parse_target(bad).is_err(), "{bad}");
        }
    }
}
