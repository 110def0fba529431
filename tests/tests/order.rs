//! Per-sender order: the messages one session sends to another, whether
//! addressed by session, by user or to the room, arrive in the order they
//! were sent: on one node, across nodes sharing a real nats-server, and
//! when they wait in the queue of a session that is resuming.

use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::cluster::Cluster;

/// Messages per run: enough for several NATS reads to interleave, well
/// under a resuming session's queue.
const COUNT: usize = 240;

async fn world(nodes: usize, nats: bool) -> Cluster {
    let b = Cluster::builder(nodes);
    match nats {
        true => b.start().await,
        false => b.without_nats().start().await,
    }
}

/// Joins every client to room1 and waits until each has seen all of them.
async fn all_in_room(clients: &mut [&mut TestClient]) {
    let ids: Vec<String> = clients.iter().map(|c| c.session_id.clone()).collect();
    for (n, c) in clients.iter_mut().enumerate() {
        let seen: Vec<&str> = ids[..=n].iter().map(String::as_str).collect();
        c.join_seeing("room1", &format!("t{n}"), &seen).await;
    }
    for (n, c) in clients.iter_mut().enumerate() {
        for later in &ids[n + 1..] {
            c.recv_until(|v| {
                v["event"]["type"] == "join"
                    && v["event"]["join"]
                        .as_array()
                        .is_some_and(|a| a.iter().any(|e| e["sessionid"] == later.as_str()))
            })
            .await;
        }
    }
}

/// The recipients `n` goes to, in turn: session, user, room, for each of
/// `targets` (session id, user id).
fn recipient(n: usize, targets: &[(String, String)]) -> Value {
    let (session, user) = &targets[(n / 3) % targets.len()];
    match n % 3 {
        0 => json!({"type": "session", "sessionid": session}),
        1 => json!({"type": "user", "userid": user}),
        _ => json!({"type": "room"}),
    }
}

/// Sends `COUNT` numbered messages to `targets`, round robin over the
/// recipient types.
async fn send_numbered(from: &mut TestClient, targets: &[(String, String)]) {
    for n in 0..COUNT {
        from.message(recipient(n, targets), json!({"n": n})).await;
    }
}

/// The numbers `receiver` gets from the sender until `last` arrives.
async fn numbers_until(receiver: &mut TestClient, last: usize) -> Vec<usize> {
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let v = receiver.recv_until(|v| v["type"] == "message").await;
        let n = v["message"]["data"]["n"]
            .as_u64()
            .unwrap_or_else(|| panic!("not numbered: {v}"));
        got.push(n as usize);
    }
    got
}

/// What `me` must receive of what was sent to `targets`.
fn expected(me: &str, targets: &[(String, String)]) -> Vec<usize> {
    (0..COUNT)
        .filter(|n| {
            let r = recipient(*n, targets);
            r["type"] == "room"
                || r["sessionid"] == me
                || r["userid"].is_string() && {
                    let (session, _) = &targets[(n / 3) % targets.len()];
                    session == me
                }
        })
        .collect()
}

fn target(c: &TestClient, user: &str) -> (String, String) {
    (c.session_id.clone(), user.to_owned())
}

async fn order_between_two(nodes: usize, nats: bool) {
    let w = world(nodes, nats).await;
    let mut a = user(&w.nodes[0], &w.talk, &w.alice).await;
    let mut b = user(&w.nodes[nodes - 1], &w.talk, &w.bob).await;
    all_in_room(&mut [&mut a, &mut b]).await;
    let targets = [target(&b, "bob")];
    send_numbered(&mut a, &targets).await;
    let want = expected(&b.session_id, &targets);
    let got = numbers_until(&mut b, *want.last().unwrap_or(&0)).await;
    assert_eq!(got, want);
}

#[tokio::test]
async fn one_node() {
    order_between_two(1, false).await;
}

/// One node on NATS: direct delivery to a local session and the user and
/// room subjects through NATS must not overtake each other.
#[tokio::test]
async fn one_node_with_nats() {
    order_between_two(1, true).await;
}

/// alice on the first node writes to bob and carol on the other two.
#[tokio::test]
async fn three_nodes() {
    let w = world(3, true).await;
    let mut a = user(&w.nodes[0], &w.talk, &w.alice).await;
    let mut b = user(&w.nodes[1], &w.talk, &w.bob).await;
    let mut c = user(&w.nodes[2], &w.talk, &w.carol).await;
    all_in_room(&mut [&mut a, &mut b, &mut c]).await;
    let targets = [target(&b, "bob"), target(&c, "carol")];
    send_numbered(&mut a, &targets).await;
    for receiver in [&mut b, &mut c] {
        let want = expected(&receiver.session_id, &targets);
        let got = numbers_until(receiver, *want.last().unwrap_or(&0)).await;
        assert_eq!(got, want, "as received by {}", receiver.session_id);
    }
}

/// bob's connection drops; what alice sends meanwhile waits in his
/// session's queue on his node and comes, in order, after his resume.
#[tokio::test]
async fn queued_while_resuming() {
    let w = world(3, true).await;
    let mut a = user(&w.nodes[0], &w.talk, &w.alice).await;
    let mut b = user(&w.nodes[1], &w.talk, &w.bob).await;
    all_in_room(&mut [&mut a, &mut b]).await;
    let targets = [target(&b, "bob")];
    let resume_id = b.resume_id.clone();
    let bob_id = b.session_id.clone();
    // Answered once node B has let go of the connection.
    b.close().await;
    send_numbered(&mut a, &targets).await;
    // The last message must have reached node B's queue before bob is back.
    a.message(
        json!({"type": "session", "sessionid": bob_id}),
        json!({"n": COUNT}),
    )
    .await;
    let (mut again, _) = TestClient::connect(&w.nodes[1]).await;
    let hello = again.resume(&resume_id).await;
    assert_eq!(hello["type"], "hello", "{hello}");
    let mut want = expected(&bob_id, &targets);
    want.push(COUNT);
    let got = numbers_until(&mut again, COUNT).await;
    assert_eq!(got, want);
}
