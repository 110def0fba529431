//! What crosses nodes. [`bus`] is the one event-bus trait the hub uses for
//! every per-session, per-user and per-room delivery; [`loopback`] is the
//! in-process implementation behind `nats://loopback`. A NATS implementation
//! plugs in behind the same trait.

pub mod bus;
pub mod loopback;
pub mod nats;
mod order;
mod sinks;
pub mod wire;

pub use bus::{BusMessage, BusPayload, BusSink, EventBus, RoomNotice, Subject, Subscription};
