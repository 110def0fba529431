//! The SFU made of signaling proxies: [`connection`] to one proxy,
//! [`client`] a publisher or subscriber on one, and [`sfu`] choosing
//! proxies for publishers and subscribers.

mod backend_metrics;
pub mod client;
pub mod connection;
pub mod sfu;

pub use sfu::{ProxySfu, ProxySfuConfig, ProxyTarget, RemotePublisherInfo};
