//! The SFU made of signaling proxies (cluster facts 6.8): a connection to
//! each configured proxy; new publishers go to the least loaded proxy that
//! is connected, not draining and below its incoming bandwidth limit;
//! subscribers go to the proxy of their publisher.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use proto::proxy::{ClientMessage, CommandClient, PublisherSettings as WireSettings};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::ProxyClient;
use super::connection::{ConnectionStatus, ProxyConnection};
use crate::sfu::{Client, ClientRef, Listener, PublisherSettings, Sfu, SfuError, StreamType};

#[derive(Clone)]
pub struct ProxySfuConfig {
    pub urls: Vec<String>,
    pub token_id: String,
    pub token_key: rsa::RsaPrivateKey,
    /// Per request to a proxy.
    pub timeout: Duration,
    /// How long a subscriber waits for its publisher to appear (`[mcu]
    /// timeout`, as the reference bounds the whole SFU request).
    pub publisher_wait: Duration,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
    /// `[continent-overrides]`.
    pub continent_overrides: Vec<(String, Vec<String>)>,
    /// `wss://` proxies: how their certificates are checked (`[mcu]
    /// skipverify`).
    pub tls: Arc<rustls::ClientConfig>,
}

/// Where a publisher lives: its proxy, its client id there, and the
/// token for subscribing to it from another proxy (signed by the node
/// that created it; ours when `None`).
#[derive(Clone)]
pub(super) struct PublisherHome {
    conn: Arc<ProxyConnection>,
    pub(super) proxy_id: String,
    token: Option<String>,
}

/// What another node says about one of its publishers (gRPC
/// `GetPublisherId`).
#[derive(Debug, Clone, Default)]
pub struct RemotePublisherInfo {
    /// The proxy's base URL.
    pub url: String,
    /// The address of the proxy that node uses (DNS discovery).
    pub ip: Option<std::net::IpAddr>,
    /// The publisher's client id on that proxy.
    pub proxy_id: String,
    /// For connecting to the proxy if this node does not use it.
    pub connect_token: String,
    /// For subscribing to the publisher from another proxy.
    pub publisher_token: String,
}

/// A proxy in use, and how to stop its connection.
struct Proxy {
    conn: Arc<ProxyConnection>,
    base_url: String,
    stop: CancellationToken,
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

/// Asks the other nodes where a publisher lives.
pub type PublisherLookup = Arc<
    dyn Fn(
            String,
            StreamType,
        ) -> futures_util::future::BoxFuture<'static, Option<RemotePublisherInfo>>
        + Send
        + Sync,
>;

/// A connection made for subscribers of another node's publisher on a
/// proxy this node does not use: never used for anything else, closed
/// once empty.
struct Temporary {
    proxy: Proxy,
    since: tokio::time::Instant,
}

/// How long an unused temporary connection stays (its first subscriber
/// is created right after it connects).
const TEMPORARY_GRACE: Duration = Duration::from_secs(10);

pub(super) struct Inner {
    config: ProxySfuConfig,
    /// `[continent-overrides]`, replaced on reload.
    continent_overrides: parking_lot::RwLock<Vec<(String, Vec<String>)>>,
    lookup: parking_lot::RwLock<Option<PublisherLookup>>,
    proxies: parking_lot::RwLock<Vec<Proxy>>,
    /// Removed from the configuration but still serving clients: no new
    /// ones, closed once empty.
    retiring: Mutex<Vec<Proxy>>,
    temporary: Mutex<Vec<Temporary>>,
    stop: CancellationToken,
    pub(super) publishers: Mutex<HashMap<(String, StreamType), PublisherHome>>,
    publishers_changed: Notify,
    next_id: std::sync::atomic::AtomicU64,
    /// The connections to the proxies and the retiring of old ones;
    /// [`Sfu::stopped`] waits for them.
    tasks: TaskTracker,
}

#[derive(Clone)]
pub struct ProxySfu {
    inner: Arc<Inner>,
}

fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl ProxySfu {
    pub fn start(config: ProxySfuConfig, stop: CancellationToken) -> ProxySfu {
        let urls = config.urls.clone();
        let sfu = ProxySfu {
            inner: Arc::new(Inner {
                continent_overrides: parking_lot::RwLock::new(config.continent_overrides.clone()),
                config,
                proxies: parking_lot::RwLock::default(),
                lookup: parking_lot::RwLock::new(None),
                retiring: Mutex::default(),
                temporary: Mutex::default(),
                stop: stop.clone(),
                publishers: Mutex::default(),
                publishers_changed: Notify::new(),
                next_id: std::sync::atomic::AtomicU64::new(1),
                tasks: TaskTracker::new(),
            }),
        };
        sfu.set_urls(&urls);
        sfu.inner
            .tasks
            .spawn(retire(Arc::downgrade(&sfu.inner), stop));
        sfu
    }

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

    /// Replaces `[continent-overrides]` (SIGHUP).
    pub fn set_continent_overrides(&self, overrides: Vec<(String, Vec<String>)>) {
        *self.inner.continent_overrides.write() = overrides;
    }

    /// Installs the lookup of publishers on other nodes (gRPC).
    pub fn set_publisher_lookup(&self, lookup: PublisherLookup) {
        *self.inner.lookup.write() = Some(lookup);
    }

    /// A token of this server: for connecting (no subject) or for one
    /// publisher.
    pub fn token(&self, subject: Option<&str>) -> Option<String> {
        let c = &self.inner.config;
        proto::proxy_token::sign(&c.token_id, subject, &c.token_key, now_secs()).ok()
    }

    fn connections(&self) -> Vec<Arc<ProxyConnection>> {
        self.inner
            .proxies
            .read()
            .iter()
            .map(|p| p.conn.clone())
            .collect()
    }

    /// The connection to a proxy another node told us about: one we use,
    /// or a temporary one signed in with that node's token.
    async fn connection_for(&self, info: &RemotePublisherInfo) -> Option<Arc<ProxyConnection>> {
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
    fn all_connections(&self) -> Vec<(Arc<ProxyConnection>, bool)> {
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

    /// A subscriber on `conn` of the publisher at `home` (its proxy and
    /// its id there): plain on the publisher's proxy, else as a remote
    /// stream authorised by a token for that publisher.
    async fn create_subscriber(
        &self,
        conn: &Arc<ProxyConnection>,
        home: &PublisherHome,
        publisher: &str,
        stream: StreamType,
        listener: &Arc<dyn Listener>,
    ) -> Result<Arc<dyn Client>, SfuError> {
        let mut command = CommandClient {
            kind: "create-subscriber".into(),
            stream_type: stream.as_str().into(),
            publisher_id: home.proxy_id.clone(),
            ..Default::default()
        };
        if !Arc::ptr_eq(conn, &home.conn) {
            command.remote_url = home.conn.base_url.clone();
            command.remote_token = match &home.token {
                Some(t) => t.clone(),
                None => self
                    .token(Some(&home.proxy_id))
                    .ok_or(SfuError::Unsupported)?,
            };
        }
        let reply = conn
            .request(ClientMessage {
                kind: "command".into(),
                command: Some(command),
                ..Default::default()
            })
            .await?;
        let c = reply
            .command
            .filter(|c| !c.id.is_empty())
            .ok_or(SfuError::Unsupported)?;
        Ok(ProxyClient::new(
            &self.inner,
            conn.clone(),
            c.id,
            ClientRef {
                id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                publisher: publisher.to_owned(),
                stream,
                is_publisher: false,
            },
            c.sid,
            0,
            listener.clone(),
        ))
    }

    /// Proxies that may get a new client: nearest to the client first
    /// (country, then continent), least loaded first within that; those
    /// over their limit (`full`) only when no other is left.
    fn candidates(
        &self,
        country: Option<&str>,
        full: fn(&ConnectionStatus) -> bool,
    ) -> Vec<Arc<ProxyConnection>> {
        let mut usable: Vec<_> = self
            .connections()
            .iter()
            .map(|c| (c.clone(), c.status()))
            .filter(|(_, s)| s.connected && !s.shutdown_scheduled)
            .collect();
        let overrides = self.inner.continent_overrides.read();
        usable.sort_by_key(|(_, s)| {
            (
                crate::geo::distance(country, s.country.as_deref(), &overrides),
                s.load,
            )
        });
        let (mut free, busy): (Vec<_>, Vec<_>) = usable.into_iter().partition(|(_, s)| !full(s));
        free.extend(busy);
        free.into_iter().map(|(c, _)| c).collect()
    }
}

#[async_trait::async_trait]
impl Sfu for ProxySfu {
    async fn stopped(&self) {
        self.inner.tasks.close();
        self.inner.tasks.wait().await;
    }

    async fn new_publisher(
        &self,
        listener: Arc<dyn Listener>,
        public_id: &str,
        sid: &str,
        stream: StreamType,
        settings: PublisherSettings,
    ) -> Result<Arc<dyn Client>, SfuError> {
        let max = match stream {
            StreamType::Video => self.inner.config.max_stream_bitrate,
            StreamType::Screen => self.inner.config.max_screen_bitrate,
        };
        let bitrate = if settings.bitrate == 0 || settings.bitrate > max {
            max
        } else {
            settings.bitrate
        };
        let command = CommandClient {
            kind: "create-publisher".into(),
            sid: sid.into(),
            stream_type: stream.as_str().into(),
            publisher_settings: Some(WireSettings {
                bitrate: Some(bitrate),
                mediatypes: Some(settings.media_types),
                audiocodec: settings.audio_codec.clone(),
                videocodec: settings.video_codec.clone(),
                vp9_profile: settings.vp9_profile.clone(),
                h264_profile: settings.h264_profile.clone(),
            }),
            ..Default::default()
        };
        let mut last = SfuError::NoBackend;
        for conn in self.candidates(settings.country.as_deref(), incoming_full) {
            let reply = conn
                .request(ClientMessage {
                    kind: "command".into(),
                    command: Some(command.clone()),
                    ..Default::default()
                })
                .await;
            let reply = match reply {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(url = conn.url, error = %e, "proxy refused a publisher");
                    last = e;
                    continue;
                }
            };
            let Some(c) = reply.command.filter(|c| !c.id.is_empty()) else {
                continue;
            };
            let client = ProxyClient::new(
                &self.inner,
                conn.clone(),
                c.id.clone(),
                ClientRef {
                    id: self.inner.next_id.fetch_add(1, Ordering::Relaxed),
                    publisher: public_id.to_owned(),
                    stream,
                    is_publisher: true,
                },
                sid.to_owned(),
                c.bitrate.unwrap_or(bitrate),
                listener,
            );
            self.inner.publishers.lock().insert(
                (public_id.to_owned(), stream),
                PublisherHome {
                    conn,
                    proxy_id: c.id,
                    token: None,
                },
            );
            self.inner.publishers_changed.notify_waiters();
            return Ok(client);
        }
        crate::metrics::METRICS
            .no_backend_available_total
            .with_label_values(&[stream.as_str()])
            .inc();
        Err(last)
    }

    async fn new_subscriber(
        &self,
        listener: Arc<dyn Listener>,
        publisher: &str,
        stream: StreamType,
        country: Option<String>,
    ) -> Result<Arc<dyn Client>, SfuError> {
        let deadline = tokio::time::Instant::now() + self.inner.config.publisher_wait;
        let lookup = self.inner.lookup.read().clone();
        let home = loop {
            let changed = self.inner.publishers_changed.notified();
            let local = self
                .inner
                .publishers
                .lock()
                .get(&(publisher.to_owned(), stream))
                .cloned();
            if let Some(p) = local {
                break p;
            }
            // Published through another node: on a proxy we use too?
            if let Some(lookup) = &lookup {
                if let Some(info) = lookup(publisher.to_owned(), stream).await {
                    match self.connection_for(&info).await {
                        Some(conn) => {
                            break PublisherHome {
                                conn,
                                proxy_id: info.proxy_id,
                                token: Some(info.publisher_token).filter(|t| !t.is_empty()),
                            }
                        }
                        None => {
                            tracing::warn!(url = info.url, "could not reach the publisher's proxy")
                        }
                    }
                }
            }
            let wait = (tokio::time::Instant::now() + Duration::from_millis(500)).min(deadline);
            if tokio::time::timeout_at(wait, changed).await.is_err()
                && tokio::time::Instant::now() >= deadline
            {
                crate::metrics::METRICS
                    .nopublisher_total
                    .with_label_values(&[stream.as_str()])
                    .inc();
                return Err(SfuError::NoPublisher(publisher.to_owned()));
            }
        };
        let status = home.conn.status();
        let country = country.as_deref();
        if outgoing_full(&status) || !same_country(country, status.country.as_deref()) {
            // Served by a proxy nearer to the subscriber, or with capacity
            // left, through a remote stream from the publisher's proxy.
            let ranked = self.candidates(country, outgoing_full);
            let best_elsewhere = ranked.first().is_some_and(|best| {
                !same_country(best.status().country.as_deref(), status.country.as_deref())
            });
            if outgoing_full(&status) || best_elsewhere {
                for conn in ranked {
                    match self
                        .create_subscriber(&conn, &home, publisher, stream, &listener)
                        .await
                    {
                        Ok(c) => return Ok(c),
                        Err(e) => {
                            tracing::warn!(url = conn.url, error = %e, "proxy refused a subscriber")
                        }
                    }
                }
            }
        }
        self.create_subscriber(&home.conn, &home, publisher, stream, &listener)
            .await
    }

    fn max_bitrates(&self) -> (u64, u64) {
        (
            self.inner.config.max_stream_bitrate,
            self.inner.config.max_screen_bitrate,
        )
    }

    fn is_connected(&self) -> bool {
        self.connections().iter().any(|c| c.status().connected)
    }

    fn stats(&self) -> Value {
        let details: Vec<_> = self
            .all_connections()
            .iter()
            .map(|(c, temporary)| {
                let s = c.status();
                json!({"url": c.url, "ip": c.ip, "connected": s.connected, "clients": c.client_count(), "load": s.load, "shutdown": s.shutdown_scheduled, "temporary": temporary})
            })
            .collect();
        json!({"publishers": self.inner.publishers.lock().len(), "details": details})
    }

    fn server_info(&self) -> Value {
        let proxies: Vec<_> = self
            .all_connections()
            .iter()
            .map(|(c, temporary)| {
                let s = c.status();
                json!({
                    "url": c.url,
                    "ip": c.ip,
                    "connected": s.connected,
                    "temporary": temporary,
                    "shutdown": s.shutdown_scheduled,
                    "version": s.version,
                    "features": s.features,
                    "uptime": s.connected_since.map(proto::time::rfc3339_utc),
                    "country": s.country,
                    "load": s.load,
                    "bandwidth": s.bandwidth,
                })
            })
            .collect();
        json!({"mode": "proxy", "proxies": proxies})
    }

    fn events(&self) -> Option<Arc<crate::janus::events::EventsHandler>> {
        None
    }
}

fn incoming_full(s: &ConnectionStatus) -> bool {
    s.bandwidth
        .as_ref()
        .and_then(|b| b.incoming)
        .is_some_and(|i| i >= 100.0)
}

fn outgoing_full(s: &ConnectionStatus) -> bool {
    s.bandwidth
        .as_ref()
        .and_then(|b| b.outgoing)
        .is_some_and(|o| o >= 100.0)
}

/// Unknown countries count as the same.
fn same_country(a: Option<&str>, b: Option<&str>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.eq_ignore_ascii_case(b),
        _ => true,
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
async fn retire(inner: Weak<Inner>, stop: CancellationToken) {
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
