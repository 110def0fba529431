//! The SFU on one Janus server (cluster facts 5.2-5.7): the connection
//! loop (info checks, session, keepalive, reconnect with backoff) and the
//! registry of publishers that subscribers look up.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Mutex, RwLock};
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::error::codes;
use super::gateway::{Gateway, JanusSession};
use super::publisher::JanusPublisher;
use super::subscriber::JanusSubscriber;
use crate::sfu::{Client, Listener, PublisherSettings, Sfu, SfuError, StreamType};

pub const VIDEOROOM: &str = "janus.plugin.videoroom";
const KEEPALIVE: Duration = Duration::from_secs(30);
const RECONNECT_MIN: Duration = Duration::from_secs(1);
const RECONNECT_MAX: Duration = Duration::from_secs(16);

/// `[mcu]` settings of a Janus SFU.
#[derive(Debug, Clone)]
pub struct JanusConfig {
    pub url: String,
    /// Per request.
    pub timeout: Duration,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
}

struct Connection {
    session: JanusSession,
    info: Value,
}

pub(crate) struct Inner {
    pub config: JanusConfig,
    conn: RwLock<Option<Connection>>,
    /// Live publishers by (public session id, stream type).
    publishers: Mutex<HashMap<(String, StreamType), Arc<JanusPublisher>>>,
    /// Publishers of other Janus servers received here (facts 5.8); the
    /// lock is held while one is made so it is made once.
    pub(crate) remote_publishers: super::remote::RemoteMap,
    /// Every open client, to close them when Janus goes away.
    clients: Mutex<HashMap<u64, Weak<dyn Client>>>,
    /// Woken when a publisher appears or gets media, and on reconnects.
    pub publishers_changed: Notify,
    next_id: AtomicU64,
    pub events: Arc<super::events::EventsHandler>,
    connected_since: Mutex<Option<std::time::SystemTime>>,
    /// Every task of this SFU (connection, event loops and request tasks
    /// of clients); [`Sfu::stopped`] waits for them.
    pub(crate) tasks: TaskTracker,
    /// Fires when the SFU shuts down; the clients' tasks end with it.
    pub(crate) shutdown: CancellationToken,
}

/// The Janus SFU; cheap to clone.
#[derive(Clone)]
pub struct JanusSfu {
    inner: Arc<Inner>,
}

impl JanusSfu {
    /// Starts connecting in the background (and reconnecting until
    /// `shutdown`).
    pub fn start(config: JanusConfig, shutdown: CancellationToken) -> JanusSfu {
        let sfu = JanusSfu {
            inner: Arc::new(Inner {
                config,
                conn: RwLock::new(None),
                publishers: Mutex::default(),
                remote_publishers: Default::default(),
                clients: Mutex::default(),
                publishers_changed: Notify::new(),
                next_id: AtomicU64::new(1),
                events: Arc::default(),
                connected_since: Mutex::new(None),
                tasks: TaskTracker::new(),
                shutdown: shutdown.clone(),
            }),
        };
        let tasks = &sfu.inner.tasks;
        tasks.spawn(update_bandwidth(
            Arc::downgrade(&sfu.inner),
            shutdown.clone(),
        ));
        tasks.spawn(run(Arc::downgrade(&sfu.inner), shutdown));
        sfu
    }

    /// A subscriber here of a publisher on another Janus (through the
    /// source's proxy, `controller`).
    pub async fn new_remote_subscriber(
        &self,
        listener: Arc<dyn Listener>,
        controller: Arc<dyn super::remote::RemoteController>,
        stream: StreamType,
    ) -> Result<Arc<dyn Client>, SfuError> {
        super::remote::new_remote_subscriber(&self.inner, listener, controller, stream).await
    }

    /// A local publisher by the id it was created with.
    pub fn publisher(&self, id: &str, stream: StreamType) -> Option<Arc<JanusPublisher>> {
        self.inner.publisher(id, stream)
    }

    /// Waits until connected or `timeout` passes.
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_connected() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        true
    }
}

impl Inner {
    pub fn session(&self) -> Result<JanusSession, SfuError> {
        self.conn
            .read()
            .as_ref()
            .map(|c| c.session.clone())
            .ok_or(SfuError::NotConnected)
    }

    /// Janus >= 1.0 ("multistream") subscribes with `streams`, older
    /// versions with `feed` (facts 5.2).
    pub fn multistream(&self) -> bool {
        self.conn
            .read()
            .as_ref()
            .is_none_or(|c| c.info["version"].as_u64().unwrap_or(0) >= 1000)
    }

    /// Remote publishers came with Janus 1.1.
    pub fn remote_publishers_supported(&self) -> bool {
        self.conn
            .read()
            .as_ref()
            .is_some_and(|c| c.info["version"].as_u64().unwrap_or(0) >= 1100)
    }

    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    pub fn register(&self, id: u64, client: Weak<dyn Client>) {
        self.clients.lock().insert(id, client);
    }

    pub fn unregister(&self, id: u64) {
        self.clients.lock().remove(&id);
    }

    pub fn add_publisher(&self, p: Arc<JanusPublisher>) {
        let key = (p.client.publisher.clone(), p.client.stream);
        self.publishers.lock().insert(key, p);
        self.publishers_changed.notify_waiters();
    }

    pub fn remove_publisher(&self, p: &JanusPublisher) {
        let key = (p.client.publisher.clone(), p.client.stream);
        let mut map = self.publishers.lock();
        if map.get(&key).is_some_and(|q| q.client.id == p.client.id) {
            map.remove(&key);
        }
    }

    pub fn publisher(&self, id: &str, stream: StreamType) -> Option<Arc<JanusPublisher>> {
        self.publishers
            .lock()
            .get(&(id.to_owned(), stream))
            .cloned()
    }
}

/// `signaling_mcu_bandwidth` from the events handler, every second
/// (bytes/s).
async fn update_bandwidth(inner: Weak<Inner>, shutdown: CancellationToken) {
    let gauge = &crate::metrics::METRICS.bandwidth;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
        let Some(sfu) = inner.upgrade() else { return };
        let (sent, received) = sfu.events.bandwidth();
        gauge
            .with_label_values(&["incoming"])
            .set((received / 8) as i64);
        gauge
            .with_label_values(&["outgoing"])
            .set((sent / 8) as i64);
    }
}

/// Connects, serves until the connection drops, and starts again.
async fn run(inner: Weak<Inner>, shutdown: CancellationToken) {
    let mut delay = RECONNECT_MIN;
    loop {
        let Some(sfu) = inner.upgrade() else { return };
        let url = sfu.config.url.clone();
        match connect(&sfu).await {
            Ok((gateway, conn)) => {
                tracing::info!(url, janus = %conn.info["version_string"], "connected to janus");
                delay = RECONNECT_MIN;
                let session = conn.session.clone();
                *sfu.conn.write() = Some(conn);
                *sfu.connected_since.lock() = Some(std::time::SystemTime::now());
                drop(sfu);
                keepalive(&gateway, &session, &shutdown).await;
                if shutdown.is_cancelled() {
                    // While the connection is still up.
                    let _ = session.destroy().await;
                }
                gateway.close();
                gateway.stopped().await;
                let Some(sfu) = inner.upgrade() else { return };
                *sfu.conn.write() = None;
                *sfu.connected_since.lock() = None;
                if shutdown.is_cancelled() {
                    return;
                }
                tracing::warn!(url, "connection to janus lost");
                close_all(&sfu).await;
            }
            Err(e) => {
                tracing::warn!(url, error = %e, retry_in = ?delay, "could not connect to janus");
                drop(sfu);
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(RECONNECT_MAX);
    }
}

/// Closes every client: their handles died with the connection.
async fn close_all(sfu: &Inner) {
    let clients: Vec<_> = sfu
        .clients
        .lock()
        .drain()
        .filter_map(|(_, c)| c.upgrade())
        .collect();
    sfu.publishers.lock().clear();
    sfu.publishers_changed.notify_waiters();
    for c in clients {
        c.close().await;
    }
}

/// `info` with its checks (facts 5.2), then a session.
async fn connect(sfu: &Inner) -> Result<(Gateway, Connection), SfuError> {
    let gateway = Gateway::connect(&sfu.config.url, sfu.config.timeout).await?;
    let result = async {
        let info = gateway.info().await?;
        if info["plugins"].get(VIDEOROOM).is_none() {
            return Err(SfuError::Janus(super::JanusError::Protocol(
                "plugin janus.plugin.videoroom is not available".into(),
            )));
        }
        if info["data_channels"] != true {
            return Err(SfuError::Janus(super::JanusError::Protocol(
                "data channels are not supported".into(),
            )));
        }
        if info["full-trickle"] != true {
            tracing::warn!("janus has full-trickle disabled");
        }
        if info["events"].get("janus.eventhandler.wsevh").is_none()
            || info["event_handlers"] != true
        {
            tracing::warn!(
                "janus has no websocket event handler: realtime usage will not be available"
            );
        }
        let session = gateway.create_session().await?;
        Ok(Connection { session, info })
    }
    .await;
    match result {
        Ok(c) => Ok((gateway, c)),
        Err(e) => {
            gateway.close();
            Err(e)
        }
    }
}

/// Keeps the session alive until the connection or the session is lost.
async fn keepalive(gateway: &Gateway, session: &JanusSession, shutdown: &CancellationToken) {
    let closed = gateway.closed();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = closed.cancelled() => return,
            _ = tokio::time::sleep(KEEPALIVE) => {}
        }
        match session.keepalive().await {
            Ok(()) => {}
            Err(e) if e.code() == codes::NO_SUCH_SESSION => {
                tracing::warn!("janus forgot our session, reconnecting");
                return;
            }
            Err(e) => tracing::warn!(error = %e, "janus keepalive failed"),
        }
    }
}

/// Applies the SFU's own cap to a requested bitrate (facts 4.5).
pub(crate) fn cap(requested: u64, max: u64) -> u64 {
    if requested == 0 || requested > max {
        max
    } else {
        requested
    }
}

#[async_trait::async_trait]
impl Sfu for JanusSfu {
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
        let p =
            JanusPublisher::create(&self.inner, listener, public_id, sid, stream, settings).await?;
        Ok(p)
    }

    async fn new_subscriber(
        &self,
        listener: Arc<dyn Listener>,
        publisher: &str,
        stream: StreamType,
        _country: Option<String>,
    ) -> Result<Arc<dyn Client>, SfuError> {
        let s = JanusSubscriber::create(&self.inner, listener, publisher, stream).await?;
        Ok(s)
    }

    fn max_bitrates(&self) -> (u64, u64) {
        (
            self.inner.config.max_stream_bitrate,
            self.inner.config.max_screen_bitrate,
        )
    }

    fn is_connected(&self) -> bool {
        self.inner.conn.read().is_some()
    }

    fn stats(&self) -> Value {
        let uptime = self.inner.connected_since.lock().and_then(|t| {
            t.duration_since(std::time::UNIX_EPOCH)
                .ok()
                .map(|d| d.as_secs())
        });
        json!({
            "url": self.inner.config.url,
            "connected": self.is_connected(),
            "publishers": self.inner.publishers.lock().len(),
            "clients": self.inner.clients.lock().len(),
            "uptime": uptime,
        })
    }

    fn server_info(&self) -> Value {
        let conn = self.inner.conn.read();
        let mut janus = json!({
            "url": self.inner.config.url,
            "connected": conn.is_some(),
        });
        if let Some(c) = conn.as_ref() {
            let i = &c.info;
            janus["name"] = i["name"].clone();
            janus["version"] = i["version_string"].clone();
            janus["author"] = i["author"].clone();
            janus["datachannels"] = i["data_channels"].clone();
            janus["fulltrickle"] = i["full-trickle"].clone();
            janus["localip"] = i["local-ip"].clone();
            janus["ipv6"] = i["ipv6"].clone();
            janus["videoroom"] = i["plugins"][VIDEOROOM].clone();
        }
        json!({"mode": "janus", "janus": janus})
    }

    fn events(&self) -> Option<Arc<super::events::EventsHandler>> {
        Some(self.inner.events.clone())
    }
}
