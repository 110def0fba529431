//! The media tests' world (emulated Talk, a server, a real Janus) and
//! the signaling side of publishing and subscribing as Talk clients do.

use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::janus::{Janus, JanusOptions};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Talk, User};

use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

use crate::peers::{Publisher, Subscriber};

pub(crate) struct World {
    pub(crate) talk: Talk,
    pub(crate) janus: Janus,
    pub(crate) server: TestServer,
    pub(crate) alice: User,
    pub(crate) bob: User,
}

/// Janus sends its events to the server (janus-events), so the server
/// starts first and connects to Janus when it comes up.
pub(crate) async fn world() -> World {
    world_with("").await
}

/// The same with more `[mcu]` settings.
pub(crate) async fn world_with(mcu_extra: &str) -> World {
    let janus_port = tests::process::free_port();
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = janus\nurl = ws://127.0.0.1:{janus_port}\n{mcu_extra}"
        ))
        .start()
        .await;
    let janus = janus_in_namespace(Some((&server, janus_port))).await;
    server.wait_sfu_connected().await;
    World {
        talk,
        janus,
        server,
        alice,
        bob,
    }
}

/// A Janus that uses the namespace's veth `jv0` for ICE; with a server,
/// it listens on the given port and sends its events to that server.
pub(crate) async fn janus_in_namespace(events: Option<(&TestServer, u16)>) -> Janus {
    Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        events_url: events.map(|(s, _)| s.ws_url()),
        port: events.map(|(_, p)| p),
    })
    .await
}

/// `a` publishes a screen and sends `sendoffer` to `b`, who gets the
/// SFU's offer without asking, answers it and receives the screen's
/// video; `what` names the path in the failure message. The peers are
/// returned to keep the streams alive.
pub(crate) async fn screen_by_sendoffer(
    a: &mut TestClient,
    b: &mut TestClient,
    what: &str,
) -> (Publisher, Subscriber) {
    let screen = Publisher::new(false).await;
    publish(a, &screen, "screen").await;
    let (alice_id, bob_id) = (a.session_id.clone(), b.session_id.clone());
    send_sfu(
        a,
        &bob_id,
        json!({"type": "sendoffer", "roomType": "screen", "sid": "share-1"}),
    )
    .await;
    let subscriber = Subscriber::new().await;
    accept_offer(b, &subscriber, &alice_id, "screen").await;
    assert!(
        subscriber.wait_packets(&[RTPCodecType::Video], 20).await,
        "{what}: {}",
        subscriber.count(RTPCodecType::Video)
    );
    (screen, subscriber)
}

/// alice and bob in room1 and in its call.
pub(crate) async fn in_call(w: &World) -> (TestClient, TestClient) {
    let a = user(&w.server, &w.talk, &w.alice).await;
    let b = user(&w.server, &w.talk, &w.bob).await;
    join_call(w, a, b).await
}

/// alice and bob (already signed in) join room1 and its call.
pub(crate) async fn join_call(
    w: &World,
    mut a: TestClient,
    mut b: TestClient,
) -> (TestClient, TestClient) {
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    w.talk
        .alice_and_bob_join_call(&w.server.http_url(), "room1")
        .await;
    for c in [&mut a, &mut b] {
        c.recv_until(|v| v["event"]["target"] == "participants")
            .await;
    }
    (a, b)
}

pub(crate) async fn send_sfu(c: &mut TestClient, to: &str, data: Value) {
    c.request(
        "message",
        json!({"recipient": {"type": "session", "sessionid": to}, "data": data}),
    )
    .await;
}

/// The next SFU message of `kind` (Janus's trickled candidates and other
/// messages are skipped).
pub(crate) async fn sfu_reply(c: &mut TestClient, kind: &str) -> Value {
    let v = c
        .recv_until(|v| v["type"] == "error" || v["message"]["data"]["type"] == kind)
        .await;
    assert_ne!(v["type"], "error", "{v}");
    v["message"]["data"].clone()
}

pub(crate) async fn publish(c: &mut TestClient, p: &Publisher, room_type: &str) {
    let me = c.session_id.clone();
    let sdp = p.offer().await;
    send_sfu(
        c,
        &me,
        json!({"type": "offer", "sid": format!("pub-{room_type}"), "roomType": room_type, "payload": {"type": "offer", "sdp": sdp, "trickle": false}}),
    )
    .await;
    let answer = sfu_reply(c, "answer").await;
    p.answered(answer["payload"]["sdp"].as_str().expect("answer sdp"))
        .await;
}

pub(crate) async fn subscribe(
    c: &mut TestClient,
    s: &Subscriber,
    publisher: &str,
    room_type: &str,
) {
    send_sfu(
        c,
        publisher,
        json!({"type": "requestoffer", "roomType": room_type}),
    )
    .await;
    accept_offer(c, s, publisher, room_type).await;
}

/// Waits for the SFU's offer of `publisher`'s stream and answers it. A
/// `sendoffer` never reaches a client as such: it becomes this offer.
pub(crate) async fn accept_offer(
    c: &mut TestClient,
    s: &Subscriber,
    publisher: &str,
    room_type: &str,
) {
    let v = c
        .recv_until(|v| {
            assert_ne!(v["message"]["data"]["type"], "sendoffer", "relayed: {v}");
            v["type"] == "error" || v["message"]["data"]["type"] == "offer"
        })
        .await;
    assert_ne!(v["type"], "error", "{v}");
    assert_eq!(v["message"]["sender"]["sessionid"], publisher, "{v}");
    let offer = v["message"]["data"].clone();
    assert_eq!(offer["from"], publisher);
    assert_eq!(offer["roomType"], room_type);
    let sid = offer["sid"].as_str().unwrap_or_default().to_owned();
    let answer = s
        .answer(offer["payload"]["sdp"].as_str().expect("offer sdp"))
        .await;
    send_sfu(
        c,
        publisher,
        json!({"type": "answer", "sid": sid, "roomType": room_type, "payload": {"type": "answer", "sdp": answer}}),
    )
    .await;
}
