//! The HTTP API next to `/spreed` (facts 3): `GET /api/v1/welcome`,
//! Nextcloud's notifications at `POST /api/v1/room/{roomid}`, and the
//! operator endpoints `/api/v1/stats`, `/api/v1/serverinfo`, `/metrics`.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use proto::checksum::{self, HEADER_BACKEND, HEADER_CHECKSUM, HEADER_RANDOM};
use proto::ids::RoomId;
use proto::talk::notify::RoomNotification;

use crate::backend::Backend;
use crate::hub::notify::NotifyError;
use crate::server::{AppState, PeerAddr};
use crate::throttle::Action;
use transport::realip;

/// Largest notification body Nextcloud may send. The reference stops at
/// 256 KiB, which a `participants` update of a room with 2000 participants
/// exceeds; we accept up to 4 MiB (docs/deviations.md).
pub const MAX_BODY: u64 = 4 * 1024 * 1024;

/// A plain-text error like the reference's `http.Error`.
fn text_error(status: StatusCode, message: &str) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        format!("{message}\n"),
    )
        .into_response()
}

fn json_response(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "application/json; charset=utf-8"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        body,
    )
        .into_response()
}

pub async fn welcome(State(app): State<AppState>) -> Response {
    let body = format!(
        "{}\n",
        serde_json::json!({"nextcloud-spreed-signaling": "Welcome", "version": proto::SERVER_VERSION})
    );
    let mut resp = json_response(StatusCode::OK, body);
    app.add_headers(&mut resp);
    resp
}

/// `POST /api/v1/room/{roomid}` with the validation order of facts 3.3.
pub async fn room(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    Path(room_id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let mut resp = room_inner(&app, peer, room_id, &headers, body).await;
    app.add_headers(&mut resp);
    resp
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

async fn room_inner(
    app: &AppState,
    peer: PeerAddr,
    room_id: String,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let length = match headers.get(header::CONTENT_LENGTH) {
        Some(v) => match v.to_str().ok().and_then(|s| s.parse::<u64>().ok()) {
            Some(n) => n,
            None => return text_error(StatusCode::LENGTH_REQUIRED, "Length required"),
        },
        None if headers.contains_key(header::TRANSFER_ENCODING) => {
            return text_error(StatusCode::LENGTH_REQUIRED, "Length required")
        }
        None => 0,
    };
    if length > MAX_BODY {
        return text_error(StatusCode::PAYLOAD_TOO_LARGE, "Request entity too large");
    }
    if !header(headers, "content-type").starts_with("application/json") {
        return text_error(StatusCode::BAD_REQUEST, "Unsupported Content-Type");
    }
    let random = header(headers, HEADER_RANDOM).to_owned();
    let sum = header(headers, HEADER_CHECKSUM).to_owned();
    if random.is_empty() || sum.is_empty() {
        return text_error(StatusCode::FORBIDDEN, "Authentication check failed");
    }
    let limited = http_body_util::Limited::new(body, MAX_BODY as usize);
    let Ok(collected) = limited.collect().await else {
        return text_error(StatusCode::BAD_REQUEST, "Could not read body");
    };
    let body = collected.to_bytes();
    let ip = app.hub.policy().client_ip(peer.0, headers);
    let hub = &app.hub;
    let Ok(attempt) = hub.inner.throttler.check(ip, Action::BackendRoomAuth) else {
        return text_error(StatusCode::TOO_MANY_REQUESTS, "Too many requests");
    };
    let backends = hub.backends();
    let signed_by = |b: &Arc<Backend>| {
        checksum::verify_backend_checksum(b.secret.expose().as_bytes(), &random, &body, &sum)
    };
    // With the header: that backend. Without (legacy Talk): the compat
    // backend, else whichever configured secret matches.
    let backend: Option<Arc<Backend>> =
        match headers.get(HEADER_BACKEND).and_then(|v| v.to_str().ok()) {
            Some(url) => proto::client::canonicalize_url(url)
                .ok()
                .and_then(|u| backends.lookup(&u))
                .filter(signed_by),
            None => match backends.compat() {
                Some(c) => Some(c.clone()).filter(signed_by),
                None => backends.all().iter().find(|b| signed_by(b)).cloned(),
            },
        };
    let Some(backend) = backend else {
        tracing::info!(%ip, "backend notification with unknown backend or bad checksum");
        attempt.failed().await;
        return text_error(StatusCode::FORBIDDEN, "Authentication check failed");
    };
    let Ok(notification) = serde_json::from_slice::<RoomNotification>(&body) else {
        return text_error(StatusCode::BAD_REQUEST, "Could not read body");
    };
    let room = RoomId(room_id);
    if notification.kind == "dialout" {
        let backend_header = headers
            .get(HEADER_BACKEND)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (status, body) = hub
            .dialout(&backend, &room, notification, backend_header)
            .await;
        return json_response(status, body);
    }
    match hub.room_notification(&backend, &room, notification) {
        Ok(()) => json_response(StatusCode::OK, "{}".into()),
        Err(e @ NotifyError::UnsupportedType(_)) | Err(e @ NotifyError::MissingPayload(_)) => {
            text_error(StatusCode::BAD_REQUEST, &e.to_string())
        }
    }
}

/// Whether the real client IP may read operator endpoints.
fn stats_allowed(app: &AppState, peer: PeerAddr, headers: &HeaderMap) -> bool {
    let ip = app.hub.policy().client_ip(peer.0, headers);
    realip::in_nets(&ip, &app.stats_allowed)
}

/// Runs `respond` for callers in `[stats] allowed_ips`, answers 403
/// otherwise; both with the server headers.
fn operator_endpoint(
    app: &AppState,
    peer: PeerAddr,
    headers: &HeaderMap,
    respond: impl FnOnce() -> Response,
) -> Response {
    let mut resp = if stats_allowed(app, peer, headers) {
        respond()
    } else {
        text_error(StatusCode::FORBIDDEN, "Authentication check failed")
    };
    app.add_headers(&mut resp);
    resp
}

fn pretty_json(body: &serde_json::Value) -> Response {
    json_response(
        StatusCode::OK,
        serde_json::to_string_pretty(body).unwrap_or_default(),
    )
}

pub async fn stats(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Response {
    operator_endpoint(&app, peer, &headers, || {
        pretty_json(&serde_json::json!({
            "rooms": app.hub.room_count(),
            "sessions": app.hub.session_count(),
            "mcu": app.hub.sfu().map(|s| s.stats()),
        }))
    })
}

pub async fn serverinfo(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Response {
    operator_endpoint(&app, peer, &headers, || {
        pretty_json(&serde_json::json!({
            "version": proto::SERVER_VERSION,
            "features": app.hub.features().client,
            "dialout": app.hub.dialout_info(),
            "nats": app.hub.inner.bus.describe(),
            "grpc": app.hub.inner.peers.describe(),
            "sfu": app.hub.sfu().map(|s| s.server_info()),
            "etcd": app.hub.inner.etcd.snapshot().map(|s| serde_json::json!({
                "endpoints": s.endpoints,
                "connected": s.connected,
            })),
        }))
    })
}

/// `GET /turn/credentials?service=turn&username=..&key=..` (facts: the
/// reference's TURN REST answer).
pub async fn turn_credentials(
    State(app): State<AppState>,
    axum::extract::Query(q): axum::extract::Query<std::collections::HashMap<String, String>>,
) -> Response {
    let key = q
        .get("key")
        .filter(|k| !k.is_empty())
        .or_else(|| q.get("api"));
    let mut resp = match crate::turn::answer(
        &app.turn,
        q.get("service").map(String::as_str),
        q.get("username").map(String::as_str),
        key.map(String::as_str),
    ) {
        Ok(c) => json_response(
            StatusCode::OK,
            format!("{}\n", serde_json::to_string(&c).unwrap_or_default()),
        ),
        Err(r) => (
            StatusCode::from_u16(r.status()).unwrap_or(StatusCode::BAD_REQUEST),
            r.text(),
        )
            .into_response(),
    };
    app.add_headers(&mut resp);
    resp
}

/// Liveness: the process answers HTTP.
pub async fn healthz(State(app): State<AppState>) -> Response {
    let mut resp = transport::health::liveness(app.hub.is_draining());
    app.add_headers(&mut resp);
    resp
}

/// Readiness: NATS, etcd, backends and the SFU usable, not draining.
pub async fn readyz(State(app): State<AppState>) -> Response {
    let mut resp = app.hub.readiness().into_response();
    app.add_headers(&mut resp);
    resp
}

pub async fn metrics(
    State(app): State<AppState>,
    ConnectInfo(peer): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
) -> Response {
    operator_endpoint(&app, peer, &headers, || {
        (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::render(),
        )
            .into_response()
    })
}
