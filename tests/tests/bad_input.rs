//! Bad input gets the protocol's answer and never harms other sessions.

use std::time::Duration;

use serde_json::json;
use tests::client::{user, Closed, TestClient};
use tests::server::TestServer;
use tests::talk::{Talk, User};

async fn setup() -> (Talk, TestServer, User, User) {
    tests::server::alice_and_bob(&["room1"]).await
}

/// Messages between two healthy sessions still flow.
async fn still_works(a: &mut TestClient, b: &mut TestClient) {
    a.message(
        json!({"type": "session", "sessionid": b.session_id}),
        json!("ping"),
    )
    .await;
    assert_eq!(b.recv().await["message"]["data"], "ping");
}

/// Malformed JSON, wrong types, missing fields, unknown types and binary
/// frames are answered (or ignored) and the connection stays usable.
#[tokio::test]
async fn malformed_messages() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;

    a.send_raw("{not json").await;
    a.expect_error(None, "invalid_format").await;
    a.send_raw(r#"{"id":7,"type":"message"}"#).await;
    a.expect_error(None, "invalid_format").await;
    a.send_raw(r#"{"id":"x1"}"#).await;
    a.expect_error(Some("x1"), "invalid_format").await;
    a.send_raw(r#"{"id":"x2","type":"room"}"#).await;
    a.expect_error(Some("x2"), "invalid_format").await;
    a.send_raw(r#"{"id":"x3","type":"room","room":[1,2]}"#)
        .await;
    a.expect_error(Some("x3"), "invalid_format").await;
    a.send_raw(r#"{"id":"x4","type":"transient","transient":{"type":"set","key":"k","ttl":"5s"}}"#)
        .await;
    a.expect_error(Some("x4"), "invalid_format").await;
    a.send_raw("[]").await;
    a.expect_error(None, "invalid_format").await;
    a.send_binary(vec![0, 1, 2]).await;
    a.expect_error(None, "invalid_format").await;
    // Unknown types after hello are ignored.
    a.send_raw(r#"{"id":"x5","type":"frobnicate","frobnicate":{}}"#)
        .await;
    a.expect_silence(Duration::from_millis(300)).await;

    still_works(&mut a, &mut b).await;
    still_works(&mut b, &mut a).await;
}

/// A frame over 64 KiB closes that connection with 1009; others are fine.
#[tokio::test]
async fn oversized_frame_closes_connection() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let mut big = user(&server, &talk, &alice).await;
    let payload = "x".repeat(70 * 1024);
    big.send_raw(&format!(
        r#"{{"type":"message","message":{{"recipient":{{"type":"room"}},"data":"{payload}"}}}}"#
    ))
    .await;
    match big.expect_closed().await {
        Closed::Frame(Some(f)) => assert_eq!(u16::from(f.code), 1009),
        other => panic!("expected a 1009 close, got {other:?}"),
    }
    // Just under the limit is fine.
    let ok = "y".repeat(60 * 1024);
    a.message(
        json!({"type": "session", "sessionid": b.session_id}),
        json!(ok),
    )
    .await;
    assert_eq!(
        b.recv().await["message"]["data"].as_str().map(str::len),
        Some(ok.len())
    );
    still_works(&mut b, &mut a).await;
}

/// A client that stops reading is disconnected instead of being buffered
/// without bound; its senders are not blocked.
#[tokio::test]
async fn client_that_does_not_read_is_dropped() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let mut stuck = user(&server, &talk, &bob).await;
    let chunk = "z".repeat(60 * 1024);
    let started = std::time::Instant::now();
    // ~90 MB towards a client that reads nothing: far beyond socket
    // buffers plus the bounded outbox.
    for _ in 0..1500 {
        a.message(
            json!({"type": "session", "sessionid": stuck.session_id}),
            json!(chunk),
        )
        .await;
    }
    // The sender was never blocked and others are still served.
    assert!(started.elapsed() < Duration::from_secs(20));
    still_works(&mut a, &mut b).await;
    // The stuck connection ends after what the socket buffered.
    let mut received = 0;
    let end = loop {
        match stuck.try_recv_within(Duration::from_secs(15)).await {
            Ok(Some(_)) => received += 1,
            Ok(None) => panic!("stuck connection was not closed"),
            Err(c) => break c,
        }
    };
    assert!(
        received < 1500,
        "not everything was buffered ({received} delivered), ended with {end:?}"
    );
}

/// Many connections opening and closing at once do not disturb a session.
#[tokio::test]
async fn connection_churn() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let url = server.ws_url();
        tasks.push(tokio::spawn(async move {
            if let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await {
                use futures_util::SinkExt;
                let _ = ws
                    .send(tokio_tungstenite::tungstenite::Message::Text(
                        "garbage".into(),
                    ))
                    .await;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    still_works(&mut a, &mut b).await;
}
