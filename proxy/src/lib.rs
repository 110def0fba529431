//! The signaling proxy: a `/proxy` endpoint in front of one Janus, used by
//! signaling servers to create publishers and subscribers on it
//! (cluster facts section 6). Laid out like the signaling server:
//!
//! - [`config`]: reads `proxy.conf`; [`tokens`]: the signaling servers'
//!   public keys (`[tokens]`, or etcd).
//! - [`state`]: the shared [`state::Proxy`]: sessions, Janus, draining,
//!   the tasks it owns.
//! - [`router`]: the HTTP endpoints; [`connection`]: one `/proxy`
//!   WebSocket, reading and dispatching.
//! - [`handle`]: one file per message and command.
//! - [`session`]: a proxy session and its Janus clients; [`listener`]:
//!   what Janus tells them, turned into messages; [`reply`]: building
//!   messages.
//! - [`remote`]: remote streams, subscribers here of publishers on other
//!   proxies.
//! - [`metrics`]: the `signaling_proxy_*` metrics.

pub mod config;
pub mod connection;
pub mod handle;
pub mod listener;
mod localip;
pub mod metrics;
pub mod remote;
pub mod reply;
pub mod router;
pub mod session;
pub mod state;
pub mod tokens;
