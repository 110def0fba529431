//! Real media through the signaling server and a real Janus: WebRTC peers
//! (the `webrtc` crate) publish synthetic audio and video, subscribers
//! count the RTP packets Janus forwards.
//!
//! Janus never offers loopback candidates, so each test re-runs itself in
//! a private network namespace (`unshare -rn`) with a veth end `jv0` at
//! 127.0.0.2 that Janus uses for ICE; nothing can leave it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use parking_lot::Mutex;
use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::janus::{Janus, JanusOptions};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Room, Talk, User};
use webrtc::api::interceptor_registry::register_default_interceptors;
use webrtc::api::media_engine::{MediaEngine, MIME_TYPE_OPUS, MIME_TYPE_VP8};
use webrtc::api::setting_engine::SettingEngine;
use webrtc::api::APIBuilder;
use webrtc::ice::mdns::MulticastDnsMode;
use webrtc::ice::network_type::NetworkType;
use webrtc::interceptor::registry::Registry;
use webrtc::media::Sample;
use webrtc::peer_connection::configuration::RTCConfiguration;
use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
use webrtc::peer_connection::RTCPeerConnection;
use webrtc::rtp_transceiver::rtp_codec::{RTCRtpCodecCapability, RTPCodecType};
use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;

const PEER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Runs test `name` in its own network namespace with loopback and a
/// veth pair carrying 127.0.0.2 (the peers' address); see
/// `tests::netns::run_inside`.
fn in_namespace(name: &str) -> bool {
    tests::netns::run_inside(
        name,
        "ip link add jv0 type veth peer name jv1 && \
         ip addr add 127.0.0.2/32 dev jv0 && ip link set jv1 up && ip link set jv0 up",
        None,
    )
}

/// A WebRTC peer limited to 127.0.0.2, UDP, no mDNS (components.md).
async fn peer() -> Arc<RTCPeerConnection> {
    let mut media = MediaEngine::default();
    media.register_default_codecs().expect("codecs");
    let registry =
        register_default_interceptors(Registry::new(), &mut media).expect("interceptors");
    let mut settings = SettingEngine::default();
    settings.set_include_loopback_candidate(true);
    settings.set_ip_filter(Box::new(|ip| ip == IpAddr::V4(PEER_IP)));
    settings.set_network_types(vec![NetworkType::Udp4]);
    settings.set_ice_multicast_dns_mode(MulticastDnsMode::Disabled);
    let api = APIBuilder::new()
        .with_media_engine(media)
        .with_interceptor_registry(registry)
        .with_setting_engine(settings)
        .build();
    Arc::new(
        api.new_peer_connection(RTCConfiguration::default())
            .await
            .expect("peer connection"),
    )
}

/// Only candidates on loopback addresses survive (Janus may list others).
fn loopback_only(sdp: &str) -> String {
    sdp.split_inclusive('\n')
        .filter(|l| {
            !l.starts_with("a=candidate:")
                || l.split_whitespace()
                    .nth(4)
                    .is_some_and(|a| a.starts_with("127."))
        })
        .collect()
}

/// The local description once all candidates are gathered (no trickle).
async fn gathered(pc: &RTCPeerConnection, desc: RTCSessionDescription) -> String {
    let mut done = pc.gathering_complete_promise().await;
    pc.set_local_description(desc)
        .await
        .expect("local description");
    let _ = done.recv().await;
    pc.local_description().await.expect("local description").sdp
}

/// A publisher peer sending Opus silence and VP8-looking frames.
struct Publisher {
    pc: Arc<RTCPeerConnection>,
    stop: tokio_util::sync::CancellationToken,
}

impl Publisher {
    async fn new(audio: bool) -> Publisher {
        let pc = peer().await;
        let stop = tokio_util::sync::CancellationToken::new();
        let mut tracks = Vec::new();
        if audio {
            tracks.push((
                RTCRtpCodecCapability {
                    mime_type: MIME_TYPE_OPUS.to_owned(),
                    clock_rate: 48000,
                    channels: 2,
                    ..Default::default()
                },
                Bytes::from_static(&[0xf8, 0xff, 0xfe]),
                Duration::from_millis(20),
            ));
        }
        tracks.push((
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_VP8.to_owned(),
                clock_rate: 90000,
                ..Default::default()
            },
            Bytes::from_static(&[
                0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a, 0x10, 0x00, 0x10, 0x00, 0x00, 0x00,
            ]),
            Duration::from_millis(33),
        ));
        for (i, (codec, payload, every)) in tracks.into_iter().enumerate() {
            let track = Arc::new(TrackLocalStaticSample::new(
                codec,
                format!("track{i}"),
                "stream".into(),
            ));
            pc.add_track(track.clone()).await.expect("add track");
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                // Bounded: a test never runs longer than this.
                for _ in 0..2000 {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tick.tick() => {}
                    }
                    let sample = Sample {
                        data: payload.clone(),
                        duration: every,
                        ..Default::default()
                    };
                    let _ = track.write_sample(&sample).await;
                }
            });
        }
        Publisher { pc, stop }
    }

    async fn offer(&self) -> String {
        let offer = self.pc.create_offer(None).await.expect("offer");
        gathered(&self.pc, offer).await
    }

    async fn answered(&self, sdp: &str) {
        let answer = RTCSessionDescription::answer(loopback_only(sdp)).expect("answer sdp");
        self.pc
            .set_remote_description(answer)
            .await
            .expect("remote answer");
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn kind_name(kind: RTPCodecType) -> &'static str {
    match kind {
        RTPCodecType::Audio => "audio",
        RTPCodecType::Video => "video",
        _ => "other",
    }
}

/// A subscriber peer counting RTP packets per media kind.
struct Subscriber {
    pc: Arc<RTCPeerConnection>,
    packets: Arc<Mutex<HashMap<&'static str, Arc<AtomicUsize>>>>,
}

impl Subscriber {
    async fn new() -> Subscriber {
        let pc = peer().await;
        let packets: Arc<Mutex<HashMap<&'static str, Arc<AtomicUsize>>>> = Arc::default();
        let counters = packets.clone();
        pc.on_track(Box::new(move |track, _, _| {
            let count = counters
                .lock()
                .entry(kind_name(track.kind()))
                .or_default()
                .clone();
            tokio::spawn(async move {
                while track.read_rtp().await.is_ok() {
                    count.fetch_add(1, Ordering::Relaxed);
                }
            });
            Box::pin(async {})
        }));
        Subscriber { pc, packets }
    }

    /// Answers the SFU's offer; returns the answer SDP.
    async fn answer(&self, offer_sdp: &str) -> String {
        let offer = RTCSessionDescription::offer(loopback_only(offer_sdp)).expect("offer sdp");
        self.pc
            .set_remote_description(offer)
            .await
            .expect("remote offer");
        let answer = self.pc.create_answer(None).await.expect("answer");
        gathered(&self.pc, answer).await
    }

    fn count(&self, kind: RTPCodecType) -> usize {
        self.packets
            .lock()
            .get(kind_name(kind))
            .map(|c| c.load(Ordering::Relaxed))
            .unwrap_or(0)
    }

    /// Waits until at least `n` packets of each kind arrived.
    async fn wait_packets(&self, kinds: &[RTPCodecType], n: usize) -> bool {
        tests::wait::eventually(Duration::from_secs(10), || {
            let ok = kinds.iter().all(|k| self.count(*k) >= n);
            async move { ok.then_some(()) }
        })
        .await
        .is_some()
    }
}

struct World {
    talk: Talk,
    janus: Janus,
    server: TestServer,
    alice: User,
    bob: User,
}

/// Janus sends its events to the server (janus-events), so the server
/// starts first and connects to Janus when it comes up.
async fn world() -> World {
    world_with("").await
}

/// The same with more `[mcu]` settings.
async fn world_with(mcu_extra: &str) -> World {
    let janus_port = tests::process::free_port();
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let bob = talk.add_user("bob", "Bob");
    talk.add_room("room1", Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = janus\nurl = ws://127.0.0.1:{janus_port}\n{mcu_extra}"
        ))
        .start()
        .await;
    let janus = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        events_url: Some(server.ws_url()),
        port: Some(janus_port),
    })
    .await;
    server.wait_sfu_connected().await;
    World {
        talk,
        janus,
        server,
        alice,
        bob,
    }
}

/// alice and bob in room1 and in its call.
async fn in_call(w: &World) -> (TestClient, TestClient) {
    let a = user(&w.server, &w.talk, &w.alice).await;
    let b = user(&w.server, &w.talk, &w.bob).await;
    join_call(w, a, b).await
}

/// alice and bob (already signed in) join room1 and its call.
async fn join_call(w: &World, mut a: TestClient, mut b: TestClient) -> (TestClient, TestClient) {
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    let entry =
        |s: &str, u: &str| json!({"sessionId": s, "userId": u, "inCall": 7, "participantType": 3});
    let (status, _) = w
        .talk
        .notify(
            &w.server.http_url(),
            "room1",
            &json!({"type": "incall", "incall": {"incall": 7, "changed": [entry("ta", "alice"), entry("tb", "bob")], "users": [entry("ta", "alice"), entry("tb", "bob")]}}),
        )
        .await;
    assert_eq!(status, 200);
    for c in [&mut a, &mut b] {
        c.recv_until(|v| v["event"]["target"] == "participants")
            .await;
    }
    (a, b)
}

async fn send_sfu(c: &mut TestClient, to: &str, data: Value) {
    c.request(
        "message",
        json!({"recipient": {"type": "session", "sessionid": to}, "data": data}),
    )
    .await;
}

/// The next SFU message of `kind` (Janus's trickled candidates and other
/// messages are skipped).
async fn sfu_reply(c: &mut TestClient, kind: &str) -> Value {
    let v = c
        .recv_until(|v| v["type"] == "error" || v["message"]["data"]["type"] == kind)
        .await;
    assert_ne!(v["type"], "error", "{v}");
    v["message"]["data"].clone()
}

async fn publish(c: &mut TestClient, p: &Publisher, room_type: &str) {
    let me = c.session_id.clone();
    let sdp = p.offer().await;
    send_sfu(
        c,
        &me,
        json!({"type": "offer", "sid": format!("pub-{room_type}"), "roomType": room_type, "payload": {"type": "offer", "sdp": sdp, "trickle": false}}),
    )
    .await;
    let answer = sfu_reply(c, "answer").await;
    p.answered(answer["payload"]["sdp"].as_str().expect("answer sdp"))
        .await;
}

async fn subscribe(c: &mut TestClient, s: &Subscriber, publisher: &str, room_type: &str) {
    send_sfu(
        c,
        publisher,
        json!({"type": "requestoffer", "roomType": room_type}),
    )
    .await;
    accept_offer(c, s, publisher, room_type).await;
}

/// Waits for the SFU's offer of `publisher`'s stream and answers it. A
/// `sendoffer` never reaches a client as such: it becomes this offer.
async fn accept_offer(c: &mut TestClient, s: &Subscriber, publisher: &str, room_type: &str) {
    let v = c
        .recv_until(|v| {
            assert_ne!(v["message"]["data"]["type"], "sendoffer", "relayed: {v}");
            v["type"] == "error" || v["message"]["data"]["type"] == "offer"
        })
        .await;
    assert_ne!(v["type"], "error", "{v}");
    assert_eq!(v["message"]["sender"]["sessionid"], publisher, "{v}");
    let offer = v["message"]["data"].clone();
    assert_eq!(offer["from"], publisher);
    assert_eq!(offer["roomType"], room_type);
    let sid = offer["sid"].as_str().unwrap_or_default().to_owned();
    let answer = s
        .answer(offer["payload"]["sdp"].as_str().expect("offer sdp"))
        .await;
    send_sfu(
        c,
        publisher,
        json!({"type": "answer", "sid": sid, "roomType": room_type, "payload": {"type": "answer", "sdp": answer}}),
    )
    .await;
}

/// alice publishes audio and video through the server; bob requests the
/// offer and receives RTP for both tracks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_and_video_reach_the_subscriber() {
    if !in_namespace("audio_and_video_reach_the_subscriber") {
        return;
    }
    let w = world().await;
    let (mut a, mut b) = in_call(&w).await;
    let publisher = Publisher::new(true).await;
    publish(&mut a, &publisher, "video").await;
    let subscriber = Subscriber::new().await;
    let alice_id = a.session_id.clone();
    subscribe(&mut b, &subscriber, &alice_id, "video").await;
    let ok = subscriber
        .wait_packets(&[RTPCodecType::Audio, RTPCodecType::Video], 20)
        .await;
    let metrics = tests::wait::eventually(Duration::from_secs(10), || async {
        let text = reqwest::get(format!("{}metrics", w.server.http_url()))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let bytes = tests::server::metric_in(
            &text,
            "signaling_mcu_media_bytes_total{direction=\"incoming\",media=\"audio\"}",
        );
        (bytes > 0.0 && text.contains("signaling_mcu_ice_state_total{state=\"connected\"}"))
            .then_some(text)
    })
    .await;
    println!(
        "REPORT RTP at the subscriber: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    assert!(
        ok,
        "RTP at the subscriber: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    // Janus's events reached the server's metrics.
    let text = metrics.expect("janus-events media metrics");
    assert_eq!(
        tests::server::metric_in(&text, "signaling_mcu_publishers{type=\"video\"}"),
        1.0
    );
    assert_eq!(
        tests::server::metric_in(&text, "signaling_mcu_subscribers{type=\"video\"}"),
        1.0
    );
    // Janus's `media` events: alice sends audio and video, and bob
    // receives both.
    let streams = tests::wait::eventually(Duration::from_secs(10), || async {
        let text = reqwest::get(format!("{}metrics", w.server.http_url()))
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        let m = |line: &str| tests::server::metric_in(&text, line);
        let all = [
            m("signaling_mcu_publisher_streams{type=\"audio\"}"),
            m("signaling_mcu_publisher_streams{type=\"video\"}"),
            m("signaling_mcu_subscriber_streams{type=\"audio\"}"),
            m("signaling_mcu_subscriber_streams{type=\"video\"}"),
        ];
        (all == [1.0; 4]).then_some(())
    })
    .await;
    assert!(streams.is_some(), "publisher/subscriber stream gauges");
}

/// `sendoffer` as the reference does it: alice shares her screen and
/// sends `sendoffer` to bob; bob gets the SFU's offer without asking,
/// answers, and RTP flows. A recipient that does not exist and a stream
/// that is not published are `client_not_found` for alice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn screen_share_with_sendoffer() {
    if !in_namespace("screen_share_with_sendoffer") {
        return;
    }
    // A short wait for publishers that do not exist.
    let w = world_with("timeout = 2\n").await;
    let (mut a, mut b) = in_call(&w).await;
    let screen = Publisher::new(false).await;
    publish(&mut a, &screen, "screen").await;
    let (alice_id, bob_id) = (a.session_id.clone(), b.session_id.clone());
    send_sfu(
        &mut a,
        &bob_id,
        json!({"type": "sendoffer", "roomType": "screen", "sid": "share-1"}),
    )
    .await;
    let subscriber = Subscriber::new().await;
    accept_offer(&mut b, &subscriber, &alice_id, "screen").await;
    assert!(
        subscriber.wait_packets(&[RTPCodecType::Video], 20).await,
        "screen RTP at the subscriber: {}",
        subscriber.count(RTPCodecType::Video)
    );
    sendoffer_errors(&mut a, &bob_id).await;
    // bob hears nothing of the failed ones (Janus may still trickle).
    while let Ok(Some(v)) = b.try_recv_within(Duration::from_millis(300)).await {
        assert_eq!(v["message"]["data"]["type"], "candidate", "{v}");
    }
}

/// alice's `sendoffer` to a session that does not exist and for a stream
/// she does not publish: `client_not_found` with her message id.
async fn sendoffer_errors(a: &mut TestClient, bob_id: &str) {
    let id = a
        .request(
            "message",
            json!({"recipient": {"type": "session", "sessionid": "no-such-session"}, "data": {"type": "sendoffer", "roomType": "screen"}}),
        )
        .await;
    let e = a.recv_until(|v| v["type"] == "error").await;
    assert_eq!(e["id"], id.as_str(), "{e}");
    assert_eq!(e["error"]["code"], "client_not_found", "{e}");
    let id = a
        .request(
            "message",
            json!({"recipient": {"type": "session", "sessionid": bob_id}, "data": {"type": "sendoffer", "roomType": "video"}}),
        )
        .await;
    let e = a.recv_until(|v| v["type"] == "error").await;
    assert_eq!(e["id"], id.as_str(), "{e}");
    assert_eq!(e["error"]["code"], "client_not_found", "{e}");
}

/// Janus killed mid-call: the peers' connections to it fail (that is how
/// clients learn it, as with the reference); once Janus is back, a new
/// publish and subscribe carry RTP again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn janus_restart_mid_call() {
    use webrtc::peer_connection::peer_connection_state::RTCPeerConnectionState as State;
    if !in_namespace("janus_restart_mid_call") {
        return;
    }
    let w = world().await;
    let (mut a, mut b) = in_call(&w).await;
    let alice_id = a.session_id.clone();
    let first = Publisher::new(true).await;
    publish(&mut a, &first, "video").await;
    let watcher = Subscriber::new().await;
    subscribe(&mut b, &watcher, &alice_id, "video").await;
    assert!(
        watcher.wait_packets(&[RTPCodecType::Video], 10).await,
        "no RTP before the kill"
    );

    let World {
        janus,
        server,
        talk,
        ..
    } = w;
    let port = janus.port;
    janus.process.signal(9);
    drop(janus);
    let failed =
        tests::wait::eventually(Duration::from_secs(20), || {
            let state = first.pc.connection_state();
            async move {
                matches!(state, State::Disconnected | State::Failed | State::Closed).then_some(())
            }
        })
        .await;
    assert!(
        failed.is_some(),
        "publisher connection still {:?}",
        first.pc.connection_state()
    );

    let _janus = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        events_url: Some(server.ws_url()),
        port: Some(port),
    })
    .await;
    server.wait_sfu_connected().await;
    let again = Publisher::new(true).await;
    publish(&mut a, &again, "video").await;
    let subscriber = Subscriber::new().await;
    subscribe(&mut b, &subscriber, &alice_id, "video").await;
    assert!(
        subscriber
            .wait_packets(&[RTPCodecType::Audio, RTPCodecType::Video], 20)
            .await,
        "RTP after the restart: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    drop(talk);
}

/// The same through a signaling proxy (`[mcu] type = proxy`): the
/// publisher and the subscriber live on the proxy's Janus and RTP flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy() {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    if !in_namespace("through_a_proxy") {
        return;
    }
    let janus = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        ..Default::default()
    })
    .await;
    let (key, public) = tests::proxy::rsa_key();
    let proxy =
        tests::proxy::ProxyServer::start_with_key(&janus.url, "", (key.clone(), public)).await;
    let key_dir = tempfile::tempdir().expect("temp dir");
    let key_file = key_dir.path().join("token.key");
    std::fs::write(
        &key_file,
        key.to_pkcs8_pem(LineEnding::LF).expect("pem").as_bytes(),
    )
    .expect("write key");
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let bob = talk.add_user("bob", "Bob");
    talk.add_room("room1", Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = proxy\nurl = {}\ntoken_id = {}\ntoken_key = {}\nproxytimeout = 5\n",
            proxy.base_url(),
            tests::proxy::TOKEN_ID,
            key_file.display()
        ))
        .start()
        .await;
    let connected = tests::wait::eventually(Duration::from_secs(20), || async {
        let info = server.serverinfo().await;
        (info["sfu"]["proxies"][0]["connected"] == true).then_some(())
    })
    .await;
    assert!(connected.is_some(), "server did not connect to the proxy");
    let w = World {
        talk,
        janus,
        server,
        alice,
        bob,
    };
    let (mut a, mut b) = in_call(&w).await;
    proxy.wait_janus_connected().await;
    let publisher = Publisher::new(true).await;
    publish(&mut a, &publisher, "video").await;
    let subscriber = Subscriber::new().await;
    let alice_id = a.session_id.clone();
    subscribe(&mut b, &subscriber, &alice_id, "video").await;
    assert!(
        subscriber
            .wait_packets(&[RTPCodecType::Audio, RTPCodecType::Video], 20)
            .await,
        "RTP through the proxy: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    assert_eq!(
        proxy
            .metric("signaling_proxy_subscribers{type=\"video\"} ")
            .await,
        1.0
    );
}

/// `sendoffer` across nodes through a proxy: alice on node 1 shares her
/// screen on the proxy's Janus; her `sendoffer` to bob on node 2 travels
/// as a `sendoffer` bus message; node 2 finds the publisher over gRPC,
/// subscribes bob on the proxy and sends him the offer; RTP flows. A
/// stream alice does not publish comes back to her as `client_not_found`
/// from node 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sendoffer_across_nodes_through_a_proxy() {
    if !in_namespace("sendoffer_across_nodes_through_a_proxy") {
        return;
    }
    let nats = tests::nats::NatsServer::start().await;
    let janus = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        ..Default::default()
    })
    .await;
    let key_pair = tests::proxy::rsa_key();
    let proxy = tests::proxy::ProxyServer::start_with_key(&janus.url, "", key_pair.clone()).await;
    let key_dir = tempfile::tempdir().expect("temp dir");
    let (key_file, _) = key_files(key_dir.path(), tests::proxy::TOKEN_ID, &key_pair);
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let bob = talk.add_user("bob", "Bob");
    talk.add_room("room1", Room::open("Room one"));
    let grpc = [tests::process::free_port(), tests::process::free_port()];
    let mut nodes = Vec::new();
    for own in grpc {
        nodes.push(
            TestServer::builder()
                .talk(&talk)
                .nats(&nats.url)
                .extra(&tests::proxy::cluster_node_config(
                    &proxy.base_url(),
                    &key_file,
                    own,
                    &grpc,
                    "timeout = 2\n",
                ))
                .start()
                .await,
        );
    }
    for n in &nodes {
        tests::proxy::wait_cluster_node_ready(n).await;
    }
    proxy.wait_janus_connected().await;
    let mut a = user(&nodes[0], &talk, &alice).await;
    let mut b = user(&nodes[1], &talk, &bob).await;
    let (alice_id, bob_id) = (a.session_id.clone(), b.session_id.clone());
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    let screen = Publisher::new(false).await;
    publish(&mut a, &screen, "screen").await;
    send_sfu(
        &mut a,
        &bob_id,
        json!({"type": "sendoffer", "roomType": "screen", "sid": "share-1"}),
    )
    .await;
    let subscriber = Subscriber::new().await;
    accept_offer(&mut b, &subscriber, &alice_id, "screen").await;
    assert!(
        subscriber.wait_packets(&[RTPCodecType::Video], 20).await,
        "screen RTP at the subscriber on the other node: {}",
        subscriber.count(RTPCodecType::Video)
    );
    let id = a
        .request(
            "message",
            json!({"recipient": {"type": "session", "sessionid": bob_id}, "data": {"type": "sendoffer", "roomType": "video"}}),
        )
        .await;
    let e = loop {
        match a.try_recv_within(Duration::from_secs(15)).await {
            Ok(Some(v)) if v["type"] == "error" => break v,
            Ok(Some(_)) => continue,
            other => panic!(
                "no error for alice ({other:?})\nnode 1:\n{}\nnode 2:\n{}",
                nodes[0].process.log_tail(40),
                nodes[1].process.log_tail(40)
            ),
        }
    };
    assert_eq!(e["id"], id.as_str(), "{e}");
    assert_eq!(e["error"]["code"], "client_not_found", "{e}");
}

/// Writes an RSA key pair for a token id into `dir`: (private key file,
/// public key file).
fn key_files(
    dir: &std::path::Path,
    id: &str,
    (key, public): &(rsa::RsaPrivateKey, String),
) -> (std::path::PathBuf, std::path::PathBuf) {
    use rsa::pkcs8::{EncodePrivateKey, LineEnding};
    let private = dir.join(format!("{id}.key"));
    let public_file = dir.join(format!("{id}.pub"));
    std::fs::write(
        &private,
        key.to_pkcs8_pem(LineEnding::LF).expect("pem").as_bytes(),
    )
    .expect("write key");
    std::fs::write(&public_file, public).expect("write public key");
    (private, public_file)
}

/// Two proxies, each in front of its own Janus, one in DE and one in US.
/// alice (DE) publishes on the DE proxy; bob (US) is served by the US
/// proxy, which receives alice's stream from the DE proxy's Janus as a
/// remote publisher (cluster facts 6.7). RTP reaches bob; when alice
/// stops, bob's subscriber and the remote publisher are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn between_two_proxies() {
    if !in_namespace("between_two_proxies") {
        return;
    }
    let janus_de = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        ..Default::default()
    })
    .await;
    let janus_us = Janus::start(JanusOptions {
        ice_interface: Some("jv0".into()),
        ..Default::default()
    })
    .await;
    let dir = tempfile::tempdir().expect("temp dir");
    let server_key = tests::proxy::rsa_key();
    let (server_private, _) = key_files(dir.path(), "server1", &server_key);
    let (de_private, de_public) = key_files(dir.path(), "proxy-de", &tests::proxy::rsa_key());
    let (us_private, us_public) = key_files(dir.path(), "proxy-us", &tests::proxy::rsa_key());
    let extra = |country: &str, id: &str, private: &std::path::Path| {
        format!(
            "[app]\ncountry = {country}\ntoken_id = {id}\ntoken_key = {}\nhostname = 127.0.0.1\n\n\
             [tokens]\nproxy-de = {}\nproxy-us = {}\n",
            private.display(),
            de_public.display(),
            us_public.display()
        )
    };
    let proxy_de = tests::proxy::ProxyServer::start_with_key(
        &janus_de.url,
        &extra("DE", "proxy-de", &de_private),
        server_key.clone(),
    )
    .await;
    let proxy_us = tests::proxy::ProxyServer::start_with_key(
        &janus_us.url,
        &extra("US", "proxy-us", &us_private),
        server_key.clone(),
    )
    .await;
    let talk = Talk::start(TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    let bob = talk.add_user("bob", "Bob");
    talk.add_room("room1", Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = proxy\nurl = {} {}\ntoken_id = {}\ntoken_key = {}\nproxytimeout = 5\n\
             \n[geoip-overrides]\n10.1.0.0/16 = DE\n10.2.0.0/16 = US\n",
            proxy_de.base_url(),
            proxy_us.base_url(),
            tests::proxy::TOKEN_ID,
            server_private.display()
        ))
        .start()
        .await;
    let ready = tests::wait::eventually(Duration::from_secs(20), || async {
        let info = server.serverinfo().await;
        let proxies = info["sfu"]["proxies"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        (proxies.len() == 2 && proxies.iter().all(|p| p["connected"] == true)).then_some(())
    })
    .await;
    assert!(ready.is_some(), "server did not connect to both proxies");
    for p in [&proxy_de, &proxy_us] {
        let up = tests::wait::eventually(Duration::from_secs(20), || async {
            let stats: Value = reqwest::get(format!("{}stats", p.http_url()))
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            (stats["mcu"]["connected"] == true).then_some(())
        })
        .await;
        assert!(up.is_some(), "proxy did not connect to its janus");
    }
    let w = World {
        talk,
        janus: janus_de,
        server,
        alice,
        bob,
    };
    let (mut a, _) = TestClient::connect_as(&w.server, "10.1.0.7").await;
    a.hello_v1(&w.talk, Some(&w.alice)).await;
    let (mut b, _) = TestClient::connect_as(&w.server, "10.2.0.9").await;
    b.hello_v1(&w.talk, Some(&w.bob)).await;
    let (mut a, mut b) = join_call(&w, a, b).await;

    let publisher = Publisher::new(true).await;
    publish(&mut a, &publisher, "video").await;
    assert_eq!(
        proxy_de
            .metric("signaling_proxy_publishers{type=\"video\"} ")
            .await,
        1.0,
        "alice (DE) publishes on the DE proxy"
    );
    let subscriber = Subscriber::new().await;
    let alice_id = a.session_id.clone();
    subscribe(&mut b, &subscriber, &alice_id, "video").await;
    assert!(
        subscriber
            .wait_packets(&[RTPCodecType::Audio, RTPCodecType::Video], 20)
            .await,
        "RTP between the proxies: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    println!(
        "REPORT RTP at the subscriber through a remote stream: audio {}, video {}",
        subscriber.count(RTPCodecType::Audio),
        subscriber.count(RTPCodecType::Video)
    );
    assert_eq!(
        proxy_us
            .metric("signaling_proxy_subscribers{type=\"video\"} ")
            .await,
        1.0,
        "bob (US) is served by the US proxy"
    );
    assert_eq!(
        proxy_de
            .metric("signaling_proxy_subscribers{type=\"video\"} ")
            .await,
        0.0
    );
    // The US Janus holds alice's stream in a room of its own.
    assert!(
        !janus_us.rooms().await.is_empty(),
        "no remote publisher room on the US Janus"
    );

    // alice leaves: the DE proxy tells the US proxy, whose subscriber
    // closes; the remote publisher and its room go away.
    drop(publisher);
    a.request("bye", json!({})).await;
    a.close().await;
    let gone = tests::wait::eventually(Duration::from_secs(15), || async {
        let subs = proxy_us
            .metric("signaling_proxy_subscribers{type=\"video\"} ")
            .await;
        let rooms = janus_us.rooms().await;
        (subs == 0.0 && rooms.is_empty()).then_some(())
    })
    .await;
    assert!(
        gone.is_some(),
        "remote subscriber or room left on the US proxy: {:?}",
        janus_us.rooms().await
    );
    drop(b);
}
