//! Sessions of different backends (two Nextclouds on one signaling
//! cluster) never reach each other, by any recipient type or path:
//! messages, control messages (which the reference lets through),
//! transient data and internal clients' virtual sessions; on one node and
//! across nodes.

use std::time::Duration;

use serde_json::json;
use tests::client::{user, TestClient};
use tests::nats::NatsServer;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Room, Talk, User};

const QUIET: Duration = Duration::from_millis(400);

struct World {
    one: Talk,
    two: Talk,
    _nats: Option<NatsServer>,
    nodes: Vec<TestServer>,
    alice: User,
    eve: User,
}

/// Backends `one` (alice, a moderator) and `two` (eve), each with a room
/// "shared" of the same id; `nodes` servers, on NATS when more than one.
async fn world(nodes: usize) -> World {
    let one = Talk::start(TALK_SECRET).await;
    let two = Talk::start(TALK_SECRET).await;
    let alice = one.add_user("alice", "Alice");
    let eve = two.add_user("eve", "Eve");
    for t in [&one, &two] {
        t.add_room(
            "shared",
            Room::open("Shared").with_permissions(&["control", "publish-media", "transient-data"]),
        );
    }
    let nats = if nodes > 1 {
        Some(NatsServer::start().await)
    } else {
        None
    };
    let mut servers = Vec::new();
    for _ in 0..nodes {
        let mut b = TestServer::builder().extra(&format!(
            "backends = one, two\n\n[one]\nurls = {}\nsecret = {TALK_SECRET}\n\n[two]\nurls = {}\nsecret = {TALK_SECRET}\n\n",
            one.url(),
            two.url()
        ));
        if let Some(n) = &nats {
            b = b.nats(&n.url);
        }
        servers.push(b.start().await);
    }
    World {
        one,
        two,
        _nats: nats,
        nodes: servers,
        alice,
        eve,
    }
}

/// alice (backend one) and eve (backend two), both in their "shared".
async fn alice_and_eve(w: &World) -> (TestClient, TestClient) {
    let mut a = user(&w.nodes[0], &w.one, &w.alice).await;
    let mut e = user(w.nodes.last().expect("a node"), &w.two, &w.eve).await;
    a.join_ok("shared", "ta").await;
    e.join_ok("shared", "te").await;
    // Neither hears of the other.
    a.expect_silence(QUIET).await;
    e.expect_silence(QUIET).await;
    (a, e)
}

async fn nothing_reaches_eve(nodes: usize) {
    let w = world(nodes).await;
    let (mut a, mut e) = alice_and_eve(&w).await;
    let eve = json!({"type": "session", "sessionid": e.session_id});
    a.message(eve.clone(), json!("hello eve")).await;
    a.request(
        "control",
        json!({"recipient": eve, "data": {"type": "mute", "audio": 1}}),
    )
    .await;
    a.message(json!({"type": "user", "userid": "eve"}), json!("by user"))
        .await;
    a.message(json!({"type": "room"}), json!("to the room"))
        .await;
    a.request(
        "transient",
        json!({"type": "set", "key": "k", "value": "one's"}),
    )
    .await;
    // alice's own transient echo is the only thing anybody hears.
    let echo = a.recv().await;
    assert_eq!(echo["type"], "transient", "{echo}");
    e.expect_silence(QUIET).await;
    a.expect_silence(QUIET).await;
    // The other way round works within backend two only.
    e.message(
        json!({"type": "session", "sessionid": a.session_id}),
        json!("hello alice"),
    )
    .await;
    a.expect_silence(QUIET).await;
}

#[tokio::test]
async fn one_node() {
    nothing_reaches_eve(1).await;
}

#[tokio::test]
async fn two_nodes() {
    nothing_reaches_eve(2).await;
}

/// An internal client of backend one adds a virtual session to its
/// "shared": eve in backend two's "shared" hears nothing of it.
#[tokio::test]
async fn internal_virtual_sessions_stay_in_their_backend() {
    let w = world(1).await;
    let (mut a, mut e) = alice_and_eve(&w).await;
    let (mut i, _) = TestClient::connect(&w.nodes[0]).await;
    i.hello_internal(&w.one, &[]).await;
    i.join("shared", "").await;
    i.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    a.recv_until(|v| v["event"]["type"] == "join").await;
    i.request(
        "internal",
        json!({"type": "addsession", "addsession": {"sessionid": "phone-1", "roomid": "shared",
        "userid": "", "user": {"displayname": "+49 123"}, "flags": 1}}),
    )
    .await;
    let join = a.recv_until(|v| v["event"]["type"] == "join").await;
    assert_eq!(join["event"]["join"][0]["user"]["displayname"], "+49 123");
    e.expect_silence(QUIET).await;
}
