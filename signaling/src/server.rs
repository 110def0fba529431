//! HTTP side of the server: the axum router (`/spreed`, `/api/v1/*`), the
//! listeners, and connection tracking for graceful shutdown.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::Router;
use ipnet::IpNet;
use tokio::net::{TcpListener, UnixListener};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use sfu_bridge::janus::events_endpoint as janus_events;
use transport::http_serve::{self, HttpTimeouts};
use transport::listener;
use transport::ws::WRITE_BUFFER_LIMIT;
pub use transport::PeerAddr;

use crate::api;
use crate::client::connection::{self, READ_LIMIT};
use crate::client::ClientInfo;
use crate::hub::Hub;

/// Bytes read from a client socket at once.
const READ_BUFFER: usize = 4 * 1024;

/// Shared by every handler.
#[derive(Clone)]
pub struct AppState {
    pub hub: Hub,
    pub stats_allowed: Arc<Vec<IpNet>>,
    pub connections: TaskTracker,
    pub shutdown: CancellationToken,
    /// `[turn]`, for `/turn/credentials`.
    pub turn: Arc<crate::config::TurnConfig>,
    server_header: HeaderValue,
    features_header: HeaderValue,
}

impl AppState {
    pub fn new(
        hub: Hub,
        stats_allowed: Vec<IpNet>,
        turn: crate::config::TurnConfig,
        shutdown: CancellationToken,
    ) -> Self {
        let server = format!("nextcloud-spreed-signaling/{}", proto::SERVER_VERSION);
        let features = hub.features().header_value();
        AppState {
            hub,
            stats_allowed: Arc::new(stats_allowed),
            connections: TaskTracker::new(),
            shutdown,
            turn: Arc::new(turn),
            server_header: HeaderValue::from_str(&server)
                .unwrap_or(HeaderValue::from_static("nextcloud-spreed-signaling")),
            features_header: HeaderValue::from_str(&features)
                .unwrap_or(HeaderValue::from_static("")),
        }
    }

    pub fn add_headers(&self, resp: &mut Response) {
        let h = resp.headers_mut();
        h.insert(header::SERVER, self.server_header.clone());
        h.insert(
            proto::checksum::HEADER_FEATURES,
            self.features_header.clone(),
        );
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/spreed", any(spreed))
        .route("/api/v1/welcome", get(api::welcome))
        .route("/api/v1/room/{roomid}", post(api::room))
        .route("/api/v1/stats", get(api::stats))
        .route("/api/v1/serverinfo", get(api::serverinfo))
        .route("/metrics", get(api::metrics))
        .route("/turn/credentials", get(api::turn_credentials))
        .route("/healthz", get(api::healthz))
        .route("/readyz", get(api::readyz))
        .with_state(state)
}

async fn spreed(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if app.hub.is_draining() && !janus_events::requested(&headers) {
        // New clients go to another node; this one only serves the
        // sessions it has until they leave.
        crate::metrics::METRICS.client_rejected_draining_total.inc();
        let mut resp = (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "The server is scheduled to shutdown.\n",
        )
            .into_response();
        app.add_headers(&mut resp);
        return resp;
    }
    let info = ClientInfo {
        addr: app.hub.policy().client_ip(peer.0, &headers),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("unknown user agent")
            .to_owned(),
    };
    let hub = app.hub.clone();
    let shutdown = app.shutdown.clone();
    let tracker = app.connections.clone();
    if janus_events::requested(&headers) {
        let addr = peer.0;
        let mut resp = ws
            .protocols([janus_events::SUBPROTOCOL])
            .max_message_size(janus_events::MAX_FRAME)
            .max_frame_size(janus_events::MAX_FRAME)
            .max_write_buffer_size(WRITE_BUFFER_LIMIT)
            .on_upgrade(move |socket| {
                tracker.track_future(janus_events_connection(socket, hub, addr))
            })
            .into_response();
        app.add_headers(&mut resp);
        return resp;
    }
    let mut resp = ws
        .max_message_size(READ_LIMIT)
        .max_frame_size(READ_LIMIT)
        // The default 128 KiB read buffer is zeroed on every read, which
        // dominated the profile with many small messages.
        .read_buffer_size(READ_BUFFER)
        // Frames go to the socket as they are fed; batching in the
        // tungstenite buffer measured slower (docs/benchmarks.md).
        .write_buffer_size(0)
        .max_write_buffer_size(WRITE_BUFFER_LIMIT)
        .on_upgrade(move |socket| {
            tracker.track_future(connection::run(socket, hub, info, shutdown))
        })
        .into_response();
    app.add_headers(&mut resp);
    resp
}

/// A bound listener.
pub enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
    /// `[https] listen`: TLS with the certificate of `[https]`, reloaded
    /// when its files change.
    Https(TcpListener, Arc<transport::tls::ReloadingCert>),
}

/// The deadlines of `[http]` and `[https]`.
#[derive(Debug, Clone, Copy)]
pub struct ListenerTimeouts {
    pub http: HttpTimeouts,
    pub https: HttpTimeouts,
}

/// Serves `listeners` until `shutdown`, then closes client connections and
/// waits up to `grace` for them.
pub async fn serve(
    state: AppState,
    listeners: Vec<Listener>,
    timeouts: ListenerTimeouts,
    grace: Duration,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let connections = state.connections.clone();
    let app = router(state);
    let mut servers = tokio::task::JoinSet::new();
    for l in listeners {
        let (app, stop) = (app.clone(), shutdown.clone());
        match l {
            Listener::Tcp(l) => {
                servers.spawn(http_serve::serve(
                    listener::nodelay(l),
                    app,
                    timeouts.http,
                    None,
                    |addr: &std::net::SocketAddr| PeerAddr(addr.ip()),
                    stop,
                ));
            }
            Listener::Unix(l) => {
                servers.spawn(http_serve::serve(
                    l,
                    app,
                    timeouts.http,
                    None,
                    |_: &tokio::net::unix::SocketAddr| PeerAddr(IpAddr::V4(Ipv4Addr::LOCALHOST)),
                    stop,
                ));
            }
            Listener::Https(l, cert) => {
                let acceptor = cert
                    .acceptor()
                    .map_err(|e| std::io::Error::other(e.to_string()))?;
                servers.spawn(cert.clone().watch(stop.clone()));
                servers.spawn(http_serve::serve(
                    listener::nodelay(l),
                    app,
                    timeouts.https,
                    Some(acceptor),
                    |addr: &std::net::SocketAddr| PeerAddr(addr.ip()),
                    stop,
                ));
            }
        }
    }
    while servers.join_next().await.is_some() {}
    // Connection tasks see the same token and say goodbye to their clients.
    connections.close();
    if tokio::time::timeout(grace, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period");
    }
    Ok(())
}

/// A Janus event handler's connection, fed to this server's SFU.
async fn janus_events_connection(socket: axum::extract::ws::WebSocket, hub: Hub, addr: IpAddr) {
    let events = match hub.sfu() {
        None => Err("no mcu configured"),
        Some(sfu) => sfu.events().ok_or("mcu does not support events"),
    };
    janus_events::serve(socket, events, addr).await;
}
