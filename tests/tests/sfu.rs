//! Media signaling through the server with a real Janus (`[mcu] type =
//! janus`): offers publish, permissions are enforced, requests are
//! validated, leaving tears the publisher down in Janus, and publishing
//! works again after Janus restarts. Offers are synthetic (no peer), so
//! subscriptions, which Janus grants only once media flows, are checked
//! for their permission rules here.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::janus::{Janus, JanusOptions};
use tests::server::TestServer;
use tests::talk::Room;
use tests::wait::eventually;
use tests::world::World;

async fn world() -> World {
    World::builder()
        .room("room1")
        .room_with(
            "listen",
            Room::open("Listen only").with_permissions(&["publish-audio"]),
        )
        .server(|b| b.extra("maxstreambitrate = 500000\n"))
        .janus(JanusOptions::default(), "blockedcandidates = 10.0.0.0/8\n")
        .start()
        .await
}

/// Rooms in Janus with this description.
async fn janus_rooms(janus: &Janus, description: &str) -> Vec<Value> {
    janus
        .rooms()
        .await
        .into_iter()
        .filter(|r| r["description"] == description)
        .collect()
}

/// Sends an SFU message to `to`; returns the request id.
async fn sfu(c: &mut TestClient, to: &str, data: Value) -> String {
    c.request(
        "message",
        json!({"recipient": {"type": "session", "sessionid": to}, "data": data}),
    )
    .await
}

/// The next message that is not one of Janus's trickled candidates (they
/// may come before the answer).
async fn recv_skipping_candidates(c: &mut TestClient) -> Value {
    c.recv_until(|v| v["message"]["data"]["type"] != "candidate")
        .await
}

/// Nothing but candidates arrives for a while.
async fn only_candidates(c: &mut TestClient, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match c.try_recv_within(left).await {
            Ok(None) => return,
            Ok(Some(v)) => assert_eq!(v["message"]["data"]["type"], "candidate", "unexpected {v}"),
            Err(e) => panic!("closed: {e:?}"),
        }
    }
}

fn offer(media: &[&str]) -> Value {
    json!({"type": "offer", "sdp": tests::sdp::publisher_offer(media)})
}

/// An offer to the own session publishes: the answer comes back from the
/// own session with the client's sid, the room in Janus has the capped
/// bitrate and the codec asked for; leaving the room destroys it.
#[tokio::test]
async fn publish_and_leave() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    let (_, welcome) = TestClient::connect(&w.server).await;
    let features = welcome["welcome"]["features"].as_array().unwrap().clone();
    for f in ["mcu", "offer-codecs", "simulcast", "update-sdp"] {
        assert!(features.iter().any(|x| x == f), "{f} in {features:?}");
    }
    a.join_ok("room1", "ta").await;
    let me = a.session_id.clone();
    let id = sfu(
        &mut a,
        &me,
        json!({"type": "offer", "sid": "client-sid", "roomType": "video", "payload": offer(&["audio", "video"]), "bitrate": 9_000_000, "videocodec": "vp9"}),
    )
    .await;
    let v = recv_skipping_candidates(&mut a).await;
    assert_eq!(v["id"], id.as_str(), "{v}");
    assert_eq!(v["message"]["sender"]["sessionid"], me.as_str());
    let data = &v["message"]["data"];
    assert_eq!(data["type"], "answer");
    assert_eq!(data["sid"], "client-sid");
    assert_eq!(data["roomType"], "video");
    assert_eq!(data["from"], me.as_str());
    assert_eq!(data["payload"]["type"], "answer");
    assert!(data["payload"]["sdp"].as_str().unwrap().starts_with("v=0"));
    let rooms = janus_rooms(w.janus(), &format!("{me}|video")).await;
    assert_eq!(rooms.len(), 1, "{rooms:?}");
    // The backend's maxstreambitrate caps the 9 Mbit/s asked for.
    assert_eq!(rooms[0]["bitrate"], 500_000);
    assert_eq!(rooms[0]["videocodec"], "vp9");

    // Candidates reach the publisher; blocked ones are dropped silently.
    for ip in ["127.0.0.1", "10.1.2.3"] {
        sfu(
            &mut a,
            &me,
            json!({"type": "candidate", "sid": "client-sid", "roomType": "video", "payload": {"candidate": {"candidate": format!("candidate:1 1 udp 2122260223 {ip} 50000 typ host"), "sdpMid": "0", "sdpMLineIndex": 0}}}),
        )
        .await;
    }
    only_candidates(&mut a, Duration::from_millis(300)).await;

    a.request("room", json!({"roomid": ""})).await;
    assert!(
        room_gone(w.janus(), &format!("{me}|video")).await,
        "publisher room still in janus after leaving"
    );
}

/// Leaving the call (Nextcloud's `incall` notification) unpublishes.
#[tokio::test]
async fn leaving_the_call_unpublishes() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    a.join_ok("room1", "ta").await;
    let me = a.session_id.clone();
    let call = |flags: i64| {
        let entry =
            json!({"sessionId": "ta", "userId": "alice", "inCall": flags, "participantType": 3});
        json!({"type": "incall", "incall": {"incall": flags, "changed": [entry.clone()], "users": [entry]}})
    };
    let (status, _) = w.talk.notify(&w.server.http_url(), "room1", &call(7)).await;
    assert_eq!(status, 200);
    a.recv_until(|v| v["event"]["target"] == "participants")
        .await;
    sfu(
        &mut a,
        &me,
        json!({"type": "offer", "sid": "s", "roomType": "video", "payload": offer(&["audio", "video"])}),
    )
    .await;
    let v = recv_skipping_candidates(&mut a).await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    assert_eq!(
        janus_rooms(w.janus(), &format!("{me}|video")).await.len(),
        1
    );
    let (status, _) = w.talk.notify(&w.server.http_url(), "room1", &call(0)).await;
    assert_eq!(status, 200);
    assert!(
        room_gone(w.janus(), &format!("{me}|video")).await,
        "publisher still in janus after leaving the call"
    );
}

/// Waits until Janus has no room with this description.
async fn room_gone(janus: &Janus, description: &str) -> bool {
    eventually(Duration::from_secs(5), || async {
        janus_rooms(janus, description)
            .await
            .is_empty()
            .then_some(())
    })
    .await
    .is_some()
}

/// `unshareScreen` to oneself ends the screen publisher; losing the video
/// permission ends the video publisher.
#[tokio::test]
async fn unshare_and_revoked_permissions() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    a.join_ok("room1", "ta").await;
    let me = a.session_id.clone();
    for (room_type, media) in [
        ("video", &["audio", "video"][..]),
        ("screen", &["video"][..]),
    ] {
        sfu(
            &mut a,
            &me,
            json!({"type": "offer", "sid": room_type, "roomType": room_type, "payload": offer(media)}),
        )
        .await;
        let v = recv_skipping_candidates(&mut a).await;
        assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    }
    sfu(
        &mut a,
        &me,
        json!({"type": "unshareScreen", "roomType": "screen"}),
    )
    .await;
    assert!(
        room_gone(w.janus(), &format!("{me}|screen")).await,
        "screen still published"
    );
    assert_eq!(
        janus_rooms(w.janus(), &format!("{me}|video")).await.len(),
        1
    );

    let entry = json!({"sessionId": "ta", "userId": "alice", "permissions": ["publish-audio"], "participantType": 3});
    let (status, _) = w
        .talk
        .notify(
            &w.server.http_url(),
            "room1",
            &json!({"type": "participants", "participants": {"changed": [entry.clone()], "users": [entry]}}),
        )
        .await;
    assert_eq!(status, 200);
    assert!(
        room_gone(w.janus(), &format!("{me}|video")).await,
        "video publisher kept without publish-video"
    );
}

/// Permissions: without `publish-video` an offer with video is refused,
/// audio alone is fine; requesting an offer needs both in the call.
#[tokio::test]
async fn permissions() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    a.join_ok("listen", "ta").await;
    let me = a.session_id.clone();
    let id = sfu(
        &mut a,
        &me,
        json!({"type": "offer", "sid": "s1", "roomType": "video", "payload": offer(&["audio", "video"])}),
    )
    .await;
    let e = a.expect_error(Some(&id), "not_allowed").await;
    assert_eq!(e["error"]["message"], "Not allowed to publish.");
    let id = sfu(
        &mut a,
        &me,
        json!({"type": "offer", "sid": "s1", "roomType": "screen", "payload": offer(&["video"])}),
    )
    .await;
    a.expect_error(Some(&id), "not_allowed").await;
    sfu(
        &mut a,
        &me,
        json!({"type": "offer", "sid": "s2", "roomType": "video", "payload": offer(&["audio"])}),
    )
    .await;
    let v = recv_skipping_candidates(&mut a).await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");

    // Bob is not in the call: he may not subscribe to alice.
    let mut b = user(&w.server, &w.talk, &w.bob).await;
    b.join_ok("listen", "tb").await;
    let id = sfu(
        &mut b,
        &me,
        json!({"type": "requestoffer", "roomType": "video"}),
    )
    .await;
    let e = b.recv_until(|v| v["type"] == "error").await;
    assert_eq!(e["id"], id.as_str());
    assert_eq!(e["error"]["code"], "not_allowed");
    assert_eq!(e["error"]["message"], "Not allowed to request offer.");
}

/// Malformed SFU messages get the protocol's errors.
#[tokio::test]
async fn bad_requests() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    a.join_ok("room1", "ta").await;
    let me = a.session_id.clone();
    let cases = [
        (
            json!({"type": "offer", "roomType": "video", "payload": {"type": "offer", "sdp": "garbage"}}),
            "invalid_sdp",
        ),
        (
            json!({"type": "candidate", "roomType": "video", "payload": {"candidate": {"sdpMid": "0"}}}),
            "invalid_candidate",
        ),
        (
            json!({"type": "candidate", "roomType": "video", "payload": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}}),
            "invalid_candidate",
        ),
        (
            json!({"type": "candidate", "roomType": "video", "payload": {"sdpMid": "0"}}),
            "no_candidate",
        ),
        (
            json!({"type": "candidate", "roomType": "video"}),
            "no_candidate",
        ),
        (
            json!({"type": "offer", "roomType": "audio", "payload": offer(&["audio"])}),
            "invalid_format",
        ),
        (
            json!({"type": "candidate", "roomType": "screen", "payload": {"candidate": {"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host"}}}),
            "client_not_found",
        ),
        (
            json!({"type": "answer", "roomType": "video", "payload": {"type": "answer", "sdp": "v=0\r\n"}}),
            "client_not_found",
        ),
    ];
    for (data, code) in cases {
        let id = sfu(&mut a, &me, data.clone()).await;
        let e = a.expect_error(Some(&id), code).await;
        if code == "no_candidate" {
            assert_eq!(
                e["error"]["message"],
                "Payload does not contain a candidate."
            );
        }
    }
}

/// Janus killed: the publisher is gone; after Janus is back a new offer
/// publishes again.
#[tokio::test]
async fn janus_restart() {
    let w = world().await;
    w.server.wait_sfu_connected().await;
    let mut a = user(&w.server, &w.talk, &w.alice).await;
    a.join_ok("room1", "ta").await;
    let me = a.session_id.clone();
    let publish = json!({"type": "offer", "sid": "s", "roomType": "video", "payload": offer(&["audio", "video"])});
    sfu(&mut a, &me, publish.clone()).await;
    let v = recv_skipping_candidates(&mut a).await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    let port = w.janus().port;
    let World { janus, server, .. } = w;
    let janus = janus.expect("world with Janus");
    janus.process.signal(9);
    drop(janus);
    let _janus = Janus::start(JanusOptions {
        port: Some(port),
        ..Default::default()
    })
    .await;
    server.wait_sfu_connected().await;
    sfu(&mut a, &me, publish).await;
    let v = recv_skipping_candidates(&mut a).await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
}

/// A janus-events connection to a server without an SFU is closed with
/// the reference's reason; with an SFU, garbage closes it.
#[tokio::test]
async fn janus_events_endpoint() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;

    async fn connect(
        server: &TestServer,
    ) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>
    {
        let mut req = server.ws_url().into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "janus-events".parse().unwrap());
        let (ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], "janus-events");
        ws
    }

    let (_talk, plain, _, _) = tests::server::alice_and_bob(&[]).await;
    let mut ws = connect(&plain).await;
    match ws.next().await {
        Some(Ok(Message::Close(Some(f)))) => {
            assert_eq!(u16::from(f.code), 1011);
            assert_eq!(f.reason.as_str(), "no mcu configured");
        }
        other => panic!("expected a close frame, got {other:?}"),
    }

    let w = world().await;
    let mut ws = connect(&w.server).await;
    ws.send(Message::Text(
        r#"{"type":16,"subtype":1,"event":{"ice":"checking"}}"#.into(),
    ))
    .await
    .unwrap();
    ws.send(Message::Text("not json".into())).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "garbage must close the events connection");
    let text = w.server.metrics_text().await;
    assert!(
        text.contains("signaling_mcu_ice_state_total{state=\"checking\"} 1"),
        "the valid event before the garbage was counted"
    );
}
