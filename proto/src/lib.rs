//! Wire formats of the Nextcloud Talk signaling protocols. No I/O lives here.
//!
//! Layout:
//! - [`client`]: messages a client sends on `/spreed`, decoded and validated
//!   into [`client::ClientMessage`].
//! - [`server`]: messages the server sends on `/spreed`; [`event`] holds the
//!   `event` payloads (room, roomlist, participants targets).
//! - [`error`]: the client-visible error object and every error code.
//! - [`features`], [`permissions`]: feature strings and permission flags.
//! - [`ids`]: newtypes for session, room and backend ids.
//! - [`talk`]: the Nextcloud backend API in both directions, with the OCS
//!   envelope and capabilities.
//! - [`checksum`]: `Spreed-Signaling-Checksum` and the internal-client token.
//! - [`session_id`]: the public/private session id codec.
//! - [`hello_token`]: verification of hello v2 JWTs.
//! - [`proxy`]: the signaling proxy protocol on `/proxy`.
//! - [`proxy_token`]: JWTs between signaling servers and proxies.
//! - [`grpc`]: the services between signaling nodes (`grpc/*.proto`).
//!
//! Facts cite `shared/spec/upstream-facts.md` sections as "facts 1.5".

pub mod checksum;
pub mod client;
pub mod error;
pub mod event;
pub mod features;
pub mod fuzzing;
pub mod grpc;
pub mod hello_token;
pub mod ids;
pub mod permissions;
pub mod proxy;
pub mod proxy_token;
pub mod server;
pub mod session_id;
mod tagged;
pub mod talk;
pub mod time;

/// The raw JSON value type used for opaque payloads (`data`, `user`,
/// `properties`): kept as the exact bytes received so they are relayed
/// verbatim.
pub type RawJson = Box<serde_json::value::RawValue>;

/// The protocol version string the server reports. Upstream reports its
/// release version; ours is the crate version with a marker of the
/// implementation.
pub const SERVER_VERSION: &str = env!("CARGO_PKG_VERSION");
