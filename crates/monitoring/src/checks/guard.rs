//! The SSRF guard: which addresses are not public ([`classify`]), and name resolution that
//! refuses them when `forbid_private_targets` is on. It is applied where connections are made —
//! the HTTP client's DNS resolver (every hop, so DNS rebinding and redirects are caught), literal
//! IP hosts of the first URL and of each redirect, and every `tcp` target.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Why an address is not a public one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique local fc00::/7 and site-local
    /// fec0::/10.
    Private,
    /// 169.254/16, fe80::/10.
    LinkLocal,
    /// 0.0.0.0/8 ("this network"), ::.
    Unspecified,
    /// 224/4, ff00::/8.
    Multicast,
    /// 100.64/10, carrier-grade NAT (RFC 6598).
    SharedCgnat,
    /// 255.255.255.255.
    Broadcast,
    /// 240/4, reserved for future use.
    Reserved,
}

impl fmt::Display for AddressClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AddressClass::Loopback => "loopback",
            AddressClass::Private => "private",
            AddressClass::LinkLocal => "link-local",
            AddressClass::Unspecified => "unspecified",
            AddressClass::Multicast => "multicast",
            AddressClass::SharedCgnat => "shared (CGNAT)",
            AddressClass::Broadcast => "broadcast",
            AddressClass::Reserved => "reserved",
        })
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one. IPv6 forms that carry an
/// IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, ..] = ip.octets();
    match (a, b) {
        (0, _) => Some(AddressClass::Unspecified),
        (127, _) => Some(AddressClass::Loopback),
        (10, _) | (172, 16..=31) | (192, 168) => Some(AddressClass::Private),
        (169, 254) => Some(AddressClass::LinkLocal),
        (100, 64..=127) => Some(AddressClass::SharedCgnat),
        (224..=239, _) => Some(AddressClass::Multicast),
        _ if ip == Ipv4Addr::BROADCAST => Some(AddressClass::Broadcast),
        (240..=255, _) => Some(AddressClass::Reserved),
        _ => None,
    }
}

fn classify_v6(ip: Ipv6Addr) -> Option<AddressClass> {
    if ip.is_unspecified() {
        return Some(AddressClass::Unspecified);
    }
    if ip.is_loopback() {
        return Some(AddressClass::Loopback);
    }
    let seg = ip.segments();
    let embedded_v4 = || {
        let [.., a, b, c, d] = ip.octets();
        Ipv4Addr::new(a, b, c, d)
    };
    // ::ffff:0:0/96 (mapped), ::/96 (compatible), 64:ff9b::/96 (NAT64).
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0)
        || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        return classify_v4(embedded_v4());
    }
    match seg[0] {
        s if s & 0xfe00 == 0xfc00 => Some(AddressClass::Private),
        s if s & 0xffc0 == 0xfe80 => Some(AddressClass::LinkLocal),
        s if s & 0xffc0 == 0xfec0 => Some(AddressClass::Private),
        s if s & 0xff00 == 0xff00 => Some(AddressClass::Multicast),
        _ => None,
    }
}

/// A refused target, or a name that did not resolve.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    #[error("target address {addr} is {class} and private targets are forbidden")]
    Refused { addr: IpAddr, class: AddressClass },
    #[error("DNS: cannot resolve {host}")]
    Lookup {
        host: String,
        #[source]
        source: Option<std::io::Error>,
    },
}

/// The guard's setting, shared by the HTTP client's resolver and the `tcp` runner.
#[derive(Debug)]
pub(crate) struct Guard {
    forbid_private: bool,
    allowed: Vec<IpAddr>,
}

impl Guard {
    pub(crate) fn new(forbid_private: bool, allowed: Vec<IpAddr>) -> Self {
        Guard {
            forbid_private,
            allowed,
        }
    }

    /// Refuses `ip` when the guard is on and it is not public (and not explicitly allowed).
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), ResolveError> {
        if !self.forbid_private
            || self.allowed.contains(&ip)
            || self.allowed.contains(&ip.to_canonical())
        {
            return Ok(());
        }
        match classify(ip) {
            Some(class) => Err(ResolveError::Refused {
                addr: ip.to_canonical(),
                class,
            }),
            None => Ok(()),
        }
    }

    /// Checks a URL whose host is a literal IP address (the resolver never sees those).
    pub(crate) fn check_url(&self, url: &Url) -> Result<(), ResolveError> {
        // URL parsing normalizes every IPv4 spelling ("2130706433", "0x7f.1") to dotted form.
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match host.parse::<IpAddr>() {
            Ok(ip) => self.check_ip(ip),
            Err(_) => Ok(()),
        }
    }

    /// Resolves `host` (a name or a literal address), refusing the whole target if any of its
    /// addresses is refused: which one a connection would use is not ours to choose.
    pub(crate) async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, ResolveError> {
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ResolveError::Lookup {
                    host: host.to_owned(),
                    source: Some(e),
                })?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(ResolveError::Lookup {
                host: host.to_owned(),
                source: None,
            });
        }
        for addr in &addrs {
            self.check_ip(addr.ip())?;
        }
        Ok(addrs)
    }
}

/// The HTTP client's DNS resolver: the system resolver (through tokio), filtered by the guard.
pub(crate) struct GuardedResolver(pub(crate) Arc<Guard>);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let addrs = guard.resolve(name.as_str(), 0).await?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_non_public_range_is_classified() {
        use AddressClass::*;
        let table: &[(&str, Option<AddressClass>)] = &[
            // IPv4
            ("0.0.0.0", Some(Unspecified)),
            ("0.1.2.3", Some(Unspecified)),
            ("127.0.0.1", Some(Loopback)),
            ("127.255.255.254", Some(Loopback)),
            ("10.0.0.1", Some(Private)),
            ("10.255.255.255", Some(Private)),
            ("172.16.0.1", Some(Private)),
            ("172.31.255.255", Some(Private)),
            ("192.168.1.1", Some(Private)),
            ("169.254.169.254", Some(LinkLocal)),
            ("100.64.0.1", Some(SharedCgnat)),
            ("100.127.255.255", Some(SharedCgnat)),
            ("224.0.0.1", Some(Multicast)),
            ("239.255.255.250", Some(Multicast)),
            ("255.255.255.255", Some(Broadcast)),
            ("240.0.0.1", Some(Reserved)),
            // IPv4 neighbours of those ranges are public
            ("172.15.255.255", None),
            ("172.32.0.0", None),
            ("100.63.255.255", None),
            ("100.128.0.0", None),
            ("169.253.0.1", None),
            ("192.167.1.1", None),
            ("11.0.0.1", None),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("223.255.255.255", None),
            // IPv6
            ("::", Some(Unspecified)),
            ("::1", Some(Loopback)),
            ("fc00::1", Some(Private)),
            ("fd12:3456::1", Some(Private)),
            ("fec0::1", Some(Private)),
            ("fe80::1", Some(LinkLocal)),
            ("febf::1", Some(LinkLocal)),
            ("ff02::1", Some(Multicast)),
            ("2001:4860:4860::8888", None),
            ("2606:4700::1111", None),
            ("fbff::1", None),
            // IPv6 forms carrying IPv4
            ("::ffff:127.0.0.1", Some(Loopback)),
            ("::ffff:10.1.2.3", Some(Private)),
            ("::ffff:169.254.169.254", Some(LinkLocal)),
            ("::ffff:100.64.0.1", Some(SharedCgnat)),
            ("::ffff:0.0.0.0", Some(Unspecified)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(Loopback)),
            ("64:ff9b::10.0.0.1", Some(Private)),
            ("64:ff9b::8.8.8.8", None),
        ];
        for (text, expected) in table {
            let ip: IpAddr = text.parse().unwrap();
            assert_eq!(classify(ip), *expected, "{text}");
        }
    }

    #[test]
    fn guard_off_allows_everything() {
        let guard = Guard::new(false, vec![]);
        for ip in ["127.0.0.1", "10.0.0.1", "::1", "fe80::1"] {
            assert!(guard.check_ip(ip.parse().unwrap()).is_ok(), "{ip}");
        }
    }

    #[test]
    fn guard_on_refuses_with_a_message_naming_the_address() {
        let guard = Guard::new(true, vec![]);
        let err = guard.check_ip("10.0.0.1".parse().unwrap()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target address 10.0.0.1 is private and private targets are forbidden"
        );
        let err = guard
            .check_ip("::ffff:127.0.0.1".parse().unwrap())
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "target address 127.0.0.1 is loopback and private targets are forbidden"
        );
        assert!(guard.check_ip("8.8.8.8".parse().unwrap()).is_ok());
    }

    #[test]
    fn allowed_addresses_pass_the_guard_in_either_form() {
        let guard = Guard::new(true, vec!["10.0.0.5".parse().unwrap()]);
        assert!(guard.check_ip("10.0.0.5".parse().unwrap()).is_ok());
        assert!(guard.check_ip("::ffff:10.0.0.5".parse().unwrap()).is_ok());
        assert!(guard.check_ip("10.0.0.6".parse().unwrap()).is_err());
    }

    #[test]
    fn literal_ip_urls_are_checked() {
        let guard = Guard::new(true, vec![]);
        for url in [
            "http://127.0.0.1:8080/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "https://[::ffff:a00:1]/",
        ] {
            let url = Url::parse(url).unwrap();
            assert!(guard.check_url(&url).is_err(), "{url}");
        }
        let url = Url::parse("https://example.com/").unwrap();
        assert!(guard.check_url(&url).is_ok());
    }

    #[tokio::test]
    async fn resolving_a_literal_address_needs_no_dns() {
        let guard = Guard::new(false, vec![]);
        let addrs = guard.resolve("::1", 80).await.unwrap();
        assert_eq!(addrs, vec!["[::1]:80".parse().unwrap()]);
    }
}
