//! Internal clients (seed 004 "Internal clients"): virtual sessions, in-call
//! flags, and dialout through a SIP bridge.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::TestClient;
use tests::talk::Room;
use tests::world::World;

async fn world() -> World {
    World::builder()
        .room("room1")
        .room_with("123", Room::open("Numeric"))
        .start()
        .await
}

const QUIET: Duration = Duration::from_millis(300);

/// A SIP bridge joined to room1 next to alice; both have read their
/// initial events.
async fn bridge_and_alice(w: &World, features: &[&str]) -> (TestClient, TestClient) {
    let (mut a, _) = TestClient::connect(&w.server).await;
    a.hello_v1(&w.talk, Some(&w.alice)).await;
    a.join_ok("room1", "ta").await;
    let (mut i, _) = TestClient::connect(&w.server).await;
    i.hello_internal(&w.talk, features).await;
    i.join("room1", "").await;
    // alice in the initial list, own join, participants update
    i.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    a.recv_until(|v| v["event"]["type"] == "join").await;
    a.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    (i, a)
}

/// The reference's order of a joiner's first events: the sessions already
/// in the room, the own join, then the participants update an internal
/// joiner triggers (a recording server takes any other order for a
/// reconnect of the publisher).
#[tokio::test]
async fn join_snapshot_order() {
    let w = world().await;
    let (mut a, _) = TestClient::connect(&w.server).await;
    a.hello_v1(&w.talk, Some(&w.alice)).await;
    a.join_ok("room1", "ta").await;
    let (mut i, _) = TestClient::connect(&w.server).await;
    i.hello_internal(&w.talk, &[]).await;
    let reply = i.join("room1", "").await;
    assert_eq!(reply["type"], "room", "{reply}");
    let first = i.recv().await;
    assert_eq!(first["event"]["type"], "join", "{first}");
    assert_eq!(
        first["event"]["join"][0]["sessionid"],
        a.session_id.as_str()
    );
    let second = i.recv().await;
    assert_eq!(second["event"]["type"], "join", "{second}");
    assert_eq!(
        second["event"]["join"][0]["sessionid"],
        i.session_id.as_str()
    );
    let third = i.recv().await;
    assert_eq!(third["event"]["target"], "participants", "{third}");
    assert_eq!(third["event"]["type"], "update", "{third}");
}

fn users(v: &Value) -> Vec<Value> {
    v["event"]["update"]["users"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// addsession / updatesession / removesession: the phone participant
/// appears in join events and participant lists, flag changes are events,
/// Talk is told, and messages to it reach the bridge.
#[tokio::test]
async fn virtual_session_lifecycle() {
    let w = world().await;
    let (mut i, mut a) = bridge_and_alice(&w, &[]).await;
    i.request(
        "internal",
        json!({"type": "addsession", "addsession": {"sessionid": "phone-1", "roomid": "room1",
        "userid": "", "user": {"displayname": "+49 123", "type": "phone"}, "flags": 1}}),
    )
    .await;
    let join = a.recv_until(|v| v["event"]["type"] == "join").await;
    let entry = &join["event"]["join"][0];
    assert_eq!(entry["user"]["type"], "phone");
    assert!(entry.get("roomsessionid").is_none() && entry.get("features").is_none());
    let virtual_id = entry["sessionid"].as_str().unwrap().to_owned();
    let update = a
        .recv_until(|v| v["event"]["target"] == "participants")
        .await;
    let list = users(&update);
    let v = list
        .iter()
        .find(|u| u["sessionId"] == virtual_id.as_str())
        .expect("virtual entry");
    assert_eq!(v["virtual"], true);
    assert_eq!(v["inCall"], 9, "in call with phone by default");
    assert!(
        list.iter().any(|u| u["internal"] == true),
        "the bridge itself is listed"
    );
    let flags = a.recv_until(|v| v["event"]["type"] == "flags").await;
    assert_eq!(
        flags["event"]["flags"],
        json!({"roomid": "room1", "sessionid": virtual_id, "flags": 1})
    );
    let add = w
        .talk
        .requests_of("session")
        .pop()
        .expect("session add request");
    assert_eq!(add["session"]["action"], "add");
    assert_eq!(add["session"]["sessionid"], virtual_id.as_str());

    // Messages to the phone go to the bridge with its own id for it.
    a.message(
        json!({"type": "session", "sessionid": virtual_id}),
        json!({"type": "dtmf"}),
    )
    .await;
    let m = i.recv_until(|v| v["type"] == "message").await;
    assert_eq!(m["message"]["recipient"]["sessionid"], "phone-1");
    assert_eq!(m["message"]["data"], json!({"type": "dtmf"}));

    i.request("internal", json!({"type": "updatesession", "updatesession": {"sessionid": "phone-1", "roomid": "room1", "flags": 2}})).await;
    let flags = a.recv_until(|v| v["event"]["type"] == "flags").await;
    assert_eq!(flags["event"]["flags"]["flags"], 2);
    i.request("internal", json!({"type": "updatesession", "updatesession": {"sessionid": "phone-1", "roomid": "room1", "flags": 2}})).await;
    a.expect_silence(QUIET).await;

    i.request("internal", json!({"type": "removesession", "removesession": {"sessionid": "phone-1", "roomid": "room1"}})).await;
    let left = a.recv_until(|v| v["event"]["type"] == "leave").await;
    assert_eq!(left["event"]["leave"][0], virtual_id.as_str());
    let removed = tests::wait::eventually(Duration::from_secs(3), || {
        let r = w
            .talk
            .requests_of("session")
            .into_iter()
            .find(|r| r["session"]["action"] == "remove");
        async move { r }
    })
    .await;
    assert!(removed.is_some());
}

/// With actor options Talk gets a room join for the virtual session; when
/// the bridge leaves, its virtual sessions go too.
#[tokio::test]
async fn actor_virtual_sessions_and_owner_bye() {
    let w = world().await;
    let (mut i, mut a) = bridge_and_alice(&w, &["internal-incall"]).await;
    i.request(
        "internal",
        json!({"type": "addsession", "addsession": {"sessionid": "p2", "roomid": "room1",
        "options": {"actorId": "+49 555", "actorType": "phones"}}}),
    )
    .await;
    let join = a.recv_until(|v| v["event"]["type"] == "join").await;
    let virtual_id = join["event"]["join"][0]["sessionid"]
        .as_str()
        .unwrap()
        .to_owned();
    let req = w
        .talk
        .requests_of("room")
        .into_iter()
        .find(|r| r["room"]["sessionid"] == virtual_id.as_str())
        .unwrap();
    assert_eq!(req["room"]["actorid"], "+49 555");
    assert_eq!(req["room"]["actortype"], "phones");
    assert!(
        req["room"].get("incall").is_none(),
        "internal-incall: the phone starts out of the call"
    );
    let update = a
        .recv_until(|v| v["event"]["target"] == "participants")
        .await;
    assert!(users(&update)
        .iter()
        .any(|u| u["sessionId"] == virtual_id.as_str() && u["inCall"] == 0));

    i.request("bye", json!({})).await;
    let mut left = Vec::new();
    while left.len() < 2 {
        let v = a.recv().await;
        if v["event"]["type"] == "leave" {
            left.push(v["event"]["leave"][0].as_str().unwrap().to_owned());
        }
    }
    assert!(left.contains(&virtual_id));
}

/// `incall` of an internal client updates the participant list.
#[tokio::test]
async fn internal_incall() {
    let w = world().await;
    let (mut i, mut a) = bridge_and_alice(&w, &["internal-incall"]).await;
    i.request(
        "internal",
        json!({"type": "incall", "incall": {"incall": 3}}),
    )
    .await;
    let update = a
        .recv_until(|v| v["event"]["target"] == "participants")
        .await;
    assert!(users(&update)
        .iter()
        .any(|u| u["internal"] == true && u["inCall"] == 3));
    i.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    // Same value again: nothing.
    i.request(
        "internal",
        json!({"type": "incall", "incall": {"incall": 3}}),
    )
    .await;
    a.expect_silence(QUIET).await;
    // Internal messages from normal clients are ignored.
    a.request(
        "internal",
        json!({"type": "incall", "incall": {"incall": 1}}),
    )
    .await;
    i.expect_silence(QUIET).await;
}

/// Dialout: Talk asks, the SIP bridge with `start-dialout` answers; the
/// HTTP reply carries the call id or the error.
#[tokio::test]
async fn dialout() {
    let w = world().await;
    let server_url = w.server.http_url();
    // No bridge connected: 404.
    let (status, body) = w
        .talk
        .notify(
            &server_url,
            "123",
            &json!({"type": "dialout", "dialout": {"number": "+49123456"}}),
        )
        .await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["dialout"]["error"]["code"],
        "no_client_available"
    );
    for (room, number, code) in [
        ("123", "", "number_missing"),
        ("123", "0049", "invalid_number"),
        ("abc", "+49123", "invalid_roomid"),
    ] {
        let (status, body) = w
            .talk
            .notify(
                &server_url,
                room,
                &json!({"type": "dialout", "dialout": {"number": number}}),
            )
            .await;
        assert_eq!(status, 400);
        assert_eq!(
            serde_json::from_str::<Value>(&body).unwrap()["dialout"]["error"]["code"],
            code
        );
    }

    let (mut bridge, _) = TestClient::connect(&w.server).await;
    bridge.hello_internal(&w.talk, &["start-dialout"]).await;
    let talk = &w.talk;
    let body =
        json!({"type": "dialout", "dialout": {"number": "+49123456", "options": {"actorId": "x"}}});
    let request = talk.notify(&server_url, "123", &body);
    let answer = async {
        let req = bridge.recv().await;
        assert_eq!(req["type"], "internal");
        assert_eq!(req["internal"]["dialout"]["roomid"], "123");
        assert_eq!(req["internal"]["dialout"]["backend"], talk.url());
        assert_eq!(
            req["internal"]["dialout"]["request"],
            json!({"number": "+49123456", "options": {"actorId": "x"}})
        );
        let id = req["id"].as_str().unwrap().to_owned();
        assert_eq!(id.len(), 32);
        bridge.send(&json!({"id": id, "type": "internal", "internal": {"type": "dialout", "dialout": {"type": "status", "roomid": "123",
            "status": {"callid": "call-1", "status": "accepted"}}}})).await;
    };
    let ((status, body), ()) = tokio::join!(request, answer);
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"type": "dialout", "dialout": {"callid": "call-1"}})
    );

    // An error answer becomes a 502 with that error.
    let body = json!({"type": "dialout", "dialout": {"number": "+49123456"}});
    let request = talk.notify(&server_url, "123", &body);
    let answer = async {
        let req = bridge.recv().await;
        let id = req["id"].as_str().unwrap().to_owned();
        bridge.send(&json!({"id": id, "type": "internal", "internal": {"type": "dialout", "dialout": {"type": "error",
            "error": {"code": "busy", "message": "The line is busy"}}}})).await;
    };
    let ((status, body), ()) = tokio::join!(request, answer);
    assert_eq!(status, 502);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["dialout"]["error"]["code"],
        "busy"
    );
}

/// Dialout status messages become `callstatus_<id>` transient data of the
/// room.
#[tokio::test]
async fn dialout_status_is_transient_data() {
    let w = world().await;
    let (mut a, _) = TestClient::connect(&w.server).await;
    a.hello_v1(&w.talk, Some(&w.alice)).await;
    a.join_ok("123", "ta").await;
    let (mut bridge, _) = TestClient::connect(&w.server).await;
    bridge.hello_internal(&w.talk, &["start-dialout"]).await;
    bridge.send(&json!({"type": "internal", "internal": {"type": "dialout", "dialout": {"type": "status", "roomid": "123",
        "status": {"callid": "c7", "status": "ringing"}}}})).await;
    let v = a.recv_until(|v| v["type"] == "transient").await;
    assert_eq!(v["transient"]["key"], "callstatus_c7");
    assert_eq!(v["transient"]["value"]["status"], "ringing");
    bridge.send(&json!({"type": "internal", "internal": {"type": "dialout", "dialout": {"type": "status", "roomid": "123",
        "status": {"callid": "c7", "status": "cleared"}}}})).await;
    assert_eq!(
        a.recv_until(|v| v["type"] == "transient").await["transient"]["value"]["status"],
        "cleared"
    );
    // Cleared calls disappear after 5 s.
    let v = a
        .try_recv_within(Duration::from_secs(7))
        .await
        .expect("open")
        .expect("removal");
    assert_eq!(v["transient"]["type"], "remove");
    assert_eq!(v["transient"]["key"], "callstatus_c7");
}
