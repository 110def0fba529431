//! The proxies this node is connected to: the configured (or discovered)
//! ones, those removed but still serving clients, and temporary
//! connections to proxies only another node uses.

use std::sync::{Arc, Weak};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::connection::ProxyConnection;
use super::sfu::{now_secs, Inner, ProxySfu, RemotePublisherInfo};

/// A proxy in use, and how to stop its connection.
pub(super) struct Proxy {
    pub(super) conn: Arc<ProxyConnection>,
    pub(super) base_url: String,
    pub(super) stop: CancellationToken,
}

impl Proxy {
    fn target(&self) -> ProxyTarget {
        ProxyTarget {
            url: self.base_url.clone(),
            ip: self.conn.ip,
        }
    }
}

/// A proxy to connect to: its base URL and, with DNS discovery, one of
/// the addresses its name resolves to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ProxyTarget {
    pub url: String,
    pub ip: Option<std::net::IpAddr>,
}

impl ProxyTarget {
    /// The URL is kept with one trailing `/`.
    pub fn new(url: &str, ip: Option<std::net::IpAddr>) -> ProxyTarget {
        ProxyTarget {
            url: format!("{}/", url.trim_end_matches('/')),
            ip,
        }
    }
}

/// A connection made for subscribers of another node's publisher on a
/// proxy this node does not use: never used for anything else, closed
/// once empty.
pub(super) struct Temporary {
    pub(super) proxy: Proxy,
    pub(super) since: tokio::time::Instant,
}

/// How long an unused temporary connection stays (its first subscriber
/// is created right after it connects).
const TEMPORARY_GRACE: Duration = Duration::from_secs(10);

impl ProxySfu {
    fn connect(&self, target: &ProxyTarget) -> Proxy {
        let c = &self.inner.config;
        let (id, key) = (c.token_id.clone(), c.token_key.clone());
        self.connect_with(
            target,
            Box::new(move || proto::proxy_token::sign(&id, None, &key, now_secs()).ok()),
        )
    }

    fn connect_with(
        &self,
        target: &ProxyTarget,
        make_token: Box<dyn Fn() -> Option<String> + Send + Sync>,
    ) -> Proxy {
        let c = &self.inner.config;
        let stop = self.inner.stop.child_token();
        Proxy {
            conn: ProxyConnection::start(
                &target.url,
                target.ip,
                c.tls.clone(),
                make_token,
                c.timeout,
                (stop.clone(), &self.inner.tasks),
            ),
            base_url: target.url.clone(),
            stop,
        }
    }

    /// Applies a new list of proxy base URLs (configuration or etcd).
    pub fn set_urls(&self, urls: &[String]) {
        let targets: Vec<_> = urls.iter().map(|u| ProxyTarget::new(u, None)).collect();
        self.set_targets(&targets);
    }

    /// Applies a new list of proxies: new ones are connected, removed ones
    /// take no new clients and close once their clients are gone (unless
    /// they come back before that).
    pub fn set_targets(&self, targets: &[ProxyTarget]) {
        let wanted: Vec<ProxyTarget> = targets
            .iter()
            .map(|t| ProxyTarget::new(&t.url, t.ip))
            .collect();
        let mut proxies = self.inner.proxies.write();
        let (keep, gone): (Vec<_>, Vec<_>) = std::mem::take(&mut *proxies)
            .into_iter()
            .partition(|p| wanted.contains(&p.target()));
        *proxies = keep;
        let mut retiring = self.inner.retiring.lock();
        for t in &wanted {
            if proxies.iter().any(|p| &p.target() == t) {
                continue;
            }
            if let Some(i) = retiring.iter().position(|p| &p.target() == t) {
                tracing::info!(url = t.url, ip = ?t.ip, "proxy kept");
                proxies.push(retiring.remove(i));
            } else {
                tracing::info!(url = t.url, ip = ?t.ip, "proxy added");
                proxies.push(self.connect(t));
            }
        }
        for p in &gone {
            tracing::info!(url = p.base_url, ip = ?p.conn.ip, "proxy removed");
        }
        retiring.extend(gone);
    }

    pub(super) fn connections(&self) -> Vec<Arc<ProxyConnection>> {
        self.inner
            .proxies
            .read()
            .iter()
            .map(|p| p.conn.clone())
            .collect()
    }

    /// The connection to a proxy another node told us about: one we use,
    /// or a temporary one signed in with that node's token.
    pub(super) async fn connection_for(
        &self,
        info: &RemotePublisherInfo,
    ) -> Option<Arc<ProxyConnection>> {
        let url = format!("{}/", info.url.trim_end_matches('/'));
        let same =
            |c: &ProxyConnection| c.base_url == url && (info.ip.is_none() || c.ip == info.ip);
        if let Some(c) = self.connections().into_iter().find(|c| same(c)) {
            return Some(c);
        }
        let existing = self
            .inner
            .temporary
            .lock()
            .iter()
            .find(|t| same(&t.proxy.conn))
            .map(|t| t.proxy.conn.clone());
        let conn = match existing {
            Some(c) => c,
            None => {
                tracing::info!(url, "temporary connection to another node's proxy");
                let token = info.connect_token.clone();
                let target = ProxyTarget {
                    url: url.clone(),
                    ip: info.ip,
                };
                let proxy = self.connect_with(&target, Box::new(move || Some(token.clone())));
                let conn = proxy.conn.clone();
                self.inner.temporary.lock().push(Temporary {
                    proxy,
                    since: tokio::time::Instant::now(),
                });
                conn
            }
        };
        conn.wait_connected(self.inner.config.timeout)
            .await
            .then_some(conn)
    }

    /// The configured connections, then the temporary ones (flagged).
    pub(super) fn all_connections(&self) -> Vec<(Arc<ProxyConnection>, bool)> {
        let mut all: Vec<_> = self.connections().into_iter().map(|c| (c, false)).collect();
        all.extend(
            self.inner
                .temporary
                .lock()
                .iter()
                .map(|t| (t.proxy.conn.clone(), true)),
        );
        all
    }

    /// Waits until every proxy is connected (or `timeout`).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        for c in &self.connections() {
            if !c.wait_connected(timeout).await {
                return false;
            }
        }
        true
    }
}

/// Proxy base URLs from etcd documents `{"address": "https://..."}`
/// (facts 3.3): other fields ignored, the same address once.
pub fn urls_from_etcd(docs: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Doc {
        #[serde(default)]
        address: String,
    }
    let mut urls: Vec<String> = Vec::new();
    for (key, value) in docs {
        match serde_json::from_slice::<Doc>(value) {
            Ok(d) if !d.address.is_empty() => {
                if !urls.contains(&d.address) {
                    urls.push(d.address);
                }
            }
            _ => tracing::warn!(key, "invalid proxy document in etcd ignored"),
        }
    }
    urls
}

/// Closes removed proxies once their last client is gone.
pub(super) async fn retire(inner: Weak<Inner>, stop: CancellationToken) {
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.temporary.lock().retain(|t| {
            if t.proxy.conn.client_count() > 0 || t.since.elapsed() < TEMPORARY_GRACE {
                return true;
            }
            tracing::info!(url = t.proxy.base_url, "temporary proxy connection closed");
            t.proxy.stop.cancel();
            false
        });
        inner.retiring.lock().retain(|p| {
            if p.conn.client_count() > 0 {
                return true;
            }
            tracing::info!(url = p.base_url, "removed proxy closed");
            p.stop.cancel();
            false
        });
    }
}
