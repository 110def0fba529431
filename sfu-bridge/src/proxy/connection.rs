//! One signaling server's connection to one signaling proxy (cluster
//! facts 6.8): hello with a token (or the session to resume), requests
//! answered by id, load and shutdown events, and messages for the
//! publishers and subscribers created through it. Reconnects with backoff
//! (1 s to 16 s, +-50 % jitter) and resumes its proxy session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use proto::proxy::{ClientMessage, EventBandwidth, HelloClient, ServerMessage, PROXY_VERSION};
use serde_json::Value;
use tokio::sync::{oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use transport::ws::writer::Writer;
use transport::ws::{Outbox, CLOSE_NORMAL};

use crate::sfu::SfuError;

/// Load reported while not connected: sorts last.
pub const LOAD_DISCONNECTED: u64 = 1_000_000;

/// What the proxy tells one of our clients.
pub trait ProxyClientEvents: Send + Sync {
    fn on_payload(&self, kind: &str, payload: &Value);
    /// The proxy closed it (publisher-closed, subscriber-closed, Janus
    /// gone, session lost).
    fn on_closed_by_proxy(&self);
}

#[derive(Debug, Clone, Default)]
pub struct ConnectionStatus {
    pub connected: bool,
    pub load: u64,
    pub bandwidth: Option<EventBandwidth>,
    pub shutdown_scheduled: bool,
    pub country: Option<String>,
    pub version: Option<String>,
    /// What the proxy's hello announced (`serverinfo`).
    pub features: Vec<String>,
    /// Since when the current connection is up.
    pub connected_since: Option<std::time::SystemTime>,
}

struct Shared {
    session_id: Option<String>,
    status: ConnectionStatus,
    out: Option<Outbox>,
}

pub struct ProxyConnection {
    pub url: String,
    /// As configured, ending in `/`.
    pub base_url: String,
    /// With DNS discovery: the address dialled (the URL's host is still
    /// used for TLS and the `Host` header).
    pub ip: Option<std::net::IpAddr>,
    /// `wss://`: how the proxy's certificate is checked.
    tls: Arc<rustls::ClientConfig>,
    make_token: Box<dyn Fn() -> Option<String> + Send + Sync>,
    timeout: Duration,
    shared: Mutex<Shared>,
    pending: Mutex<HashMap<String, oneshot::Sender<ServerMessage>>>,
    clients: Mutex<HashMap<String, Weak<dyn ProxyClientEvents>>>,
    next_id: AtomicU64,
    connected: watch::Sender<bool>,
}

impl ProxyConnection {
    /// Starts connecting to `base_url` (`.../` + `proxy`) until `stop`,
    /// in a task of `tasks`.
    pub fn start(
        base_url: &str,
        ip: Option<std::net::IpAddr>,
        tls: Arc<rustls::ClientConfig>,
        make_token: Box<dyn Fn() -> Option<String> + Send + Sync>,
        timeout: Duration,
        (stop, tasks): (CancellationToken, &TaskTracker),
    ) -> Arc<ProxyConnection> {
        let mut url = base_url.trim_end_matches('/').to_owned();
        url.push_str("/proxy");
        let url = url
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        let conn = Arc::new(ProxyConnection {
            url,
            base_url: format!("{}/", base_url.trim_end_matches('/')),
            ip,
            tls,
            make_token,
            timeout,
            shared: Mutex::new(Shared {
                session_id: None,
                status: ConnectionStatus {
                    load: LOAD_DISCONNECTED,
                    ..Default::default()
                },
                out: None,
            }),
            pending: Mutex::default(),
            clients: Mutex::default(),
            next_id: AtomicU64::new(1),
            connected: watch::channel(false).0,
        });
        tasks.spawn(run(Arc::downgrade(&conn), stop));
        conn
    }

    pub fn status(&self) -> ConnectionStatus {
        self.shared.lock().status.clone()
    }

    /// Waits until the hello succeeded (or `timeout`).
    pub async fn wait_connected(&self, timeout: Duration) -> bool {
        let mut rx = self.connected.subscribe();
        let ok = matches!(
            tokio::time::timeout(timeout, rx.wait_for(|c| *c)).await,
            Ok(Ok(_))
        );
        ok
    }

    pub fn register(&self, client_id: &str, client: Weak<dyn ProxyClientEvents>) {
        self.clients.lock().insert(client_id.to_owned(), client);
    }

    pub fn unregister(&self, client_id: &str) {
        self.clients.lock().remove(client_id);
    }

    /// Unregisters `client_id` only if `client` is what is registered
    /// for it (another may have taken the id over meanwhile).
    pub fn unregister_exact(&self, client_id: &str, client: &Weak<dyn ProxyClientEvents>) {
        let mut clients = self.clients.lock();
        if clients
            .get(client_id)
            .is_some_and(|c| Weak::ptr_eq(c, client))
        {
            clients.remove(client_id);
        }
    }

    pub fn client_count(&self) -> usize {
        self.clients.lock().len()
    }

    /// Sends a request and waits for the reply with its id; error replies
    /// become [`SfuError::Proxy`].
    pub async fn request(&self, mut msg: ClientMessage) -> Result<ServerMessage, SfuError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed).to_string();
        msg.id = Some(id.clone());
        let text = serde_json::to_string(&msg).map_err(|_| SfuError::Unsupported)?;
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(id.clone(), tx);
        let sent = {
            let s = self.shared.lock();
            s.status.connected && s.out.as_ref().is_some_and(|o| o.send_text(text.into()))
        };
        if !sent {
            self.pending.lock().remove(&id);
            return Err(SfuError::NotConnected);
        }
        let reply = match tokio::time::timeout(self.timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => return Err(SfuError::NotConnected),
            Err(_) => {
                self.pending.lock().remove(&id);
                return Err(SfuError::Janus(crate::janus::JanusError::Timeout));
            }
        };
        if let Some(e) = &reply.error {
            return Err(SfuError::Proxy {
                code: e.code.as_str().to_owned(),
                message: e.message.clone(),
            });
        }
        Ok(reply)
    }

    fn dispatch(&self, msg: ServerMessage) {
        if let Some(id) = &msg.id {
            if let Some(tx) = self.pending.lock().remove(id) {
                let _ = tx.send(msg);
                return;
            }
        }
        match msg.kind.as_str() {
            "event" => {
                let Some(e) = msg.event else { return };
                match e.kind.as_str() {
                    "update-load" => {
                        let load = e.load.unwrap_or(0);
                        super::backend_metrics::load(&self.url, load, e.bandwidth.as_ref());
                        let mut s = self.shared.lock();
                        s.status.load = load;
                        s.status.bandwidth = e.bandwidth;
                    }
                    "shutdown-scheduled" => self.shared.lock().status.shutdown_scheduled = true,
                    "publisher-closed" | "subscriber-closed" => self.closed_by_proxy(&e.client_id),
                    "backend-disconnected" => {
                        let ids: Vec<_> = self.clients.lock().keys().cloned().collect();
                        for id in ids {
                            self.closed_by_proxy(&id);
                        }
                    }
                    other => tracing::debug!(url = self.url, event = other, "proxy event"),
                }
            }
            "payload" => {
                let Some(p) = msg.payload else { return };
                let client = self
                    .clients
                    .lock()
                    .get(&p.client_id)
                    .and_then(Weak::upgrade);
                if let Some(c) = client {
                    c.on_payload(&p.kind, p.payload.as_ref().unwrap_or(&Value::Null));
                }
            }
            "bye" => {
                self.shared.lock().session_id = None;
            }
            _ => {}
        }
    }

    fn closed_by_proxy(&self, client_id: &str) {
        let client = self
            .clients
            .lock()
            .remove(client_id)
            .and_then(|w| w.upgrade());
        if let Some(c) = client {
            c.on_closed_by_proxy();
        }
    }

    fn drop_all_clients(&self) {
        let clients: Vec<_> = self
            .clients
            .lock()
            .drain()
            .filter_map(|(_, w)| w.upgrade())
            .collect();
        for c in clients {
            c.on_closed_by_proxy();
        }
    }
}

/// How long a lost proxy may take to come back before its publishers and
/// subscribers count as gone (a resume within it keeps them).
pub const RESUME_GRACE: Duration = Duration::from_secs(5);

async fn run(conn: Weak<ProxyConnection>, stop: CancellationToken) {
    let mut interval = Duration::from_secs(1);
    let mut down_since: Option<tokio::time::Instant> = None;
    loop {
        let Some(c) = conn.upgrade() else { return };
        match connect_once(&c, &stop).await {
            Ok(()) => interval = Duration::from_secs(1),
            Err(e) => tracing::warn!(url = c.url, error = %e, "proxy connection failed"),
        }
        if c.connected.borrow().to_owned() {
            down_since = None;
        }
        let since = *down_since.get_or_insert_with(tokio::time::Instant::now);
        if since.elapsed() >= RESUME_GRACE && c.client_count() > 0 {
            tracing::warn!(
                url = c.url,
                "proxy gone: its publishers and subscribers are closed"
            );
            c.shared.lock().session_id = None;
            c.drop_all_clients();
        }
        {
            let mut s = c.shared.lock();
            if s.status.connected {
                super::backend_metrics::disconnected(&c.url, s.status.country.as_deref());
            }
            s.status.connected = false;
            s.status.connected_since = None;
            s.status.load = LOAD_DISCONNECTED;
            s.status.bandwidth = None;
            s.out = None;
        }
        c.connected.send_replace(false);
        for (_, tx) in c.pending.lock().drain() {
            drop(tx);
        }
        drop(c);
        if stop.is_cancelled() {
            return;
        }
        let jitter = 0.5 + rand::random::<f64>();
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval.mul_f64(jitter)) => {}
        }
        interval = (interval * 2).min(Duration::from_secs(16));
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the WebSocket, to `ip` instead of the URL's host if given.
async fn dial(
    url: &str,
    ip: Option<std::net::IpAddr>,
    tls: &Arc<rustls::ClientConfig>,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    String,
> {
    let connector = Some(transport::tls::connector(url, tls));
    let Some(ip) = ip else {
        // `true`: TCP_NODELAY, requests are small and wait for replies.
        return tokio_tungstenite::connect_async_tls_with_config(url, None, true, connector)
            .await
            .map_err(|e| e.to_string());
    };
    let port = url_port(url).ok_or_else(|| format!("no port in {url}"))?;
    let tcp = tokio::net::TcpStream::connect((ip, port))
        .await
        .map_err(|e| e.to_string())?;
    tcp.set_nodelay(true).map_err(|e| e.to_string())?;
    tokio_tungstenite::client_async_tls_with_config(url, tcp, None, connector)
        .await
        .map_err(|e| e.to_string())
}

/// The port of a `ws://` or `wss://` URL, explicit or the scheme's.
fn url_port(url: &str) -> Option<u16> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split('/').next()?;
    let host_port = authority.rsplit('@').next()?;
    let explicit = match host_port.rsplit_once(':') {
        // An IPv6 literal without port ends in `]`.
        Some((_, port)) if !port.ends_with(']') => Some(port.parse().ok()?),
        _ => None,
    };
    explicit.or(match scheme {
        "ws" => Some(80),
        "wss" => Some(443),
        _ => None,
    })
}

async fn connect_once(c: &Arc<ProxyConnection>, stop: &CancellationToken) -> Result<(), String> {
    let (ws, _) = tokio::time::timeout(c.timeout, dial(&c.url, c.ip, &c.tls))
        .await
        .map_err(|_| "handshake timed out".to_owned())??;
    let (sink, mut stream) = ws.split();
    // Cancelled when the writer ends (write failed, queue full).
    let writer_gone = CancellationToken::new();
    let (tx, out_rx) = crate::outbox::peer_outbox("proxy", writer_gone.clone());
    let mut writer = tokio::spawn(Writer::default().run(sink, out_rx));
    let send_hello = |resume: Option<String>| -> Result<(), String> {
        let token = if resume.is_some() {
            String::new()
        } else {
            (c.make_token)().ok_or("could not sign a token")?
        };
        let hello = ClientMessage {
            id: Some("hello".into()),
            kind: "hello".into(),
            hello: Some(HelloClient {
                version: PROXY_VERSION.into(),
                resumeid: resume.unwrap_or_default(),
                features: Vec::new(),
                token,
            }),
            ..Default::default()
        };
        let text = serde_json::to_string(&hello).map_err(|e| e.to_string())?;
        if tx.send_text(text.into()) {
            Ok(())
        } else {
            Err("connection closed".to_owned())
        }
    };
    let resume = c.shared.lock().session_id.clone();
    send_hello(resume)?;
    let result = loop {
        let next = tokio::select! {
            _ = stop.cancelled() => break Ok(()),
            _ = writer_gone.cancelled() => break Err("writing to the proxy failed".into()),
            m = tokio::time::timeout(Duration::from_secs(60), stream.next()) => m,
        };
        let text = match next {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) => break Ok(()),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => break Err(e.to_string()),
            Err(_) => break Err("read timeout".into()),
        };
        let Ok(msg) = serde_json::from_str::<ServerMessage>(text.as_str()) else {
            tracing::warn!(url = c.url, "undecodable message from proxy");
            continue;
        };
        if msg.id.as_deref() == Some("hello") {
            if let Some(h) = &msg.hello {
                let mut s = c.shared.lock();
                s.session_id = Some(h.sessionid.clone());
                s.status.connected = true;
                s.status.shutdown_scheduled = false;
                s.status.country = h.server.as_ref().and_then(|i| i.country.clone());
                s.status.version = h.server.as_ref().map(|i| i.version.clone());
                s.status.features = h
                    .server
                    .as_ref()
                    .map(|i| i.features.clone())
                    .unwrap_or_default();
                s.status.connected_since = Some(std::time::SystemTime::now());
                s.out = Some(tx.clone());
                super::backend_metrics::connected(&c.url, s.status.country.as_deref());
                drop(s);
                c.connected.send_replace(true);
                tracing::info!(url = c.url, "connected to proxy");
            } else if msg
                .error
                .as_ref()
                .is_some_and(|e| e.code.as_str() == "no_such_session")
            {
                // The proxy forgot us: our clients there are gone.
                c.shared.lock().session_id = None;
                c.drop_all_clients();
                send_hello(None)?;
            } else {
                break Err(format!("hello refused: {:?}", msg.error.map(|e| e.code)));
            }
            continue;
        }
        c.dispatch(msg);
    };
    tx.close(CLOSE_NORMAL, "");
    drop(tx);
    if tokio::time::timeout(Duration::from_secs(1), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    result
}

#[cfg(test)]
mod tests {
    use super::url_port;

    #[test]
    fn ports() {
        assert_eq!(url_port("ws://proxy.example:8080/proxy"), Some(8080));
        assert_eq!(url_port("wss://proxy.example/proxy"), Some(443));
        assert_eq!(url_port("ws://[::1]/proxy"), Some(80));
        assert_eq!(url_port("ws://[::1]:9/proxy"), Some(9));
        assert_eq!(url_port("http://x/"), None);
    }
}
