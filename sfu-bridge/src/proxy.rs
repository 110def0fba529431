//! The SFU made of signaling proxies: [`connection`] to one proxy, and
//! [`sfu`] choosing proxies for publishers and subscribers.

mod backend_metrics;
pub mod connection;
pub mod sfu;

pub use sfu::{ProxySfu, ProxySfuConfig, ProxyTarget, RemotePublisherInfo};
