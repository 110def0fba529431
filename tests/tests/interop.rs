//! Wire compatibility with the reference implementation as Debian ships it
//! (`nextcloud-spreed-signaling` 0.4.1, an older proxy protocol version):
//! our server publishing through the reference proxy, and the reference
//! server publishing through our proxy. Both in front of a real Janus.

use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use tests::client::TestClient;
use tests::janus::{Janus, JanusOptions};
use tests::process::{free_port, ChildGuard};
use tests::proxy::{rsa_key, ProxyServer, TOKEN_ID};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Room, Talk};

const REFERENCE_PROXY: &str = "/usr/bin/nextcloud-spreed-signaling-proxy";
const REFERENCE_SERVER: &str = "/usr/bin/nextcloud-spreed-signaling-server";

/// Waits until something accepts TCP connections on `port`.
async fn port_open(port: u16) -> bool {
    tests::wait::eventually(Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .ok()
            .map(|_| ())
    })
    .await
    .is_some()
}

fn private_pem(key: &rsa::RsaPrivateKey) -> String {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string()
}

/// A browser-like offer made by a real WebRTC stack (the reference's SDP
/// parser is stricter than Janus about synthetic ones).
async fn real_offer() -> String {
    use webrtc::api::media_engine::MediaEngine;
    use webrtc::api::APIBuilder;
    use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let api = APIBuilder::new().with_media_engine(media).build();
    let pc = api.new_peer_connection(Default::default()).await.unwrap();
    for kind in [RTPCodecType::Audio, RTPCodecType::Video] {
        pc.add_transceiver_from_kind(kind, None).await.unwrap();
    }
    let offer = pc.create_offer(None).await.unwrap();
    let _ = pc.close().await;
    offer.sdp
}

/// Publishes an offer and returns the reply (answer or error).
async fn publish(c: &mut TestClient) -> Value {
    let sdp = real_offer().await;
    let me = c.session_id.clone();
    c.request(
        "message",
        json!({"recipient": {"type": "session", "sessionid": me}, "data": {"type": "offer", "sid": "s", "roomType": "video", "payload": {"type": "offer", "sdp": sdp}}}),
    )
    .await;
    c.recv_until(|v| v["type"] == "error" || v["message"]["data"]["type"] == "answer")
        .await
}

/// Our signaling server places a publisher on the reference proxy and gets
/// Janus's answer through it.
#[tokio::test]
async fn our_server_with_the_reference_proxy() {
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("server1.pub.pem"), &public).unwrap();
    std::fs::write(dir.path().join("server1.key.pem"), private_pem(&key)).unwrap();
    let port = free_port();
    let conf = dir.path().join("proxy.conf");
    std::fs::write(
        &conf,
        format!(
            "[http]\nlisten = 127.0.0.1:{port}\n[app]\ntokentype = static\n[tokens]\n{TOKEN_ID} = {}\n[mcu]\ntype = janus\nurl = {}/\n",
            dir.path().join("server1.pub.pem").display(),
            janus.url
        ),
    )
    .unwrap();
    let mut cmd = Command::new(REFERENCE_PROXY);
    cmd.arg("-config").arg(&conf);
    let proxy_dir = tempfile::tempdir().unwrap();
    let _proxy = ChildGuard::spawn("reference-proxy", cmd, proxy_dir)
        .expect("the reference proxy (Debian package nextcloud-spreed-signaling)");
    assert!(port_open(port).await, "reference proxy did not start");

    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = proxy\nurl = http://127.0.0.1:{port}/\ntoken_id = {TOKEN_ID}\ntoken_key = {}\nproxytimeout = 5\n",
            dir.path().join("server1.key.pem").display()
        ))
        .start()
        .await;
    let mut a = tests::client::user(&server, &talk, &alice).await;
    a.join_ok("room1", "ta").await;
    let mut answer = Value::Null;
    for _ in 0..40 {
        answer = publish(&mut a).await;
        if answer["message"]["data"]["type"] == "answer" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(answer["message"]["data"]["type"], "answer", "{answer}");
    assert!(answer["message"]["data"]["payload"]["sdp"]
        .as_str()
        .unwrap_or_default()
        .starts_with("v=0"));
}

/// The reference signaling server connects to our proxy: its token is
/// accepted and it holds a proxy session. (Publishing through the
/// reference 0.4.1 server fails before the proxy is involved: it refuses
/// every offer with "payload does not contain a valid sdp", also from a
/// real WebRTC stack; see docs/proxy.md.)
#[tokio::test]
async fn reference_server_with_our_proxy() {
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let proxy = ProxyServer::start_with_key(&janus.url, "", (key.clone(), public)).await;
    let talk = Talk::start(TALK_SECRET).await;
    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("server1.key.pem");
    std::fs::write(&key_file, private_pem(&key)).unwrap();
    let port = free_port();
    let conf = dir.path().join("server.conf");
    // 0.4.1 syntax: one `url` per backend section, `:loopback:` NATS.
    std::fs::write(
        &conf,
        format!(
            "[http]\nlisten = 127.0.0.1:{port}\n[sessions]\nhashkey = 0123456789abcdef0123456789abcdef\nblockkey = 0123456789abcdef\n\
             [backend]\nbackends = talk\ntimeout = 5\n[talk]\nurl = {}\nsecret = {TALK_SECRET}\n\
             [nats]\nurl = :loopback:\n\
             [mcu]\ntype = proxy\nurl = {}\ntoken_id = {TOKEN_ID}\ntoken_key = {}\n",
            talk.url(),
            proxy.base_url(),
            key_file.display()
        ),
    )
    .unwrap();
    let mut cmd = Command::new(REFERENCE_SERVER);
    cmd.arg("-config").arg(&conf);
    let reference = TestServer {
        port,
        process: ChildGuard::spawn("reference-server", cmd, tempfile::tempdir().unwrap())
            .expect("the reference server (Debian package nextcloud-spreed-signaling)"),
    };
    assert!(
        port_open(port).await,
        "reference server did not start:\n{}",
        reference.process.log_tail(30)
    );
    let connected = tests::wait::eventually(Duration::from_secs(15), || async {
        (proxy.metric("signaling_proxy_sessions ").await == 1.0).then_some(())
    })
    .await;
    assert!(
        connected.is_some(),
        "the reference server holds no session on our proxy:\n{}",
        reference.process.log_tail(30)
    );
    assert_eq!(
        proxy
            .metric("signaling_proxy_token_errors_total{reason=\"auth-failed\"} ")
            .await,
        0.0
    );
    // A client of the reference server still works while it uses our proxy.
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", Room::open("Room one"));
    let mut a = TestClient::connect_no_welcome(&reference).await;
    a.hello_v1(&talk, Some(&alice)).await;
    assert_eq!(a.join("room1", "ta").await["type"], "room");
}
