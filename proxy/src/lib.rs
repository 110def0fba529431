//! The signaling proxy: a `/proxy` endpoint in front of one Janus, used by
//! signaling servers to create publishers and subscribers on it
//! (cluster facts section 6).
//!
//! - [`config`]: reads `proxy.conf`.
//! - [`tokens`]: the signaling servers' public keys (`[tokens]`).
//! - [`server`]: HTTP endpoints and the protocol handling.
//! - [`session`]: proxy sessions and their Janus clients.
//! - [`metrics`]: the `signaling_proxy_*` metrics.
//!
//! Not yet: remote streams between proxies, token keys from etcd.

pub mod config;
pub mod metrics;
pub mod server;
pub mod session;
pub mod tokens;
