//! Three signaling nodes with gRPC between them, a real nats-server and a
//! real etcd: nodes 1 and 2 know all gRPC targets from their static lists
//! (themselves included, so self-detection is exercised), node 3 learns
//! targets and backends from etcd.

use std::time::Duration;

use serde_json::json;
use tests::client::{user, TestClient};
use tests::cluster::grpc_peers_ready;
use tests::etcd::Etcd;
use tests::nats::NatsServer;
use tests::process::free_port;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Talk, User};
use tests::wait::eventually;

const TARGETS: &str = "/signaling/cluster/grpc/";
const BACKENDS: &str = "/signaling/backend/";

struct World {
    talk: Talk,
    etcd: Etcd,
    _nats: NatsServer,
    nodes: [TestServer; 3],
    grpc: [u16; 3],
    alice: User,
    bob: User,
}

fn grpc_addr(port: u16) -> String {
    format!("127.0.0.1:{port}")
}

/// `sessionlimit` applies to the Talk backend of every node.
async fn world(sessionlimit: u32) -> World {
    let nats = NatsServer::start().await;
    let etcd = Etcd::start().await;
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let grpc = [free_port(), free_port(), free_port()];
    let all: Vec<String> = grpc.iter().map(|p| grpc_addr(*p)).collect();
    let static_node = |port: u16| {
        TestServer::builder()
            .talk(&talk)
            .nats(&nats.url)
            .extra(&format!(
                "sessionlimit = {sessionlimit}\n\n[grpc]\nlisten = {}\ntargets = {}\n",
                grpc_addr(port),
                all.join(", ")
            ))
            .start()
    };
    let n1 = static_node(grpc[0]).await;
    let n2 = static_node(grpc[1]).await;
    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET, "sessionlimit": sessionlimit});
    etcd.put(&format!("{BACKENDS}talk"), &doc.to_string()).await;
    let n3 = TestServer::builder()
        .nats(&nats.url)
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = {BACKENDS}\n\n\
             [etcd]\nendpoints = {}\n\n\
             [grpc]\nlisten = {}\ntargettype = etcd\ntargetprefix = {TARGETS}\n",
            etcd.endpoint,
            grpc_addr(grpc[2]),
        ))
        .start()
        .await;
    World {
        talk,
        etcd,
        _nats: nats,
        nodes: [n1, n2, n3],
        grpc,
        alice,
        bob,
    }
}

impl World {
    /// Publishes node `i`'s gRPC address in etcd.
    async fn announce(&self, i: usize) {
        let doc = json!({"address": grpc_addr(self.grpc[i])});
        self.etcd
            .put(&format!("{TARGETS}node{i}"), &doc.to_string())
            .await;
    }
}

/// A client whose connection to node 1 broke resumes on node 2: same
/// session, still in the room, messages flow both ways through node 2,
/// and a later bye ends the session for the room.
#[tokio::test]
async fn resume_on_another_node() {
    let w = world(0).await;
    let [n1, n2, _] = &w.nodes;
    grpc_peers_ready(n2, 1).await;
    let mut a = user(n1, &w.talk, &w.alice).await;
    let mut b = user(n2, &w.talk, &w.bob).await;
    a.join_ok("room1", "ta").await;
    let ids = [a.session_id.clone(), b.session_id.clone()];
    b.join_seeing("room1", "tb", &[&ids[0], &ids[1]]).await;
    a.recv_until(|v| v["event"]["type"] == "join").await;
    b.expect_silence(Duration::from_millis(300)).await;
    let (sid, rid) = (a.session_id.clone(), a.resume_id.clone());
    a.close().await;
    b.message(
        json!({"type": "session", "sessionid": sid}),
        json!("while away"),
    )
    .await;

    let (mut a2, _) = TestClient::connect(n2).await;
    let v = a2.resume(&rid).await;
    assert_eq!(v["type"], "hello", "{v}");
    assert_eq!(v["hello"]["sessionid"], sid.as_str());
    assert_eq!(v["hello"]["resumeid"], rid.as_str());
    assert_eq!(v["hello"]["userid"], "alice");
    assert_eq!(a2.recv().await["message"]["data"], "while away");
    // Live traffic both ways through the proxied session.
    b.message(json!({"type": "session", "sessionid": sid}), json!("live"))
        .await;
    assert_eq!(a2.recv().await["message"]["data"], "live");
    a2.message(json!({"type": "room"}), json!("from node 2"))
        .await;
    let m = b.recv().await;
    assert_eq!(m["message"]["data"], "from node 2");
    assert_eq!(m["message"]["sender"]["sessionid"], sid.as_str());
    // The session never left the room.
    b.expect_silence(Duration::from_millis(300)).await;
    assert_eq!(
        n1.metric("signaling_grpc_server_calls_total{method=\"ProxySession\"} ")
            .await,
        1.0
    );

    // Bye through the proxy closes the session on node 1.
    let id = a2.request("bye", json!({})).await;
    let v = a2.recv().await;
    assert_eq!(
        (v["type"].as_str(), v["id"].as_str()),
        (Some("bye"), Some(id.as_str()))
    );
    a2.expect_closed().await;
    let left = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], sid.as_str());
}

/// Resuming on another node while the old connection is still open takes
/// the session over: the old connection gets `bye` `session_resumed`.
#[tokio::test]
async fn resume_elsewhere_takes_over() {
    let w = world(0).await;
    let [n1, n2, _] = &w.nodes;
    grpc_peers_ready(n2, 1).await;
    let mut a = user(n1, &w.talk, &w.alice).await;
    let (mut a2, _) = TestClient::connect(n2).await;
    let v = a2.resume(&a.resume_id).await;
    assert_eq!(v["hello"]["sessionid"], a.session_id.as_str(), "{v}");
    let bye = a.recv().await;
    assert_eq!(bye["bye"]["reason"], "session_resumed", "{bye}");
    a.expect_closed().await;
    // Once the session ended, its resume id is refused after asking the
    // peers.
    let rid = a.resume_id.clone();
    a2.request("bye", json!({})).await;
    a2.recv().await;
    a2.expect_closed().await;
    let (mut c, _) = TestClient::connect(n2).await;
    let v = c.resume(&rid).await;
    assert_eq!(v["error"]["code"], "no_such_session", "{v}");
    assert!(
        n1.metric("signaling_grpc_server_calls_total{method=\"LookupResumeId\"} ")
            .await
            >= 2.0
    );
}

/// Node 3 knows no peer until one is put into etcd; then a session of
/// node 1 resumes on node 3. Node 1 lists itself among its targets but
/// never calls itself.
#[tokio::test]
async fn targets_from_etcd_and_self_detection() {
    let w = world(0).await;
    let [n1, _, n3] = &w.nodes;
    let a = user(n1, &w.talk, &w.alice).await;
    let (mut c, _) = TestClient::connect(n3).await;
    let v = c.resume(&a.resume_id).await;
    assert_eq!(v["error"]["code"], "no_such_session", "{v}");

    w.announce(0).await;
    w.announce(2).await;
    grpc_peers_ready(n3, 1).await;
    let (mut c, _) = TestClient::connect(n3).await;
    let v = c.resume(&a.resume_id).await;
    assert_eq!(v["hello"]["sessionid"], a.session_id.as_str(), "{v}");

    // Node 1: three targets configured, itself excluded.
    grpc_peers_ready(n1, 2).await;
    let info = n1.serverinfo().await;
    assert_eq!(info["grpc"].as_array().map(Vec::len), Some(2), "{info}");
    assert_eq!(n1.metric("signaling_grpc_clients ").await, 3.0);
    // Its own GetServerId answered once to itself; no lookups went there.
    assert_eq!(
        n1.metric("signaling_grpc_server_calls_total{method=\"LookupResumeId\"} ")
            .await,
        1.0,
        "only node 3's lookup"
    );
}

/// The session limit is checked against the counts of all nodes at the
/// moment of the hello.
#[tokio::test]
async fn session_limit_over_grpc() {
    let w = world(2).await;
    let [n1, n2, n3] = &w.nodes;
    w.announce(0).await;
    w.announce(1).await;
    grpc_peers_ready(n3, 2).await;
    let _a = user(n1, &w.talk, &w.alice).await;
    let _b = user(n2, &w.talk, &w.bob).await;
    let (mut c, _) = TestClient::connect(n3).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": w.talk.url(), "params": {"token": w.talk.v2_token("bob")}}}))
        .await;
    assert_eq!(v["error"]["code"], "session_limit_exceeded", "{v}");
    assert!(
        n3.metric("signaling_grpc_client_calls_total{method=\"GetSessionCount\"} ")
            .await
            >= 1.0
    );
}

/// Two nodes with only each other's gRPC address as given.
async fn pair(
    talk: &Talk,
    nats: &NatsServer,
    grpc_extra: &dyn Fn(u16, u16) -> String,
) -> [TestServer; 2] {
    pair_with_env(talk, nats, grpc_extra, &[]).await
}

/// [`pair`] with environment variables for both processes.
async fn pair_with_env(
    talk: &Talk,
    nats: &NatsServer,
    grpc_extra: &dyn Fn(u16, u16) -> String,
    env: &[(&str, &str)],
) -> [TestServer; 2] {
    let ports = [free_port(), free_port()];
    let mut nodes = Vec::new();
    for (own, other) in [(ports[0], ports[1]), (ports[1], ports[0])] {
        let mut b = TestServer::builder()
            .talk(talk)
            .nats(&nats.url)
            .extra(&format!(
                "\n[grpc]\nlisten = 127.0.0.1:{own}\n{}",
                grpc_extra(own, other)
            ));
        for (k, v) in env {
            b = b.env(k, v);
        }
        nodes.push(b.start().await);
    }
    let [a, b] = <[TestServer; 2]>::try_from(nodes).unwrap_or_else(|_| unreachable!());
    [a, b]
}

/// With `dnsdiscovery`, a target name is resolved to one peer per
/// address; resuming across works through it.
#[tokio::test]
async fn dns_discovery() {
    let nats = NatsServer::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let [n1, n2] = pair(&talk, &nats, &|_, other| {
        format!("dnsdiscovery = true\ntargets = localhost:{other}\n")
    })
    .await;
    grpc_peers_ready(&n2, 1).await;
    let info = n2.serverinfo().await;
    let peer = info["grpc"]
        .as_array()
        .and_then(|l| l.iter().find(|p| p["connected"] == true).cloned())
        .unwrap_or_default();
    assert_eq!(peer["ip"], "127.0.0.1", "{info}");
    assert!(peer["target"]
        .as_str()
        .unwrap_or_default()
        .starts_with("localhost:"));
    resumes_across(&n1, &n2, &talk, &alice).await;
}

/// alice signs in on `from` and resumes on `to`, which proxies her
/// session to `from` over gRPC.
async fn resumes_across(from: &TestServer, to: &TestServer, talk: &Talk, alice: &User) {
    let a = user(from, talk, alice).await;
    let (mut c, _) = TestClient::connect(to).await;
    let v = c.resume(&a.resume_id).await;
    assert_eq!(v["hello"]["sessionid"], a.session_id.as_str(), "{v}");
}

/// `[grpc]` keys for mutual TLS with the files of `certs`.
fn mutual_tls_settings(certs: &tests::certs::Certs) -> String {
    let p = |f: &str| certs.path(f).display().to_string();
    format!(
        "servercertificate = {}\nserverkey = {}\nclientca = {}\nclientcertificate = {}\nclientkey = {}\nserverca = {}\n",
        p("server.crt"), p("server.key"), p("ca.crt"), p("client.crt"), p("client.key"), p("ca.crt"),
    )
}

/// Mutual TLS between nodes: server certificates checked against
/// `serverca`, client certificates required by `clientca`.
#[tokio::test]
async fn mutual_tls() {
    let certs = tests::certs::Certs::generate();
    let nats = NatsServer::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let tls = mutual_tls_settings(&certs);
    let [n1, n2] = pair(&talk, &nats, &|_, other| {
        format!("{tls}targets = 127.0.0.1:{other}\n")
    })
    .await;
    grpc_peers_ready(&n2, 1).await;
    resumes_across(&n1, &n2, &talk, &alice).await;
    // The TLS accept loop and the NATS tasks end with the server.
    for mut node in [n1, n2] {
        let status = node.process.stop(Duration::from_secs(10));
        assert!(
            status.is_some_and(|s| s.success()),
            "did not exit cleanly ({status:?}):\n{}",
            node.process.log_tail(20)
        );
    }
}

/// Without `serverca` a node checks its peers' certificates against the
/// system's trust store (here the test CA through `SSL_CERT_FILE`); a
/// node whose store lacks that CA does not connect.
#[tokio::test]
async fn tls_with_the_system_trust_store() {
    let certs = tests::certs::Certs::generate();
    let nats = NatsServer::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let tls: String = mutual_tls_settings(&certs)
        .lines()
        .filter(|l| !l.starts_with("serverca"))
        .map(|l| format!("{l}\n"))
        .collect();
    let ca = certs.path("ca.crt").display().to_string();
    let ports = parking_lot::Mutex::new(Vec::new());
    let [n1, n2] = pair_with_env(
        &talk,
        &nats,
        &|own, other| {
            ports.lock().push(own);
            format!("{tls}targets = 127.0.0.1:{other}\n")
        },
        &[("SSL_CERT_FILE", &ca)],
    )
    .await;
    let n1_port = ports.lock()[0];
    grpc_peers_ready(&n2, 1).await;
    resumes_across(&n1, &n2, &talk, &alice).await;

    // The same settings with an empty store: the peer is not trusted.
    let empty = tempfile::NamedTempFile::new().expect("temp file");
    let stranger = TestServer::builder()
        .talk(&talk)
        .nats(&nats.url)
        .extra(&format!("\n[grpc]\n{tls}targets = 127.0.0.1:{n1_port}\n"))
        .env("SSL_CERT_FILE", &empty.path().display().to_string())
        .start()
        .await;
    let connected = eventually(Duration::from_secs(3), || async {
        let info = stranger.serverinfo().await;
        let peers = info["grpc"].as_array().cloned().unwrap_or_default();
        peers.iter().any(|p| p["connected"] == true).then_some(())
    })
    .await;
    assert!(connected.is_none(), "connected without trusting the CA");
}

/// A TLS handshake with the gRPC port as a client of `certs`' CA (its
/// client certificate, trusting its CA, offering h2).
async fn handshake(port: u16, certs: &tests::certs::Certs) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(certs.path("ca.crt")).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let chain = CertificateDer::pem_file_iter(certs.path("client.crt"))
        .map_err(|e| e.to_string())?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let key = PrivateKeyDer::from_pem_file(certs.path("client.key")).map_err(|e| e.to_string())?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .map_err(|e| e.to_string())?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| e.to_string())?;
    // TLS 1.3 reports a refused client certificate after the handshake.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = [0u8; 9];
    tls.read_exact(&mut buf).await.map_err(|e| e.to_string())?;
    Ok(())
}

/// Certificates renewed in place (as cert-manager does) are picked up
/// without a restart: the listener presents the new one and accepts
/// clients of the new CA, and the peers reconnect with the new client
/// certificate.
#[tokio::test]
async fn renewed_certificates() {
    let certs = tests::certs::Certs::generate();
    let nats = NatsServer::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let tls = mutual_tls_settings(&certs);
    let ports = parking_lot::Mutex::new(Vec::new());
    let [n1, n2] = pair(&talk, &nats, &|own, other| {
        ports.lock().push(own);
        format!("{tls}targets = 127.0.0.1:{other}\n")
    })
    .await;
    let n1_port = ports.lock()[0];
    grpc_peers_ready(&n2, 1).await;
    assert_eq!(handshake(n1_port, &certs).await, Ok(()));

    let renewed = tests::certs::Certs::generate();
    assert!(
        handshake(n1_port, &renewed).await.is_err(),
        "a client of the new CA was accepted before the renewal"
    );
    for f in [
        "ca.crt",
        "server.crt",
        "server.key",
        "client.crt",
        "client.key",
    ] {
        std::fs::copy(renewed.path(f), certs.path(f)).unwrap();
    }
    let picked_up = eventually(Duration::from_secs(15), || async {
        handshake(n1_port, &renewed).await.ok()
    })
    .await;
    assert!(picked_up.is_some(), "the listener kept the old certificate");
    let reconnected = eventually(Duration::from_secs(15), || async {
        let log = std::fs::read_to_string(n2.process.log_path()).unwrap_or_default();
        log.contains("[grpc] client certificate reloaded")
            .then_some(())
    })
    .await;
    assert!(reconnected.is_some(), "{}", n2.process.log_tail(20));
    grpc_peers_ready(&n2, 1).await;
    resumes_across(&n1, &n2, &talk, &alice).await;
}
