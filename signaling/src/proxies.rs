//! Where the signaling proxies come from (cluster facts 6.8): `[mcu] url`
//! (each name optionally resolved every second to one connection per
//! address, `dnsdiscovery`), or the documents below `[mcu] keyprefix` in
//! etcd (`urltype = etcd`).

use config_source::SourceType;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::Mutex;
use sfu_bridge::proxy::{ProxySfu, ProxyTarget};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{EtcdConfig, McuConfig};
use config_source::etcd::EtcdStatus;

pub struct ProxyDiscovery {
    /// Owns the watchers; the hub waits for them at shutdown.
    tasks: TaskTracker,
    sfu: ProxySfu,
    list: Mutex<StaticList>,
    shutdown: CancellationToken,
}

/// The current static list. One lock for both fields: a DNS monitor
/// checks under it that it still belongs to the current list.
#[derive(Default)]
struct StaticList {
    /// Each URL with the addresses it resolves to (`None` = dialled by
    /// name).
    resolved: BTreeMap<String, Vec<Option<IpAddr>>>,
    /// Stops the DNS monitors of this list.
    monitors: CancellationToken,
}

impl ProxyDiscovery {
    pub fn start(
        sfu: ProxySfu,
        mcu: &McuConfig,
        etcd: &EtcdConfig,
        etcd_status: EtcdStatus,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Arc<ProxyDiscovery> {
        let d = Arc::new(ProxyDiscovery {
            tasks: tasks.clone(),
            sfu,
            list: Mutex::default(),
            shutdown,
        });
        if mcu.url_type == SourceType::Etcd {
            // `[mcu] keyprefix`; upstream's default is the literal "/%s".
            let prefix = mcu.key_prefix.clone().unwrap_or_else(|| "/%s".into());
            let sfu = d.sfu.clone();
            d.tasks.spawn(config_source::etcd::watch_prefix(
                etcd.clone(),
                prefix,
                etcd_status,
                d.shutdown.clone(),
                move |docs| sfu.set_urls(&sfu_bridge::proxy::urls_from_etcd(docs)),
            ));
        } else {
            d.apply_static(mcu);
        }
        d
    }

    /// SIGHUP: a new static URL list (etcd URLs follow etcd).
    pub fn reload(self: &Arc<Self>, mcu: &McuConfig) {
        if mcu.url_type != SourceType::Etcd {
            self.apply_static(mcu);
        }
    }

    fn apply_static(self: &Arc<Self>, mcu: &McuConfig) {
        let token = self.shutdown.child_token();
        let mut list = self.list.lock();
        std::mem::replace(&mut list.monitors, token.clone()).cancel();
        let mut resolved = BTreeMap::new();
        for url in &mcu.urls {
            match dns_name(url).filter(|_| mcu.dns_discovery) {
                Some(dial) => {
                    // Until its new monitor answers, a name keeps the
                    // addresses it had.
                    let known = list.resolved.get(url).cloned().unwrap_or_default();
                    resolved.insert(url.clone(), known);
                    let me = Arc::downgrade(self);
                    let url = url.clone();
                    let stop = token.clone();
                    self.tasks
                        .spawn(crate::dns::watch(dial, token.clone(), move |addrs| {
                            let Some(d) = me.upgrade() else { return };
                            let mut list = d.list.lock();
                            if stop.is_cancelled() {
                                return;
                            }
                            let ips = addrs.iter().map(|a| Some(a.ip())).collect();
                            list.resolved.insert(url.clone(), ips);
                            d.apply(&list);
                        }));
                }
                None => {
                    resolved.insert(url.clone(), vec![None]);
                }
            }
        }
        list.resolved = resolved;
        self.apply(&list);
    }

    /// Called under the list's lock so that targets are set in the order
    /// the list changed.
    fn apply(&self, list: &StaticList) {
        let targets: Vec<ProxyTarget> = list
            .resolved
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
