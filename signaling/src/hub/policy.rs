//! The address rules a SIGHUP may change (as the reference's hub reload
//! does): which peers may set the client address by header, which client
//! candidates may reach the SFU, and `[geoip-overrides]`.

use std::net::IpAddr;

use axum::http::HeaderMap;
use ipnet::IpNet;

use crate::config::Config;

#[derive(Debug, Default)]
pub struct NetPolicy {
    /// `[app] trustedproxies`.
    trusted_proxies: Vec<IpNet>,
    /// `[mcu] allowedcandidates` / `blockedcandidates`.
    allowed_candidates: Vec<IpNet>,
    blocked_candidates: Vec<IpNet>,
    /// `[geoip-overrides]`.
    geoip_overrides: Vec<(IpNet, String)>,
}

impl NetPolicy {
    pub fn from_config(config: &Config) -> NetPolicy {
        NetPolicy {
            trusted_proxies: config.app.trusted_proxies.clone(),
            allowed_candidates: config.mcu.allowed_candidates.clone(),
            blocked_candidates: config.mcu.blocked_candidates.clone(),
            geoip_overrides: config.geoip.overrides.clone(),
        }
    }

    /// The client's address: from `X-Real-IP` / `X-Forwarded-For` when
    /// the peer is a trusted proxy.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        transport::realip::client_ip(peer, headers, &self.trusted_proxies)
    }

    /// Whether a client candidate with this address may reach the SFU
    /// (facts 4.7): the allow list wins over the block list.
    pub fn candidate_allowed(&self, ip: IpAddr) -> bool {
        self.allowed_candidates.iter().any(|n| n.contains(&ip))
            || !self.blocked_candidates.iter().any(|n| n.contains(&ip))
    }

    /// The country `[geoip-overrides]` gives this address.
    pub fn country_override(&self, ip: IpAddr) -> Option<&str> {
        self.geoip_overrides
            .iter()
            .find(|(net, _)| net.contains(&ip))
            .map(|(_, cc)| cc.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn allow_list_wins_over_block_list() {
        let p = NetPolicy {
            allowed_candidates: nets(&["10.1.0.0/16"]),
            blocked_candidates: nets(&["10.0.0.0/8"]),
            ..Default::default()
        };
        assert!(p.candidate_allowed("10.1.2.3".parse().unwrap()));
        assert!(!p.candidate_allowed("10.2.2.3".parse().unwrap()));
        assert!(p.candidate_allowed("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn first_matching_override() {
        let p = NetPolicy {
            geoip_overrides: vec![
                ("10.1.0.0/16".parse().unwrap(), "DE".into()),
                ("10.0.0.0/8".parse().unwrap(), "US".into()),
            ],
            ..Default::default()
        };
        assert_eq!(p.country_override("10.1.0.1".parse().unwrap()), Some("DE"));
        assert_eq!(p.country_override("10.9.0.1".parse().unwrap()), Some("US"));
        assert_eq!(p.country_override("192.0.2.1".parse().unwrap()), None);
    }
}
