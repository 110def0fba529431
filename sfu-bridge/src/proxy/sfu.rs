//! The SFU made of signaling proxies (cluster facts 6.8): a connection to
//! each configured proxy; new publishers go to the least loaded proxy that
//! is connected, not draining and below its incoming bandwidth limit;
//! subscribers go to the proxy of their publisher.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::proxy::{ClientMessage, CommandClient, PublisherSettings as WireSettings};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::client::ProxyClient;
use super::connection::{ConnectionStatus, ProxyConnection};
use super::pool::{retire, Proxy, Temporary};
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

/// Asks the other nodes where a publisher lives.
pub type PublisherLookup = Arc<
    dyn Fn(
            String,
            StreamType,
        ) -> futures_util::future::BoxFuture<'static, Option<RemotePublisherInfo>>
        + Send
        + Sync,
>;

pub(super) struct Inner {
    pub(super) config: ProxySfuConfig,
    /// `[continent-overrides]`, replaced on reload.
    pub(super) continent_overrides: parking_lot::RwLock<Vec<(String, Vec<String>)>>,
    pub(super) lookup: parking_lot::RwLock<Option<PublisherLookup>>,
    pub(super) proxies: parking_lot::RwLock<Vec<Proxy>>,
    /// Removed from the configuration but still serving clients: no new
    /// ones, closed once empty.
    pub(super) retiring: Mutex<Vec<Proxy>>,
    pub(super) temporary: Mutex<Vec<Temporary>>,
    pub(super) stop: CancellationToken,
    pub(super) publishers: Mutex<HashMap<(String, StreamType), PublisherHome>>,
    pub(super) publishers_changed: Notify,
    pub(super) next_id: std::sync::atomic::AtomicU64,
    /// The connections to the proxies and the retiring of old ones;
    /// [`Sfu::stopped`] waits for them.
    pub(super) tasks: TaskTracker,
}

#[derive(Clone)]
pub struct ProxySfu {
    pub(super) inner: Arc<Inner>,
}

pub(super) fn now_secs() -> i64 {
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
