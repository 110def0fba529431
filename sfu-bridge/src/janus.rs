//! Janus: the WebSocket API client ([`gateway`]), its errors ([`error`]),
//! and the SFU on the videoroom plugin ([`sfu`], [`publisher`],
//! [`subscriber`]).

pub mod error;
pub mod events;
pub mod gateway;
pub mod publisher;
mod queue;
pub mod remote;
pub mod sfu;
pub mod streams;
pub mod subscriber;

pub use error::JanusError;
pub use gateway::{Gateway, Handle, HandleEvent, JanusSession};
pub use sfu::{JanusConfig, JanusSfu};
