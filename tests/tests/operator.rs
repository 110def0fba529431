//! What operators and Nextcloud housekeeping rely on: stats and metrics
//! behind `[stats] allowed_ips` with trusted-proxy handling, and room pings
//! that keep Talk's sessions alive.

use std::time::Duration;

use serde_json::Value;
use tests::client::TestClient;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Room, Talk};

/// Loopback may read `/metrics` (reference names) and `/api/v1/stats`.
#[tokio::test]
async fn metrics_and_stats_from_loopback() {
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra("[geoip-overrides]\n127.0.0.1 = DE\n")
        .start()
        .await;
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    a.join_ok("room1", "ta").await;
    a.message(serde_json::json!({"type": "room"}), serde_json::json!("x"))
        .await;
    a.request("frobnicate", serde_json::json!({})).await;

    let stats: Value = reqwest::get(format!("{}api/v1/stats", server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stats["sessions"], 1);
    assert_eq!(stats["rooms"], 1);

    let resp = reqwest::get(format!("{}metrics", server.http_url()))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for name in [
        "signaling_hub_sessions{backend=\"talk\",clienttype=\"client\"} 1",
        "signaling_hub_rooms{backend=\"talk\"} 1",
        "signaling_hub_sessions_total{backend=\"talk\",clienttype=\"client\"} 1",
        "signaling_room_sessions{backend=\"talk\",clienttype=\"client\",room=\"room1\"} 1",
        "signaling_server_messages_total{type=\"hello\"} 1",
        "signaling_server_messages_total{type=\"message\"} 1",
        "signaling_backend_client_requests_total{backend=\"talk\"}",
        "signaling_client_messages_total{direction=\"incoming\"}",
        "signaling_client_bytes_total{direction=\"outgoing\"}",
        "signaling_client_countries_total{country=\"DE\"} 1",
        "signaling_backend_current 1",
        "signaling_backend_client_requests_duration_bucket{backend=\"talk\",le=",
        "signaling_http_client_pool_connections{host=\"127.0.0.1:",
        "process_resident_memory_bytes ",
        "process_open_fds ",
    ] {
        assert!(text.contains(name), "{name} missing in\n{text}");
    }
    assert!(
        tests::server::metric_in(
            &text,
            "signaling_backend_client_requests_duration_count{backend=\"talk\"}"
        ) >= 2.0,
        "auth and join are timed"
    );

    let info: Value = reqwest::get(format!("{}api/v1/serverinfo", server.http_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["nats"]["urls"][0], "nats://loopback");
    assert!(info["features"]
        .as_array()
        .unwrap()
        .iter()
        .any(|f| f == "hello-v2"));
}

/// Other addresses get 403; behind a trusted proxy the forwarded address
/// is what counts.
#[tokio::test]
async fn allowed_ips_and_trusted_proxies() {
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra("[stats]\nallowed_ips = 192.0.2.7\n")
        .start()
        .await;
    let http = reqwest::Client::new();
    for path in ["metrics", "api/v1/stats", "api/v1/serverinfo"] {
        let r = http
            .get(format!("{}{path}", server.http_url()))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 403, "{path}");
        assert_eq!(r.text().await.unwrap(), "Authentication check failed\n");
        // 127.0.0.1 is a trusted proxy by default: X-Real-IP counts.
        let r = http
            .get(format!("{}{path}", server.http_url()))
            .header("X-Real-IP", "192.0.2.7")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let r = http
            .get(format!("{}{path}", server.http_url()))
            .header("X-Forwarded-For", "192.0.2.7, 127.0.0.2")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{path} via X-Forwarded-For");
    }
    // With loopback no longer trusted, the headers are ignored.
    let strict = TestServer::builder()
        .talk(&talk)
        .extra("[stats]\nallowed_ips = 192.0.2.7\n[app]\ntrustedproxies = 10.0.0.0/8\n")
        .start()
        .await;
    let r = http
        .get(format!("{}metrics", strict.http_url()))
        .header("X-Real-IP", "192.0.2.7")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// Every 10 s Talk is pinged for the sessions in its rooms; with Talk's
/// `session-ping-limit` the entries are batched with an empty room id.
#[tokio::test]
async fn room_pings() {
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    talk.add_room("room2", Room::open("Room two"));
    let server = TestServer::builder().talk(&talk).start().await;
    let (mut a, _) = TestClient::connect(&server).await;
    a.hello_v1(&talk, Some(&alice)).await;
    a.join_ok("room1", "ta").await;
    let (mut b, _) = TestClient::connect(&server).await;
    b.hello_v1(&talk, Some(&bob)).await;
    b.join_ok("room2", "tb").await;
    let ping = tests::wait::eventually(Duration::from_secs(15), || {
        let p = talk.requests_of("ping").pop();
        async move { p }
    })
    .await
    .expect("a ping within 15 s");
    assert_eq!(ping["ping"]["version"], "1.0");
    assert_eq!(
        ping["ping"]["roomid"], "",
        "batched because Talk sets session-ping-limit"
    );
    let mut entries: Vec<(String, String)> = ping["ping"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["userid"].as_str().unwrap().to_owned(),
                e["sessionid"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    entries.sort();
    assert_eq!(
        entries,
        vec![("alice".into(), "ta".into()), ("bob".into(), "tb".into())]
    );
}

/// `GET /turn/credentials` as Janus asks for it (`api=`), checked against
/// coturn's `use-auth-secret` scheme computed with `openssl`.
#[tokio::test]
async fn turn_credentials() {
    let server = TestServer::builder()
        .extra("[turn]\napikey = the-api-key\nsecret = the-turn-secret\nservers = turn:turn.example:3478?transport=udp,turns:turn.example:443?transport=tcp\n")
        .start()
        .await;
    let get = |query: &'static str| {
        let url = format!("{}turn/credentials?{query}", server.http_url());
        async move { reqwest::get(url).await.unwrap() }
    };
    let r = get("service=turn&username=alice&api=the-api-key").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["ttl"], 86400);
    assert_eq!(
        v["uris"],
        serde_json::json!([
            "turn:turn.example:3478?transport=udp",
            "turns:turn.example:443?transport=tcp"
        ])
    );
    let username = v["username"].as_str().unwrap();
    let (expiry, user) = username.split_once(':').unwrap();
    assert_eq!(user, "alice");
    let expiry: i64 = expiry.parse().unwrap();
    let in_a_day = tests::talk::unix_now() + 86400;
    assert!((expiry - in_a_day).abs() <= 5, "{expiry} vs {in_a_day}");
    let openssl = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf %s '{username}' | openssl dgst -sha1 -hmac the-turn-secret -binary | base64"
        ))
        .output()
        .unwrap();
    assert_eq!(
        v["password"].as_str().unwrap(),
        String::from_utf8_lossy(&openssl.stdout).trim()
    );

    let r = get("service=turn&key=wrong").await;
    assert_eq!(r.status(), 403);
    assert_eq!(
        r.text().await.unwrap(),
        "Not allowed to access this service.\n"
    );
    let r = get("key=the-api-key").await;
    assert_eq!(r.status(), 400);
    let r = get("service=turn&key=the-api-key").await;
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        v["username"]
            .as_str()
            .unwrap()
            .split_once(':')
            .unwrap()
            .1
            .len(),
        32
    );
}
