//! The SFU made of signaling proxies: [`connection`] to one proxy,
//! [`client`] a publisher or subscriber on one, `pool` the proxies this
//! node is connected to, and [`sfu`] choosing proxies for publishers and
//! subscribers.

mod backend_metrics;
pub mod client;
pub mod connection;
mod pool;
pub mod sfu;

pub use pool::{urls_from_etcd, ProxyTarget};
pub use sfu::{ProxySfu, ProxySfuConfig, RemotePublisherInfo};
