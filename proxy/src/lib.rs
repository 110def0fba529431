//! The signaling proxy: a `/proxy` endpoint in front of one Janus, used by
//! signaling servers to create publishers and subscribers on it
//! (cluster facts section 6).
//!
//! - [`config`]: reads `proxy.conf`.
//! - [`tokens`]: the signaling servers' public keys (`[tokens]`).
//! - [`server`]: HTTP endpoints and the protocol handling.
//! - [`session`]: proxy sessions and their Janus clients.
//! - [`remote`]: remote streams, subscribers here of publishers on other
//!   proxies.
//! - [`metrics`]: the `signaling_proxy_*` metrics.

pub mod config;
mod localip;
pub mod metrics;
pub mod remote;
pub mod server;
pub mod session;
pub mod tokens;
