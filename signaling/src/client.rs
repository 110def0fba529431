//! One client WebSocket. [`connection`] owns the socket: it reads frames,
//! enforces the size limit and deadlines, and hands decoded messages to the
//! hub; the writer and the bounded outbox every other part of the server
//! uses to send to that client come from [`transport::ws`]. No hub logic
//! lives here.

pub mod connection;

pub use transport::ws::{ConnectionId, Outbox};

use std::net::IpAddr;

use tokio_util::sync::CancellationToken;

use crate::metrics::METRICS;

/// What the hub knows about the connection a message came from.
#[derive(Debug, Clone)]
pub struct ClientInfo {
    pub addr: IpAddr,
    pub user_agent: String,
}

/// A new outbox whose overflows count in this server's metrics.
pub fn new_outbox(cancel: CancellationToken) -> (Outbox, transport::ws::OutboxReceiver) {
    Outbox::new(cancel, METRICS.client_outbox_overflow_total.clone())
}
