//! Two signaling nodes sharing a real nats-server: clients on different
//! nodes see each other in rooms and can message each other, and Nextcloud
//! notifications reach the room members on every node.

use std::time::Duration;

use serde_json::json;
use tests::client::{user, TestClient};
use tests::cluster::Cluster;
use tests::server::TestServer;

async fn cluster() -> Cluster {
    Cluster::builder(2).start().await
}

/// alice on node A and bob on node B, both in room1, initial events read.
async fn two_in_room(c: &Cluster) -> (TestClient, TestClient) {
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    let mut b = user(&c.nodes[1], &c.talk, &c.bob).await;
    a.join_ok("room1", "ta").await;
    let (a_id, b_id) = (a.session_id.clone(), b.session_id.clone());
    b.join_seeing("room1", "tb", &[&a_id, &b_id]).await;
    a.recv_until(|v| v["event"]["type"] == "join").await;
    (a, b)
}

fn join_ids(v: &serde_json::Value) -> Vec<String> {
    v["event"]["join"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sessionid"].as_str().unwrap().to_owned())
        .collect()
}

/// Joining a room whose other member is on another node: both learn about
/// each other once, messages of every recipient type cross, leaving is seen.
#[tokio::test]
async fn rooms_and_messages_across_nodes() {
    let c = cluster().await;
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    let mut b = user(&c.nodes[1], &c.talk, &c.bob).await;
    a.join_ok("room1", "ta").await;
    // bob's initial list comes from node A; alice hears bob's join.
    let (a_id, b_id) = (a.session_id.clone(), b.session_id.clone());
    b.join_seeing("room1", "tb", &[&a_id, &b_id]).await;
    let joined = a.recv_until(|v| v["event"]["type"] == "join").await;
    assert_eq!(join_ids(&joined), vec![b.session_id.clone()]);
    a.expect_silence(Duration::from_millis(300)).await;
    b.expect_silence(Duration::from_millis(300)).await;

    a.message(
        json!({"type": "session", "sessionid": b.session_id}),
        json!({"n": 1}),
    )
    .await;
    let m = b.recv().await;
    assert_eq!(m["message"]["data"], json!({"n": 1}));
    assert_eq!(m["message"]["sender"]["sessionid"], a.session_id.as_str());
    b.message(json!({"type": "user", "userid": "alice"}), json!({"n": 2}))
        .await;
    assert_eq!(a.recv().await["message"]["data"], json!({"n": 2}));
    a.message(json!({"type": "room"}), json!({"n": 3})).await;
    assert_eq!(b.recv().await["message"]["data"], json!({"n": 3}));
    a.expect_silence(Duration::from_millis(300)).await;

    b.request("room", json!({"roomid": ""})).await;
    let left = a.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], b.session_id.as_str());
}

/// A notification sent to one node reaches room members on both.
#[tokio::test]
async fn notifications_reach_every_node() {
    let c = cluster().await;
    let (mut a, mut b) = two_in_room(&c).await;
    let (status, _) = c
        .talk
        .notify(
            &c.nodes[0].http_url(),
            "room1",
            &json!({"type": "message", "message": {"data": {"type": "custom"}}}),
        )
        .await;
    assert_eq!(status, 200);
    for client in [&mut a, &mut b] {
        let v = client.recv().await;
        assert_eq!(
            v["event"]["message"],
            json!({"roomid": "room1", "data": {"type": "custom"}})
        );
    }
    // User-bound events reach users wherever they are connected.
    c.talk
        .notify(
            &c.nodes[0].http_url(),
            "room9",
            &json!({"type": "invite", "invite": {"userids": ["bob"], "alluserids": ["bob"]}}),
        )
        .await;
    assert_eq!(b.recv().await["event"]["invite"]["roomid"], "room9");
}

/// Transient data set on one node reaches members on the other, and a
/// later joiner on either node gets it in `initial`.
#[tokio::test]
async fn transient_data_across_nodes() {
    let c = cluster().await;
    let (mut a, mut b) = two_in_room(&c).await;
    a.request(
        "transient",
        json!({"type": "set", "key": "k", "value": {"v": 1}}),
    )
    .await;
    for client in [&mut a, &mut b] {
        let v = client.recv_until(|v| v["type"] == "transient").await;
        assert_eq!(
            v["transient"],
            json!({"type": "set", "key": "k", "value": {"v": 1}})
        );
    }
    let mut late = user(&c.nodes[1], &c.talk, &c.carol).await;
    late.join("room1", "tc").await;
    let v = late.recv_until(|v| v["type"] == "transient").await;
    assert_eq!(
        v["transient"],
        json!({"type": "initial", "data": {"k": {"v": 1}}})
    );
    b.request("transient", json!({"type": "remove", "key": "k"}))
        .await;
    let v = a.recv_until(|v| v["type"] == "transient").await;
    assert_eq!(v["transient"]["type"], "remove");
}

/// After the NATS server restarts, the nodes reconnect and route again.
#[tokio::test]
async fn nats_restart_routing_resumes() {
    let mut c = cluster().await;
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    let mut b = user(&c.nodes[1], &c.talk, &c.bob).await;
    c.restart_nats().await;
    // Messages sent while reconnecting may be lost; keep trying until one
    // crosses, within a bound.
    let mut delivered = false;
    for n in 0..50 {
        a.message(
            json!({"type": "session", "sessionid": b.session_id}),
            json!({"n": n}),
        )
        .await;
        if let Ok(Some(v)) = b.try_recv_within(Duration::from_millis(200)).await {
            assert_eq!(v["type"], "message");
            delivered = true;
            break;
        }
    }
    assert!(delivered, "routing did not resume after the NATS restart");
}

/// One connection per Talk session across nodes: joining with the same
/// Talk session id on another node disconnects the old one.
#[tokio::test]
async fn room_session_reconnected_across_nodes() {
    let c = cluster().await;
    let mut first = user(&c.nodes[0], &c.talk, &c.alice).await;
    first.join_ok("room1", "talk-a").await;
    let mut second = user(&c.nodes[1], &c.talk, &c.alice).await;
    second.join("room1", "talk-a").await;
    let bye = first.recv_until(|v| v["type"] == "bye").await;
    assert_eq!(bye["bye"]["reason"], "room_session_reconnected");
    first.expect_closed().await;
}

/// Talk session ids of sessions on other nodes are resolved too: a
/// participants update posted to one node lists members of both.
#[tokio::test]
async fn participants_resolved_across_nodes() {
    let c = cluster().await;
    let (mut a, mut b) = two_in_room(&c).await;
    let (a_id, b_id) = (a.session_id.clone(), b.session_id.clone());
    let entry =
        |s: &str, u: &str| json!({"sessionId": s, "userId": u, "inCall": 1, "participantType": 3});
    let (status, _) = c
        .talk
        .notify(
            &c.nodes[0].http_url(),
            "room1",
            &json!({"type": "incall", "incall": {"incall": 1, "changed": [entry("tb", "bob")], "users": [entry("ta", "alice"), entry("tb", "bob")]}}),
        )
        .await;
    assert_eq!(status, 200);
    for client in [&mut a, &mut b] {
        let v = client
            .recv_until(|v| v["event"]["target"] == "participants")
            .await;
        let mut ids: Vec<String> = v["event"]["update"]["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["sessionId"].as_str().unwrap().to_owned())
            .collect();
        ids.sort();
        let mut want = vec![a_id.clone(), b_id.clone()];
        want.sort();
        assert_eq!(ids, want);
    }
    // bob is in the call on his node: call messages from alice reach him.
    a.message(json!({"type": "call"}), json!("call")).await;
    assert_eq!(
        b.recv_until(|v| v["type"] == "message").await["message"]["data"],
        "call"
    );
}

/// A node killed with SIGKILL: its sessions leave the rooms on the other
/// nodes within the node timeout (15 s after its last heartbeat).
#[tokio::test]
async fn killed_node_sessions_leave() {
    let c = cluster().await;
    let (mut a, b) = two_in_room(&c).await;
    let (a_id, b_id) = (a.session_id.clone(), b.session_id.clone());
    c.nodes[1].process.signal(9);
    let started = std::time::Instant::now();
    let v = a
        .try_recv_within(Duration::from_secs(25))
        .await
        .expect("open")
        .expect("a leave event");
    assert_eq!(v["event"]["type"], "leave", "{v}");
    assert_eq!(v["event"]["leave"][0], b_id.as_str());
    assert!(
        started.elapsed() >= Duration::from_secs(9),
        "not before the timeout"
    );
    // The survivor works on: a new member on node A sees only alice.
    let mut late = user(&c.nodes[0], &c.talk, &c.carol).await;
    let own = late.session_id.clone();
    late.join_seeing("room1", "tc", &[&a_id, &own]).await;
    late.expect_silence(Duration::from_millis(500)).await;
}

/// A backend's `sessionlimit` holds across nodes: a second session on
/// another node is refused while the first lives, accepted after it left.
#[tokio::test]
async fn session_limit_across_nodes() {
    // A setting of the generated [talk] backend section.
    let c = Cluster::builder(2)
        .node_extra(0, "sessionlimit = 1\n")
        .node_extra(1, "sessionlimit = 1\n")
        .start()
        .await;
    let (a, b, talk, alice) = (&c.nodes[0], &c.nodes[1], &c.talk, &c.alice);
    assert_eq!(
        b.metric("signaling_backend_session_limit{backend=\"talk\"} ")
            .await,
        1.0
    );
    let mut first = user(a, talk, alice).await;
    // The count reaches node B with A's next heartbeat (sent at once).
    let refused = tests::wait::eventually(Duration::from_secs(5), || {
        let (b, talk) = (&b, &talk);
        async move {
            let (mut c, _) = TestClient::connect(b).await;
            let (_, v) = c
                .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
                .await;
            if v["type"] == "hello" {
                // Too early: give the slot back at once and try again.
                c.request("bye", json!({})).await;
                c.expect_closed().await;
            }
            (v["error"]["code"] == "session_limit_exceeded").then_some(())
        }
    })
    .await;
    assert!(refused.is_some(), "node B must see node A's session");
    first.request("bye", json!({})).await;
    first.expect_closed().await;
    let accepted = tests::wait::eventually(Duration::from_secs(5), || {
        let (b, talk) = (&b, &talk);
        async move {
            let (mut c, _) = TestClient::connect(b).await;
            let (_, v) = c
                .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
                .await;
            (v["type"] == "hello").then_some(())
        }
    })
    .await;
    assert!(accepted.is_some(), "the slot is free again");
}

/// A node that gets its first member of a room after transient data was
/// set elsewhere fetches it: the joiner gets it in a further `initial`.
#[tokio::test]
async fn transient_data_for_a_late_node() {
    let c = cluster().await;
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    a.join_ok("room1", "ta").await;
    a.request(
        "transient",
        json!({"type": "set", "key": "early", "value": 42}),
    )
    .await;
    a.recv_until(|v| v["type"] == "transient").await;
    let mut b = user(&c.nodes[1], &c.talk, &c.bob).await;
    b.join("room1", "tb").await;
    let v = b.recv_until(|v| v["type"] == "transient").await;
    assert_eq!(
        v["transient"],
        json!({"type": "initial", "data": {"early": 42}})
    );
}

/// Three nodes: members on every node see each other exactly once and a
/// room message reaches all of them once.
#[tokio::test]
async fn three_nodes_exactly_once() {
    let c = cluster().await;
    let third = TestServer::builder()
        .talk(&c.talk)
        .nats(&c.nats().url)
        .start()
        .await;
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    let mut b = user(&c.nodes[1], &c.talk, &c.bob).await;
    let mut d = user(&third, &c.talk, &c.carol).await;
    let ids = [
        a.session_id.clone(),
        b.session_id.clone(),
        d.session_id.clone(),
    ];
    a.join_ok("room1", "ta").await;
    b.join_seeing("room1", "tb", &[&ids[0], &ids[1]]).await;
    d.join_seeing("room1", "td", &[&ids[0], &ids[1], &ids[2]])
        .await;
    // Everybody has seen everybody; nothing arrives twice.
    a.recv_until(|v| v["event"]["type"] == "join" && join_ids(v).contains(&ids[1]))
        .await;
    a.recv_until(|v| v["event"]["type"] == "join" && join_ids(v).contains(&ids[2]))
        .await;
    b.recv_until(|v| v["event"]["type"] == "join" && join_ids(v).contains(&ids[2]))
        .await;
    for client in [&mut a, &mut b, &mut d] {
        client.expect_silence(Duration::from_millis(300)).await;
    }
    a.message(json!({"type": "room"}), json!("to all")).await;
    for client in [&mut b, &mut d] {
        assert_eq!(client.recv().await["message"]["data"], "to all");
        client.expect_silence(Duration::from_millis(300)).await;
    }
}

/// The queue to NATS is bounded: while nats-server is frozen (SIGSTOP,
/// so the TCP connection stays and nothing is read), a node keeps serving
/// its clients, drops what does not fit and counts it in
/// `signaling_nats_publish_dropped_total`; once NATS reads again, messages
/// flow across nodes as before.
#[tokio::test]
async fn frozen_nats_does_not_grow_the_queue() {
    const SIGSTOP: i32 = 19;
    const SIGCONT: i32 = 18;
    let c = cluster().await;
    let mut a = user(&c.nodes[0], &c.talk, &c.alice).await;
    let b = user(&c.nodes[1], &c.talk, &c.bob).await;
    let to_b = |n: usize| {
        json!({"type": "message", "message": {
            "recipient": {"type": "session", "sessionid": b.session_id},
            "data": {"n": n, "pad": "x".repeat(1024)},
        }})
        .to_string()
    };
    c.nats().process.signal(SIGSTOP);
    // More than the queue (16 Ki) plus what async-nats and the socket
    // buffers take.
    for n in 0..60_000 {
        a.send_raw(&to_b(n)).await;
    }
    let dropped = tests::wait::eventually(Duration::from_secs(30), || async {
        let d = c.nodes[0]
            .metric("signaling_nats_publish_dropped_total ")
            .await;
        (d > 0.0).then_some(d)
    })
    .await;
    // The node still serves clients while NATS is frozen.
    let welcome =
        tests::server::get_json(&format!("{}api/v1/welcome", c.nodes[0].http_url())).await;
    c.nats().process.signal(SIGCONT);
    assert!(
        dropped.is_some(),
        "nothing dropped: the queue is not bounded"
    );
    assert!(welcome["version"].is_string(), "{welcome}");
    drop(b);
    // Fresh sessions: messages cross again.
    let mut a2 = user(&c.nodes[0], &c.talk, &c.alice).await;
    let mut b2 = user(&c.nodes[1], &c.talk, &c.bob).await;
    let msg = json!({"type": "message", "message": {
        "recipient": {"type": "session", "sessionid": b2.session_id},
        "data": {"after": true},
    }});
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let mut crossed = false;
    while !crossed && tokio::time::Instant::now() < deadline {
        a2.send(&msg).await;
        crossed = matches!(
            b2.try_recv_within(Duration::from_millis(500)).await,
            Ok(Some(v)) if v["message"]["data"]["after"] == true
        );
    }
    assert!(crossed, "messages do not cross after NATS recovered");
}

/// At shutdown a node's bus sends what its sessions published last, then
/// its tasks end: closing returns, and nothing is published afterwards.
#[tokio::test]
async fn closing_the_bus_sends_what_was_queued_and_ends_its_tasks() {
    use signaling::cluster::bus::{BusMessage, BusPayload, EventBus, Subject};
    use signaling::cluster::nats::NatsBus;
    use std::sync::Arc;

    let nats = tests::nats::NatsServer::start().await;
    let urls = [nats.url.clone()];
    let connect = || NatsBus::connect(&urls, Duration::from_secs(10));
    let (sender, receiver) = match (connect().await, connect().await) {
        (Ok(s), Ok(r)) => (s, r),
        (s, r) => panic!("NATS: {:?} / {:?}", s.err(), r.err()),
    };
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let sink: signaling::cluster::bus::BusSink = Arc::new(move |m: &Arc<BusMessage>| {
        if let BusPayload::Heartbeat { node, .. } = m.payload {
            let _ = tx.send(node);
        }
    });
    let _subscription = receiver
        .subscribe(&Subject::Nodes, sink)
        .unwrap_or_else(|e| panic!("subscribe: {e}"));
    receiver.barrier().await;
    const SENT: u64 = 500;
    let heartbeat = |node| {
        Arc::new(BusMessage::with_time(
            signaling::cluster::bus::now_us(),
            BusPayload::Heartbeat {
                node,
                counts: Default::default(),
            },
        ))
    };
    for node in 0..SENT {
        sender
            .publish(&Subject::Nodes, heartbeat(node))
            .unwrap_or_else(|e| panic!("publish {node}: {e}"));
    }
    tokio::time::timeout(Duration::from_secs(10), sender.close())
        .await
        .unwrap_or_else(|_| panic!("the bus's tasks did not end"));
    assert!(
        sender.publish(&Subject::Nodes, heartbeat(SENT)).is_err(),
        "a closed bus still takes messages"
    );
    let mut received = Vec::new();
    while received.len() < SENT as usize {
        match tokio::time::timeout(Duration::from_secs(10), rx.recv()).await {
            Ok(Some(node)) => received.push(node),
            _ => break,
        }
    }
    assert_eq!(received, (0..SENT).collect::<Vec<_>>());
}

/// With NATS frozen (stopped, so the connection stays and nothing is
/// read), closing the bus still returns: a node's shutdown never waits on
/// the bus for longer than its bound.
#[tokio::test]
async fn closing_the_bus_returns_with_nats_frozen() {
    use signaling::cluster::bus::{BusMessage, BusPayload, EventBus, Subject};
    use signaling::cluster::nats::NatsBus;
    use std::sync::Arc;
    const SIGSTOP: i32 = 19;
    const SIGCONT: i32 = 18;

    let nats = tests::nats::NatsServer::start().await;
    let bus = NatsBus::connect(std::slice::from_ref(&nats.url), Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("NATS: {e}"));
    nats.process.signal(SIGSTOP);
    // More than async-nats's command queue and the socket buffers hold,
    // fewer than our own queue's bound.
    let pad = "x".repeat(2 * 1024);
    for node in 0..12_000u64 {
        let mut counts = std::collections::HashMap::new();
        counts.insert(pad.clone(), node);
        let msg = BusMessage::with_time(
            signaling::cluster::bus::now_us(),
            BusPayload::Heartbeat { node, counts },
        );
        // A full queue refuses; that is the bound, not a failure here.
        let _ = bus.publish(&Subject::Nodes, Arc::new(msg));
    }
    let closed = tokio::time::timeout(Duration::from_secs(10), bus.close()).await;
    nats.process.signal(SIGCONT);
    assert!(closed.is_ok(), "closing waited on a frozen NATS");
}
