//! The proxy's HTTP side: `/welcome`, `/proxy` (signaling servers, or
//! Janus's event handler with `janus-events`), `/stats`, `/metrics`; and the
//! handling of each proxy protocol message (cluster facts 6.1-6.6).

use std::collections::HashMap;
use std::net::IpAddr;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::StreamExt;
use parking_lot::Mutex;
use proto::error::{ErrorCode, WireError};
use proto::proxy::{
    codes, ByeServer, ClientMessage, CommandClient, CommandServer, EventBandwidth, EventServer,
    HelloServer, PayloadClient, ServerInfo, ServerMessage, FEATURE_REMOTE_STREAMS, PROXY_VERSION,
};
use proto::session_id::{SessionIdCodec, SessionIdData};
use serde_json::{json, Value};
use sfu_bridge::janus::events_endpoint as janus_events;
use sfu_bridge::janus::publisher::JanusPublisher;
use sfu_bridge::janus::JanusSfu;
use sfu_bridge::sfu::{PublisherSettings, Request, Sfu, SfuError, StreamSelection, StreamType};
use tokio_util::sync::CancellationToken;
use transport::ws::writer::Writer;
use transport::ws::{
    Outbox, PingBudget, CLOSE_PING_FLOOD, PONG_WAIT, WRITE_BUFFER_LIMIT, WRITE_WAIT,
};
use transport::PeerAddr;

use crate::config::ProxyConfig;
use crate::metrics::METRICS;
use crate::remote::{RemoteConnections, RemoteIdentity, RemotePublisherController};
use crate::session::{payload, ClientListener, ProxySession};
use crate::tokens::TokenStore;

pub const SERVER_NAME: &str = "nextcloud-spreed-signaling-proxy";

pub struct Proxy {
    pub config: Mutex<ProxyConfig>,
    pub tokens: TokenStore,
    pub sfu: JanusSfu,
    codec: SessionIdCodec,
    sessions: Mutex<HashMap<String, Arc<ProxySession>>>,
    next_sid: AtomicU64,
    pub draining: AtomicBool,
    /// Connections to other proxies for remote streams.
    pub remotes: RemoteConnections,
    /// How we sign in to other proxies; `None` disables remote streams.
    identity: Option<RemoteIdentity>,
    /// Fires when the proxy should exit (drained, or a signal).
    pub shutdown: CancellationToken,
}

#[derive(Clone)]
pub struct AppState(pub Arc<Proxy>);

impl Proxy {
    pub fn new(config: ProxyConfig, tokens: TokenStore, shutdown: CancellationToken) -> Arc<Proxy> {
        let sfu = JanusSfu::start(
            sfu_bridge::janus::JanusConfig {
                url: config.janus_url.clone(),
                timeout: config.timeout,
                max_stream_bitrate: config.max_stream_bitrate,
                max_screen_bitrate: config.max_screen_bitrate,
            },
            shutdown.child_token(),
        );
        // Random keys per process: sessions cannot survive a restart.
        let hash: [u8; 64] = std::array::from_fn(|_| rand::random());
        let block: [u8; 32] = rand::random();
        let codec = SessionIdCodec::new(&hash, Some(&block))
            .unwrap_or_else(|e| unreachable!("fixed-size session keys: {e}"));
        let identity = remote_identity(&config);
        Arc::new(Proxy {
            config: Mutex::new(config),
            tokens,
            sfu,
            codec,
            sessions: Mutex::default(),
            next_sid: AtomicU64::new(1),
            draining: AtomicBool::new(false),
            remotes: RemoteConnections::default(),
            identity,
            shutdown,
        })
    }

    /// A publisher of this proxy by its client id.
    fn janus_publisher(&self, client_id: &str) -> Option<Arc<JanusPublisher>> {
        self.sfu
            .publisher(client_id, StreamType::Video)
            .or_else(|| self.sfu.publisher(client_id, StreamType::Screen))
    }

    /// A publisher here is gone: the proxies it was forwarded to learn it
    /// (`publisher-closed` with its id, facts 6.7).
    pub fn publisher_deleted(&self, client_id: &str) {
        let sessions: Vec<_> = self.sessions.lock().values().cloned().collect();
        for s in sessions {
            if s.forget_remote(client_id) {
                s.event("publisher-closed", client_id);
            }
        }
    }

    /// A publisher on another proxy is gone: our subscribers of it close.
    pub fn close_subscribers_of(&self, publisher: &str) {
        let sessions: Vec<_> = self.sessions.lock().values().cloned().collect();
        let subscribers: Vec<_> = sessions
            .iter()
            .flat_map(|s| s.subscribers_of(publisher))
            .collect();
        tokio::spawn(async move {
            for s in subscribers {
                s.close().await;
            }
        });
    }

    /// Ends a session: its clients close and the forwardings it asked for
    /// stop. Returns its connection, if attached.
    fn end_session(&self, s: &ProxySession) -> Option<Outbox> {
        let remote = s.take_remote();
        let publishers: Vec<_> = remote
            .into_iter()
            .filter_map(|(id, targets)| Some((self.janus_publisher(&id)?, targets)))
            .collect();
        let requester = s.id.clone();
        tokio::spawn(async move {
            for (p, targets) in publishers {
                for (host, port, rtcp_port) in targets {
                    if let Err(e) = p
                        .unpublish_remotely(&requester, &host, port, rtcp_port)
                        .await
                    {
                        tracing::debug!(error = %e, host, "could not stop a remote forwarding");
                    }
                }
            }
        });
        METRICS.sessions.dec();
        s.close()
    }

    fn client_count(&self) -> usize {
        self.sessions
            .lock()
            .values()
            .map(|s| s.client_count())
            .sum()
    }

    /// `update-load` (facts 6.5): load and bandwidth against the limits.
    fn load_event(&self) -> EventServer {
        let sessions: Vec<_> = self.sessions.lock().values().cloned().collect();
        let (mut incoming, mut outgoing, mut clients) = (0u64, 0u64, 0u64);
        for s in &sessions {
            let (i, o) = s.bitrates();
            incoming += i;
            outgoing += o;
            clients += s.client_count() as u64;
        }
        let load = clients.min((incoming + outgoing) / 1024);
        METRICS.load.set(load as i64);
        let (max_in, max_out) = {
            let c = self.config.lock();
            (c.incoming_limit, c.outgoing_limit)
        };
        let pct = |v: u64, max: u64| (max > 0).then(|| v as f64 / max as f64 * 100.0);
        let bandwidth =
            (max_in > 0 || max_out > 0 || incoming > 0 || outgoing > 0).then(|| EventBandwidth {
                incoming: pct(incoming, max_in),
                outgoing: pct(outgoing, max_out),
                received: Some(incoming),
                sent: Some(outgoing),
            });
        EventServer {
            kind: "update-load".into(),
            load: Some(load),
            bandwidth,
            ..Default::default()
        }
    }

    /// Sends `update-load` to every session when it changed; runs until
    /// shutdown.
    pub async fn report_load(self: Arc<Self>) {
        let mut last: Option<(Option<u64>, Option<u64>, Option<u64>)> = None;
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
            if self.draining.load(Ordering::Relaxed) {
                continue;
            }
            let event = self.load_event();
            let key = (
                event.load,
                event.bandwidth.as_ref().and_then(|b| b.received),
                event.bandwidth.as_ref().and_then(|b| b.sent),
            );
            if last == Some(key) {
                continue;
            }
            last = Some(key);
            let msg = event_message(event);
            for s in self.sessions.lock().values() {
                s.send(&msg);
            }
        }
    }

    /// Removes sessions unused for a minute; runs until shutdown.
    pub async fn expire_sessions(self: Arc<Self>) {
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            let now = tokio::time::Instant::now();
            let expired: Vec<_> = {
                let mut map = self.sessions.lock();
                let ids: Vec<_> = map
                    .iter()
                    .filter(|(_, s)| s.expired(now))
                    .map(|(id, _)| id.clone())
                    .collect();
                ids.into_iter().filter_map(|id| map.remove(&id)).collect()
            };
            for s in expired {
                tracing::info!(session = s.id, "proxy session expired");
                if let Some(o) = self.end_session(&s) {
                    send_bye(&o, "session_expired");
                }
            }
            self.exit_if_drained();
        }
    }

    /// SIGUSR1: no new publishers; exit once no client is left.
    pub fn drain(&self) {
        if self.draining.swap(true, Ordering::AcqRel) {
            return;
        }
        tracing::info!("shutdown scheduled: draining");
        let msg = event_message(EventServer {
            kind: "shutdown-scheduled".into(),
            ..Default::default()
        });
        for s in self.sessions.lock().values() {
            s.send(&msg);
        }
        self.exit_if_drained();
    }

    fn exit_if_drained(&self) {
        if self.draining.load(Ordering::Acquire) && self.client_count() == 0 {
            tracing::info!("drained: no clients left");
            self.shutdown.cancel();
        }
    }
}

fn event_message(event: EventServer) -> ServerMessage {
    ServerMessage {
        kind: "event".into(),
        event: Some(event),
        ..Default::default()
    }
}

fn error_message(id: Option<String>, code: ErrorCode, message: &str) -> ServerMessage {
    let mut e = WireError::new(code);
    if !message.is_empty() {
        e.message = message.to_owned();
    }
    ServerMessage {
        id,
        kind: "error".into(),
        error: Some(e),
        ..Default::default()
    }
}

fn other_error(id: Option<String>, code: &str, message: &str) -> ServerMessage {
    error_message(id, ErrorCode::Other(code.to_owned()), message)
}

fn send_bye(outbox: &Outbox, reason: &str) {
    let msg = ServerMessage {
        kind: "bye".into(),
        bye: Some(ByeServer {
            reason: reason.into(),
        }),
        ..Default::default()
    };
    if let Ok(text) = serde_json::to_string(&msg) {
        outbox.send_text(Arc::from(text));
    }
    outbox.close(1000, "");
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/welcome", get(welcome))
        .route("/proxy", get(proxy_ws))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .layer(axum::middleware::map_response(add_headers))
        .with_state(state)
}

async fn add_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&format!("{SERVER_NAME}/{}", proto::SERVER_VERSION)) {
        h.insert(header::SERVER, v);
    }
    h.insert(
        "X-Spreed-Signaling-Features",
        HeaderValue::from_static(FEATURE_REMOTE_STREAMS),
    );
    resp
}

async fn welcome() -> Response {
    let body = json!({SERVER_NAME: "Welcome", "version": proto::SERVER_VERSION});
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response()
}

fn stats_allowed(app: &AppState, peer: IpAddr) -> bool {
    transport::realip::in_nets(&peer, &app.0.config.lock().stats_allowed)
}

async fn stats(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
) -> Response {
    if !stats_allowed(&app, peer) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let p = &app.0;
    let body = json!({
        "sessions": p.sessions.lock().len(),
        "load": p.load_event().load,
        "mcu": p.sfu.stats(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
) -> Response {
    if !stats_allowed(&app, peer) {
        return StatusCode::FORBIDDEN.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        crate::metrics::render(),
    )
        .into_response()
}

async fn proxy_ws(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if janus_events::requested(&headers) {
        let events = app.0.sfu.events().ok_or("mcu does not support events");
        return ws
            .protocols([janus_events::SUBPROTOCOL])
            .max_message_size(janus_events::MAX_FRAME)
            .on_upgrade(move |socket| janus_events::serve(socket, events, peer))
            .into_response();
    }
    let proxy = app.0.clone();
    ws.max_message_size(64 * 1024)
        // tungstenite's default 128 KiB read buffer would be most of an
        // idle connection's memory; proxy frames are small.
        .read_buffer_size(4 * 1024)
        .max_write_buffer_size(WRITE_BUFFER_LIMIT)
        .on_upgrade(move |socket| connection(socket, proxy))
        .into_response()
}

/// A signaling server must say hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// A signaling server that sends nothing (not even pongs) for this long is
/// gone; the writer pings it often enough.
const READ_TIMEOUT: Duration = PONG_WAIT;

/// One signaling server connection.
async fn connection(socket: WebSocket, proxy: Arc<Proxy>) {
    let (sink, mut stream) = socket.split();
    let token = CancellationToken::new();
    let (outbox, rx) = Outbox::new(token.clone(), METRICS.outbox_overflow_total.clone());
    let writer = tokio::spawn(Writer::default().run(sink, rx));
    let mut session: Option<Arc<ProxySession>> = None;
    let mut linger = false;
    let hello_deadline = tokio::time::Instant::now() + HELLO_TIMEOUT;
    let mut pings = PingBudget::default();
    loop {
        // Until the hello, the read deadline is the hello timeout.
        let deadline = if session.is_none() {
            hello_deadline.min(tokio::time::Instant::now() + READ_TIMEOUT)
        } else {
            tokio::time::Instant::now() + READ_TIMEOUT
        };
        let msg = tokio::select! {
            _ = token.cancelled() => break,
            _ = proxy.shutdown.cancelled() => break,
            m = tokio::time::timeout_at(deadline, stream.next()) => m,
        };
        if msg.is_err() && session.is_none() {
            tracing::debug!("no hello in time");
            send_bye(&outbox, "hello_timeout");
            outbox.close(1000, "hello timeout");
            linger = true;
            break;
        }
        let text = match msg {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_)))) if !pings.take(tokio::time::Instant::now()) => {
                tracing::debug!("ping flood");
                let (code, reason) = CLOSE_PING_FLOOD;
                outbox.abort(code, reason);
                break;
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                if let Some(s) = &session {
                    s.touch();
                }
                continue;
            }
            Ok(Some(Ok(Message::Binary(_)))) => {
                send(&outbox, &error_message(None, ErrorCode::InvalidFormat, ""));
                continue;
            }
            _ => break,
        };
        if let Some(s) = &session {
            s.touch();
        }
        let msg = match ClientMessage::decode(text.as_bytes()) {
            Ok(m) => m,
            Err((id, e)) => {
                send(
                    &outbox,
                    &ServerMessage {
                        id,
                        kind: "error".into(),
                        error: Some(e),
                        ..Default::default()
                    },
                );
                continue;
            }
        };
        if let Some(c) = &msg.command {
            METRICS
                .command_messages_total
                .with_label_values(&[c.kind.as_str()])
                .inc();
        }
        match (&session, msg.kind.as_str()) {
            (None, "hello") => {
                session = hello(&proxy, &outbox, &msg).await;
            }
            (None, _) => send(
                &outbox,
                &error_message(msg.id, ErrorCode::HelloExpected, ""),
            ),
            (Some(_), "hello") => {}
            (Some(s), "bye") => {
                proxy.sessions.lock().remove(&s.id);
                proxy.end_session(s);
                send_bye(&outbox, "session_closed");
                proxy.exit_if_drained();
                session = None;
                break;
            }
            (Some(s), "command") => {
                let (proxy, s, outbox) = (proxy.clone(), s.clone(), outbox.clone());
                tokio::spawn(async move {
                    let reply =
                        command(&proxy, &s, msg.id.clone(), msg.command.unwrap_or_default()).await;
                    send(&outbox, &reply);
                    proxy.exit_if_drained();
                });
            }
            (Some(s), "payload") => {
                let (s, outbox) = (s.clone(), outbox.clone());
                tokio::spawn(async move {
                    let reply =
                        payload_message(&s, msg.id.clone(), msg.payload.unwrap_or_default()).await;
                    send(&outbox, &reply);
                });
            }
            (Some(_), _) => send(
                &outbox,
                &other_error(msg.id, codes::BAD_REQUEST, "unsupported message type"),
            ),
        }
    }
    if let Some(s) = session {
        s.detach(outbox.id());
    }
    drop(outbox);
    let flush = tokio::time::timeout(WRITE_WAIT, writer);
    if linger {
        // Unread frames in the socket would turn our close into a reset.
        let _ = tokio::join!(flush, transport::ws::linger(&mut stream));
    } else {
        let _ = flush.await;
    }
}

fn send(outbox: &Outbox, msg: &ServerMessage) {
    if let Ok(text) = serde_json::to_string(msg) {
        outbox.send_text(Arc::from(text));
    }
}

/// Microseconds since the epoch, as session `created` stamps.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

pub(crate) fn now_secs() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// `hello`: a new session with a token, or a resumed one.
async fn hello(
    proxy: &Arc<Proxy>,
    outbox: &Outbox,
    msg: &ClientMessage,
) -> Option<Arc<ProxySession>> {
    let id = msg.id.clone();
    let hello = msg.hello.as_ref()?;
    let session = if !hello.resumeid.is_empty() {
        let found = proxy.sessions.lock().get(&hello.resumeid).cloned();
        let Some(s) = found else {
            send(outbox, &error_message(id, ErrorCode::NoSuchSession, ""));
            return None;
        };
        if let Some(old) = s.attach(outbox.clone()) {
            send_bye(&old, "session_resumed");
        }
        METRICS.sessions_resumed_total.inc();
        s
    } else {
        if let Err(e) = verify_token(proxy, &hello.token).await {
            tracing::info!(error = %e, "proxy hello refused");
            send(outbox, &error_message(id, e.code(), ""));
            return None;
        }
        let sid = proxy.next_sid.fetch_add(1, Ordering::Relaxed);
        let data = SessionIdData {
            sid,
            created: now_us(),
            backend_id: String::new(),
        };
        let s = ProxySession::new(proxy.codec.encode_public(&data).0, sid);
        s.attach(outbox.clone());
        proxy.sessions.lock().insert(s.id.clone(), s.clone());
        METRICS.sessions.inc();
        METRICS.sessions_total.inc();
        s
    };
    let country = proxy.config.lock().country.clone();
    send(
        outbox,
        &ServerMessage {
            id,
            kind: "hello".into(),
            hello: Some(HelloServer {
                version: PROXY_VERSION.into(),
                sessionid: session.id.clone(),
                server: Some(ServerInfo {
                    version: proto::SERVER_VERSION.into(),
                    features: vec![FEATURE_REMOTE_STREAMS.into()],
                    country,
                }),
            }),
            ..Default::default()
        },
    );
    if proxy.draining.load(Ordering::Acquire) {
        session.send(&event_message(EventServer {
            kind: "shutdown-scheduled".into(),
            ..Default::default()
        }));
    } else {
        session.send(&event_message(proxy.load_event()));
    }
    Some(session)
}

/// Checks a token of a signaling server or proxy against `[tokens]`;
/// refusals are counted.
async fn verify_token(
    proxy: &Proxy,
    token: &str,
) -> Result<proto::proxy_token::ProxyClaims, proto::proxy_token::ProxyTokenError> {
    let key = match proto::proxy_token::issuer(token) {
        Some(iss) => proxy.tokens.get(&iss).await,
        None => None,
    };
    proto::proxy_token::verify(token, |_| key, now_secs()).inspect_err(|e| {
        METRICS
            .token_errors_total
            .with_label_values(&[e.reason()])
            .inc();
    })
}

/// `[app] token_id`, `token_key` and the hostname, when remote streams
/// are possible.
fn remote_identity(config: &ProxyConfig) -> Option<RemoteIdentity> {
    let (Some(token_id), Some(key_file)) = (&config.token_id, &config.token_key) else {
        tracing::info!("no [app] token_id/token_key: remote streams are disabled");
        return None;
    };
    let token_key = match proto::proxy_token::read_private_key(key_file) {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(file = %key_file.display(), error = %e, "[app] token_key unusable: remote streams are disabled");
            return None;
        }
    };
    let Some(hostname) = config
        .hostname
        .clone()
        .or_else(crate::localip::first_non_loopback)
    else {
        tracing::warn!("could not determine [app] hostname: remote streams are disabled");
        return None;
    };
    let tls = match sfu_bridge::tls::client_config(config.skip_verify) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = %e, "no TLS for other proxies: remote streams are disabled");
            return None;
        }
    };
    if config.skip_verify {
        tracing::warn!("skipverify: certificates of other proxies are not checked");
    }
    tracing::info!(token_id, hostname, "remote streams enabled");
    Some(RemoteIdentity {
        token_id: token_id.clone(),
        token_key,
        hostname,
        tls,
    })
}

fn new_client_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn command_reply(id: Option<String>, command: CommandServer) -> ServerMessage {
    ServerMessage {
        id,
        kind: "command".into(),
        command: Some(command),
        ..Default::default()
    }
}

fn sfu_failure(id: Option<String>, e: SfuError, what: &str) -> ServerMessage {
    match e {
        SfuError::RemoteUnsupported => remote_unsupported(id),
        SfuError::NoPublisher(_) | SfuError::Janus(sfu_bridge::janus::JanusError::Timeout) => {
            other_error(id, codes::TIMEOUT, &format!("Timeout creating {what}."))
        }
        other => error_message(id, ErrorCode::InternalError, &other.to_string()),
    }
}

fn remote_unsupported(id: Option<String>) -> ServerMessage {
    other_error(
        id,
        codes::UNSUPPORTED_SUBSCRIBER,
        "Remote subscribers are not supported.",
    )
}

/// A fresh client id and the listener that reports to `session` for it.
fn new_client(proxy: &Arc<Proxy>, session: &Arc<ProxySession>) -> (String, Arc<ClientListener>) {
    let client_id = new_client_id();
    let listener = Arc::new(ClientListener {
        session: Arc::downgrade(session),
        proxy: Arc::downgrade(proxy),
        client_id: client_id.clone(),
    });
    (client_id, listener)
}

/// Adds a created publisher or subscriber to the session and builds the
/// reply: its id, and its bitrate (publishers) or sid (subscribers).
async fn adopt(
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    created: Result<Arc<dyn sfu_bridge::sfu::Client>, SfuError>,
    what: &str,
) -> ServerMessage {
    let client = match created {
        Ok(c) => c,
        Err(e) => return sfu_failure(id, e, what),
    };
    if !session.add(client_id.clone(), client.clone()) {
        client.close().await;
        return error_message(id, ErrorCode::NoSuchSession, "");
    }
    let mut reply = CommandServer {
        id: client_id,
        ..Default::default()
    };
    if client.client_ref().is_publisher {
        reply.bitrate = Some(client.max_bitrate());
    } else {
        reply.sid = client.sid();
    }
    command_reply(id, reply)
}

async fn command(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    c: CommandClient,
) -> ServerMessage {
    match c.kind.as_str() {
        "create-publisher" => {
            if proxy.draining.load(Ordering::Acquire) {
                return other_error(
                    id,
                    codes::SHUTDOWN_SCHEDULED,
                    "The server is scheduled to shutdown.",
                );
            }
            let Ok(stream) = StreamType::parse(&c.stream_type) else {
                return error_message(id, ErrorCode::InvalidFormat, "unsupported stream type");
            };
            let s = c.publisher_settings.clone().unwrap_or_default();
            let settings = PublisherSettings {
                country: None,
                bitrate: s.bitrate.or(c.bitrate).unwrap_or(0),
                media_types: s.mediatypes.or(c.mediatypes).unwrap_or(0),
                audio_codec: s.audiocodec,
                video_codec: s.videocodec,
                vp9_profile: s.vp9_profile,
                h264_profile: s.h264_profile,
            };
            let (client_id, listener) = new_client(proxy, session);
            let created = proxy
                .sfu
                .new_publisher(listener, &client_id, &c.sid, stream, settings)
                .await;
            adopt(session, id, client_id, created, "publisher").await
        }
        "create-subscriber" => {
            let Ok(stream) = StreamType::parse(&c.stream_type) else {
                return error_message(id, ErrorCode::InvalidFormat, "unsupported stream type");
            };
            if !c.remote_url.is_empty() {
                return remote_subscriber(proxy, session, id, c, stream).await;
            }
            let (client_id, listener) = new_client(proxy, session);
            let created = proxy
                .sfu
                .new_subscriber(listener, &c.publisher_id, stream, None)
                .await;
            adopt(session, id, client_id, created, "subscriber").await
        }
        "get-publisher-streams" => {
            let Some(p) = proxy.janus_publisher(&c.client_id) else {
                return unknown_client(id, &c.client_id);
            };
            let timeout = proxy.config.lock().timeout;
            match p.streams(timeout).await {
                Ok(streams) => command_reply(
                    id,
                    CommandServer {
                        id: c.client_id,
                        streams: Some(streams),
                        ..Default::default()
                    },
                ),
                Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
            }
        }
        "publish-remote" | "unpublish-remote" => {
            let Some(p) = proxy.janus_publisher(&c.client_id) else {
                return unknown_client(id, &c.client_id);
            };
            let target = (
                c.hostname.clone(),
                c.port.unwrap_or_default(),
                c.rtcp_port.unwrap_or_default(),
            );
            let (host, port, rtcp_port) = (&target.0, target.1, target.2);
            let result = if c.kind == "publish-remote" {
                let r = p.publish_remotely(&session.id, host, port, rtcp_port).await;
                if r.is_ok() {
                    session.add_remote(&c.client_id, target.clone());
                }
                r
            } else {
                session.remove_remote(&c.client_id, &target);
                p.unpublish_remotely(&session.id, host, port, rtcp_port)
                    .await
            };
            match result {
                Ok(()) => command_reply(
                    id,
                    CommandServer {
                        id: c.client_id,
                        ..Default::default()
                    },
                ),
                Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
            }
        }
        "delete-publisher" | "delete-subscriber" => {
            let publisher = c.kind == "delete-publisher";
            let client = if publisher {
                session.remove_publisher(&c.client_id)
            } else {
                session.remove_subscriber(&c.client_id)
            };
            let Some(client) = client else {
                return unknown_client(id, &c.client_id);
            };
            client.close().await;
            command_reply(
                id,
                CommandServer {
                    id: c.client_id,
                    ..Default::default()
                },
            )
        }
        _ => other_error(
            id,
            codes::BAD_REQUEST,
            &format!("Unsupported command {}", c.kind),
        ),
    }
}

fn unknown_client(id: Option<String>, client_id: &str) -> ServerMessage {
    other_error(
        id,
        codes::UNKNOWN_CLIENT,
        &format!("Unknown client {client_id}"),
    )
}

/// `create-subscriber` for a publisher on the proxy at `remoteUrl`
/// (facts 6.7): allowed by a token of a trusted signaling server whose
/// subject is that publisher.
async fn remote_subscriber(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    c: CommandClient,
    stream: StreamType,
) -> ServerMessage {
    let Some(identity) = proxy.identity.as_ref() else {
        return remote_unsupported(id);
    };
    match verify_token(proxy, &c.remote_token).await {
        Err(e) => return error_message(id, e.code(), ""),
        Ok(claims) if claims.subject != c.publisher_id => {
            METRICS
                .token_errors_total
                .with_label_values(&["auth-failed"])
                .inc();
            return error_message(id, ErrorCode::AuthFailed, "");
        }
        Ok(_) => {}
    }
    tracing::info!(
        publisher = c.publisher_id,
        url = c.remote_url,
        "creating remote subscriber"
    );
    let controller =
        RemotePublisherController::new(proxy, identity, &c.remote_url, &c.publisher_id);
    let (client_id, listener) = new_client(proxy, session);
    let created = proxy
        .sfu
        .new_remote_subscriber(listener, controller, stream)
        .await;
    adopt(session, id, client_id, created, "subscriber").await
}

async fn payload_message(
    session: &Arc<ProxySession>,
    id: Option<String>,
    p: PayloadClient,
) -> ServerMessage {
    let client = session
        .publisher(&p.client_id)
        .or_else(|| session.subscriber(&p.client_id));
    let Some(client) = client else {
        return other_error(
            id,
            codes::UNKNOWN_CLIENT,
            &format!("Unknown client {}", p.client_id),
        );
    };
    METRICS
        .payload_messages_total
        .with_label_values(&[p.kind.as_str()])
        .inc();
    let data = p.payload.clone().unwrap_or(Value::Null);
    let request = match p.kind.as_str() {
        "offer" => Request::Offer(data),
        "answer" => Request::Answer(data),
        "candidate" => Request::Candidate(data.get("candidate").cloned().unwrap_or(data)),
        "endOfCandidates" => {
            let mut reply = payload("endOfCandidates", &p.client_id, Value::Null);
            if let Some(pl) = reply.payload.as_mut() {
                pl.payload = None;
            }
            reply.id = id;
            return reply;
        }
        "requestoffer" | "sendoffer" => Request::RequestOffer(StreamSelection::default()),
        "selectStream" => match StreamSelection::from_payload(&data) {
            Ok(sel) => Request::SelectStream(sel),
            Err(e) => return other_error(id, codes::UNSUPPORTED_PAYLOAD, &e.to_string()),
        },
        other => {
            return other_error(
                id,
                codes::UNSUPPORTED_PAYLOAD,
                &format!("Unsupported payload type {other}"),
            )
        }
    };
    match client.send(request, &p.sid).await {
        Ok(jsep) => {
            let mut reply = payload(&p.kind, &p.client_id, jsep.unwrap_or(Value::Null));
            reply.id = id;
            reply
        }
        Err(e) => error_message(id, ErrorCode::ProcessingFailed, &e.to_string()),
    }
}
