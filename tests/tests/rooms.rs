//! Joining, switching and leaving rooms (seed 004 "Join room", "Leave
//! room", "Room events"), validated with the Talk emulator.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::server::TestServer;
use tests::talk::{Room, Talk, User};
use tests::wait::{eventually, STEP};

async fn setup() -> (Talk, TestServer, User, User) {
    tests::server::alice_and_bob(&["room1", "room2"]).await
}

fn join_ids(v: &Value) -> Vec<String> {
    assert_eq!(v["event"]["type"], "join", "{v}");
    v["event"]["join"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sessionid"].as_str().unwrap().to_owned())
        .collect()
}

/// A join is validated with Talk; the joiner gets the room with its
/// properties, its own join event and the sessions already there; the
/// others get a join event.
#[tokio::test]
async fn join_events_and_initial_list() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let reply = a.join("room1", "talk-a").await;
    assert_eq!(reply["type"], "room");
    assert_eq!(reply["room"]["roomid"], "room1");
    assert_eq!(reply["room"]["properties"]["name"], "Room one");
    assert!(
        reply["room"].get("bandwidth").is_none(),
        "no SFU and no backend limits"
    );
    let own = a.recv().await;
    assert_eq!(join_ids(&own), vec![a.session_id.clone()]);
    let entry = &own["event"]["join"][0];
    assert_eq!(entry["userid"], "alice");
    assert_eq!(entry["user"]["displayname"], "Alice");
    assert_eq!(entry["roomsessionid"], "talk-a");

    let req = talk.requests_of("room").pop().unwrap();
    assert_eq!(
        req["room"],
        json!({"version": "1.0", "roomid": "room1", "userid": "alice", "sessionid": "talk-a"})
    );

    let mut b = user(&server, &talk, &bob).await;
    b.join("room1", "talk-b").await;
    // As the reference: the sessions already there, then the own join.
    let others = b.recv().await;
    assert_eq!(join_ids(&others), vec![a.session_id.clone()]);
    let own_b = b.recv().await;
    assert_eq!(join_ids(&own_b), vec![b.session_id.clone()]);
    let seen_by_a = a.recv().await;
    assert_eq!(join_ids(&seen_by_a), vec![b.session_id.clone()]);
    a.expect_silence(Duration::from_millis(300)).await;
    b.expect_silence(Duration::from_millis(300)).await;
}

/// Joining the current room again is `already_joined` with the room in
/// `details`, and nothing else happens.
#[tokio::test]
async fn already_joined() {
    let (talk, server, alice, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    a.join_ok("room1", "talk-a").await;
    let requests = talk.requests_of("room").len();
    let id = a
        .request("room", json!({"roomid": "room1", "sessionid": "talk-a2"}))
        .await;
    let v = a.expect_error(Some(&id), "already_joined").await;
    assert_eq!(v["error"]["details"]["room"]["roomid"], "room1");
    assert_eq!(
        v["error"]["details"]["room"]["properties"]["name"],
        "Room one"
    );
    assert_eq!(
        talk.requests_of("room").len(),
        requests,
        "no request to Talk"
    );
    a.expect_silence(Duration::from_millis(300)).await;
}

/// Talk's refusal is forwarded (`no_such_room`).
#[tokio::test]
async fn join_refused_by_talk() {
    let (talk, server, alice, _) = setup().await;
    talk.add_room("secret", Room::open("Secret").invite_only(&["bob"]));
    let mut a = user(&server, &talk, &alice).await;
    let id = a
        .request("room", json!({"roomid": "secret", "sessionid": "t"}))
        .await;
    let v = a.expect_error(Some(&id), "no_such_room").await;
    assert_eq!(
        v["error"]["message"],
        "The user is not invited to this room."
    );
    let id = a
        .request(
            "room",
            json!({"roomid": "does-not-exist", "sessionid": "t"}),
        )
        .await;
    a.expect_error(Some(&id), "no_such_room").await;
}

/// Switching rooms leaves the old one (leave event, Talk leave request);
/// `roomid: ""` leaves and is confirmed; leaving while in no room is silent.
#[tokio::test]
async fn switch_and_leave() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    a.join_ok("room1", "talk-a").await;
    b.join_ok("room1", "talk-b").await;
    a.recv().await; // bob joined

    a.join_ok("room2", "talk-a2").await;
    let left = b.recv().await;
    assert_eq!(
        left,
        json!({"type": "event", "event": {"target": "room", "type": "leave", "leave": [a.session_id]}})
    );
    let leave_req = eventually(Duration::from_secs(5), || {
        let reqs = talk.requests_of("room");
        async move { reqs.into_iter().find(|r| r["room"]["action"] == "leave") }
    })
    .await
    .expect("Talk got a leave request");
    assert_eq!(
        leave_req["room"],
        json!({"version": "1.0", "roomid": "room1", "userid": "alice", "sessionid": "talk-a", "action": "leave"})
    );

    let id = a.request("room", json!({"roomid": ""})).await;
    let v = a.recv().await;
    assert_eq!(v, json!({"id": id, "type": "room", "room": {"roomid": ""}}));
    a.request("room", json!({"roomid": ""})).await;
    a.expect_silence(Duration::from_millis(400)).await;
}

/// `bye` is confirmed without payload, closes the connection, and the
/// session leaves its room for good.
#[tokio::test]
async fn bye_leaves_room_and_ends_session() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    a.join_ok("room1", "talk-a").await;
    b.join_ok("room1", "talk-b").await;
    a.recv().await;
    let id = a.request("bye", json!({})).await;
    let v = a.recv().await;
    assert_eq!(v, json!({"id": id, "type": "bye"}));
    a.expect_closed().await;
    let left = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], a.session_id.as_str());

    let (mut again, _) = TestClient::connect(&server).await;
    let v = again.resume(&a.resume_id).await;
    assert_eq!(v["error"]["code"], "no_such_session");
}

/// A second connection joining with the same Talk session id takes over:
/// the old one gets `bye` `room_session_reconnected`, and Talk is not told
/// that the Talk session left.
#[tokio::test]
async fn room_session_reconnected() {
    let (talk, server, alice, bob) = setup().await;
    let mut a1 = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    b.join_ok("room1", "talk-b").await;
    a1.join_ok("room1", "talk-a").await;
    b.recv().await; // a1 joined
    let mut a2 = user(&server, &talk, &alice).await;
    a2.join("room1", "talk-a").await;
    let bye = a1.recv().await;
    assert_eq!(
        bye,
        json!({"type": "bye", "bye": {"reason": "room_session_reconnected"}})
    );
    a1.expect_closed().await;
    let left = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], a1.session_id.as_str());
    // Bob's leave comes after the takeover, so its request is the barrier:
    // a leave for the taken-over session would have been asked by then.
    b.request("room", json!({"roomid": ""})).await;
    let bob_left = eventually(STEP, || async {
        talk.requests_of("room")
            .iter()
            .any(|r| r["room"]["action"] == "leave" && r["room"]["sessionid"] == "talk-b")
            .then_some(())
    })
    .await;
    assert!(bob_left.is_some(), "no leave request for bob");
    assert!(
        !talk
            .requests_of("room")
            .iter()
            .any(|r| r["room"]["action"] == "leave" && r["room"]["sessionid"] == "talk-a"),
        "no leave request for the taken-over Talk session"
    );
}

/// Backend bitrate limits are sent as `bandwidth` in the room reply.
#[tokio::test]
async fn bandwidth_from_backend_limits() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", Room::open("Room one"));
    // Appended to the generated [talk] backend section.
    let server = TestServer::builder()
        .talk(&talk)
        .extra("maxstreambitrate = 300000\nmaxscreenbitrate = 600000\n")
        .start()
        .await;
    let mut a = user(&server, &talk, &alice).await;
    let reply = a.join("room1", "t").await;
    assert_eq!(
        reply["room"]["bandwidth"],
        json!({"maxstreambitrate": 300000, "maxscreenbitrate": 600000})
    );
}

/// Guests must join a room within 10 s or get `bye` `room_join_timeout`.
#[tokio::test]
async fn anonymous_join_timeout() {
    let (talk, server, _, _) = setup().await;
    let (mut g, _) = TestClient::connect(&server).await;
    g.hello_v1(&talk, None).await;
    let start = std::time::Instant::now();
    let v = g
        .try_recv_within(Duration::from_secs(13))
        .await
        .expect("not closed")
        .expect("a bye");
    assert_eq!(
        v,
        json!({"type": "bye", "bye": {"reason": "room_join_timeout"}})
    );
    assert!(start.elapsed() >= Duration::from_secs(9));
    g.expect_closed().await;

    // A guest in a room is not timed out.
    let (mut g2, _) = TestClient::connect(&server).await;
    g2.hello_v1(&talk, None).await;
    g2.join_ok("room1", "guest-talk").await;
    g2.expect_silence(Duration::from_secs(11)).await;
}

/// A dropped connection keeps the session in its room for the resume
/// window; then it expires: leave event and Talk leave request.
#[tokio::test]
async fn disconnect_expires_after_resume_window() {
    let (talk, server, alice, bob) = setup().await;
    let a = {
        let mut a = user(&server, &talk, &alice).await;
        a.join_ok("room1", "talk-a").await;
        a
    };
    let mut b = user(&server, &talk, &bob).await;
    b.join_ok("room1", "talk-b").await;
    let a_id = a.session_id.clone();
    a.close().await;
    b.expect_silence(Duration::from_secs(20)).await;
    let v = b
        .try_recv_within(Duration::from_secs(15))
        .await
        .expect("open")
        .expect("leave after expiry");
    assert_eq!(v["event"]["type"], "leave");
    assert_eq!(v["event"]["leave"][0], a_id.as_str());
    let found = eventually(Duration::from_secs(3), || {
        let reqs = talk.requests_of("room");
        async move {
            reqs.into_iter()
                .find(|r| r["room"]["action"] == "leave" && r["room"]["sessionid"] == "talk-a")
        }
    })
    .await;
    assert!(found.is_some(), "Talk is told when the session expires");
}
