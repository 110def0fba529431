//! SFU bridge: the Janus WebSocket API client and the `Sfu` abstraction used
//! by the signaling server and the signaling proxy.
//!
//! - [`sfu`]: the abstraction the hub drives: stream types, publisher
//!   settings, stream selection, the [`sfu::Sfu`] and [`sfu::Client`]
//!   traits and the [`sfu::Listener`] the hub implements.
//! - [`geo`]: countries and continents for placing media near clients.
//! - [`janus`]: the Janus gateway client and the videoroom SFU, with
//!   remote publishers (streams received from another Janus).
//! - [`proxy`]: the SFU made of signaling proxies (`[mcu] type = proxy`).
//!
//! Facts cite `shared/spec/cluster-sfu-facts.md` as "facts N.M".

pub mod geo;
pub mod janus;
pub mod metrics;
mod outbox;
pub mod proxy;
pub mod sfu;
