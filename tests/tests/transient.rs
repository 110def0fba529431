//! Transient data (seed 004 "Transient data").

use std::time::Duration;

use serde_json::json;
use tests::client::user;
use tests::server::TestServer;
use tests::talk::{Room, Talk, User};

async fn setup() -> (Talk, TestServer, User, User) {
    let world = tests::server::alice_and_bob(&["room1"]).await;
    world
        .0
        .add_room("readonly", Room::open("Read only").with_permissions(&[]));
    world
}

/// set / remove notify every member with `oldvalue`; joiners get `initial`;
/// setting the same value again is silent.
#[tokio::test]
async fn set_remove_initial() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    a.join_ok("room1", "ta").await;
    a.request(
        "transient",
        json!({"type": "set", "key": "k", "value": {"v": 1}}),
    )
    .await;
    assert_eq!(
        a.recv().await,
        json!({"type": "transient", "transient": {"type": "set", "key": "k", "value": {"v": 1}}})
    );
    a.request(
        "transient",
        json!({"type": "set", "key": "k", "value": {"v": 1}}),
    )
    .await;
    a.expect_silence(Duration::from_millis(300)).await;
    a.request("transient", json!({"type": "set", "key": "k", "value": 2}))
        .await;
    assert_eq!(
        a.recv().await["transient"],
        json!({"type": "set", "key": "k", "value": 2, "oldvalue": {"v": 1}})
    );

    let mut b = user(&server, &talk, &bob).await;
    b.join("room1", "tb").await;
    // As the reference: the room's data first, then the join events.
    assert_eq!(
        b.recv().await,
        json!({"type": "transient", "transient": {"type": "initial", "data": {"k": 2}}})
    );
    let others = b.recv().await;
    assert_eq!(
        others["event"]["join"][0]["sessionid"],
        a.session_id.as_str()
    );
    let own = b.recv().await;
    assert_eq!(own["event"]["join"][0]["sessionid"], b.session_id.as_str());

    b.request("transient", json!({"type": "remove", "key": "k"}))
        .await;
    let expected =
        json!({"type": "transient", "transient": {"type": "remove", "key": "k", "oldvalue": 2}});
    assert_eq!(b.recv_until(|v| v["type"] == "transient").await, expected);
    assert_eq!(a.recv_until(|v| v["type"] == "transient").await, expected);
    b.request("transient", json!({"type": "remove", "key": "k"}))
        .await;
    b.expect_silence(Duration::from_millis(300)).await;
}

/// Values expire after their TTL (nanoseconds).
#[tokio::test]
async fn ttl_expiry() {
    let (talk, server, alice, _) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    a.join_ok("room1", "ta").await;
    a.request(
        "transient",
        json!({"type": "set", "key": "t", "value": "v", "ttl": 500_000_000}),
    )
    .await;
    assert_eq!(a.recv().await["transient"]["type"], "set");
    let v = a.recv().await;
    assert_eq!(
        v["transient"],
        json!({"type": "remove", "key": "t", "oldvalue": "v"})
    );
}

/// Errors: not in a room, unknown sub-type, no permission, someone else's
/// `sd:` key.
#[tokio::test]
async fn transient_errors() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let id = a
        .request("transient", json!({"type": "set", "key": "k", "value": 1}))
        .await;
    a.expect_error(Some(&id), "not_in_room").await;
    a.join_ok("room1", "ta").await;
    let id = a
        .request("transient", json!({"type": "frob", "key": "k"}))
        .await;
    a.expect_error(Some(&id), "ignored").await;
    let id = a
        .request(
            "transient",
            json!({"type": "set", "key": "sd:someone-else", "value": 1}),
        )
        .await;
    let v = a.expect_error(Some(&id), "not_allowed").await;
    assert_eq!(
        v["error"]["message"],
        "Not allowed to update this transient data entry."
    );
    let own = format!("sd:{}", a.session_id);
    a.request("transient", json!({"type": "set", "key": own, "value": 1}))
        .await;
    assert_eq!(a.recv().await["transient"]["key"], own.as_str());

    let mut b = user(&server, &talk, &bob).await;
    b.join_ok("readonly", "tb").await;
    let id = b
        .request("transient", json!({"type": "set", "key": "k", "value": 1}))
        .await;
    let v = b.expect_error(Some(&id), "not_allowed").await;
    assert_eq!(
        v["error"]["message"],
        "Not allowed to update transient data."
    );
}

/// A session's own `sd:` entry is removed when it leaves.
#[tokio::test]
async fn session_data_removed_on_leave() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    a.recv().await;
    let key = format!("sd:{}", a.session_id);
    a.request(
        "transient",
        json!({"type": "set", "key": key, "value": {"muted": true}}),
    )
    .await;
    b.recv_until(|v| v["type"] == "transient").await;
    a.request("room", json!({"roomid": ""})).await;
    let v = b.recv_until(|v| v["type"] == "transient").await;
    assert_eq!(
        v["transient"],
        json!({"type": "remove", "key": key, "oldvalue": {"muted": true}})
    );
}

/// The data lives as long as somebody is in the room.
#[tokio::test]
async fn cleared_when_the_last_session_leaves() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    a.join_ok("room1", "ta").await;
    a.request("transient", json!({"type": "set", "key": "k", "value": 1}))
        .await;
    a.recv().await;
    a.request("room", json!({"roomid": ""})).await;
    a.recv().await;
    let mut b = user(&server, &talk, &bob).await;
    b.join_ok("room1", "tb").await;
    b.expect_silence(Duration::from_millis(300)).await;
}
