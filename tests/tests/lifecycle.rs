//! What rolling upgrades and probes rely on: `/healthz` and `/readyz`
//! telling the truth about NATS, etcd, the SFU and draining; SIGUSR1 and
//! SIGTERM with `[app] shutdowngrace` draining a node; a configuration
//! that names an unusable SFU refusing to start.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tests::client::TestClient;
use tests::cluster::{Cluster, ClusterBuilder};
use tests::etcd::Etcd;
use tests::nats::NatsServer;
use tests::process::{free_port, target_bin, ChildGuard};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;
use tests::wait::eventually;

const SIGUSR1: i32 = 10;
const SIGTERM: i32 = 15;

/// `/readyz` as (status code, body).
async fn readyz(base: &str) -> (u16, Value) {
    let r = reqwest::get(format!("{base}readyz")).await.unwrap();
    let code = r.status().as_u16();
    (code, r.json().await.unwrap_or(Value::Null))
}

/// Waits until `/readyz` answers `code`; returns the body.
async fn readyz_becomes(base: &str, code: u16, within: Duration) -> Value {
    let got = eventually(within, || {
        let base = base.to_owned();
        async move {
            let (c, body) = readyz(&base).await;
            (c == code).then_some(body)
        }
    })
    .await;
    match got {
        Some(body) => body,
        None => panic!("/readyz did not answer {code}: {:?}", readyz(base).await),
    }
}

/// Waits for the process to exit; returns whether it did.
async fn exits_within(
    process: &mut ChildGuard,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    eventually(within, || {
        let s = process.try_exit_status();
        async move { s }
    })
    .await
}

/// A new WebSocket connection's HTTP status, 101 when upgraded.
async fn upgrade_status(server: &TestServer) -> u16 {
    match tokio_tungstenite::connect_async(server.ws_url()).await {
        Ok((mut ws, resp)) => {
            let _ = ws.close(None).await;
            resp.status().as_u16()
        }
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => resp.status().as_u16(),
        Err(e) => panic!("connect failed: {e}"),
    }
}

/// The embedded default is ready at once: in-process bus, no SFU.
#[tokio::test]
async fn ready_on_the_embedded_default() {
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder().talk(&talk).start().await;
    let (code, body) = readyz(&server.http_url()).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["status"], "ready");
    assert_eq!(body["checks"]["nats"]["ok"], true);
    assert_eq!(body["checks"]["backends"]["ok"], true);
    assert!(body["checks"].get("sfu").is_none(), "{body}");
    let live: Value = reqwest::get(format!("{}healthz", server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(live["status"], "ok");
}

/// SIGUSR1: the node stops taking clients (503 on `/spreed`, `/readyz`
/// 503 "draining", `/healthz` still 200), keeps serving the sessions it
/// has, ignores internal clients and exits cleanly once the last client
/// has said bye.
#[tokio::test]
async fn sigusr1_drains_and_exits_after_the_last_client() {
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let mut server = TestServer::builder().talk(&talk).start().await;
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    a.join_ok("room1", "ta").await;
    let (mut b, _) = TestClient::connect(&server).await;
    let hello_b = b.hello_v1(&talk, Some(&bob)).await;
    let bob_id = hello_b["hello"]["sessionid"].as_str().unwrap().to_owned();
    let (mut internal, _) = TestClient::connect(&server).await;
    internal.hello_internal(&talk, &[]).await;

    server.process.signal(SIGUSR1);
    let body = readyz_becomes(&server.http_url(), 503, Duration::from_secs(5)).await;
    assert_eq!(body["status"], "draining", "{body}");
    assert_eq!(upgrade_status(&server).await, 503);
    let live = reqwest::get(format!("{}healthz", server.http_url()))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    assert!(
        server
            .metric("signaling_client_rejected_draining_total ")
            .await
            >= 1.0,
        "refusal not counted"
    );

    // The sessions it has still work.
    a.message(
        json!({"type": "session", "sessionid": bob_id}),
        json!("still here"),
    )
    .await;
    let got = b.recv_until(|v| v["type"] == "message").await;
    assert_eq!(got["message"]["data"], "still here");

    a.request("bye", json!({})).await;
    a.expect_closed().await;
    // Alice is gone and bob is still served.
    internal
        .message(
            json!({"type": "session", "sessionid": bob_id}),
            json!("after alice"),
        )
        .await;
    let got = b.recv_until(|v| v["type"] == "message").await;
    assert_eq!(got["message"]["data"], "after alice");
    assert!(
        server.process.try_exit_status().is_none(),
        "exited while bob is still connected"
    );
    b.request("bye", json!({})).await;
    let status = exits_within(&mut server.process, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("did not exit:\n{}", server.process.log_tail(20)));
    assert!(status.success(), "{status:?}");
}

/// SIGTERM with `shutdowngrace`: drains like SIGUSR1 for the grace, then
/// closes the remaining clients with 1001 and exits; a second SIGTERM
/// stops at once.
#[tokio::test]
async fn sigterm_drains_for_the_grace_period() {
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let mut server = TestServer::builder()
        .talk(&talk)
        .extra("[app]\nshutdowngrace = 2\n")
        .start()
        .await;
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    server.process.signal(SIGTERM);
    let body = readyz_becomes(&server.http_url(), 503, Duration::from_secs(5)).await;
    assert_eq!(body["status"], "draining", "{body}");
    assert!(server.process.try_exit_status().is_none());
    let closed = a.expect_closed_within(Duration::from_secs(6)).await;
    assert_eq!(closed.code(), Some(1001), "{closed:?}");
    let status = exits_within(&mut server.process, Duration::from_secs(10))
        .await
        .expect("exits after the grace");
    assert!(status.success(), "{status:?}");

    // A second SIGTERM does not wait for the grace.
    let mut server = TestServer::builder()
        .talk(&talk)
        .extra("[app]\nshutdowngrace = 600\n")
        .start()
        .await;
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    server.process.signal(SIGTERM);
    readyz_becomes(&server.http_url(), 503, Duration::from_secs(5)).await;
    server.process.signal(SIGTERM);
    exits_within(&mut server.process, Duration::from_secs(10))
        .await
        .expect("second SIGTERM stops at once");
}

/// NATS down at start: the server starts, says so in `/readyz` and
/// `serverinfo`, and becomes ready once the NATS server is up.
#[tokio::test]
async fn nats_unreachable_is_not_ready_until_it_comes_up() {
    let port = free_port();
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .nats(&format!("nats://127.0.0.1:{port}"))
        .start()
        .await;
    let (code, body) = readyz(&server.http_url()).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["checks"]["nats"]["ok"], false, "{body}");
    assert_eq!(server.serverinfo().await["nats"]["connected"], false);

    let _nats = NatsServer::start_on(port).await;
    let body = readyz_becomes(&server.http_url(), 200, Duration::from_secs(20)).await;
    assert_eq!(body["checks"]["nats"]["ok"], true, "{body}");
    assert_eq!(server.serverinfo().await["nats"]["connected"], true);
}

/// Backends from etcd: not ready while etcd cannot be read, ready once
/// the watch is established; `serverinfo` has the `etcd` block.
#[tokio::test]
async fn etcd_backends_gate_readiness() {
    let etcd = Etcd::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let dead = format!("http://127.0.0.1:{}", free_port());
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /backends\n[etcd]\nendpoints = {dead}\n"
        ))
        .start()
        .await;
    let body = readyz_becomes(&server.http_url(), 503, Duration::from_secs(5)).await;
    assert_eq!(body["checks"]["etcd"]["ok"], false, "{body}");
    assert_eq!(server.serverinfo().await["etcd"]["connected"], false);
    drop(server);

    etcd.put(
        "/backends/talk",
        &json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string(),
    )
    .await;
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /backends\n[etcd]\nendpoints = {}\n",
            etcd.endpoint
        ))
        .start()
        .await;
    let body = readyz_becomes(&server.http_url(), 200, Duration::from_secs(10)).await;
    assert_eq!(body["checks"]["etcd"]["ok"], true, "{body}");
    assert_eq!(body["checks"]["backends"]["ok"], true, "{body}");
    let info = server.serverinfo().await;
    assert_eq!(
        info["etcd"]["endpoints"][0],
        etcd.endpoint.as_str(),
        "{info}"
    );
    assert_eq!(info["etcd"]["connected"], true, "{info}");
}

/// An SFU that is configured but not reachable makes the node not ready.
#[tokio::test]
async fn unreachable_janus_is_not_ready() {
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "[mcu]\ntype = janus\nurl = ws://127.0.0.1:{}\n",
            free_port()
        ))
        .start()
        .await;
    let (code, body) = readyz(&server.http_url()).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["checks"]["sfu"]["ok"], false, "{body}");
}

/// `[mcu] type = proxy` with an unreadable `token_key` is a configuration
/// error: the server exits non-zero naming the key, instead of running
/// without an SFU and reporting itself healthy.
#[tokio::test]
async fn unusable_sfu_configuration_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("server.conf");
    std::fs::write(
        &config,
        format!(
            "[http]\nlisten = 127.0.0.1:{}\n[sessions]\nhashkey = 0123456789abcdef\n\
             [backend]\nallowall = true\nsecret = x\n\
             [mcu]\ntype = proxy\nurl = http://127.0.0.1:1\ntoken_id = server1\ntoken_key = /nonexistent/key.pem\n",
            free_port()
        ),
    )
    .unwrap();
    let out = Command::new(target_bin("signaling"))
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("[mcu] token_key /nonexistent/key.pem"),
        "{stderr}"
    );
}

/// Nodes A and B of `cluster` sharing NATS and gRPC, connected to each
/// other, and the rest of the cluster.
async fn two_meshed_nodes(cluster: ClusterBuilder) -> (TestServer, TestServer, Cluster) {
    let mut c = cluster.grpc().start().await;
    c.grpc_ready().await;
    let b = c.nodes.pop().expect("node B");
    let a = c.nodes.pop().expect("node A");
    (a, b, c)
}

/// Two nodes sharing NATS and gRPC; node A drains (SIGUSR1). Its client
/// alice loses her connection, is refused by A (503, so a load balancer
/// moves on) and resumes on node B, which takes her session over: she
/// gets what bob sent meanwhile, in order, traffic flows both ways, and A,
/// with no client left, exits.
#[tokio::test]
async fn drained_node_gives_a_reconnecting_client_its_session() {
    let (mut a_node, b_node, cluster) = two_meshed_nodes(Cluster::builder(2)).await;
    let (talk, alice, bob) = (&cluster.talk, &cluster.alice, &cluster.bob);

    let mut a = tests::client::user(&a_node, talk, alice).await;
    let mut b = tests::client::user(&b_node, talk, bob).await;
    a.join_ok("room1", "ta").await;
    let ids = [a.session_id.clone(), b.session_id.clone()];
    b.join_seeing("room1", "tb", &[&ids[0], &ids[1]]).await;
    a.recv_until(|v| v["event"]["type"] == "join").await;

    a_node.process.signal(SIGUSR1);
    readyz_becomes(&a_node.http_url(), 503, Duration::from_secs(5)).await;
    let (sid, rid) = (a.session_id.clone(), a.resume_id.clone());
    a.close().await;
    for n in 0..5 {
        b.message(
            json!({"type": "session", "sessionid": sid}),
            json!(format!("while away {n}")),
        )
        .await;
    }
    assert_eq!(upgrade_status(&a_node).await, 503);
    let (mut a2, _) = TestClient::connect(&b_node).await;
    let v = a2.resume(&rid).await;
    assert_eq!(v["type"], "hello", "{v}");
    assert_eq!(v["hello"]["sessionid"], sid.as_str());
    for n in 0..5 {
        assert_eq!(
            a2.recv().await["message"]["data"],
            format!("while away {n}")
        );
    }
    b.message(json!({"type": "session", "sessionid": sid}), json!("live"))
        .await;
    assert_eq!(a2.recv().await["message"]["data"], "live");
    a2.message(json!({"type": "room"}), json!("from B")).await;
    assert_eq!(b.recv().await["message"]["data"], "from B");
    let status = exits_within(&mut a_node.process, Duration::from_secs(10))
        .await
        .unwrap_or_else(|| panic!("A did not exit:\n{}", a_node.process.log_tail(20)));
    assert!(status.success(), "{status:?}");
    b.message(
        json!({"type": "session", "sessionid": sid}),
        json!("after A"),
    )
    .await;
    assert_eq!(a2.recv().await["message"]["data"], "after A");
    a2.request("bye", json!({})).await;
    let left = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], sid.as_str());
}

/// SIGTERM with a grace on a node of a cluster: at the end of the grace
/// its clients are asked to reconnect (1012) and resume on the other node,
/// which takes their sessions over; the drained node exits. Nothing sent
/// to the moving session is lost or doubled, including a stream of
/// messages from another node during the move, and the room never sees
/// the session leave.
#[tokio::test]
async fn drained_node_hands_sessions_over() {
    let (mut a_node, b_node, cluster) =
        two_meshed_nodes(Cluster::builder(2).node_extra(0, "[app]\nshutdowngrace = 1\n")).await;
    let (talk, alice, bob, carol) = (&cluster.talk, &cluster.alice, &cluster.bob, &cluster.carol);

    let mut a = tests::client::user(&a_node, talk, alice).await;
    let mut b = tests::client::user(&b_node, talk, bob).await;
    let mut c = tests::client::user(&b_node, talk, carol).await;
    a.join_ok("room1", "ta").await;
    let ids = [a.session_id.clone(), b.session_id.clone()];
    b.join_seeing("room1", "tb", &[&ids[0], &ids[1]]).await;
    a.recv_until(|v| v["event"]["type"] == "join").await;
    let (sid, rid) = (a.session_id.clone(), a.resume_id.clone());

    a_node.process.signal(SIGTERM);
    let closed = a.expect_closed_within(Duration::from_secs(10)).await;
    assert_eq!(closed.code(), Some(1012), "{closed:?}");
    for n in 0..5 {
        b.message(
            json!({"type": "session", "sessionid": sid}),
            json!(format!("queued {n}")),
        )
        .await;
    }
    // carol keeps sending while alice moves.
    let target = sid.clone();
    let sender = tokio::spawn(async move {
        for n in 0..200 {
            c.message(
                json!({"type": "session", "sessionid": target}),
                json!(format!("stream {n}")),
            )
            .await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        c
    });
    let (mut a2, _) = TestClient::connect(&b_node).await;
    let v = a2.resume(&rid).await;
    assert_eq!(v["type"], "hello", "{v}");
    assert_eq!(v["hello"]["sessionid"], sid.as_str());
    let _c = sender.await.unwrap();
    let mut queued = Vec::new();
    let mut stream = Vec::new();
    while stream.len() < 200 {
        let m = a2.recv_until(|v| v["type"] == "message").await;
        let text = m["message"]["data"].as_str().unwrap().to_owned();
        if let Some(n) = text.strip_prefix("stream ") {
            stream.push(n.parse::<u32>().unwrap());
        } else {
            queued.push(text);
        }
    }
    assert_eq!(
        queued,
        (0..5).map(|n| format!("queued {n}")).collect::<Vec<_>>()
    );
    assert_eq!(
        stream,
        (0..200).collect::<Vec<_>>(),
        "lost, doubled or reordered"
    );
    a2.expect_silence(Duration::from_millis(300)).await;

    // A gave its last session away and exits.
    let status = exits_within(&mut a_node.process, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("A did not exit:\n{}", a_node.process.log_tail(30)));
    assert!(status.success(), "{status:?}");
    assert!(
        std::fs::read_to_string(a_node.process.log_path())
            .unwrap_or_default()
            .contains("session handed over"),
        "{}",
        a_node.process.log_tail(30)
    );
    // The session lives on B: the room still has it, traffic flows.
    b.message(json!({"type": "session", "sessionid": sid}), json!("after"))
        .await;
    assert_eq!(a2.recv().await["message"]["data"], "after");
    a2.message(json!({"type": "room"}), json!("from B")).await;
    let m = b.recv_until(|v| v["type"] == "message").await;
    assert_eq!(m["message"]["data"], "from B");
    assert_eq!(m["message"]["sender"]["sessionid"], sid.as_str());
    // A's exit made nobody think alice left.
    b.expect_silence(Duration::from_millis(500)).await;
    a2.request("bye", json!({})).await;
    let left = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], sid.as_str());
}
