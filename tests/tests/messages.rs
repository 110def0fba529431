//! Client-to-client messages (seed 004 "Sending messages between clients")
//! and control messages ("Control messages").

use std::time::Duration;

use serde_json::json;
use tests::client::user;
use tests::server::TestServer;
use tests::talk::{Room, Talk, User};

async fn setup() -> (Talk, TestServer, User, User, User) {
    let (talk, server, alice, bob) = tests::server::alice_and_bob(&["room1"]).await;
    let carol = talk.add_user("carol", "Carol");
    (talk, server, alice, bob, carol)
}

const QUIET: Duration = Duration::from_millis(300);

/// To a session: delivered with the sender, without recipient; messages to
/// oneself are dropped.
#[tokio::test]
async fn to_session() {
    let (talk, server, alice, bob, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let data = json!({"type": "offer", "sdp": "v=0", "nested": [1, 2, {"x": null}]});
    a.message(
        json!({"type": "session", "sessionid": b.session_id}),
        data.clone(),
    )
    .await;
    let v = b.recv().await;
    assert_eq!(
        v,
        json!({"type": "message", "message": {"sender": {"type": "session", "sessionid": a.session_id, "userid": "alice"}, "data": data}})
    );
    a.message(
        json!({"type": "session", "sessionid": a.session_id}),
        json!("self"),
    )
    .await;
    a.message(
        json!({"type": "session", "sessionid": "unknown-session"}),
        json!("lost"),
    )
    .await;
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
}

/// To a user: every session of that user gets it; a user cannot message
/// their own sessions.
#[tokio::test]
async fn to_user() {
    let (talk, server, alice, bob, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut a2 = user(&server, &talk, &alice).await;
    let mut b1 = user(&server, &talk, &bob).await;
    let mut b2 = user(&server, &talk, &bob).await;
    a.message(json!({"type": "user", "userid": "bob"}), json!({"hi": 1}))
        .await;
    for b in [&mut b1, &mut b2] {
        let v = b.recv().await;
        assert_eq!(
            v["message"]["sender"],
            json!({"type": "user", "sessionid": a.session_id, "userid": "alice"})
        );
        assert_eq!(
            v["message"]["recipient"],
            json!({"type": "user", "userid": "bob"})
        );
        assert_eq!(v["message"]["data"], json!({"hi": 1}));
    }
    a.message(json!({"type": "user", "userid": "alice"}), json!("me"))
        .await;
    a.expect_silence(QUIET).await;
    a2.expect_silence(QUIET).await;
}

/// To the room: everybody in the sender's room but the sender; a sender in
/// no room reaches nobody.
#[tokio::test]
async fn to_room() {
    let (talk, server, alice, bob, carol) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let mut c = user(&server, &talk, &carol).await;
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    a.recv().await;
    a.message(json!({"type": "room"}), json!({"chat": "hello room"}))
        .await;
    let v = b.recv().await;
    assert_eq!(
        v["message"]["sender"],
        json!({"type": "room", "sessionid": a.session_id, "userid": "alice"})
    );
    assert_eq!(v["message"]["data"], json!({"chat": "hello room"}));
    a.expect_silence(QUIET).await;
    c.expect_silence(QUIET).await;
    c.message(json!({"type": "room"}), json!("nobody hears"))
        .await;
    a.expect_silence(QUIET).await;
    b.expect_silence(QUIET).await;
}

/// To the call: only sessions in the call receive it. Nobody is in the
/// call until Talk says so, so nothing is delivered.
#[tokio::test]
async fn to_call_only_reaches_call_members() {
    let (talk, server, alice, bob, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    a.recv().await;
    a.message(json!({"type": "call"}), json!({"type": "offer"}))
        .await;
    b.expect_silence(QUIET).await;
    // The same message to the room does arrive, so the path itself works.
    a.message(json!({"type": "room"}), json!({"type": "offer"}))
        .await;
    assert_eq!(b.recv().await["message"]["sender"]["type"], "room");
}

/// Control messages need the `control` permission; without it they are
/// ignored silently. Seed payloads (mute, hangup, dtmf) are relayed as is.
#[tokio::test]
async fn control_needs_permission() {
    let (talk, server, alice, bob, carol) = setup().await;
    talk.add_room(
        "moderated",
        Room::open("Moderated").with_permissions(&["publish-media"]),
    );
    talk.add_room(
        "mods",
        Room::open("Mods").with_permissions(&["control", "publish-media"]),
    );
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let mut c = user(&server, &talk, &carol).await;
    a.join_ok("moderated", "ta").await;
    b.join_ok("mods", "tb").await;
    c.join_ok("moderated", "tc").await;
    a.recv().await; // carol joined

    let id = a.request("control", json!({"recipient": {"type": "session", "sessionid": c.session_id}, "data": {"type": "mute", "audio": 1}})).await;
    c.expect_silence(QUIET).await;
    a.expect_silence(QUIET).await;
    let _ = id;

    for data in [
        json!({"type": "mute", "audio": 1}),
        json!({"type": "hangup"}),
        json!({"type": "dtmf", "digit": "#"}),
    ] {
        b.request(
            "control",
            json!({"recipient": {"type": "session", "sessionid": c.session_id}, "data": data}),
        )
        .await;
        let v = c.recv().await;
        assert_eq!(
            v,
            json!({"type": "control", "control": {"sender": {"type": "session", "sessionid": b.session_id, "userid": "bob"}, "data": data}})
        );
    }
}

/// Recipients must be well formed.
#[tokio::test]
async fn invalid_recipients() {
    let (talk, server, alice, _, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    for msg in [
        json!({"recipient": {"type": "session"}, "data": {}}),
        json!({"recipient": {"type": "user"}, "data": {}}),
        json!({"recipient": {"type": "everyone"}, "data": {}}),
        json!({"recipient": {"type": "room"}}),
    ] {
        let id = a.request("message", msg).await;
        a.expect_error(Some(&id), "invalid_format").await;
    }
}
