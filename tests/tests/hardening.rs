//! Resource exhaustion by unauthenticated peers, tried against the real
//! binaries with memory read from /proc.

use std::time::{Duration, Instant};

use tests::process::ChildGuard;
use tests::proxy::ProxyServer;
use tests::raw_ws::{Frame, RawWs, Read, OP_PING};
use tests::server::TestServer;
use tests::talk::Talk;
use tests::wait::{eventually, STEP};

/// Pings as fast as the socket takes them, never reading, for at most
/// `limit`; returns how long until the peer cut the connection, if it did.
async fn ping_flood(ws: &mut RawWs, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    // A batch of 1000 pings per write (6 bytes of header + 8 bytes each).
    let batch: Vec<u8> = (0..1000u32)
        .flat_map(|n| Frame::new(OP_PING, u64::from(n).to_be_bytes().to_vec()).encode())
        .collect();
    while start.elapsed() < limit {
        match tokio::time::timeout(Duration::from_millis(500), ws.send_bytes(&batch)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Some(start.elapsed()),
            // The peer stopped reading: it may be about to close.
            Err(_) => {}
        }
    }
    None
}

fn rss_mib(p: &ChildGuard) -> f64 {
    p.rss_kib().expect("RSS from /proc") as f64 / 1024.0
}

/// A client that pings without reading is closed within a few seconds
/// and the server's memory stays flat (it grew by ~250 MiB/s before).
#[tokio::test]
async fn server_cuts_off_a_ping_flood() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let server = TestServer::builder().talk(&talk).start().await;
    let before = rss_mib(&server.process);
    let mut ws = RawWs::connect(&format!("127.0.0.1:{}", server.port), "/spreed")
        .await
        .expect("upgrade");
    let cut = ping_flood(&mut ws, Duration::from_secs(8)).await;
    let after = rss_mib(&server.process);
    assert!(cut.is_some(), "still connected after 8 s of pings");
    assert!(
        after - before < 32.0,
        "RSS grew from {before:.0} to {after:.0} MiB"
    );
    let counted = server
        .metric("signaling_client_protocol_errors_total{code=\"1008\"}")
        .await;
    assert_eq!(counted, 1.0);
}

/// The same against the proxy.
#[tokio::test]
async fn proxy_cuts_off_a_ping_flood() {
    let proxy = ProxyServer::start("ws://127.0.0.1:9", "").await;
    let before = rss_mib(&proxy.process);
    let mut ws = RawWs::connect(&format!("127.0.0.1:{}", proxy.port), "/proxy")
        .await
        .expect("upgrade");
    let cut = ping_flood(&mut ws, Duration::from_secs(8)).await;
    let after = rss_mib(&proxy.process);
    assert!(cut.is_some(), "still connected after 8 s of pings");
    assert!(
        after - before < 32.0,
        "RSS grew from {before:.0} to {after:.0} MiB"
    );
}

/// A `/proxy` connection that never says hello is closed, however well
/// it keeps pinging.
#[tokio::test]
async fn proxy_hello_timeout() {
    let proxy = ProxyServer::start("ws://127.0.0.1:9", "").await;
    let mut ws = RawWs::connect(&format!("127.0.0.1:{}", proxy.port), "/proxy")
        .await
        .expect("upgrade");
    let start = Instant::now();
    let mut last_ping = start - Duration::from_secs(1);
    let mut bye = false;
    let closed = loop {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "unauthenticated connection still open"
        );
        // One ping a second, as a keepalive would (pongs come back).
        if last_ping.elapsed() >= Duration::from_secs(1) {
            ws.send(&Frame::new(OP_PING, b"keepalive".to_vec()))
                .await
                .ok();
            last_ping = Instant::now();
        }
        match ws.read(Duration::from_millis(200)).await {
            Read::Frame(f) if f.opcode == tests::raw_ws::OP_TEXT => {
                let v: serde_json::Value = serde_json::from_slice(&f.payload).expect("JSON");
                bye |= v["type"] == "bye" && v["bye"]["reason"] == "hello_timeout";
            }
            Read::Frame(_) | Read::TimedOut => {}
            Read::Closed => break start.elapsed(),
        }
    };
    assert!(
        bye,
        "no bye before the close after {closed:?}\n{}",
        proxy.process.log_tail(20)
    );
    assert!(closed >= Duration::from_secs(4), "closed after {closed:?}");
}

/// Reads from `stream` until the peer closes it; how long that took, or
/// `None` if it stayed open for `limit`.
async fn closed_after(stream: &mut tokio::net::TcpStream, limit: Duration) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(start.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Half-open and slow HTTP clients of `addr` are closed at the read
/// timeout (2 s here): no bytes at all, part of an upgrade request's
/// headers, or a POST that announces more body than it sends.
async fn slow_clients_are_closed(addr: &str, post_path: &str) {
    use tokio::io::AsyncWriteExt;
    let mut idle = Vec::new();
    for _ in 0..50 {
        idle.push(tokio::net::TcpStream::connect(addr).await.expect("connect"));
    }
    let mut partial = tokio::net::TcpStream::connect(addr).await.expect("connect");
    partial
        .write_all(b"GET /spreed HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")
        .await
        .expect("write");
    let mut short_body = tokio::net::TcpStream::connect(addr).await.expect("connect");
    short_body
        .write_all(
            format!("POST {post_path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"type\":\"").as_bytes(),
        )
        .await
        .expect("write");
    let limit = Duration::from_secs(10);
    for (what, s) in [
        ("partial headers", &mut partial),
        ("short body", &mut short_body),
    ] {
        let after = closed_after(s, limit).await;
        assert!(after.is_some(), "{what}: still open after {limit:?}");
    }
    for (n, s) in idle.iter_mut().enumerate() {
        assert!(
            closed_after(s, limit).await.is_some(),
            "idle connection {n} still open"
        );
    }
}

#[tokio::test]
async fn server_closes_slow_http_clients() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra("\n[http]\nreadtimeout = 2\n")
        .start()
        .await;
    slow_clients_are_closed(&format!("127.0.0.1:{}", server.port), "/api/v1/room/room1").await;
    // Clients that take their time within the timeout are served.
    let welcome = reqwest::get(format!("{}api/v1/welcome", server.http_url()))
        .await
        .expect("welcome");
    assert!(welcome.status().is_success());
}

#[tokio::test]
async fn proxy_closes_slow_http_clients() {
    let proxy = ProxyServer::start("ws://127.0.0.1:9", "[http]\nreadtimeout = 2\n").await;
    slow_clients_are_closed(&format!("127.0.0.1:{}", proxy.port), "/proxy").await;
}

/// `[backend] connectionsperhost` bounds the requests to one Nextcloud at
/// once, capability fetches included: 30 clients saying hello together
/// to a slow Nextcloud never have more than 4 requests running there.
#[tokio::test]
async fn requests_per_nextcloud_are_bounded() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let users: Vec<_> = (0..30)
        .map(|n| talk.add_user(&format!("u{n}"), "U"))
        .collect();
    talk.set_behaviour(tests::talk::Behaviour {
        delay: Some(Duration::from_millis(100)),
        capabilities_delay: Some(Duration::from_millis(100)),
        ..Default::default()
    });
    let server = TestServer::builder()
        .talk(&talk)
        .backend_timeout_secs(20)
        .extra("\n[backend]\nconnectionsperhost = 4\n")
        .start()
        .await;
    let hellos = users.iter().map(|u| async {
        let (mut c, _) = tests::client::TestClient::connect(&server).await;
        c.hello_v1(&talk, Some(u)).await
    });
    for v in futures_util::future::join_all(hellos).await {
        assert_eq!(v["type"], "hello", "{v}");
    }
    assert!(
        talk.max_in_flight() <= 4,
        "{} requests at once",
        talk.max_in_flight()
    );
}

/// A reply from Nextcloud over 4 MiB is refused (the hello fails with an
/// error) instead of being read into memory.
#[tokio::test]
async fn oversized_backend_replies_are_refused() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let server = TestServer::builder().talk(&talk).start().await;
    talk.set_behaviour(tests::talk::Behaviour {
        huge_reply: Some(6 * 1024 * 1024),
        ..Default::default()
    });
    let (mut c, _) = tests::client::TestClient::connect(&server).await;
    let (_, v) = c
        .hello_raw(serde_json::json!({"version": "1.0", "auth": {"url": talk.signaling_url(), "params": {"userid": "alice", "ticket": alice.ticket}}}))
        .await;
    assert_eq!(v["type"], "error", "{v}");
}

/// Ten forged notifications with `X-Forwarded-For` rotated per request,
/// then an eleventh; the status of that one.
async fn status_after_rotated_forgeries(server: &TestServer, xff: fn(usize) -> String) -> u16 {
    let url = format!("{}api/v1/room/room1", server.http_url());
    let body = serde_json::json!({"type": "message", "message": {"data": {}}}).to_string();
    let forged = |n: usize| {
        reqwest::Client::new()
            .post(&url)
            .header("Content-Type", "application/json")
            .header("X-Forwarded-For", xff(n))
            .header("Spreed-Signaling-Random", proto::checksum::new_random())
            .header("Spreed-Signaling-Checksum", "forged")
            .body(body.clone())
            .send()
    };
    let pending: Vec<_> = (0..10).map(|n| tokio::spawn(forged(n))).collect();
    server.throttled_notifications(10).await;
    let status = forged(10).await.expect("request").status().as_u16();
    drop(pending);
    status
}

/// Rotating `X-Forwarded-For` does not escape the brute-force throttle:
/// from a peer that is not a trusted proxy the header is ignored, and
/// behind a trusted proxy the address the proxy appended counts, whatever
/// the client put in front of it. With `[app] trustedproxies` unset only
/// loopback is trusted: a client on a private network (10.0.0.5 here,
/// behind a reverse proxy on this host) cannot hide behind a private hop
/// it made up. The reference trusts the private ranges by default and
/// lets that client through.
#[tokio::test]
async fn rotating_forwarded_for_does_not_escape_the_throttle() {
    let talk = Talk::start(tests::server::TALK_SECRET).await;
    talk.add_room("room1", tests::talk::Room::open("Room one"));
    let default = TestServer::builder().talk(&talk).start().await;
    let status =
        status_after_rotated_forgeries(&default, |n| format!("192.0.2.{n}, 10.0.0.5")).await;
    assert_eq!(status, 429, "private peer escaped by rotating the header");
    let untrusted = TestServer::builder()
        .talk(&talk)
        .extra("\n[app]\ntrustedproxies = 10.0.0.0/8\n")
        .start()
        .await;
    let status = status_after_rotated_forgeries(&untrusted, |n| format!("192.0.2.{n}")).await;
    assert_eq!(status, 429, "untrusted peer escaped by rotating the header");
    let behind_proxy = TestServer::builder()
        .talk(&talk)
        .extra("\n[app]\ntrustedproxies = 127.0.0.1\n")
        .start()
        .await;
    let status =
        status_after_rotated_forgeries(&behind_proxy, |n| format!("192.0.2.{n}, 198.51.100.7"))
            .await;
    assert_eq!(
        status, 429,
        "client behind a proxy escaped by rotating its part"
    );
}

/// Unauthenticated `/proxy` connections are cheap: 200 of them cost the
/// proxy less than 64 KiB each (about 135 KiB before its read buffer
/// shrank to 4 KiB; the reference's cost about 25 KiB).
#[tokio::test]
async fn unauthenticated_proxy_connections_are_cheap() {
    let proxy = ProxyServer::start("ws://127.0.0.1:9", "").await;
    let addr = format!("127.0.0.1:{}", proxy.port);
    // Warm up allocator and runtime with a few connections first.
    let mut warm = Vec::new();
    for _ in 0..10 {
        warm.push(RawWs::connect(&addr, "/proxy").await.expect("upgrade"));
    }
    let before = settled_rss(&proxy.process).await;
    let mut conns = Vec::new();
    for _ in 0..200 {
        conns.push(RawWs::connect(&addr, "/proxy").await.expect("upgrade"));
    }
    let after = settled_rss(&proxy.process).await;
    let per_conn = after.saturating_sub(before) / 200;
    assert!(per_conn < 64, "{per_conn} KiB per connection");
}

/// The process's RSS once it has stopped changing (three equal readings
/// 50 ms apart): the connection tasks have run and allocated.
async fn settled_rss(p: &ChildGuard) -> u64 {
    let mut last = Vec::new();
    let settled = eventually(STEP, || {
        last.push(p.rss_kib().expect("RSS"));
        let n = last.len();
        let value =
            (n >= 3 && last[n - 3..].iter().all(|v| *v == last[n - 1])).then(|| last[n - 1]);
        async move {
            if value.is_none() {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
            value
        }
    })
    .await;
    settled.expect("RSS did not settle")
}
