//! gRPC between signaling nodes (cluster facts section 2).
//!
//! - [`server`]: the services this node answers (about its own sessions
//!   and rooms).
//! - [`peers`]: channels to the other nodes and the fan-out calls.
//! - [`discovery`]: where the peers come from (static list, DNS, etcd).
//! - [`remote`]: a client connected here whose session lives elsewhere.
//! - [`handover`]: giving a session of this draining node to another.
//! - [`tls`]: `[grpc]` certificates.
//!
//! What the cluster sends over NATS instead is listed in `docs/cluster.md`.

pub mod discovery;
pub mod handover;
pub mod peers;
pub mod remote;
pub mod server;
pub mod tls;

pub use peers::Peers;

use sha2::{Digest, Sha256};

/// A new id for this process (facts 2.4): the hash of random text, the
/// host name and the process id, so two processes never share one.
pub fn new_server_id() -> String {
    use rand::distributions::{Alphanumeric, DistString};
    let random = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| Alphanumeric.sample_string(&mut rand::thread_rng(), 8));
    let seed = format!("{random}-{host}-{}", std::process::id());
    hex::encode(Sha256::digest(seed.as_bytes()))
}
