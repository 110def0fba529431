//! Resuming sessions (seed 004 "Resuming sessions") and releasing them.

use std::time::Duration;

use serde_json::json;
use tests::client::{user, TestClient};
use tests::server::TestServer;
use tests::talk::{Talk, User};

async fn setup() -> (Talk, TestServer, User, User) {
    tests::server::alice_and_bob(&["room1"]).await
}

/// After a dropped connection the client resumes with its resume id: same
/// ids, still in the room, and messages sent meanwhile arrive in order.
#[tokio::test]
async fn resume_delivers_queued_messages_in_order() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    a.recv().await;
    let (sid, rid) = (a.session_id.clone(), a.resume_id.clone());
    a.close().await;
    for n in 0..5 {
        b.message(
            json!({"type": "session", "sessionid": sid}),
            json!({"n": n}),
        )
        .await;
    }
    b.message(json!({"type": "room"}), json!({"n": "room"}))
        .await;
    b.expect_silence(Duration::from_millis(200)).await; // no leave event for alice

    let (mut a2, _) = TestClient::connect(&server).await;
    let v = a2.resume(&rid).await;
    assert_eq!(v["type"], "hello", "{v}");
    assert_eq!(v["hello"]["sessionid"], sid.as_str());
    assert_eq!(v["hello"]["resumeid"], rid.as_str());
    assert_eq!(v["hello"]["userid"], "alice");
    assert!(v["hello"]["server"].is_object());
    for n in 0..5 {
        assert_eq!(a2.recv().await["message"]["data"], json!({"n": n}));
    }
    assert_eq!(a2.recv().await["message"]["data"], json!({"n": "room"}));
    // Still in the room: room messages arrive live.
    b.message(json!({"type": "room"}), json!("live")).await;
    assert_eq!(a2.recv().await["message"]["data"], "live");
}

/// Unknown, forged and public ids are `no_such_session`.
#[tokio::test]
async fn resume_unknown_ids() {
    let (talk, server, alice, _) = setup().await;
    let a = user(&server, &talk, &alice).await;
    let (mut c, _) = TestClient::connect(&server).await;
    for id in ["garbage", "", &a.session_id] {
        if id.is_empty() {
            continue;
        }
        let (req, v) = c.hello_raw(json!({"version": "1.0", "resumeid": id})).await;
        assert_eq!(v["id"], req);
        assert_eq!(v["error"]["code"], "no_such_session", "{id}");
    }
}

/// Resuming while the old connection is still open takes the session
/// over: the old connection gets `bye` `session_resumed`, the session lives
/// on.
#[tokio::test]
async fn resume_takeover() {
    let (talk, server, alice, bob) = setup().await;
    let mut a = user(&server, &talk, &alice).await;
    let mut b = user(&server, &talk, &bob).await;
    let (mut a2, _) = TestClient::connect(&server).await;
    let v = a2.resume(&a.resume_id).await;
    assert_eq!(v["hello"]["sessionid"], a.session_id.as_str());
    assert_eq!(
        a.recv().await,
        json!({"type": "bye", "bye": {"reason": "session_resumed"}})
    );
    a.expect_closed().await;
    b.message(
        json!({"type": "session", "sessionid": a.session_id}),
        json!("to new conn"),
    )
    .await;
    assert_eq!(a2.recv().await["message"]["data"], "to new conn");
}

/// Ten undecodable resume ids from one address block further resume
/// attempts with `too_many_requests`, even valid ones.
#[tokio::test]
async fn brute_force_resume_is_blocked() {
    let (talk, server, alice, _) = setup().await;
    let victim = user(&server, &talk, &alice).await;
    // The failures are recorded at once; their delays run in parallel.
    let mut attackers = Vec::new();
    for n in 0..10 {
        let (mut c, _) = TestClient::connect(&server).await;
        c.request(
            "hello",
            json!({"version": "1.0", "resumeid": format!("forged-{n}")}),
        )
        .await;
        attackers.push(c);
    }
    // The first failure answers after its 100 ms delay.
    assert_eq!(
        attackers[0].recv().await["error"]["code"],
        "no_such_session"
    );
    let (mut c, _) = TestClient::connect(&server).await;
    let (id, v) = c
        .hello_raw(json!({"version": "1.0", "resumeid": victim.resume_id}))
        .await;
    assert_eq!(v["id"], id);
    assert_eq!(v["error"]["code"], "too_many_requests");
}

/// alice drops her connection; bob sends her `count` messages of
/// `padding` bytes; returns alice's resume id and session id.
async fn queue_for_dropped(
    server: &TestServer,
    talk: &Talk,
    alice: &User,
    bob: &User,
    count: usize,
    padding: usize,
) -> (String, String) {
    let a = user(server, talk, alice).await;
    let mut b = user(server, talk, bob).await;
    let (sid, rid) = (a.session_id.clone(), a.resume_id.clone());
    a.close().await;
    let pad = "x".repeat(padding);
    for n in 0..count {
        b.message(
            json!({"type": "session", "sessionid": sid}),
            json!({"n": n, "pad": pad}),
        )
        .await;
    }
    // bob's last message has been handled once his next request is.
    b.send_raw(r#"{"id":"sync","type":"room","room":[1,2]}"#)
        .await;
    b.expect_error(Some("sync"), "invalid_format").await;
    (rid, sid)
}

/// The numbers of the queued messages a resuming client gets.
async fn resumed_numbers(server: &TestServer, rid: &str, last: usize) -> Vec<usize> {
    let (mut a2, _) = TestClient::connect(server).await;
    let v = a2.resume(rid).await;
    assert_eq!(v["type"], "hello", "resume refused: {v}");
    let mut got = Vec::new();
    while got.last() != Some(&last) {
        let v = a2.recv().await;
        got.push(v["message"]["data"]["n"].as_u64().expect("numbered") as usize);
    }
    got
}

/// More messages than a connection's queue holds (512) wait for a
/// dropped session: the resume gets its hello and every one of them, in
/// order, instead of being closed for its own backlog.
#[tokio::test]
async fn resume_with_a_long_backlog() {
    let (talk, server, alice, bob) = setup().await;
    let (rid, _) = queue_for_dropped(&server, &talk, &alice, &bob, 1500, 10).await;
    let got = resumed_numbers(&server, &rid, 1499).await;
    assert_eq!(got, (0..1500).collect::<Vec<_>>());
}

/// The queue of a dropped session is bounded (8 MiB): with 60 KB
/// messages the oldest are dropped and counted, the server's memory stays
/// flat, and the resume gets the newest in order.
#[tokio::test]
async fn backlog_of_a_dropped_session_is_bounded() {
    let (talk, server, alice, bob) = setup().await;
    let before = server.process.rss_kib().expect("RSS") / 1024;
    let (rid, _) = queue_for_dropped(&server, &talk, &alice, &bob, 400, 60_000).await;
    let after = server.process.rss_kib().expect("RSS") / 1024;
    assert!(
        after < before + 48,
        "RSS grew from {before} to {after} MiB for 24 MB sent"
    );
    let dropped = server
        .metric("signaling_session_pending_dropped_total")
        .await;
    assert!(dropped > 200.0, "dropped {dropped}");
    let got = resumed_numbers(&server, &rid, 399).await;
    let first = got[0];
    assert_eq!(first, 400 - got.len(), "the newest are kept");
    assert_eq!(got, (first..400).collect::<Vec<_>>());
    assert_eq!(dropped as usize, first);
}
