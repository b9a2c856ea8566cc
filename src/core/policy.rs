//! Client address policy: allow and deny lists of networks, and a bound on open connections
//! per address. Pure data and matching; the core applies it when it learns a client's
//! address, before the proxy sends that client a single byte.

use std::net::IpAddr;

/// A network: an address and a prefix length ("10.0.0.0/8", "::1", "192.0.2.7").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    addr: IpAddr,
    prefix: u8,
}

/// IPv4 clients of a dual-stack (IPv6) socket appear as ::ffff:a.b.c.d; match them as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Cidr {
    /// Parses "address" or "address/prefix", IPv4 or IPv6. None for anything else.
    pub fn parse(text: &str) -> Option<Cidr> {
        let text = text.trim();
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let addr: IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                p.parse::<u8>().ok().filter(|p| *p <= max)?
            }
            Some(_) => return None,
        };
        let addr = canonical(addr);
        let prefix = if addr.is_ipv4() && max == 128 {
            prefix.checked_sub(96)?
        } else {
            prefix
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, canonical(ip)) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// ZMQ_PROXY_STREAM_FAIL_BAN's default: two failed handshakes in a row (one is a typo or a
/// key rotation caught mid-way; two is a client that will keep failing).
pub const DEFAULT_FAIL_BAN: u32 = 2;
/// ZMQ_PROXY_STREAM_FAIL_BAN_TIME's default: 30 s, doubling for each repeat. A client that
/// keeps failing then fails at 0 s, again at once (banned until 30 s), at 30 s (banned for
/// 60 s) and next at 90 s: 3 worker connections in its first 60 s.
pub const DEFAULT_FAIL_BAN_TIME: std::time::Duration = std::time::Duration::from_millis(30000);

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressPolicy {
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    /// Open client connections per address; None = unlimited.
    pub max_per_address: Option<usize>,
    /// Failed handshakes in a row that ban an address; None = off.
    pub fail_ban: Option<u32>,
    /// How long a ban lasts.
    pub fail_ban_time: std::time::Duration,
}

impl Default for AddressPolicy {
    fn default() -> Self {
        AddressPolicy {
            allow: Vec::new(),
            deny: Vec::new(),
            max_per_address: None,
            fail_ban: Some(DEFAULT_FAIL_BAN),
            fail_ban_time: DEFAULT_FAIL_BAN_TIME,
        }
    }
}

impl AddressPolicy {
    /// Deny wins; with an allow list, only its networks are admitted.
    pub fn admits(&self, ip: IpAddr) -> bool {
        if self.deny.iter().any(|c| c.contains(ip)) {
            return false;
        }
        self.allow.is_empty() || self.allow.iter().any(|c| c.contains(ip))
    }

    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.max_per_address.is_none()
            && self.fail_ban.is_none()
    }
}

/// The address key for per-address counting.
pub fn address_key(ip: IpAddr) -> IpAddr {
    canonical(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_parse_and_match() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains(ip("10.1.200.3")));
        assert!(!net.contains(ip("10.2.0.1")));
        assert!(
            net.contains(ip("::ffff:10.1.2.3")),
            "IPv4-mapped clients match IPv4"
        );
        let host = Cidr::parse("127.0.0.1").unwrap();
        assert!(host.contains(ip("127.0.0.1")) && !host.contains(ip("127.0.0.2")));
        let v6 = Cidr::parse("2001:db8::/32").unwrap();
        assert!(v6.contains(ip("2001:db8:1::5")) && !v6.contains(ip("2001:db9::1")));
        assert!(!v6.contains(ip("10.1.2.3")));
        assert!(Cidr::parse("::1").unwrap().contains(ip("::1")));
        assert!(Cidr::parse("0.0.0.0/0")
            .unwrap()
            .contains(ip("203.0.113.9")));
        assert_eq!(
            Cidr::parse("::ffff:10.0.0.0/104"),
            Cidr::parse("10.0.0.0/8")
        );
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0/8",
            "host",
            "1.2.3.4/",
            "1.2.3.4/x",
            "1.2.3.4/-1",
        ] {
            assert_eq!(Cidr::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn deny_wins_and_allow_lists_restrict() {
        let mut p = AddressPolicy::default();
        assert!(p.admits(ip("192.0.2.1")));
        p.allow.push(Cidr::parse("192.0.2.0/24").unwrap());
        assert!(p.admits(ip("192.0.2.1")) && !p.admits(ip("198.51.100.1")));
        p.deny.push(Cidr::parse("192.0.2.66").unwrap());
        assert!(!p.admits(ip("192.0.2.66")) && p.admits(ip("192.0.2.67")));
    }
}
