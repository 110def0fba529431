//! The plumbing of one server-side WebSocket connection, the same for a
//! Talk client on `/spreed` and a signaling server on `/proxy`: senders
//! queue into the bounded [`Outbox`]; one [`writer`] task owns the sink;
//! the connection's reader uses [`PingBudget`], [`close_for_error`] and
//! [`linger`].

pub mod outbox;
pub mod ping_budget;
pub mod writer;

use std::time::Duration;

use axum::extract::ws::WebSocket;
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::time::timeout;

pub use outbox::{ConnectionId, OutFrame, Outbox, OutboxReceiver};
pub use ping_budget::{PingBudget, CLOSE_PING_FLOOD};

/// A peer that sends neither data nor pongs for this long is gone.
pub const PONG_WAIT: Duration = Duration::from_secs(60);
/// Ping period: 9/10 of the pong wait.
pub const PING_PERIOD: Duration = Duration::from_secs(54);
/// Maximum time for writing one frame.
pub const WRITE_WAIT: Duration = Duration::from_secs(10);
/// Bytes the WebSocket layer may hold that the socket did not take yet:
/// one large frame (a participants update of a big room) plus the pongs
/// it answers on its own. Beyond that the connection fails instead of
/// growing.
pub const WRITE_BUFFER_LIMIT: usize = 8 * 1024 * 1024;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL: u16 = 1011;
/// RFC 6455 "Service Restart": reconnect (elsewhere).
pub const CLOSE_SERVICE_RESTART: u16 = 1012;

/// Longest wait for a peer to close its side after our close frame.
const LINGER: Duration = Duration::from_secs(1);
/// Frames or errors read while lingering before giving up early.
const LINGER_FRAMES: usize = 64;

/// Reads what the peer still sends after our close frame, until it
/// closes its side (at most [`LINGER`], [`LINGER_FRAMES`] frames):
/// closing a socket with unread data resets it, and the peer would never
/// see the close frame.
pub async fn linger(stream: &mut SplitStream<WebSocket>) {
    let drain = async {
        for _ in 0..LINGER_FRAMES {
            // Reading also writes tungstenite's queued answer to a close.
            if stream.next().await.is_none() {
                return;
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

/// The close code RFC 6455 names for a read error, if the connection is
/// still there to carry a close frame: 1009 for an oversized message, 1007
/// for text that is not UTF-8, 1002 for any other protocol violation.
pub fn close_for_error(e: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<WsError>() {
            return match t {
                WsError::Capacity(_) => Some((CLOSE_TOO_BIG, "message too big")),
                WsError::Utf8(_) => Some((CLOSE_INVALID_DATA, "invalid UTF-8")),
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
                WsError::Protocol(_) => Some((CLOSE_PROTOCOL, "protocol error")),
                _ => None,
            };
        }
        source = s.source();
    }
    None
}
