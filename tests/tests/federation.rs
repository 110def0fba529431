//! Joining a room on another signaling server (seed 004 "Join federated
//! room"): two real servers, two Talk emulators.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::TestClient;
use tests::server::TestServer;
use tests::talk::{unix_now, Behaviour, Room, Talk};

struct World {
    local_talk: Talk,
    remote_talk: Talk,
    local: TestServer,
    remote: TestServer,
}

async fn world() -> World {
    let local_talk = Talk::start(tests::server::TALK_SECRET).await;
    let remote_talk = Talk::start(tests::server::TALK_SECRET).await;
    remote_talk.add_room("remote-room", Room::open("Shared room"));
    let local = TestServer::builder().talk(&local_talk).start().await;
    let remote = TestServer::builder().talk(&remote_talk).start().await;
    World {
        local_talk,
        remote_talk,
        local,
        remote,
    }
}

/// The token the remote Nextcloud gives a federated user.
fn federation_token(w: &World, user: &str) -> String {
    let cloud = w.local_talk.addr.to_string();
    let now = unix_now();
    w.remote_talk.sign_claims(&json!({
        "iss": w.remote_talk.url(), "iat": now, "exp": now + 300, "sub": format!("{user}@{cloud}"),
        "userdata": {"actorType": "federated_users", "actorId": format!("{user}@{cloud}"), "displayname": user},
    }))
}

fn federation(w: &World, token: &str) -> Value {
    json!({"signaling": w.remote.http_url(), "url": w.remote_talk.url(), "roomid": "remote-room", "token": token})
}

/// A local client joins the remote room: the remote's room reply and
/// events reach it with its local ids, messages flow both ways, and leaving
/// ends the federation.
#[tokio::test]
async fn join_relay_and_leave() {
    let w = world().await;
    let alice = w.local_talk.add_user("alice", "Alice");
    let bob = w.remote_talk.add_user("bob", "Bob");
    let mut b = {
        let (mut b, _) = TestClient::connect(&w.remote).await;
        b.hello_v1(&w.remote_talk, Some(&bob)).await;
        b.join_ok("remote-room", "talk-b").await;
        b
    };
    let (mut a, _) = TestClient::connect(&w.local).await;
    a.hello_v1(&w.local_talk, Some(&alice)).await;
    let token = federation_token(&w, "alice");
    let id = a.request("room", json!({"roomid": "local-room", "sessionid": "talk-a", "federation": federation(&w, &token)})).await;
    let reply = a.recv().await;
    assert_eq!(reply["id"], id.as_str(), "{reply}");
    assert_eq!(reply["type"], "room", "{reply}");
    assert_eq!(reply["room"]["roomid"], "local-room");
    assert_eq!(reply["room"]["properties"]["name"], "Shared room");
    // The remote server's order: the sessions already there, then the own
    // join (with the local id).
    let others = a.recv().await;
    assert_eq!(
        others["event"]["join"][0]["sessionid"],
        b.session_id.as_str()
    );
    let own = a.recv().await;
    assert_eq!(
        own["event"]["join"][0]["sessionid"],
        a.session_id.as_str(),
        "own join with the local id: {own}"
    );

    // The remote sees a federated session with its own id.
    let joined = b.recv().await;
    let entry = &joined["event"]["join"][0];
    assert_eq!(entry["federated"], true, "{joined}");
    let remote_id = entry["sessionid"].as_str().unwrap().to_owned();
    assert_ne!(remote_id, a.session_id);
    let req = w
        .remote_talk
        .requests_of("room")
        .into_iter()
        .find(|r| r["room"]["sessionid"] == "talk-a")
        .unwrap();
    assert_eq!(req["room"]["actortype"], "federated_users");
    assert_eq!(
        req["room"]["actorid"],
        format!("alice@{}", w.local_talk.addr)
    );

    // Messages both ways.
    b.message(json!({"type": "room"}), json!({"from": "bob"}))
        .await;
    let m = a.recv().await;
    assert_eq!(m["message"]["data"], json!({"from": "bob"}));
    assert_eq!(m["message"]["sender"]["sessionid"], b.session_id.as_str());
    a.message(
        json!({"type": "session", "sessionid": b.session_id}),
        json!({"from": "alice"}),
    )
    .await;
    let m = b.recv().await;
    assert_eq!(m["message"]["data"], json!({"from": "alice"}));
    assert_eq!(m["message"]["sender"]["sessionid"], remote_id.as_str());

    // Leaving is answered by the remote and ends the federation.
    let id = a.request("room", json!({"roomid": ""})).await;
    let left = a.recv_until(|v| v["type"] == "room").await;
    assert_eq!(
        left,
        json!({"id": id, "type": "room", "room": {"roomid": ""}})
    );
    let l = b.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(l["event"]["leave"][0], remote_id.as_str());
    assert!(
        w.local_talk.requests_of("room").is_empty(),
        "no local room join for a federated room"
    );
}

/// Dial failures are `federation_error` with details; the remote's hello
/// errors are relayed.
#[tokio::test]
async fn federation_errors() {
    let w = world().await;
    let alice = w.local_talk.add_user("alice", "Alice");
    let (mut a, _) = TestClient::connect(&w.local).await;
    a.hello_v1(&w.local_talk, Some(&alice)).await;

    let dead = format!("http://127.0.0.1:{}/", tests::process::free_port());
    let fed = json!({"signaling": dead, "url": w.remote_talk.url(), "token": "t"});
    let id = a
        .request(
            "room",
            json!({"roomid": "r", "sessionid": "s", "federation": fed}),
        )
        .await;
    let v = a.expect_error(Some(&id), "federation_error").await;
    assert_eq!(v["error"]["details"]["code"], "network_error");

    let id = a
        .request(
            "room",
            json!({"roomid": "r", "federation": {"signaling": "", "url": "x", "token": ""}}),
        )
        .await;
    a.expect_error(Some(&id), "invalid_format").await;

    let other = Talk::start("other").await;
    let forged = other.v2_token("mallory");
    let id = a
        .request(
            "room",
            json!({"roomid": "r", "sessionid": "s", "federation": federation(&w, &forged)}),
        )
        .await;
    a.expect_error(Some(&id), "invalid_token").await;

    a.expect_silence(Duration::from_millis(300)).await;
}

/// A remote whose Nextcloud does not federate answers
/// `federation_unsupported`, relayed to the client.
#[tokio::test]
async fn remote_nextcloud_without_federation() {
    let w = world().await;
    w.remote_talk.set_behaviour(Behaviour {
        no_federation: true,
        ..Default::default()
    });
    let alice = w.local_talk.add_user("alice", "Alice");
    let (mut a, _) = TestClient::connect(&w.local).await;
    a.hello_v1(&w.local_talk, Some(&alice)).await;
    let token = federation_token(&w, "alice");
    let id = a
        .request(
            "room",
            json!({"roomid": "r", "sessionid": "s", "federation": federation(&w, &token)}),
        )
        .await;
    a.expect_error(Some(&id), "federation_unsupported").await;
    // The session is still usable for a local room.
    w.local_talk.add_room("local", Room::open("Local"));
    a.join_ok("local", "s2").await;
}

/// When the remote server goes away the client hears
/// `federation_interrupted`; when it is back, the federation reconnects,
/// cannot resume the lost session, says `federation_resumed` with
/// `resumed: false` and joins the room again.
#[tokio::test]
async fn remote_restart_interrupts_and_resumes() {
    let mut w = world().await;
    let alice = w.local_talk.add_user("alice", "Alice");
    let (mut a, _) = TestClient::connect(&w.local).await;
    a.hello_v1(&w.local_talk, Some(&alice)).await;
    let token = federation_token(&w, "alice");
    a.request("room", json!({"roomid": "local-room", "sessionid": "talk-a", "federation": federation(&w, &token)})).await;
    assert_eq!(a.recv().await["type"], "room");
    a.recv_until(|v| v["event"]["type"] == "join").await;

    let port = w.remote.port;
    w.remote.process.stop(Duration::from_secs(5));
    let v = a.recv_until(|v| v["type"] == "event").await;
    assert_eq!(
        v,
        json!({"type": "event", "event": {"target": "room", "type": "federation_interrupted"}})
    );

    w.remote = TestServer::builder()
        .talk(&w.remote_talk)
        .port(port)
        .start()
        .await;
    let v = a
        .try_recv_within(Duration::from_secs(15))
        .await
        .expect("open")
        .expect("resumed event");
    assert_eq!(
        v,
        json!({"type": "event", "event": {"target": "room", "type": "federation_resumed", "resumed": false}})
    );
    let room = a.recv().await;
    assert_eq!(room["type"], "room");
    assert!(
        room.get("id").is_none(),
        "a re-join has no request id: {room}"
    );
    assert_eq!(room["room"]["roomid"], "local-room");
    let join = a.recv_until(|v| v["event"]["type"] == "join").await;
    assert_eq!(join["event"]["join"][0]["sessionid"], a.session_id.as_str());
}
