//! Where the signaling proxies come from (cluster facts 6.8): `[mcu] url`
//! (each name optionally resolved every second to one connection per
//! address, `dnsdiscovery`), or the documents below `[mcu] keyprefix` in
//! etcd (`urltype = etcd`).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use sfu_bridge::proxy::{ProxySfu, ProxyTarget};
use tokio_util::sync::CancellationToken;

use crate::config::{EtcdConfig, McuConfig};

pub struct ProxyDiscovery {
    sfu: ProxySfu,
    /// The current static list: each URL with the addresses it resolves
    /// to (`None` = dialled by name).
    resolved: Mutex<BTreeMap<String, Vec<Option<IpAddr>>>>,
    /// Stops the DNS monitors of the current static list.
    monitors: Mutex<CancellationToken>,
    shutdown: CancellationToken,
}

impl ProxyDiscovery {
    pub fn start(
        sfu: ProxySfu,
        mcu: &McuConfig,
        etcd: &EtcdConfig,
        shutdown: CancellationToken,
    ) -> Arc<ProxyDiscovery> {
        let d = Arc::new(ProxyDiscovery {
            sfu,
            resolved: Mutex::default(),
            monitors: Mutex::new(shutdown.child_token()),
            shutdown,
        });
        if mcu.url_type == "etcd" {
            // `[mcu] keyprefix`; upstream's default is the literal "/%s".
            let prefix = mcu.key_prefix.clone().unwrap_or_else(|| "/%s".into());
            let sfu = d.sfu.clone();
            tokio::spawn(crate::etcd::watch_prefix(
                etcd.clone(),
                prefix,
                d.shutdown.clone(),
                move |docs| sfu.set_urls(&sfu_bridge::proxy::sfu::urls_from_etcd(docs)),
            ));
        } else {
            d.apply_static(mcu);
        }
        d
    }

    /// SIGHUP: a new static URL list (etcd URLs follow etcd).
    pub fn reload(self: &Arc<Self>, mcu: &McuConfig) {
        if mcu.url_type != "etcd" {
            self.apply_static(mcu);
        }
    }

    fn apply_static(self: &Arc<Self>, mcu: &McuConfig) {
        let token = self.shutdown.child_token();
        std::mem::replace(&mut *self.monitors.lock(), token.clone()).cancel();
        let mut resolved = BTreeMap::new();
        for url in &mcu.urls {
            match dns_name(url).filter(|_| mcu.dns_discovery) {
                Some(dial) => {
                    resolved.insert(url.clone(), Vec::new());
                    let me = Arc::downgrade(self);
                    let url = url.clone();
                    tokio::spawn(crate::dns::watch(dial, token.clone(), move |addrs| {
                        if let Some(d) = me.upgrade() {
                            let ips = addrs.iter().map(|a| Some(a.ip())).collect();
                            d.resolved.lock().insert(url.clone(), ips);
                            d.apply();
                        }
                    }));
                }
                None => {
                    resolved.insert(url.clone(), vec![None]);
                }
            }
        }
        *self.resolved.lock() = resolved;
        self.apply();
    }

    fn apply(&self) {
        let targets: Vec<ProxyTarget> = self
            .resolved
            .lock()
            .iter()
            .flat_map(|(url, ips)| ips.iter().map(|ip| ProxyTarget::new(url, *ip)))
            .collect();
        self.sfu.set_targets(&targets);
    }
}

/// `host:port` of a proxy URL whose host is a name (addresses need no
/// resolving).
fn dns_name(url: &str) -> Option<String> {
    let u = url::Url::parse(url).ok()?;
    let host = match u.host()? {
        url::Host::Domain(d) => d.to_owned(),
        url::Host::Ipv4(_) | url::Host::Ipv6(_) => return None,
    };
    Some(format!("{host}:{}", u.port_or_known_default()?))
}

#[cfg(test)]
mod tests {
    use super::dns_name;

    #[test]
    fn names_to_resolve() {
        assert_eq!(
            dns_name("https://proxy.example/").as_deref(),
            Some("proxy.example:443")
        );
        assert_eq!(
            dns_name("http://proxy.example:8080/").as_deref(),
            Some("proxy.example:8080")
        );
        assert_eq!(dns_name("http://127.0.0.1:8080/"), None);
        assert_eq!(dns_name("http://[::1]:8080/"), None);
    }
}
