//! The layer the signaling server and the proxy share below their
//! protocols.
//!
//! - [`health`]: the `/healthz` and `/readyz` answers.
//! - [`listener`]: TCP listeners whose sockets have TCP_NODELAY.
//! - [`http_serve`]: HTTP/1.1 serving with read and write deadlines.
//! - [`realip`]: the client's address behind trusted proxies.
//! - [`tls`]: TLS client settings with the system's trust store.
//! - [`ws`]: one WebSocket connection's plumbing: the bounded [`ws::Outbox`]
//!   every sender uses, the one writer task that owns the sink (batching,
//!   pings, write deadline, close frames), the ping budget, close codes,
//!   and lingering after a close so the close frame is not lost.

pub mod health;
pub mod http_serve;
pub mod listener;
pub mod realip;
pub mod tls;
pub mod ws;

use std::net::IpAddr;

/// The peer of an HTTP connection; Unix socket peers count as loopback.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub IpAddr);
