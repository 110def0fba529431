//! The real client address behind trusted proxies (facts 3.7).

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

/// `[app] trustedproxies` when unset: loopback only, so a reverse proxy on
/// the same host works out of the box. The reference also trusts the
/// private ranges by default; anyone who can connect from such an address
/// (a pod, a LAN) could then claim any client address and rotate it past
/// the brute-force throttle. Deployments behind an ingress list its
/// network (docs/deviations.md).
pub const DEFAULT_TRUSTED_PROXIES: &[&str] = &["127.0.0.0/8", "::1/128"];

/// Whether `ip` (IPv4-mapped IPv6 counted as IPv4) is in one of `nets`.
pub fn in_nets(ip: &IpAddr, nets: &[IpNet]) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(*ip),
        v4 => *v4,
    };
    nets.iter().any(|n| n.contains(&ip))
}

fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    // "1.2.3.4:5678" or "[::1]:5678"
    s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip())
}

/// The address a request really comes from: headers are only believed when
/// the peer is a trusted proxy.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted_proxies: &[IpNet]) -> IpAddr {
    if !in_nets(&peer, trusted_proxies) {
        return peer;
    }
    if let Some(ip) = headers
        .get("x-real-ip")
        .and_then(|v| v.to_str().ok())
        .and_then(parse_entry)
    {
        return ip;
    }
    let forwarded: Vec<IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(parse_entry)
        .collect();
    if forwarded.is_empty() {
        return peer;
    }
    forwarded
        .iter()
        .rev()
        .find(|ip| !in_nets(ip, trusted_proxies))
        .or_else(|| forwarded.first())
        .copied()
        .unwrap_or(peer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets() -> Vec<IpNet> {
        vec![
            "127.0.0.0/8".parse().unwrap(),
            "10.0.0.0/8".parse().unwrap(),
        ]
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn untrusted_peer_headers_ignored() {
        let peer: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &headers(&[("x-real-ip", "1.1.1.1")]), &nets()),
            peer
        );
    }

    #[test]
    fn trusted_peer_real_ip_and_forwarded_for() {
        let peer: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_ip(peer, &headers(&[("x-real-ip", "1.1.1.1")]), &nets()),
            "1.1.1.1".parse::<IpAddr>().unwrap()
        );
        let h = headers(&[
            ("x-forwarded-for", "2.2.2.2, 3.3.3.3:80"),
            ("x-forwarded-for", "10.0.0.5"),
        ]);
        assert_eq!(
            client_ip(peer, &h, &nets()),
            "3.3.3.3".parse::<IpAddr>().unwrap()
        );
        let all_trusted = headers(&[("x-forwarded-for", "10.0.0.1, 10.0.0.2")]);
        assert_eq!(
            client_ip(peer, &all_trusted, &nets()),
            "10.0.0.1".parse::<IpAddr>().unwrap()
        );
        assert_eq!(client_ip(peer, &HeaderMap::new(), &nets()), peer);
    }
}
