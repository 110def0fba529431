//! Janus: the WebSocket API client ([`gateway`]), its errors ([`error`]),
//! the SFU on the videoroom plugin ([`sfu`], [`publisher`],
//! [`subscriber`]), and the endpoint its event handler connects to
//! ([`events`], [`events_endpoint`]).

pub mod error;
pub mod events;
pub mod events_endpoint;
pub mod gateway;
pub mod publisher;
mod queue;
pub mod remote;
pub mod sfu;
pub mod stream_stats;
pub mod streams;
pub mod subscriber;

pub use error::JanusError;
pub use gateway::{Gateway, Handle, HandleEvent, JanusSession};
pub use sfu::{JanusConfig, JanusSfu};
