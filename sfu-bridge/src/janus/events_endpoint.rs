//! The endpoint a Janus event handler connects to: `/spreed` on the
//! server and `/proxy` on the proxy, with the `janus-events` subprotocol
//! (cluster facts 5.9). Its frames feed the SFU's media metrics. Only
//! loopback and private addresses may connect.

use std::net::IpAddr;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::SinkExt;

use transport::ws::{PING_PERIOD, PONG_WAIT};

use super::events::EventsHandler;

pub const SUBPROTOCOL: &str = "janus-events";
/// Janus groups events; a frame of many is still far below this.
pub const MAX_FRAME: usize = 16 * 1024 * 1024;

fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private() || v4.is_link_local(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_private(IpAddr::V4(v4));
            }
            v6.is_loopback() || (v6.segments()[0] & 0xfe00) == 0xfc00
        }
    }
}

async fn refuse(mut socket: WebSocket, code: u16, reason: &str) {
    tracing::warn!(reason, "janus-events connection refused");
    let frame = Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    }));
    let _ = tokio::time::timeout(Duration::from_secs(1), socket.send(frame)).await;
}

/// Whether an upgrade request asks for the `janus-events` subprotocol.
pub fn requested(headers: &axum::http::HeaderMap) -> bool {
    headers
        .get_all(axum::http::header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// Serves an events connection; `events` is where frames go, or why the
/// connection is refused (close 1011).
pub async fn serve(
    mut socket: WebSocket,
    events: Result<std::sync::Arc<EventsHandler>, &'static str>,
    addr: IpAddr,
) {
    let events = match events {
        Ok(e) => e,
        Err(reason) => return refuse(socket, 1011, reason).await,
    };
    if !is_private(addr) {
        return refuse(
            socket,
            1008,
            "only loopback and private connections allowed",
        )
        .await;
    }
    tracing::info!(%addr, "janus events handler connected");
    let mut ping = tokio::time::interval(PING_PERIOD);
    let mut deadline = tokio::time::Instant::now() + PONG_WAIT;
    loop {
        let msg = tokio::select! {
            _ = tokio::time::sleep_until(deadline) => break,
            _ = ping.tick() => {
                if socket.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
                continue;
            }
            m = socket.recv() => m,
        };
        deadline = tokio::time::Instant::now() + PONG_WAIT;
        match msg {
            Some(Ok(Message::Text(text))) => {
                if let Err(e) = events.process(text.as_str()) {
                    tracing::warn!(error = %e, "closing janus events connection");
                    break;
                }
            }
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
            Some(Ok(Message::Binary(_))) => {
                tracing::warn!("binary frame on the janus events connection");
                break;
            }
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
        }
    }
    let _ = socket.close().await;
    tracing::info!(%addr, "janus events handler disconnected");
}

#[cfg(test)]
mod tests {
    use super::is_private;

    #[test]
    fn private_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "::1",
            "fd00::1",
            "::ffff:10.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "2001:db8::1"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }
}
