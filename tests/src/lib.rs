//! End-to-end test support: real processes, a Talk backend emulator and a
//! scripted WebSocket client.
//!
//! - [`process`]: a child-process guard (log capture, SIGTERM then SIGKILL).
//! - [`talk`]: a Nextcloud Talk backend emulator on a loopback port.
//! - [`server`]: starts the real `signaling` binary with a generated config.
//! - [`client`]: a `/spreed` client with `expect` helpers.
//! - [`certs`]: a throw-away CA for TLS tests.
//! - [`tls_front`]: TLS termination in front of a plain service.
//! - [`janus`]: a real Janus with the videoroom plugin.
//! - [`mmdb`]: GeoIP country databases made up by a test.
//! - [`proxy`]: the real `signaling-proxy` binary.
//! - [`nats`]: a real `nats-server` on a random port.
//! - [`sdp`]: synthetic WebRTC offers/answers for signaling-level SFU tests.
//! - [`raw_ws`]: a WebSocket client on a bare socket, for malformed frames.
//! - [`wait`]: deadlines for "eventually" checks.
//! - [`world`]: the usual world: Talk with alice and bob, rooms, a server.
//! - [`dns`]: a DNS server answering from a table (SRV, A).
//! - [`netns`]: running a test in network and mount namespaces of its own.
//! - [`bench`]: the load generator behind `signaling-bench`.

pub mod bench;
pub mod certs;
pub mod client;
pub mod cluster;
pub mod dns;
pub mod etcd;
pub mod janus;
pub mod mmdb;
pub mod nats;
pub mod netns;
pub mod process;
pub mod proxy;
pub mod raw_ws;
pub mod sdp;
pub mod server;
pub mod talk;
pub mod tls_front;
pub mod wait;
pub mod world;
