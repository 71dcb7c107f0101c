//! The `http` and `keyword` checks, and the one HTTP client they share: rustls with certificate
//! verification, no proxy, at most [`MAX_REDIRECTS`] redirects each checked by the SSRF guard,
//! the guard's DNS resolver, a bounded keep-alive pool.

use std::error::Error as StdError;
use std::io;
use std::sync::Arc;
use std::time::Instant;

use reqwest::redirect::Policy;
use reqwest::{Client, Response, Url};

use super::guard::{Guard, GuardedResolver, ResolveError};
use super::tcp::describe_io;
use super::{CheckerConfig, CheckerError, MAX_REDIRECTS, Outcome, Route, USER_AGENT};

#[derive(Debug, thiserror::Error)]
#[error("redirect limit ({MAX_REDIRECTS}) exceeded")]
struct RedirectLimit;

pub(crate) fn build_client(
    config: &CheckerConfig,
    guard: Arc<Guard>,
) -> Result<Client, CheckerError> {
    let redirect_guard = guard.clone();
    let policy = Policy::custom(move |attempt| {
        // `previous` holds the first URL and every redirect followed so far.
        if attempt.previous().len() > MAX_REDIRECTS {
            return attempt.error(RedirectLimit);
        }
        match redirect_guard.check_url(attempt.url()) {
            Ok(()) => attempt.follow(),
            Err(refused) => attempt.error(refused),
        }
    });
    let mut builder = Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(true)
        .no_proxy()
        .user_agent(USER_AGENT)
        .redirect(policy)
        .referer(false)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_idle_timeout(config.pool_idle_timeout)
        .dns_resolver(Arc::new(GuardedResolver(guard)));
    for pem in &config.extra_root_certificates {
        let certificate =
            reqwest::Certificate::from_pem(pem.as_bytes()).map_err(CheckerError::Certificate)?;
        builder = builder.add_root_certificate(certificate);
    }
    builder.build().map_err(CheckerError::Client)
}

/// `GET target`; with a keyword, also look for it in the body.
pub(crate) async fn check(
    route: &Route,
    max_body_bytes: usize,
    target: &str,
    keyword: Option<&str>,
    started: Instant,
) -> Outcome {
    let url = match Url::parse(target.trim()) {
        Ok(url) => url,
        Err(e) => return Outcome::down(started.elapsed(), None, format!("invalid URL: {e}")),
    };
    if !matches!(url.scheme(), "http" | "https") {
        let message = format!("unsupported URL scheme {:?}", url.scheme());
        return Outcome::down(started.elapsed(), None, message);
    }
    if let Err(refused) = route.guard.check_url(&url) {
        return Outcome::down(started.elapsed(), None, refused.to_string());
    }
    let response = match route.client.get(url).send().await {
        Ok(response) => response,
        Err(e) => return Outcome::down(started.elapsed(), None, describe(&e)),
    };
    let status = response.status();
    let code = Some(i32::from(status.as_u16()));
    if !(status.is_success() || status.is_redirection()) {
        return Outcome::down(
            started.elapsed(),
            code,
            format!("status {}", status.as_u16()),
        );
    }
    let Some(keyword) = keyword else {
        return Outcome::up(started.elapsed(), code);
    };
    match find_keyword(response, keyword.as_bytes(), max_body_bytes).await {
        Ok(Search::Found) => Outcome::up(started.elapsed(), code),
        Ok(Search::NotFound { truncated: false }) => {
            Outcome::down(started.elapsed(), code, "keyword not found")
        }
        Ok(Search::NotFound { truncated: true }) => {
            let message = format!("keyword not found in the first {}", bytes(max_body_bytes));
            Outcome::down(started.elapsed(), code, message)
        }
        Err(e) => {
            let message = format!("reading the body failed: {}", describe(&e));
            Outcome::down(started.elapsed(), code, message)
        }
    }
}

enum Search {
    Found,
    /// `truncated`: the body went on past the cap.
    NotFound {
        truncated: bool,
    },
}

/// Reads at most `cap` bytes of the body, stopping as soon as `needle` is seen.
async fn find_keyword(
    mut response: Response,
    needle: &[u8],
    cap: usize,
) -> reqwest::Result<Search> {
    let mut scan = KeywordScan::new(needle);
    let mut read = 0usize;
    while let Some(chunk) = response.chunk().await? {
        let take = chunk.len().min(cap - read);
        read += take;
        if scan.push(&chunk[..take]) {
            return Ok(Search::Found);
        }
        if take < chunk.len() {
            return Ok(Search::NotFound { truncated: true });
        }
    }
    Ok(Search::NotFound { truncated: false })
}

/// Looks for a needle in a body that arrives in pieces, keeping only the current piece and the
/// `needle.len() - 1` bytes before it (so a match split across pieces is found).
struct KeywordScan<'a> {
    needle: &'a [u8],
    window: Vec<u8>,
}

impl<'a> KeywordScan<'a> {
    fn new(needle: &'a [u8]) -> Self {
        KeywordScan {
            needle,
            window: Vec::new(),
        }
    }

    /// Adds the next piece; true once the needle has been seen.
    fn push(&mut self, piece: &[u8]) -> bool {
        self.window.extend_from_slice(piece);
        if self.needle.is_empty()
            || self
                .window
                .windows(self.needle.len())
                .any(|w| w == self.needle)
        {
            return true;
        }
        let keep = (self.needle.len() - 1).min(self.window.len());
        self.window.drain(..self.window.len() - keep);
        false
    }
}

/// "1 MiB", "64 KiB", "1000 bytes".
fn bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// A failed request in a few words, from the most telling error in its chain.
fn describe(e: &reqwest::Error) -> String {
    if let Some(ours) = find::<ResolveError>(e) {
        return ours.to_string();
    }
    if let Some(limit) = find::<RedirectLimit>(e) {
        return limit.to_string();
    }
    if let Some(tls) = find::<rustls::Error>(e) {
        return describe_tls(tls, e.url());
    }
    if e.is_timeout() {
        return "timed out".to_owned();
    }
    if let Some(io) = find::<io::Error>(e) {
        return describe_io(io);
    }
    // The innermost cause says the most ("connection closed before message completed").
    let mut innermost: &(dyn StdError + 'static) = e;
    while let Some(source) = innermost.source() {
        innermost = source;
    }
    innermost.to_string()
}

fn describe_tls(e: &rustls::Error, url: Option<&Url>) -> String {
    use rustls::{CertificateError as C, Error as E};
    match e {
        E::InvalidCertificate(C::UnknownIssuer) => "TLS: certificate not trusted".to_owned(),
        E::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "TLS: certificate expired".to_owned()
        }
        E::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "TLS: certificate not valid yet".to_owned()
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            match url.and_then(Url::host_str) {
                Some(host) => format!("TLS: certificate not valid for {host}"),
                None => "TLS: certificate not valid for this host".to_owned(),
            }
        }
        E::InvalidCertificate(C::Revoked) => "TLS: certificate revoked".to_owned(),
        other => format!("TLS: {other}"),
    }
}

/// The first `T` in `err`'s chain, looking inside `io::Error`s too (whose `source` skips the
/// error they wrap).
fn find<'a, T: StdError + 'static>(err: &'a (dyn StdError + 'static)) -> Option<&'a T> {
    let mut current = err;
    loop {
        if let Some(found) = current.downcast_ref::<T>() {
            return Some(found);
        }
        let wrapped = current
            .downcast_ref::<io::Error>()
            .and_then(io::Error::get_ref);
        if let Some(found) = wrapped.and_then(|inner| find::<T>(inner)) {
            return Some(found);
        }
        current = current.source()?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_read_like_people_write_them() {
        assert_eq!(bytes(1024 * 1024), "1 MiB");
        assert_eq!(bytes(64 * 1024), "64 KiB");
        assert_eq!(bytes(1000), "1000 bytes");
    }

    #[test]
    fn keyword_split_across_pieces_is_found() {
        let body = b"<html>all systems operational</html>";
        let needle = b"operational";
        for split_a in 0..body.len() {
            for split_b in split_a..body.len() {
                let mut scan = KeywordScan::new(needle);
                let found = scan.push(&body[..split_a])
                    || scan.push(&body[split_a..split_b])
                    || scan.push(&body[split_b..]);
                assert!(found, "split at {split_a} and {split_b}");
            }
        }
        let mut scan = KeywordScan::new(needle);
        assert!(!scan.push(b"opera"));
        assert!(!scan.push(b"tion"));
        assert!(!scan.push(b"-al"));
    }

    #[test]
    fn find_looks_inside_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let io = io::Error::new(io::ErrorKind::InvalidData, tls);
        assert!(find::<rustls::Error>(&io).is_some());
        assert_eq!(
            describe_tls(find::<rustls::Error>(&io).unwrap(), None),
            "TLS: certificate not trusted"
        );
    }
}
