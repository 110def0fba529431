//! One client WebSocket. [`connection`] owns the socket: it reads frames,
//! enforces the size limit and deadlines, and hands decoded messages to the
//! hub. [`outbox`] is the bounded queue every other part of the server uses
//! to send to that client; only the connection's writer task touches the
//! socket's sink. No hub logic lives here.

pub mod connection;
pub mod janus_events;
pub mod outbox;
pub mod ping_budget;

pub use outbox::{ConnectionId, Outbox};

use std::net::IpAddr;

/// What the hub knows about the connection a message came from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub user_agent: String,
}
