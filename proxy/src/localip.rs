//! The address other proxies' Janus sends remote streams to when
//! `[app] hostname` is not set: like the reference, the first public IPv4
//! address of this host.

use std::net::Ipv4Addr;

/// Not loopback, private, link-local or unspecified.
fn is_public(ip: Ipv4Addr) -> bool {
    !(ip.is_loopback() || ip.is_private() || ip.is_link_local() || ip.is_unspecified())
}

pub fn first_non_loopback() -> Option<String> {
    let addrs = nix::ifaddrs::getifaddrs().ok()?;
    addrs
        .filter_map(|a| a.address)
        .filter_map(|a| a.as_sockaddr_in().map(|s| Ipv4Addr::from(s.ip())))
        .find(|ip| is_public(*ip))
        .map(|ip| ip.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_addresses_only() {
        assert!(!is_public(Ipv4Addr::new(127, 0, 0, 1)));
        assert!(!is_public(Ipv4Addr::new(10, 1, 2, 3)));
        assert!(!is_public(Ipv4Addr::new(192, 168, 1, 1)));
        assert!(!is_public(Ipv4Addr::new(169, 254, 0, 1)));
        assert!(is_public(Ipv4Addr::new(203, 0, 113, 7)));
    }
}
