//! One file per client message type, like mini-redis's `cmd/`: each takes
//! the hub and the session and applies one request.

pub mod hello;
pub mod internal;
pub mod message;
pub mod room;
pub mod transient;
