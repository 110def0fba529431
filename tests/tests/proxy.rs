//! The `signaling-proxy` binary in front of a real Janus, driven over
//! `/proxy` as a signaling server would: token checks, sessions, publishers
//! with offers answered by Janus, resume, and draining on SIGUSR1.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tests::janus::{Janus, JanusOptions};
use tests::proxy::{rsa_key, ProxyServer, TOKEN_ID};
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Conn {
    ws: Ws,
    next: u64,
}

impl Conn {
    async fn open(proxy: &ProxyServer) -> Conn {
        let (ws, _) = tokio_tungstenite::connect_async(proxy.ws_url())
            .await
            .expect("connect");
        Conn { ws, next: 0 }
    }

    async fn request(&mut self, mut msg: Value) -> String {
        self.next += 1;
        let id = self.next.to_string();
        msg["id"] = json!(id);
        self.ws
            .send(Message::Text(msg.to_string().into()))
            .await
            .expect("send");
        id
    }

    async fn recv(&mut self) -> Value {
        loop {
            let m = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("a message in time")
                .expect("open")
                .expect("frame");
            if let Message::Text(t) = m {
                return serde_json::from_str(t.as_str()).expect("json");
            }
            if let Message::Close(_) = m {
                return json!({"closed": true});
            }
        }
    }

    /// The reply to request `id` (events and candidates are skipped).
    async fn reply(&mut self, id: &str) -> Value {
        loop {
            let v = self.recv().await;
            if v["id"] == id {
                return v;
            }
        }
    }

    async fn hello(&mut self, token: &str, resume: &str) -> Value {
        let id = self
            .request(json!({"type": "hello", "hello": {"version": "1.0", "resumeid": resume, "token": token}}))
            .await;
        self.reply(&id).await
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Forged and unknown tokens are refused and counted.
#[tokio::test]
async fn tokens_are_checked() {
    let janus = Janus::start(JanusOptions::default()).await;
    let proxy = ProxyServer::start(&janus.url, "").await;
    let resp = reqwest::get(format!("{}welcome", proxy.http_url()))
        .await
        .unwrap();
    assert!(resp.headers()["server"]
        .to_str()
        .unwrap()
        .starts_with("nextcloud-spreed-signaling-proxy/"));
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["nextcloud-spreed-signaling-proxy"], "Welcome");

    let (other, _) = rsa_key();
    let forged = proto::proxy_token::sign(TOKEN_ID, None, &other, now()).unwrap();
    let mut c = Conn::open(&proxy).await;
    let v = c.hello(&forged, "").await;
    assert_eq!(v["error"]["code"], "auth_failed", "{v}");
    let unknown = proto::proxy_token::sign("stranger", None, &proxy.key, now()).unwrap();
    let v = c.hello(&unknown, "").await;
    assert_eq!(v["error"]["code"], "auth_failed", "{v}");
    let old = proto::proxy_token::sign(TOKEN_ID, None, &proxy.key, now() - 3600).unwrap();
    let v = c.hello(&old, "").await;
    assert_eq!(v["error"]["code"], "token_expired", "{v}");
    let id = c.request(json!({"type": "command", "command": {"type": "create-publisher", "streamType": "video"}})).await;
    assert_eq!(c.reply(&id).await["error"]["code"], "hello_expected");
    assert_eq!(
        proxy
            .metric("signaling_proxy_token_errors_total{reason=\"auth-failed\"} ")
            .await,
        1.0
    );
    assert_eq!(
        proxy
            .metric("signaling_proxy_token_errors_total{reason=\"unsupported-issuer\"} ")
            .await,
        1.0
    );
    assert_eq!(
        proxy
            .metric("signaling_proxy_token_errors_total{reason=\"expired\"} ")
            .await,
        1.0
    );
}

/// Creates a video publisher (retrying while Janus connects) and has
/// Janus answer its audio and video offer; its client id.
async fn publish(c: &mut Conn) -> String {
    let mut publisher = String::new();
    for _ in 0..50 {
        let id = c
            .request(json!({"type": "command", "command": {"type": "create-publisher", "sid": "s1", "streamType": "video", "publisherSettings": {"bitrate": 300000}}}))
            .await;
        let v = c.reply(&id).await;
        if v["type"] == "command" {
            assert_eq!(v["command"]["bitrate"], 300000, "{v}");
            publisher = v["command"]["id"].as_str().unwrap().to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!publisher.is_empty(), "no publisher created");
    let sdp = tests::sdp::publisher_offer(&["audio", "video"]);
    let id = c
        .request(json!({"type": "payload", "payload": {"type": "offer", "clientId": publisher, "sid": "s1", "payload": {"type": "offer", "sdp": sdp}}}))
        .await;
    let v = c.reply(&id).await;
    assert_eq!(v["payload"]["type"], "offer", "{v}");
    assert_eq!(v["payload"]["clientId"], publisher.as_str());
    assert_eq!(v["payload"]["payload"]["type"], "answer", "{v}");
    publisher
}

/// The commands another proxy uses for remote streams: the streams of a
/// negotiated publisher, forwarding them to a host and port and stopping
/// that; a remote `create-subscriber` needs a token of a trusted server
/// for exactly that publisher, and a proxy without `[app] token_id`
/// refuses remote subscribers.
#[tokio::test]
async fn remote_stream_commands() {
    let janus = Janus::start(JanusOptions::default()).await;
    let dir = tempfile::tempdir().unwrap();
    let own_key = dir.path().join("proxy1.key");
    {
        use rsa::pkcs8::{EncodePrivateKey, LineEnding};
        let (k, _) = rsa_key();
        std::fs::write(&own_key, k.to_pkcs8_pem(LineEnding::LF).unwrap().as_bytes()).unwrap();
    }
    let proxy = ProxyServer::start(
        &janus.url,
        &format!(
            "[app]\ntoken_id = proxy1\ntoken_key = {}\nhostname = 127.0.0.1\n",
            own_key.display()
        ),
    )
    .await;
    let mut c = Conn::open(&proxy).await;
    assert_eq!(c.hello(&proxy.token(), "").await["type"], "hello");
    let publisher = publish(&mut c).await;

    let id = c
        .request(json!({"type": "command", "command": {"type": "get-publisher-streams", "clientId": publisher}}))
        .await;
    let v = c.reply(&id).await;
    let streams = v["command"]["streams"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let kinds: Vec<_> = streams.iter().map(|s| s["type"].clone()).collect();
    assert_eq!(kinds, vec![json!("audio"), json!("video")], "{v}");
    assert_eq!(streams[0]["codec"], "opus", "{v}");
    assert!(streams.iter().all(|s| s["mid"].is_string()), "{v}");

    // Forwarding to a port nobody listens on is fine for UDP.
    let forward =
        json!({"clientId": publisher, "hostname": "127.0.0.1", "port": 40000, "rtcpPort": 40001});
    for kind in ["publish-remote", "publish-remote", "unpublish-remote"] {
        let mut command = forward.clone();
        command["type"] = json!(kind);
        let id = c
            .request(json!({"type": "command", "command": command}))
            .await;
        let v = c.reply(&id).await;
        assert_eq!(v["command"]["id"], publisher.as_str(), "{kind}: {v}");
    }
    for kind in ["get-publisher-streams", "publish-remote"] {
        let mut command = forward.clone();
        command["type"] = json!(kind);
        command["clientId"] = json!("nobody");
        let id = c
            .request(json!({"type": "command", "command": command}))
            .await;
        assert_eq!(
            c.reply(&id).await["error"]["code"],
            "unknown_client",
            "{kind}"
        );
    }

    // Remote subscribers: the token must be for this very publisher.
    let subscribe = |token: &str| json!({"type": "command", "command": {"type": "create-subscriber", "publisherId": "pub-on-other-proxy", "streamType": "video", "remoteUrl": "http://127.0.0.1:9/", "remoteToken": token}});
    let wrong_subject =
        proto::proxy_token::sign(TOKEN_ID, Some("another-publisher"), &proxy.key, now()).unwrap();
    let (other, _) = rsa_key();
    let forged =
        proto::proxy_token::sign(TOKEN_ID, Some("pub-on-other-proxy"), &other, now()).unwrap();
    for token in [&wrong_subject, &forged] {
        let id = c.request(subscribe(token)).await;
        assert_eq!(c.reply(&id).await["error"]["code"], "auth_failed");
    }
    assert_eq!(
        proxy
            .metric("signaling_proxy_token_errors_total{reason=\"auth-failed\"} ")
            .await,
        2.0
    );

    // A proxy that cannot sign in to others refuses remote subscribers.
    let plain = ProxyServer::start(&janus.url, "").await;
    let mut p = Conn::open(&plain).await;
    assert_eq!(p.hello(&plain.token(), "").await["type"], "hello");
    let token =
        proto::proxy_token::sign(TOKEN_ID, Some("pub-on-other-proxy"), &plain.key, now()).unwrap();
    let id = p.request(subscribe(&token)).await;
    assert_eq!(
        p.reply(&id).await["error"]["code"],
        "unsupported_subscriber"
    );
}

/// A session creates a publisher, Janus answers its offer through the
/// proxy; unknown clients are refused; resuming moves the session.
#[tokio::test]
async fn publisher_offer_and_resume() {
    let janus = Janus::start(JanusOptions::default()).await;
    let proxy = ProxyServer::start(&janus.url, "[app]\ncountry = de\n").await;
    let mut c = Conn::open(&proxy).await;
    let hello = c.hello(&proxy.token(), "").await;
    assert_eq!(hello["type"], "hello", "{hello}");
    assert_eq!(
        hello["hello"]["server"]["features"],
        json!(["remote-streams"])
    );
    assert_eq!(hello["hello"]["server"]["country"], "DE");
    let session = hello["hello"]["sessionid"].as_str().unwrap().to_owned();
    let load = c.recv().await;
    assert_eq!(load["event"]["type"], "update-load", "{load}");

    let publisher = publish(&mut c).await;

    let id = c
        .request(json!({"type": "payload", "payload": {"type": "candidate", "clientId": "nobody", "payload": {"candidate": {"candidate": ""}}}}))
        .await;
    assert_eq!(c.reply(&id).await["error"]["code"], "unknown_client");
    assert_eq!(
        proxy
            .metric("signaling_proxy_publishers{type=\"video\"} ")
            .await,
        1.0
    );

    // A second connection resumes the session; the first gets bye.
    let mut c2 = Conn::open(&proxy).await;
    let v = c2.hello("", &session).await;
    assert_eq!(v["hello"]["sessionid"], session.as_str(), "{v}");
    let bye = loop {
        let v = c.recv().await;
        if v["type"] == "bye" {
            break v;
        }
    };
    assert_eq!(bye["bye"]["reason"], "session_resumed");
    let id = c2
        .request(json!({"type": "command", "command": {"type": "delete-publisher", "clientId": publisher}}))
        .await;
    assert_eq!(c2.reply(&id).await["command"]["id"], publisher.as_str());
    assert_eq!(
        proxy
            .metric("signaling_proxy_publishers{type=\"video\"} ")
            .await,
        0.0
    );
    let mut c3 = Conn::open(&proxy).await;
    let v = c3.hello("", "not-a-session").await;
    assert_eq!(v["error"]["code"], "no_such_session", "{v}");
}

/// SIGUSR1: sessions are told, no new publishers, and the proxy exits once
/// its last client is gone.
#[tokio::test]
async fn sigusr1_drains() {
    let janus = Janus::start(JanusOptions::default()).await;
    let mut proxy = ProxyServer::start(&janus.url, "").await;
    let mut c = Conn::open(&proxy).await;
    assert_eq!(c.hello(&proxy.token(), "").await["type"], "hello");
    let mut publisher = String::new();
    for _ in 0..50 {
        let id = c
            .request(json!({"type": "command", "command": {"type": "create-publisher", "sid": "s", "streamType": "screen"}}))
            .await;
        let v = c.reply(&id).await;
        if let Some(p) = v["command"]["id"].as_str() {
            publisher = p.to_owned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!publisher.is_empty());
    let ready = reqwest::get(format!("{}readyz", proxy.http_url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    proxy.process.signal(10); // SIGUSR1
    loop {
        let v = c.recv().await;
        if v["event"]["type"] == "shutdown-scheduled" {
            break;
        }
    }
    let id = c
        .request(json!({"type": "command", "command": {"type": "create-publisher", "streamType": "video"}}))
        .await;
    assert_eq!(c.reply(&id).await["error"]["code"], "shutdown_scheduled");
    assert!(
        proxy.process.try_exit_status().is_none(),
        "exited with a client left"
    );
    let ready = reqwest::get(format!("{}readyz", proxy.http_url()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["status"], "draining", "{body}");
    let live = reqwest::get(format!("{}healthz", proxy.http_url()))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let id = c
        .request(json!({"type": "command", "command": {"type": "delete-publisher", "clientId": publisher}}))
        .await;
    c.reply(&id).await;
    let mut exited = None;
    for _ in 0..100 {
        exited = proxy.process.try_exit_status();
        if exited.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        exited.is_some_and(|s| s.success()),
        "proxy did not exit after draining"
    );
}

/// SIGTERM: the proxy ends its sessions before it exits: the signaling
/// server gets `bye`, and the publisher's room is gone from Janus (the
/// clean-up runs in tracked tasks that the exit waits for, while the
/// Janus connection is still up).
#[tokio::test]
async fn sigterm_cleans_up_janus() {
    let janus = Janus::start(JanusOptions::default()).await;
    let rooms_before = janus.rooms().await.len();
    let mut proxy = ProxyServer::start(&janus.url, "").await;
    let mut c = Conn::open(&proxy).await;
    assert_eq!(c.hello(&proxy.token(), "").await["type"], "hello");
    publish(&mut c).await;
    assert_eq!(janus.rooms().await.len(), rooms_before + 1);
    proxy.process.signal(15); // SIGTERM
    let bye = loop {
        let v = c.recv().await;
        if v["type"] == "bye" {
            break v;
        }
    };
    assert_eq!(bye["bye"]["reason"], "shutdown", "{bye}");
    let exited = tests::wait::eventually(Duration::from_secs(15), || {
        let status = proxy.process.try_exit_status();
        async move { status }
    })
    .await;
    assert!(
        exited.is_some_and(|s| s.success()),
        "proxy did not exit cleanly"
    );
    assert_eq!(
        janus.rooms().await.len(),
        rooms_before,
        "the publisher's room outlived the proxy"
    );
}

/// `[app] tokentype = etcd`: a signaling server's key is found in etcd
/// under `[tokens] keyformat`, and only once it is there.
#[tokio::test]
async fn token_keys_from_etcd() {
    let etcd = tests::etcd::Etcd::start().await;
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let proxy = ProxyServer::start_with_key(
        &janus.url,
        &format!(
            "[app]\ntokentype = etcd\n[tokens]\nkeyformat = /other/%s, /proxy/tokens/%s/public-key\n[etcd]\nendpoints = {}\n",
            etcd.endpoint
        ),
        (key, public.clone()),
    )
    .await;
    let mut c = Conn::open(&proxy).await;
    let v = c.hello(&proxy.token(), "").await;
    assert_eq!(v["error"]["code"], "auth_failed", "no key in etcd yet: {v}");
    etcd.put(&format!("/proxy/tokens/{TOKEN_ID}/public-key"), &public)
        .await;
    let v = c.hello(&proxy.token(), "").await;
    assert_eq!(v["type"], "hello", "{v}");
}

/// etcd options in `[tokens]` (deprecated, as in the reference) still
/// work; `/readyz` reports etcd, and turns 503 when it is gone.
#[tokio::test]
async fn deprecated_tokens_etcd_options_and_readiness() {
    let mut etcd = tests::etcd::Etcd::start().await;
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let proxy = ProxyServer::start_with_key(
        &janus.url,
        &format!(
            "[app]\ntokentype = etcd\n[tokens]\nkeyformat = /proxy/tokens/%s/public-key\nendpoints = {}\n",
            etcd.endpoint
        ),
        (key, public.clone()),
    )
    .await;
    etcd.put(&format!("/proxy/tokens/{TOKEN_ID}/public-key"), &public)
        .await;
    let mut c = Conn::open(&proxy).await;
    assert_eq!(c.hello(&proxy.token(), "").await["type"], "hello");
    let log = std::fs::read_to_string(proxy.process.log_path()).unwrap();
    assert!(log.contains("[tokens] endpoints is deprecated"), "{log}");
    proxy.wait_janus_connected().await;
    let readyz = || async {
        let r = reqwest::get(format!("{}readyz", proxy.http_url()))
            .await
            .unwrap();
        let code = r.status().as_u16();
        (code, r.json::<serde_json::Value>().await.unwrap())
    };
    let (code, body) = readyz().await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["checks"]["etcd"]["ok"], true, "{body}");
    etcd.process.stop(Duration::from_secs(5));
    let (code, body) = readyz().await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["checks"]["etcd"]["ok"], false, "{body}");
}

/// `/readyz` follows Janus: 503 while the proxy cannot reach it.
#[tokio::test]
async fn readyz_follows_janus() {
    let port = tests::process::free_port();
    let proxy = ProxyServer::start(&format!("ws://127.0.0.1:{port}"), "").await;
    let r = reqwest::get(format!("{}readyz", proxy.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["checks"]["janus"]["ok"], false, "{body}");
}

/// SIGTERM with `[app] shutdowngrace`: the proxy drains (sessions get
/// `shutdown-scheduled`) and ends the rest after the grace.
#[tokio::test]
async fn sigterm_drains_for_the_grace_period() {
    let janus = Janus::start(JanusOptions::default()).await;
    let mut proxy = ProxyServer::start(&janus.url, "[app]\nshutdowngrace = 2\n").await;
    let mut c = Conn::open(&proxy).await;
    assert_eq!(c.hello(&proxy.token(), "").await["type"], "hello");
    proxy.process.signal(15);
    loop {
        let v = c.recv().await;
        if v["event"]["type"] == "shutdown-scheduled" {
            break;
        }
    }
    assert!(proxy.process.try_exit_status().is_none());
    let exited = tests::wait::eventually(Duration::from_secs(10), || {
        let s = proxy.process.try_exit_status();
        async move { s }
    })
    .await;
    assert!(
        exited.is_some_and(|s| s.success()),
        "proxy did not exit after the grace"
    );
}
