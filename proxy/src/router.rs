//! The proxy's HTTP side: `/welcome`, `/proxy` (signaling servers, or
//! Janus's event handler with `janus-events`), `/stats`, `/metrics`.

use std::net::IpAddr;
use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use proto::proxy::FEATURE_REMOTE_STREAMS;
use serde_json::json;
use sfu_bridge::janus::events_endpoint as janus_events;
use sfu_bridge::sfu::Sfu;
use transport::ws::WRITE_BUFFER_LIMIT;
use transport::PeerAddr;

use crate::state::Proxy;

pub const SERVER_NAME: &str = "nextcloud-spreed-signaling-proxy";

/// Largest frame a signaling server may send.
const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// tungstenite's default 128 KiB read buffer would be most of an idle
/// connection's memory; proxy frames are small.
const READ_BUFFER: usize = 4 * 1024;

pub fn router(proxy: Arc<Proxy>) -> Router {
    Router::new()
        .route("/welcome", get(welcome))
        .route("/proxy", get(proxy_ws))
        .route("/stats", get(stats))
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .layer(axum::middleware::map_response(add_headers))
        .with_state(proxy)
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

fn stats_allowed(proxy: &Proxy, peer: IpAddr) -> bool {
    transport::realip::in_nets(&peer, &proxy.config.lock().stats_allowed)
}

async fn stats(
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
) -> Response {
    if !stats_allowed(&proxy, peer) {
        return StatusCode::FORBIDDEN.into_response();
    }
    let body = json!({
        "sessions": proxy.session_count(),
        "load": proxy.load_event().load,
        "mcu": proxy.sfu.stats(),
    });
    (
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// Liveness: the process answers HTTP.
async fn healthz(State(proxy): State<Arc<Proxy>>) -> Response {
    transport::health::liveness(proxy.is_draining())
}

/// Readiness: Janus connected, token keys readable, not draining.
async fn readyz(State(proxy): State<Arc<Proxy>>) -> Response {
    proxy.readiness().await.into_response()
}

async fn metrics(
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
) -> Response {
    if !stats_allowed(&proxy, peer) {
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
    State(proxy): State<Arc<Proxy>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let tasks = proxy.tasks.clone();
    if janus_events::requested(&headers) {
        let events = proxy.sfu.events().ok_or("mcu does not support events");
        return ws
            .protocols([janus_events::SUBPROTOCOL])
            .max_message_size(janus_events::MAX_FRAME)
            .on_upgrade(move |socket| tasks.track_future(janus_events::serve(socket, events, peer)))
            .into_response();
    }
    ws.max_message_size(MAX_MESSAGE_SIZE)
        .read_buffer_size(READ_BUFFER)
        .max_write_buffer_size(WRITE_BUFFER_LIMIT)
        .on_upgrade(move |socket| tasks.track_future(crate::connection::run(socket, proxy)))
        .into_response()
}
