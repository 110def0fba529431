//! Establishing a connection: welcome, hello v1/v2/internal and every hello
//! error of seed 004 "Establish connection", against the real binary.

use std::time::Duration;

use serde_json::json;
use tests::client::{Closed, TestClient};
use tests::server::TestServer;
use tests::talk::{unix_now, Behaviour, Talk};

async fn setup() -> (Talk, TestServer) {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let server = TestServer::builder().talk(&talk).start().await;
    (talk, server)
}

/// Clients get `welcome` first, with the server's features.
#[tokio::test]
async fn welcome_first_with_features() {
    let (_talk, server) = setup().await;
    let (_c, welcome) = TestClient::connect(&server).await;
    let features: Vec<&str> = welcome["welcome"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    for f in [
        "hello-v2",
        "welcome",
        "transient-data",
        "virtual-sessions",
        "audio-video-permissions",
    ] {
        assert!(features.contains(&f), "{f} missing in {features:?}");
    }
    let mut sorted = features.clone();
    sorted.sort();
    assert_eq!(features, sorted);
    assert!(welcome["welcome"]["version"].is_string());
}

/// `GET /api/v1/welcome` tells Talk's admin check who we are.
#[tokio::test]
async fn welcome_endpoint() {
    let (_talk, server) = setup().await;
    let resp = reqwest::get(format!("{}api/v1/welcome", server.http_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["server"]
        .to_str()
        .unwrap()
        .starts_with("nextcloud-spreed-signaling/"));
    assert!(resp.headers()["x-spreed-signaling-features"]
        .to_str()
        .unwrap()
        .contains("hello-v2"));
    let body = resp.text().await.unwrap();
    assert!(body.ends_with('\n'));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["nextcloud-spreed-signaling"], "Welcome");
}

/// Hello v1: the server asks Talk (checksummed, v3 path) and answers with ids.
#[tokio::test]
async fn hello_v1_user_and_guest() {
    let (talk, server) = setup().await;
    let alice = talk.add_user("alice", "Alice");
    let (mut c, _) = TestClient::connect(&server).await;
    let v = c.hello_v1(&talk, Some(&alice)).await;
    assert_eq!(v["hello"]["userid"], "alice");
    assert_eq!(v["hello"]["version"], "1.0");
    assert!(!c.session_id.is_empty() && !c.resume_id.is_empty());
    assert_ne!(c.session_id, c.resume_id);
    assert!(v["hello"]["server"]["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "hello-v2"));
    let auth = talk
        .requests()
        .into_iter()
        .find(|r| r.body["type"] == "auth")
        .unwrap();
    assert!(
        auth.checksum_ok,
        "checksum must verify with the backend secret"
    );
    assert_eq!(
        auth.path,
        "/ocs/v2.php/apps/spreed/api/v3/signaling/backend"
    );
    assert_eq!(auth.body["auth"]["version"], "1.0");
    assert_eq!(auth.body["auth"]["params"]["userid"], "alice");

    let (mut g, _) = TestClient::connect(&server).await;
    let v = g.hello_v1(&talk, None).await;
    assert_eq!(v["hello"]["userid"], "");
}

/// Talk's own errors are forwarded as they are.
#[tokio::test]
async fn hello_v1_talk_errors_forwarded() {
    let (talk, server) = setup().await;
    let alice = talk.add_user("alice", "Alice");
    let (mut c, _) = TestClient::connect(&server).await;
    let (id, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"url": talk.signaling_url(), "params": {"userid": "alice", "ticket": "wrong"}}}))
        .await;
    assert_eq!(v["id"], id);
    assert_eq!(v["error"]["code"], "invalid_ticket");
    assert_eq!(
        v["error"]["message"],
        "The given ticket is not valid for this user."
    );
    let (_, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"url": talk.signaling_url(), "params": {"userid": "mallory", "ticket": "x"}}}))
        .await;
    assert_eq!(v["error"]["code"], "no_such_user");
    // The connection is still usable.
    let v = c.hello_v1(&talk, Some(&alice)).await;
    assert_eq!(v["hello"]["userid"], "alice");
}

/// Hello v2: JWT verified with the key from Talk's capabilities.
#[tokio::test]
async fn hello_v2_tokens() {
    let (talk, server) = setup().await;
    let (mut c, _) = TestClient::connect(&server).await;
    let v = c.hello_v2(&talk, "bob").await;
    assert_eq!(v["hello"]["userid"], "bob");
    assert_eq!(v["hello"]["version"], "2.0");
    assert!(
        talk.requests_of("auth").is_empty(),
        "v2 makes no auth request"
    );

    let now = unix_now();
    let cases = [
        (
            json!({"iat": now - 600, "exp": now - 300, "sub": "bob"}),
            "token_expired",
        ),
        (
            json!({"iat": now + 600, "exp": now + 900, "sub": "bob"}),
            "token_not_valid_yet",
        ),
        (
            json!({"exp": now + 900, "sub": "bob"}),
            "token_not_valid_yet",
        ),
        (json!({"iat": now, "sub": "bob"}), "token_expired"),
    ];
    for (claims, code) in cases {
        let (mut c, _) = TestClient::connect(&server).await;
        let token = talk.sign_claims(&claims);
        let (id, v) = c
            .hello_raw(
                json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": token}}}),
            )
            .await;
        assert_eq!(v["id"], id);
        assert_eq!(v["error"]["code"], code, "{claims}: {v}");
    }
    // Forged: signed by another key.
    let other = Talk::start("x").await;
    let (mut c, _) = TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": other.v2_token("admin")}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_token");
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": "not.a.jwt"}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_token");
}

/// Internal clients authenticate with the HMAC token.
#[tokio::test]
async fn hello_internal() {
    let (talk, server) = setup().await;
    let (mut c, _) = TestClient::connect(&server).await;
    let v = c.hello_internal(&talk, &[]).await;
    assert_eq!(v["hello"]["userid"], "");
    let features = v["hello"]["server"]["features"].as_array().unwrap();
    assert!(features.iter().any(|f| f == "virtual-sessions"));
    assert!(!features.iter().any(|f| f == "audio-video-permissions"));

    let (mut c, _) = TestClient::connect(&server).await;
    let random = "a".repeat(40);
    let (id, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"type": "internal", "params": {"random": random, "token": "forged", "backend": talk.url()}}}))
        .await;
    assert_eq!(v["id"], id);
    assert_eq!(v["error"]["code"], "invalid_token");
    // A short random is refused even with the right HMAC.
    let short = "0123";
    let token = proto::checksum::internal_token(tests::server::INTERNAL_SECRET.as_bytes(), short);
    let (_, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"type": "internal", "params": {"random": short, "token": token, "backend": talk.url()}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_token");
}

/// Without `[clients] internalsecret` internal clients are refused.
#[tokio::test]
async fn hello_internal_without_secret() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .no_internal_secret()
        .start()
        .await;
    let (mut c, _) = TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"type": "internal", "params": {"random": "r", "token": "t", "backend": talk.url()}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_client_type");
}

/// URLs of unknown Nextclouds are refused before any request is made.
#[tokio::test]
async fn hello_invalid_backend() {
    let (talk, server) = setup().await;
    let (mut c, _) = TestClient::connect(&server).await;
    for url in [
        "https://evil.example.com/",
        "http://127.0.0.1:1/",
        &talk.url().replace("http://", "https://"),
    ] {
        let (_, v) = c
            .hello_raw(json!({"version": "1.0", "auth": {"url": url, "params": {"userid": ""}}}))
            .await;
        assert_eq!(v["error"]["code"], "invalid_backend", "{url}");
    }
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": "https://evil.example.com/", "params": {"token": "a.b.c"}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_backend");
    let random = "b".repeat(40);
    let token = proto::checksum::internal_token(tests::server::INTERNAL_SECRET.as_bytes(), &random);
    let (_, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"type": "internal", "params": {"random": random, "token": token, "backend": "https://evil.example.com/"}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_backend");
    assert!(talk.requests().is_empty());
}

/// Malformed hellos: bad version, missing params, bad URL, bad auth type.
#[tokio::test]
async fn hello_validation_errors() {
    let (talk, server) = setup().await;
    let (mut c, _) = TestClient::connect(&server).await;
    let cases = [
        (
            json!({"version": "3.0", "auth": {"url": talk.url(), "params": {}}}),
            "invalid_hello_version",
        ),
        (
            json!({"version": "3.0", "resumeid": "x"}),
            "invalid_hello_version",
        ),
        (
            json!({"version": "1.0", "auth": {"url": talk.url()}}),
            "invalid_format",
        ),
        (
            json!({"version": "1.0", "auth": {"url": "", "params": {}}}),
            "invalid_format",
        ),
        (
            json!({"version": "1.0", "auth": {"url": "::not a url", "params": {}}}),
            "invalid_format",
        ),
        (
            json!({"version": "1.0", "auth": {"type": "bogus", "url": talk.url(), "params": {}}}),
            "invalid_format",
        ),
        (
            json!({"version": "2.0", "auth": {"url": talk.url(), "params": {}}}),
            "invalid_format",
        ),
        (json!({"version": "1.0"}), "invalid_format"),
    ];
    for (hello, code) in cases {
        let (id, v) = c.hello_raw(hello.clone()).await;
        assert_eq!(v["id"], id);
        assert_eq!(v["error"]["code"], code, "{hello}: {v}");
    }
}

/// Until hello succeeded, everything else gets `hello_expected`; a second
/// hello on an authenticated connection is ignored.
#[tokio::test]
async fn hello_expected_and_hello_twice() {
    let (talk, server) = setup().await;
    let alice = talk.add_user("alice", "Alice");
    let (mut c, _) = TestClient::connect(&server).await;
    for (kind, payload) in [
        ("room", json!({"roomid": "r", "sessionid": "s"})),
        (
            "message",
            json!({"recipient": {"type": "room"}, "data": {}}),
        ),
        ("bye", json!({})),
        ("frobnicate", json!({})),
    ] {
        let id = c.request(kind, payload).await;
        c.expect_error(Some(&id), "hello_expected").await;
    }
    c.hello_v1(&talk, Some(&alice)).await;
    let first = c.session_id.clone();
    c.request("hello", json!({"version": "1.0", "auth": {"url": talk.url(), "params": {"userid": "alice", "ticket": alice.ticket}}}))
        .await;
    c.expect_silence(Duration::from_millis(500)).await;
    assert_eq!(talk.requests_of("auth").len(), 1);
    assert_eq!(c.session_id, first);
}

/// A client that never says hello gets `bye` `hello_timeout` after 2 s;
/// a failed hello restarts the timer.
#[tokio::test]
async fn hello_timeout() {
    let (talk, server) = setup().await;
    let (mut c, _) = TestClient::connect(&server).await;
    let start = std::time::Instant::now();
    let v = c.recv().await;
    assert_eq!(
        v,
        json!({"type": "bye", "bye": {"reason": "hello_timeout"}})
    );
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert!(matches!(
        c.expect_closed().await,
        Closed::Frame(_) | Closed::Eof
    ));

    // A slow client: its failed hello comes 1.5 s into the 2 s hello
    // timeout, which must start again from there.
    let (mut c, _) = TestClient::connect(&server).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, v) = c.hello_raw(json!({"version": "9"})).await;
    assert_eq!(v["error"]["code"], "invalid_hello_version");
    let after_fail = std::time::Instant::now();
    let v = c.recv().await;
    assert_eq!(v["bye"]["reason"], "hello_timeout");
    assert!(
        after_fail.elapsed() >= Duration::from_millis(1500),
        "timer restarted after the failed hello"
    );
    drop(talk);
}

/// A Talk that is too slow or answers garbage gives `internal_error`,
/// without blocking other clients.
#[tokio::test]
async fn backend_timeout_and_garbage() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let server = TestServer::builder()
        .talk(&talk)
        .backend_timeout_secs(1)
        .start()
        .await;
    // Warm the capabilities cache so the slow path is the auth request.
    let (mut warm, _) = TestClient::connect(&server).await;
    warm.hello_v1(&talk, Some(&alice)).await;

    talk.set_behaviour(Behaviour {
        delay: Some(Duration::from_secs(3)),
        ..Default::default()
    });
    let (mut slow, _) = TestClient::connect(&server).await;
    let started = std::time::Instant::now();
    let id = slow
        .request("hello", json!({"version": "1.0", "auth": {"url": talk.url(), "params": {"userid": "alice", "ticket": alice.ticket}}}))
        .await;
    // Meanwhile a v2 client (no backend request) is served at once.
    let (mut other, _) = TestClient::connect(&server).await;
    let v = other.hello_v2(&talk, "carol").await;
    assert_eq!(v["hello"]["userid"], "carol");
    let v = slow.recv().await;
    assert_eq!(v["id"], id);
    assert_eq!(v["error"]["code"], "internal_error", "{v}");
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "bounded by [backend] timeout"
    );

    talk.set_behaviour(Behaviour {
        garbage: true,
        ..Default::default()
    });
    let (mut g, _) = TestClient::connect(&server).await;
    let (_, v) = g
        .hello_raw(json!({"version": "1.0", "auth": {"url": talk.url(), "params": {"userid": "alice", "ticket": alice.ticket}}}))
        .await;
    assert_eq!(v["error"]["code"], "internal_error");
    assert_eq!(v["error"]["message"], "unsupported_content_type");
}

/// A Talk reply of the wrong type is `auth_failed` (hello) or
/// `room_join_failed` (room).
#[tokio::test]
async fn unexpected_talk_replies() {
    let (talk, server) = setup().await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", tests::talk::Room::open("Room one"));
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    talk.set_behaviour(Behaviour {
        wrong_type: true,
        ..Default::default()
    });
    let (mut c, _) = TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "1.0", "auth": {"url": talk.url(), "params": {"userid": "alice", "ticket": alice.ticket}}}))
        .await;
    assert_eq!(v["error"]["code"], "auth_failed", "{v}");
    assert_eq!(
        v["error"]["message"],
        "The user could not be authenticated."
    );
    let id = a
        .request("room", json!({"roomid": "room1", "sessionid": "t"}))
        .await;
    a.expect_error(Some(&id), "room_join_failed").await;
}

/// `sessionlimit` of a backend: further client sessions are refused with
/// `session_limit_exceeded`; internal sessions do not count; a closed
/// session frees its slot.
#[tokio::test]
async fn session_limit() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    // Appended to the generated [talk] backend section.
    let server = TestServer::builder()
        .talk(&talk)
        .extra("sessionlimit = 1\n")
        .start()
        .await;
    let (mut first, _) = TestClient::connect(&server).await;
    first.hello_v1(&talk, Some(&alice)).await;
    let (mut second, _) = TestClient::connect(&server).await;
    let (_, v) = second
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
        .await;
    assert_eq!(v["error"]["code"], "session_limit_exceeded");
    let (mut internal, _) = TestClient::connect(&server).await;
    internal.hello_internal(&talk, &[]).await;
    first.request("bye", json!({})).await;
    first.expect_closed().await;
    let v = second.hello_v2(&talk, "bob").await;
    assert_eq!(v["hello"]["userid"], "bob");
}

/// `allowall`: any Nextcloud URL with the common secret (development
/// setups); notifications without a backend header use it too.
#[tokio::test]
async fn allowall_backend() {
    let talk = Talk::start("common-secret").await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", tests::talk::Room::open("Room one"));
    let server = TestServer::builder()
        .extra("[backend]\nallowall = true\nsecret = common-secret\n")
        .start()
        .await;
    let (mut a, _) = TestClient::connect(&server).await;
    let v = a.hello_v1(&talk, Some(&alice)).await;
    assert_eq!(v["hello"]["userid"], "alice");
    a.join_ok("room1", "ta").await;
    let (status, _) = talk
        .notify(
            &server.http_url(),
            "room1",
            &json!({"type": "message", "message": {"data": {"x": 1}}}),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(a.recv().await["event"]["message"]["data"], json!({"x": 1}));
}

/// Without a key in the capabilities, v2 hellos fail with invalid_token; a
/// key that appears after the capabilities were cached is found: an
/// unknown key makes the server refresh the capabilities once.
#[tokio::test]
async fn capabilities_refreshed_for_new_key() {
    let (talk, server) = setup().await;
    talk.set_behaviour(Behaviour {
        no_key: true,
        ..Default::default()
    });
    let (mut c, _) = TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
        .await;
    assert_eq!(v["error"]["code"], "invalid_token");
    let fetches = talk.capability_fetches();
    talk.set_behaviour(Behaviour::default());
    let v = c.hello_v2(&talk, "bob").await;
    assert_eq!(v["hello"]["userid"], "bob");
    assert_eq!(
        talk.capability_fetches(),
        fetches + 1,
        "one refresh for the missing key"
    );
}

/// A Nextcloud whose capabilities cannot be read (maintenance mode: 503
/// with an HTML page) makes a v2 hello fail with `internal_error`, not
/// with `invalid_token`: the token was never checked. The failure is not
/// cached: once Nextcloud answers again, the next hello succeeds.
#[tokio::test]
async fn unreadable_capabilities_are_an_internal_error() {
    let (talk, server) = setup().await;
    talk.set_behaviour(Behaviour {
        capabilities_unavailable: true,
        ..Default::default()
    });
    let (mut c, _) = TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
        .await;
    assert_eq!(v["error"]["code"], "internal_error", "{v}");
    talk.set_behaviour(Behaviour::default());
    let v = c.hello_v2(&talk, "bob").await;
    assert_eq!(v["hello"]["userid"], "bob");
}
