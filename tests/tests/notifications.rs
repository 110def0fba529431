//! Nextcloud -> signaling notifications at `POST /api/v1/room/{roomid}`
//! (seed 004 "Internal signaling server API", facts 3.3-3.4): the
//! validation pipeline and the events each notification type produces.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::TestClient;
use tests::server::TALK_SECRET;
use tests::talk::{Room, User};
use tests::world::World;

async fn world() -> World {
    World::builder().room("room1").room("room2").start().await
}

async fn user(w: &World, u: &User) -> TestClient {
    tests::client::user(&w.server, &w.talk, u).await
}

/// Two users in room1 (Talk session ids "ta" and "tb"), initial events read.
async fn two_in_room(w: &World) -> (TestClient, TestClient) {
    let mut a = user(w, &w.alice).await;
    let mut b = user(w, &w.bob).await;
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    a.recv().await;
    (a, b)
}

async fn notify(w: &World, room: &str, body: Value) -> (u16, String) {
    w.talk.notify(&w.server.http_url(), room, &body).await
}

const QUIET: Duration = Duration::from_millis(300);

/// Writes `request` as is and returns the start of the answer (requests a
/// normal HTTP client would refuse to send).
async fn raw_http(port: u16, request: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 1024];
    let n = tcp.read(&mut buf).await.unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// The checks of facts 3.3, in order, with the reference's answers.
#[tokio::test]
async fn validation_pipeline() {
    let w = world().await;
    let url = format!("{}api/v1/room/room1", w.server.http_url());
    let http = reqwest::Client::new();
    let body = json!({"type": "message", "message": {"data": {"a": 1}}}).to_string();
    let random = proto::checksum::new_random();
    let good = proto::checksum::backend_checksum(TALK_SECRET.as_bytes(), &random, body.as_bytes());
    let post = |b: String| {
        http.post(&url)
            .header("Content-Type", "application/json")
            .body(b)
    };

    // Missing checksum headers: 403, not counted as brute force.
    let r = post(body.clone()).send().await.unwrap();
    assert_eq!(r.status(), 403);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.text().await.unwrap(), "Authentication check failed\n");
    // Wrong content type.
    let r = http
        .post(&url)
        .header("Content-Type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    assert_eq!(r.text().await.unwrap(), "Unsupported Content-Type\n");
    // Too large: refused on the announced length, before the body is read.
    let head = format!(
        "POST /api/v1/room/room1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nSpreed-Signaling-Random: {random}\r\nSpreed-Signaling-Checksum: {good}\r\n\r\n",
        4 * 1024 * 1024 + 1
    );
    let text = raw_http(w.server.port, &head).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    // Chunked bodies have no length: 411.
    let head = "POST /api/v1/room/room1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let text = raw_http(w.server.port, head).await;
    assert!(text.starts_with("HTTP/1.1 411"), "{text}");
    // Forged checksum.
    let r = post(body.clone())
        .header("Spreed-Signaling-Random", &random)
        .header("Spreed-Signaling-Checksum", "00")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Unknown backend.
    let r = post(body.clone())
        .header("Spreed-Signaling-Random", &random)
        .header("Spreed-Signaling-Checksum", &good)
        .header("Spreed-Signaling-Backend", "https://evil.example.com/")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Without the backend header every configured secret is tried (legacy Talk).
    let r = post(body.clone())
        .header("Spreed-Signaling-Random", &random)
        .header("Spreed-Signaling-Checksum", &good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "{}");

    // Malformed JSON, unknown types and known types without payload: 400.
    for (b, text) in [
        ("{not json".to_string(), "Could not read body".to_string()),
        (
            json!({"type": "frobnicate"}).to_string(),
            "Unsupported request type: frobnicate".to_string(),
        ),
    ] {
        let random = proto::checksum::new_random();
        let sum = proto::checksum::backend_checksum(TALK_SECRET.as_bytes(), &random, b.as_bytes());
        let r = post(b)
            .header("Spreed-Signaling-Random", &random)
            .header("Spreed-Signaling-Checksum", &sum)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400);
        assert_eq!(r.text().await.unwrap(), format!("{text}\n"));
    }
    for kind in [
        "invite",
        "disinvite",
        "update",
        "delete",
        "incall",
        "participants",
        "message",
        "switchto",
    ] {
        let (status, _) = notify(&w, "room1", json!({"type": kind})).await;
        assert_eq!(status, 400, "{kind} without payload");
    }
    // The server is still fine.
    let mut a = user(&w, &w.alice).await;
    a.join_ok("room1", "ta").await;
}

/// Ten forged notifications from one address block the next ones with 429,
/// even correctly signed ones.
#[tokio::test]
async fn forged_notifications_are_throttled() {
    let w = world().await;
    let url = format!("{}api/v1/room/room1", w.server.http_url());
    let body = json!({"type": "message", "message": {"data": {}}}).to_string();
    let mut pending = Vec::new();
    for _ in 0..10 {
        let req = reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "application/json")
            .header("Spreed-Signaling-Random", proto::checksum::new_random())
            .header("Spreed-Signaling-Checksum", "forged")
            .body(body.clone())
            .send();
        pending.push(tokio::spawn(req));
    }
    w.server.throttled_notifications(10).await;
    let (status, text) = notify(
        &w,
        "room1",
        json!({"type": "message", "message": {"data": {}}}),
    )
    .await;
    assert_eq!(status, 429);
    assert_eq!(text, "Too many requests\n");
    drop(pending);
}

/// invite / disinvite / update go to the users' sessions as roomlist events.
#[tokio::test]
async fn roomlist_events() {
    let w = world().await;
    let mut a = user(&w, &w.alice).await;
    let mut b = user(&w, &w.bob).await;
    let props = json!({"name": "New room"});
    let (status, _) = notify(&w, "room9", json!({"type": "invite", "invite": {"userids": ["alice"], "alluserids": ["alice", "bob"], "properties": props}})).await;
    assert_eq!(status, 200);
    assert_eq!(
        a.recv().await,
        json!({"type": "event", "event": {"target": "roomlist", "type": "invite", "invite": {"roomid": "room9", "properties": props}}})
    );
    assert_eq!(
        b.recv().await,
        json!({"type": "event", "event": {"target": "roomlist", "type": "update", "update": {"roomid": "room9", "properties": props}}})
    );

    notify(&w, "room9", json!({"type": "update", "update": {"userids": ["bob"], "properties": {"name": "Renamed"}}})).await;
    assert_eq!(
        b.recv().await["event"]["update"],
        json!({"roomid": "room9", "properties": {"name": "Renamed"}})
    );
    a.expect_silence(QUIET).await;

    notify(
        &w,
        "room9",
        json!({"type": "disinvite", "disinvite": {"userids": ["alice"], "alluserids": ["bob"]}}),
    )
    .await;
    assert_eq!(
        a.recv().await,
        json!({"type": "event", "event": {"target": "roomlist", "type": "disinvite", "disinvite": {"roomid": "room9", "reason": "disinvited"}}})
    );
    assert_eq!(b.recv().await["event"]["type"], "update");
}

/// A disinvite for the room a session is in closes that connection after
/// the event; the others see it leave. Guests are addressed by Talk session.
#[tokio::test]
async fn disinvite_closes_sessions_in_the_room() {
    let w = world().await;
    let (mut a, mut b) = two_in_room(&w).await;
    let (mut g, _) = TestClient::connect(&w.server).await;
    g.hello_v1(&w.talk, None).await;
    g.join_ok("room1", "tg").await;
    a.recv().await;
    b.recv().await;

    notify(&w, "room1", json!({"type": "disinvite", "disinvite": {"userids": ["alice"], "sessionids": ["tg"], "alluserids": ["bob"]}})).await;
    assert_eq!(
        a.recv().await["event"]["disinvite"],
        json!({"roomid": "room1", "reason": "disinvited"})
    );
    a.expect_closed().await;
    g.recv_until(|v| v["event"]["type"] == "disinvite").await;
    g.expect_closed().await;
    let mut left = Vec::new();
    while left.len() < 2 {
        let v = b.recv().await;
        if v["event"]["type"] == "leave" {
            left.push(v["event"]["leave"][0].as_str().unwrap().to_owned());
        }
    }
    left.sort();
    let mut want = vec![a.session_id.clone(), g.session_id.clone()];
    want.sort();
    assert_eq!(left, want);
}

/// update: members get the new properties once; unchanged ones are silent.
#[tokio::test]
async fn update_room_properties() {
    let w = world().await;
    let (mut a, mut b) = two_in_room(&w).await;
    let props = json!({"name": "Room one", "type": 2});
    notify(
        &w,
        "room1",
        json!({"type": "update", "update": {"userids": [], "properties": props}}),
    )
    .await;
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.recv().await,
            json!({"type": "room", "room": {"roomid": "room1", "properties": props}})
        );
    }
    notify(
        &w,
        "room1",
        json!({"type": "update", "update": {"userids": [], "properties": props}}),
    )
    .await;
    a.expect_silence(QUIET).await;
}

/// delete: everybody leaves without leave events, Talk hears the leaves,
/// internal clients get `delete` first; users get roomlist disinvite.
#[tokio::test]
async fn delete_room() {
    let w = world().await;
    let (mut a, mut b) = two_in_room(&w).await;
    let (mut i, _) = TestClient::connect(&w.server).await;
    i.hello_internal(&w.talk, &[]).await;
    i.join("room1", "").await;
    let mut seen = Vec::new();
    while let Ok(Some(v)) = i.try_recv_within(Duration::from_millis(500)).await {
        seen.push(v);
    }
    assert!(
        seen.iter()
            .any(|v| v["event"]["type"] == "join"
                && v["event"]["join"].as_array().unwrap().len() == 2)
    );
    assert!(seen.iter().any(|v| v["event"]["target"] == "participants"));
    a.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    b.recv_until(|v| v["event"]["target"] == "participants")
        .await;

    notify(
        &w,
        "room1",
        json!({"type": "delete", "delete": {"userids": ["bob"]}}),
    )
    .await;
    assert_eq!(
        i.recv().await,
        json!({"type": "event", "event": {"target": "room", "type": "delete"}})
    );
    assert_eq!(
        i.recv().await,
        json!({"type": "room", "room": {"roomid": ""}})
    );
    assert_eq!(
        a.recv().await,
        json!({"type": "room", "room": {"roomid": ""}})
    );
    assert_eq!(
        b.recv().await,
        json!({"type": "room", "room": {"roomid": ""}})
    );
    assert_eq!(
        b.recv().await["event"]["disinvite"],
        json!({"roomid": "room1", "reason": "deleted"})
    );
    // The sessions survive the deletion.
    w.talk.add_room("room3", Room::open("Room three"));
    b.join_ok("room3", "tb3").await;
    a.expect_silence(QUIET).await;
    let leaves = tests::wait::eventually(Duration::from_secs(3), || {
        let n = w
            .talk
            .requests_of("room")
            .iter()
            .filter(|r| r["room"]["action"] == "leave")
            .count();
        async move { (n >= 2).then_some(n) }
    })
    .await;
    assert_eq!(leaves, Some(2), "Talk is told both client sessions left");
}

fn participant(talk_session: &str, user: &str, in_call: i64) -> Value {
    json!({"sessionId": talk_session, "userId": user, "actorType": "users", "actorId": user, "inCall": in_call,
           "lastPing": 1700000000, "participantType": 3, "participantPermissions": 254, "permissions": ["publish-media"]})
}

/// incall: session ids become signaling ids, `changed` is folded into
/// `users`, permission keys are stripped, unknown and "0" entries are
/// dropped, and call membership follows (call messages now arrive).
#[tokio::test]
async fn incall_updates_participants_and_call() {
    let w = world().await;
    let (mut a, mut b) = two_in_room(&w).await;
    let body = json!({"type": "incall", "incall": {"incall": 7,
        "changed": [participant("tb", "bob", 7)],
        "users": [participant("ta", "alice", 0), participant("unknown", "x", 1), participant("0", "y", 1)]}});
    let (status, _) = notify(&w, "room1", body).await;
    assert_eq!(status, 200);
    let (a_id, b_id) = (a.session_id.clone(), b.session_id.clone());
    for c in [&mut a, &mut b] {
        let v = c.recv().await;
        let update = &v["event"]["update"];
        assert_eq!(v["event"]["target"], "participants");
        assert_eq!(update["roomid"], "room1");
        assert!(update.get("changed").is_none());
        assert!(update.get("incall").is_none());
        let users = update["users"].as_array().unwrap();
        let ids: Vec<&str> = users
            .iter()
            .map(|u| u["sessionId"].as_str().unwrap())
            .collect();
        assert_eq!(ids, vec![a_id.as_str(), b_id.as_str()]);
        assert!(users.iter().all(|u| u.get("permissions").is_none()));
        assert_eq!(users[1]["inCall"], 7);
    }
    // bob is in the call now, alice is not.
    let call = |w: &World, line: &'static str| {
        let url = w.server.http_url();
        async move { tests::server::metric(&url, line).await }
    };
    assert_eq!(
        call(
            &w,
            "signaling_call_sessions{backend=\"talk\",clienttype=\"client\",room=\"room1\"}"
        )
        .await,
        1.0
    );
    assert!(call(&w, "signaling_call_rooms_total{backend=\"talk\"}").await >= 1.0);
    assert!(
        call(
            &w,
            "signaling_call_sessions_total{backend=\"talk\",clienttype=\"client\"}"
        )
        .await
            >= 1.0
    );
    a.message(json!({"type": "call"}), json!("to the call"))
        .await;
    assert_eq!(b.recv().await["message"]["data"], "to the call");
    b.message(json!({"type": "call"}), json!("to the call"))
        .await;
    a.expect_silence(QUIET).await;

    // "all": everybody into the call, short form.
    notify(
        &w,
        "room1",
        json!({"type": "incall", "incall": {"incall": 1, "all": true}}),
    )
    .await;
    for c in [&mut a, &mut b] {
        assert_eq!(
            c.recv().await,
            json!({"type": "event", "event": {"target": "participants", "type": "update", "update": {"roomid": "room1", "incall": 1, "all": true}}})
        );
    }
    b.message(json!({"type": "call"}), json!("now alice too"))
        .await;
    assert_eq!(a.recv().await["message"]["data"], "now alice too");
    // Again with nobody new: nothing is sent.
    notify(
        &w,
        "room1",
        json!({"type": "incall", "incall": {"incall": true, "all": true}}),
    )
    .await;
    a.expect_silence(QUIET).await;
    // Call ended for all.
    notify(
        &w,
        "room1",
        json!({"type": "incall", "incall": {"incall": 0, "all": true}}),
    )
    .await;
    assert_eq!(
        a.recv().await["event"]["update"],
        json!({"roomid": "room1", "incall": 0, "all": true})
    );
    assert_eq!(b.recv().await["event"]["update"]["all"], true);
    b.message(json!({"type": "call"}), json!("gone")).await;
    a.expect_silence(QUIET).await;
    // The ended call's gauge is gone, as in the reference.
    let text = w.server.metrics_text().await;
    assert!(
        !text.contains(
            "signaling_call_sessions{backend=\"talk\",clienttype=\"client\",room=\"room1\"}"
        ),
        "{text}"
    );
}

/// participants: permissions in `changed` become the sessions' permission
/// sets (control allowed, transient data revoked).
#[tokio::test]
async fn participants_update_permissions() {
    let w = world().await;
    w.talk
        .add_room("mod", Room::open("Moderated").with_permissions(&[]));
    let mut a = user(&w, &w.alice).await;
    let mut b = user(&w, &w.bob).await;
    a.join_ok("mod", "ta").await;
    b.join_ok("mod", "tb").await;
    a.recv().await;
    a.request("control", json!({"recipient": {"type": "session", "sessionid": b.session_id}, "data": {"type": "mute"}})).await;
    b.expect_silence(QUIET).await;

    let mut entry = participant("ta", "alice", 0);
    entry["permissions"] = json!(["control"]);
    notify(&w, "mod", json!({"type": "participants", "participants": {"changed": [entry], "users": [participant("ta", "alice", 0), participant("tb", "bob", 0)]}})).await;
    let v = a.recv().await;
    assert_eq!(v["event"]["update"]["users"].as_array().unwrap().len(), 2);
    b.recv().await;
    a.request("control", json!({"recipient": {"type": "session", "sessionid": b.session_id}, "data": {"type": "mute"}})).await;
    assert_eq!(b.recv().await["control"]["data"], json!({"type": "mute"}));
    let id = a
        .request("transient", json!({"type": "set", "key": "k", "value": 1}))
        .await;
    a.expect_error(Some(&id), "not_allowed").await;
}

/// message: chat relay per receiver (facts 1.15.3).
#[tokio::test]
async fn chat_message_relay() {
    let w = world().await;
    let mut a = user(&w, &w.alice).await;
    let (mut r, _) = TestClient::connect(&w.server).await;
    r.request("hello", json!({"version": "1.0", "features": ["chat-relay"], "auth": {"url": w.talk.url(), "params": {"userid": "bob", "ticket": w.bob.ticket}}})).await;
    assert_eq!(r.recv().await["type"], "hello");
    a.join_ok("room1", "ta").await;
    r.join("room1", "tb").await;
    r.recv_until(|v| v["event"]["type"] == "join" && v["event"]["join"][0]["userid"] == "bob")
        .await;
    a.recv().await;

    let comment = json!({"id": 42, "message": "hi", "actorDisplayName": "Alice"});
    notify(&w, "room1", json!({"type": "message", "message": {"data": {"type": "chat", "chat": {"refresh": true, "comment": comment}}}})).await;
    assert_eq!(
        a.recv().await,
        json!({"type": "event", "event": {"target": "room", "type": "message", "message": {"roomid": "room1", "data": {"type": "chat", "chat": {"refresh": true}}}}})
    );
    assert_eq!(
        r.recv().await["event"]["message"]["data"],
        json!({"type": "chat", "chat": {"comment": comment}})
    );

    notify(
        &w,
        "room1",
        json!({"type": "message", "message": {"data": {"type": "custom", "x": 1}}}),
    )
    .await;
    assert_eq!(
        a.recv().await["event"]["message"]["data"],
        json!({"type": "custom", "x": 1})
    );
    assert_eq!(
        r.recv().await["event"]["message"]["data"],
        json!({"type": "custom", "x": 1})
    );
}

/// switchto: list and map forms reach the named sessions only.
#[tokio::test]
async fn switchto() {
    let w = world().await;
    let (mut a, mut b) = two_in_room(&w).await;
    notify(
        &w,
        "room1",
        json!({"type": "switchto", "switchto": {"roomid": "breakout", "sessions": ["ta", "nope"]}}),
    )
    .await;
    assert_eq!(
        a.recv().await,
        json!({"type": "event", "event": {"target": "room", "type": "switchto", "switchto": {"roomid": "breakout"}}})
    );
    b.expect_silence(QUIET).await;
    notify(&w, "room1", json!({"type": "switchto", "switchto": {"roomid": "breakout2", "sessions": {"ta": {"x": 1}, "tb": null}}})).await;
    assert_eq!(
        a.recv().await["event"]["switchto"],
        json!({"roomid": "breakout2", "details": {"x": 1}})
    );
    assert_eq!(
        b.recv().await["event"]["switchto"],
        json!({"roomid": "breakout2"})
    );
}

/// A participants notification for a 2000-participant room (about 250 KB)
/// is accepted; every connected session in the room receives the update
/// with its own entry. 200 of the 2000 Talk sessions are connected here:
/// the others are participants without a signaling connection, which the
/// reference drops from the list as well.
#[tokio::test]
async fn large_participants_notification() {
    let w = world().await;
    let mut clients = Vec::new();
    for n in 0..200 {
        let (mut c, _) = TestClient::connect(&w.server).await;
        c.hello_v2(&w.talk, &format!("user{n}")).await;
        c.request(
            "room",
            json!({"roomid": "room1", "sessionid": format!("talk-{n}")}),
        )
        .await;
        clients.push(c);
    }
    for c in clients.iter_mut() {
        c.recv_until(|v| v["type"] == "room").await;
    }
    let users: Vec<Value> = (0..2000)
        .map(|n| participant(&format!("talk-{n}"), &format!("user{n}"), 0))
        .collect();
    let body = json!({"type": "participants", "participants": {"changed": [], "users": users}});
    let size = body.to_string().len();
    assert!(size > 200 * 1024, "body is {size} bytes");
    let (status, _) = notify(&w, "room1", body).await;
    assert_eq!(status, 200);
    for c in clients.iter_mut() {
        let v = c
            .recv_until(|v| v["event"]["target"] == "participants")
            .await;
        let users = v["event"]["update"]["users"].as_array().unwrap();
        assert_eq!(users.len(), 200);
        assert!(users
            .iter()
            .any(|u| u["sessionId"] == c.session_id.as_str()));
    }
}

/// `hide-displaynames` receivers lose display names in join events and
/// chat comments, and do not get `nickChanged` messages (facts 1.15.4).
#[tokio::test]
async fn hide_displaynames() {
    let w = world().await;
    w.talk.add_room(
        "hidden",
        Room::open("Hidden").with_permissions(&["hide-displaynames", "chat-relay"]),
    );
    let mut a = user(&w, &w.alice).await;
    a.join_ok("hidden", "ta").await;
    let (mut b, _) = TestClient::connect(&w.server).await;
    b.request("hello", json!({"version": "1.0", "features": ["chat-relay"], "auth": {"url": w.talk.url(), "params": {"userid": "bob", "ticket": w.bob.ticket}}})).await;
    b.recv().await;
    b.join("hidden", "tb").await;
    let join = a.recv_until(|v| v["event"]["type"] == "join").await;
    assert_eq!(join["event"]["join"][0]["userid"], "bob");
    assert!(
        join["event"]["join"][0].get("user").is_none(),
        "displayname removed: {join}"
    );

    b.recv_until(|v| v["event"]["type"] == "join" && v["event"]["join"][0]["userid"] == "alice")
        .await;
    b.message(
        json!({"type": "room"}),
        json!({"type": "nickChanged", "name": "B"}),
    )
    .await;
    b.message(json!({"type": "room"}), json!({"type": "other"}))
        .await;
    assert_eq!(a.recv().await["message"]["data"]["type"], "other");

    notify(&w, "hidden", json!({"type": "message", "message": {"data": {"type": "chat", "chat": {"refresh": true, "comment": {"id": 1, "actorDisplayName": "Bob"}}}}})).await;
    // alice has no chat-relay feature: refresh only.
    assert_eq!(
        a.recv().await["event"]["message"]["data"],
        json!({"type": "chat", "chat": {"refresh": true}})
    );
    // bob has chat-relay and the permission: comment without the name.
    let v = b.recv_until(|v| v["event"]["type"] == "message").await;
    assert_eq!(
        v["event"]["message"]["data"]["chat"]["comment"]["actorDisplayName"],
        ""
    );
}
