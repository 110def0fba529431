//! Everything about Nextcloud backends: which ones are configured and how a
//! URL maps to one ([`backends`]), the HTTP client that talks to them with
//! checksums and OCS envelopes ([`client`]), and the capabilities cache
//! ([`capabilities`]).

pub mod backends;
pub mod capabilities;
pub mod client;
pub mod etcd;
pub mod http;

pub use backends::{Backend, Backends};
pub use capabilities::Capabilities;
pub use client::{BackendClient, BackendError};
