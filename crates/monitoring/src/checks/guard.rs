//! The SSRF guard: which addresses are not public ([`classify`]), and name resolution that
//! refuses them, and every address of this server's own interfaces, when
//! `forbid_private_targets` is on. It is applied where connections are made — the HTTP client's
//! DNS resolver (every hop, so DNS rebinding and redirects are caught), literal IP hosts of the
//! first URL and of each redirect, and every `tcp` target.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// 240/4 (reserved for future use), and the other IANA special-purpose blocks that are not
    /// globally reachable: 192.0.0/24 (but .9 and .10), 192.88.99/24 (6to4 relays), 100::/64
    /// (discard), 2001::/23 (protocol assignments, Teredo among them, but its few global
    /// blocks), 5f00::/16 (SRv6).
    Reserved,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// An address of one of this server's own network interfaces.
    ThisServer,
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
            AddressClass::Documentation => "reserved for documentation",
            AddressClass::Benchmarking => "reserved for benchmarking",
            AddressClass::ThisServer => "an address of this server",
        })
    }
}

/// What kind of non-public address `ip` is, or `None` for a public one: every block of IANA's
/// IPv4 and IPv6 special-purpose address registries that is not globally reachable. IPv6 forms
/// that carry an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-translated
/// `::ffff:0:a.b.c.d`, IPv4-compatible `::a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4
/// `2002:aabb:ccdd::`) are judged by that IPv4 address.
pub fn classify(ip: IpAddr) -> Option<AddressClass> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<AddressClass> {
    let [a, b, c, d] = ip.octets();
    match (a, b, c) {
        (0, ..) => Some(AddressClass::Unspecified),
        (127, ..) => Some(AddressClass::Loopback),
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Some(AddressClass::Private),
        (169, 254, _) => Some(AddressClass::LinkLocal),
        (100, 64..=127, _) => Some(AddressClass::SharedCgnat),
        // IETF protocol assignments; PCP and TURN anycast (.9, .10) are global.
        (192, 0, 0) if d != 9 && d != 10 => Some(AddressClass::Reserved),
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => Some(AddressClass::Documentation),
        (192, 88, 99) => Some(AddressClass::Reserved),
        (198, 18..=19, _) => Some(AddressClass::Benchmarking),
        (224..=239, ..) => Some(AddressClass::Multicast),
        _ if ip == Ipv4Addr::BROADCAST => Some(AddressClass::Broadcast),
        (240..=255, ..) => Some(AddressClass::Reserved),
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
    // ::ffff:0:0/96 (mapped), ::/96 (compatible), ::ffff:0:0:0/96 (translated),
    // 64:ff9b::/96 (NAT64).
    if seg[..5] == [0; 5] && (seg[5] == 0xffff || seg[5] == 0)
        || seg[..6] == [0, 0, 0, 0, 0xffff, 0]
        || seg[..6] == [0x64, 0xff9b, 0, 0, 0, 0]
    {
        return classify_v4(embedded_v4());
    }
    // 6to4: 2002:aabb:ccdd::/48 reaches the IPv4 address aa.bb.cc.dd.
    if seg[0] == 0x2002 {
        let [.., a, b] = seg[1].to_be_bytes();
        let [.., c, d] = seg[2].to_be_bytes();
        return classify_v4(Ipv4Addr::new(a, b, c, d));
    }
    match seg {
        // Local-use NAT64.
        [0x64, 0xff9b, 1, ..] => Some(AddressClass::Private),
        // Discard-only.
        [0x100, 0, 0, 0, ..] => Some(AddressClass::Reserved),
        [0x2001, 0xdb8, ..] => Some(AddressClass::Documentation),
        [0x2001, 2, 0, ..] => Some(AddressClass::Benchmarking),
        // IETF protocol assignments (2001::/23, Teredo 2001::/32 among them), but for the blocks
        // the registry marks globally reachable: anycast 2001:1::1-3, AMT 2001:3::/32, AS112
        // 2001:4:112::/48, ORCHIDv2 2001:20::/28, Drone Remote ID 2001:30::/28.
        [0x2001, s1, ..] if s1 < 0x200 => {
            let global = matches!(seg, [0x2001, 1, 0, 0, 0, 0, 0, 1..=3])
                || s1 == 3
                || matches!(seg, [0x2001, 4, 0x112, ..])
                || (0x20..=0x3f).contains(&s1);
            (!global).then_some(AddressClass::Reserved)
        }
        [s, ..] if s & 0xfff0 == 0x3ff0 => Some(AddressClass::Documentation),
        [0x5f00, ..] => Some(AddressClass::Reserved),
        [s, ..] if s & 0xfe00 == 0xfc00 => Some(AddressClass::Private),
        [s, ..] if s & 0xffc0 == 0xfe80 => Some(AddressClass::LinkLocal),
        [s, ..] if s & 0xffc0 == 0xfec0 => Some(AddressClass::Private),
        [s, ..] if s & 0xff00 == 0xff00 => Some(AddressClass::Multicast),
        _ => None,
    }
}

/// The addresses of this server's network interfaces, read again at most every few seconds
/// (interfaces come and go: a VPN, a container network, DHCP).
#[derive(Debug, Default)]
struct OwnAddresses {
    read: Mutex<Option<(Instant, Arc<Vec<IpAddr>>)>>,
}

impl OwnAddresses {
    const FRESH: Duration = Duration::from_secs(5);

    fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let addresses = {
            let mut read = self.read.lock().unwrap_or_else(|e| e.into_inner());
            match &*read {
                Some((at, addresses)) if at.elapsed() < Self::FRESH => addresses.clone(),
                _ => {
                    let addresses = Arc::new(interface_addresses());
                    *read = Some((Instant::now(), addresses.clone()));
                    addresses
                }
            }
        };
        addresses.contains(&ip)
    }
}

/// Every address of every interface, up or not. Should the system refuse to list them, the
/// guard cannot tell which public addresses are ours, and says so in the log.
fn interface_addresses() -> Vec<IpAddr> {
    match nix::ifaddrs::getifaddrs() {
        Ok(interfaces) => interfaces
            .filter_map(|interface| {
                let address = interface.address?;
                if let Some(v4) = address.as_sockaddr_in() {
                    Some(IpAddr::V4(v4.ip()))
                } else {
                    address.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
                }
            })
            .map(|ip| ip.to_canonical())
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list this server's network addresses for the SSRF guard");
            Vec::new()
        }
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
    own: OwnAddresses,
}

impl Guard {
    pub(crate) fn new(forbid_private: bool, allowed: Vec<IpAddr>) -> Self {
        Guard {
            forbid_private,
            allowed,
            own: OwnAddresses::default(),
        }
    }

    /// A guard that refuses nothing (the guard off, or an organization allowed private targets).
    pub(crate) fn open() -> Self {
        Self::new(false, Vec::new())
    }

    /// Refuses `ip` when the guard is on and it is not public, or is one of this server's own
    /// addresses (and is not explicitly allowed).
    pub(crate) fn check_ip(&self, ip: IpAddr) -> Result<(), ResolveError> {
        if !self.forbid_private
            || self.allowed.contains(&ip)
            || self.allowed.contains(&ip.to_canonical())
        {
            return Ok(());
        }
        let class =
            classify(ip).or_else(|| self.own.contains(ip).then_some(AddressClass::ThisServer));
        match class {
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
            ("::ffff:0:127.0.0.1", Some(Loopback)),
            ("2002:7f00:1::", Some(Loopback)),
            ("2002:a00:1::1", Some(Private)),
            ("2002:808:808::1", None),
            // The rest of the special-purpose registries
            ("192.0.0.1", Some(Reserved)),
            ("192.0.0.9", None),
            ("192.0.0.10", None),
            ("192.0.2.1", Some(Documentation)),
            ("198.51.100.7", Some(Documentation)),
            ("203.0.113.200", Some(Documentation)),
            ("192.88.99.1", Some(Reserved)),
            ("198.18.0.1", Some(Benchmarking)),
            ("198.19.255.255", Some(Benchmarking)),
            ("198.17.255.255", None),
            ("198.20.0.0", None),
            ("192.31.196.1", None),
            ("64:ff9b:1::1", Some(Private)),
            ("100::1", Some(Reserved)),
            ("100:0:0:1::1", None),
            ("2001:db8::1", Some(Documentation)),
            ("3fff::1", Some(Documentation)),
            ("2001:2::1", Some(Benchmarking)),
            ("2001::1", Some(Reserved)),
            ("2001:0:4136:e378::1", Some(Reserved)),
            ("2001:1::1", None),
            ("2001:1::4", Some(Reserved)),
            ("2001:3::1", None),
            ("2001:4:112::1", None),
            ("2001:20::1", None),
            ("2001:1ff::1", Some(Reserved)),
            ("2001:200::1", None),
            ("5f00::1", Some(Reserved)),
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
    fn this_servers_own_addresses_are_refused_whatever_their_range() {
        let guard = Guard::new(true, vec![]);
        let own = interface_addresses();
        assert!(!own.is_empty(), "the system lists no interface address");
        for ip in own {
            assert!(guard.check_ip(ip).is_err(), "{ip}");
        }
        // Judged by class first, by the interface list only for public addresses.
        let public: IpAddr = "8.8.8.8".parse().unwrap();
        *guard.own.read.lock().unwrap() = Some((Instant::now(), Arc::new(vec![public])));
        let err = guard.check_ip(public).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target address 8.8.8.8 is an address of this server and private targets are forbidden"
        );
        assert!(Guard::open().check_ip(public).is_ok());
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
