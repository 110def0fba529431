//! The world of the cluster tests: a Talk emulator with alice, bob and
//! carol and an open `room1`, and several signaling nodes sharing one real
//! nats-server, meshed over gRPC (static targets) when asked.

use std::time::Duration;

use crate::nats::NatsServer;
use crate::process::free_port;
use crate::server::{TestServer, TALK_SECRET};
use crate::talk::{Room, Talk, User};
use crate::wait::eventually;

pub struct Cluster {
    pub talk: Talk,
    nats: Option<NatsServer>,
    pub nodes: Vec<TestServer>,
    /// Each node's gRPC port (with [`ClusterBuilder::grpc`]).
    pub grpc: Vec<u16>,
    pub alice: User,
    pub bob: User,
    pub carol: User,
}

pub struct ClusterBuilder {
    nodes: usize,
    nats: bool,
    grpc: bool,
    extra: Vec<String>,
}

impl Cluster {
    pub fn builder(nodes: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes,
            nats: true,
            grpc: false,
            extra: vec![String::new(); nodes],
        }
    }

    /// The NATS server of a cluster that has one.
    pub fn nats(&self) -> &NatsServer {
        self.nats.as_ref().expect("a cluster with NATS")
    }

    /// Stops the NATS server and starts another on its port.
    pub async fn restart_nats(&mut self) {
        let Some(old) = self.nats.as_mut() else {
            panic!("a cluster with NATS");
        };
        let port: u16 = old
            .url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("port");
        old.process.stop(Duration::from_secs(5));
        self.nats = Some(NatsServer::start_on(port).await);
    }

    /// Waits until every node has a gRPC connection to every other.
    pub async fn grpc_ready(&self) {
        for node in &self.nodes {
            grpc_peers_ready(node, self.nodes.len() - 1).await;
        }
    }
}

impl ClusterBuilder {
    /// One node on its in-process bus instead of a NATS server.
    pub fn without_nats(mut self) -> Self {
        assert_eq!(self.nodes, 1, "several nodes need NATS");
        self.nats = false;
        self
    }

    /// Every node listens for gRPC and has the others as static targets.
    pub fn grpc(mut self) -> Self {
        self.grpc = true;
        self
    }

    /// Appended to node `i`'s configuration right after its generated
    /// Talk backend section (so a bare key such as `sessionlimit` is the
    /// backend's), before the `[grpc]` section.
    pub fn node_extra(mut self, i: usize, extra: &str) -> Self {
        self.extra[i].push_str(extra);
        self
    }

    pub async fn start(self) -> Cluster {
        let nats = match self.nats {
            true => Some(NatsServer::start().await),
            false => None,
        };
        let talk = Talk::start(TALK_SECRET).await;
        let alice = talk.add_user("alice", "Alice");
        let bob = talk.add_user("bob", "Bob");
        let carol = talk.add_user("carol", "Carol");
        talk.add_room("room1", Room::open("Room one"));
        let grpc: Vec<u16> = if self.grpc {
            (0..self.nodes).map(|_| free_port()).collect()
        } else {
            Vec::new()
        };
        let mut nodes = Vec::new();
        for (i, extra) in self.extra.iter().enumerate() {
            let mesh = match grpc.get(i) {
                Some(own) => {
                    let others: Vec<String> = grpc
                        .iter()
                        .filter(|p| *p != own)
                        .map(|p| format!("127.0.0.1:{p}"))
                        .collect();
                    format!(
                        "\n[grpc]\nlisten = 127.0.0.1:{own}\ntargets = {}\n",
                        others.join(", ")
                    )
                }
                None => String::new(),
            };
            let mut node = TestServer::builder().talk(&talk);
            if let Some(n) = &nats {
                node = node.nats(&n.url);
            }
            nodes.push(node.extra(&format!("{extra}{mesh}")).start().await);
        }
        Cluster {
            talk,
            nats,
            nodes,
            grpc,
            alice,
            bob,
            carol,
        }
    }
}

/// Waits until `node` reports `expect` connected gRPC peers.
pub async fn grpc_peers_ready(node: &TestServer, expect: usize) {
    let ok = eventually(Duration::from_secs(15), || async {
        let info = node.serverinfo().await;
        let grpc = info["grpc"].as_array().cloned().unwrap_or_default();
        let connected = grpc.iter().filter(|p| p["connected"] == true).count();
        (connected == expect).then_some(())
    })
    .await;
    assert!(ok.is_some(), "gRPC peers of a node not ready");
}
