//! Address prefixes: the unit in which cairn counts one host or one subnet's share of
//! anything (connections per host, stores per subnet, contacts per subnet in the routing
//! table). An attacker can make many identities cheaply, but addresses cost more, and
//! prefixes cost more still.
//!
//! An IPv4-mapped IPv6 address counts as the IPv4 address it carries.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The first `len` bits of an address, the rest zero.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    ip: IpAddr,
    len: u8,
}

impl Prefix {
    /// The prefix of `ip`: its first `v4` bits for an IPv4 address, its first `v6` bits for
    /// an IPv6 one (each at most the address's length).
    pub fn of(ip: IpAddr, v4: u8, v6: u8) -> Self {
        match ip.to_canonical() {
            IpAddr::V4(ip) => {
                let len = v4.min(32);
                let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
                let ip = IpAddr::V4(Ipv4Addr::from(u32::from(ip) & mask));
                Prefix { ip, len }
            }
            IpAddr::V6(ip) => {
                let len = v6.min(128);
                let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
                let ip = IpAddr::V6(Ipv6Addr::from(u128::from(ip) & mask));
                Prefix { ip, len }
            }
        }
    }

    /// One host: an IPv4 address, or an IPv6 /64 (what one host or one home network gets).
    pub fn host(ip: IpAddr) -> Self {
        Prefix::of(ip, 32, 64)
    }

    /// One subnet: an IPv4 /24, or an IPv6 /48 (what one site or one provider's customer
    /// gets).
    pub fn subnet(ip: IpAddr) -> Self {
        Prefix::of(ip, 24, 48)
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.ip, self.len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    #[test]
    fn hosts_and_networks_group_the_right_addresses() {
        assert_eq!(Prefix::host(ip("192.0.2.7")), Prefix::host(ip("192.0.2.7")));
        assert_ne!(Prefix::host(ip("192.0.2.7")), Prefix::host(ip("192.0.2.8")));
        assert_eq!(
            Prefix::subnet(ip("192.0.2.7")),
            Prefix::subnet(ip("192.0.2.200"))
        );
        assert_ne!(
            Prefix::subnet(ip("192.0.2.7")),
            Prefix::subnet(ip("192.0.3.7"))
        );
        assert_eq!(
            Prefix::host(ip("2001:db8:1:2:aaaa::1")),
            Prefix::host(ip("2001:db8:1:2:bbbb::9"))
        );
        assert_ne!(
            Prefix::host(ip("2001:db8:1:2::1")),
            Prefix::host(ip("2001:db8:1:3::1"))
        );
        assert_eq!(
            Prefix::subnet(ip("2001:db8:1:2::1")),
            Prefix::subnet(ip("2001:db8:1:ffff::1"))
        );
        assert_eq!(
            Prefix::host(ip("::ffff:192.0.2.7")),
            Prefix::host(ip("192.0.2.7")),
            "a mapped address is the IPv4 one"
        );
        assert_eq!(Prefix::subnet(ip("192.0.2.7")).to_string(), "192.0.2.0/24");
        assert_eq!(Prefix::of(ip("192.0.2.7"), 0, 0).to_string(), "0.0.0.0/0");
    }
}
