//! Real media through the signaling server and a real Janus: WebRTC peers
//! (the `webrtc` crate) publish synthetic audio and video, subscribers
//! count the RTP packets Janus forwards.
//!
//! Janus never offers loopback candidates, so each test re-runs itself in
//! a private network namespace (`unshare -rn`) with a veth end `jv0` at
//! 127.0.0.2 that Janus uses for ICE; nothing can leave it.

mod peers;
mod setup;

use std::time::Duration;

use peers::{Publisher, Subscriber};
use serde_json::json;
use setup::{
    in_call, janus_in_namespace, join_call, publish, screen_by_sendoffer, subscribe, world,
    world_with, World,
};
use tests::client::{user, TestClient};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;
use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;

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
        let text = w.server.metrics_text().await;
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
        let text = w.server.metrics_text().await;
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
    let _streams = screen_by_sendoffer(&mut a, &mut b, "screen RTP at the subscriber").await;
    let bob_id = b.session_id.clone();
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

    let _janus = janus_in_namespace(Some((&server, port))).await;
    server.wait_sfu_connected().await;
    let again = Publisher::new(true).await;
    publish(&mut a, &again, "video").await;
    let subscriber = Subscriber::new().await;
    subscribe(&mut b, &subscriber, &alice_id, "video").await;
    subscriber
        .expect_audio_and_video("RTP after the restart")
        .await;
    drop(talk);
}

/// The same through a signaling proxy (`[mcu] type = proxy`): the
/// publisher and the subscriber live on the proxy's Janus and RTP flows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_a_proxy() {
    if !in_namespace("through_a_proxy") {
        return;
    }
    let janus = janus_in_namespace(None).await;
    let (key, public) = tests::proxy::rsa_key();
    let proxy =
        tests::proxy::ProxyServer::start_with_key(&janus.url, "", (key.clone(), public)).await;
    let (_key_dir, key_file) = tests::proxy::write_token_key(&key);
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&tests::proxy::mcu_config(&proxy.base_url(), &key_file))
        .start()
        .await;
    tests::proxy::wait_proxies_connected(&server, 1).await;
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
    subscriber
        .expect_audio_and_video("RTP through the proxy")
        .await;
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
    let janus = janus_in_namespace(None).await;
    let key_pair = tests::proxy::rsa_key();
    let proxy = tests::proxy::ProxyServer::start_with_key(&janus.url, "", key_pair.clone()).await;
    let key_dir = tempfile::tempdir().expect("temp dir");
    let (key_file, _) = key_files(key_dir.path(), tests::proxy::TOKEN_ID, &key_pair);
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
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
    let bob_id = b.session_id.clone();
    a.join_ok("room1", "ta").await;
    b.join_ok("room1", "tb").await;
    let _streams = screen_by_sendoffer(
        &mut a,
        &mut b,
        "screen RTP at the subscriber on the other node",
    )
    .await;
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
    let janus_de = janus_in_namespace(None).await;
    let janus_us = janus_in_namespace(None).await;
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
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "{}\n[geoip-overrides]\n10.1.0.0/16 = DE\n10.2.0.0/16 = US\n",
            tests::proxy::mcu_config(
                &format!("{} {}", proxy_de.base_url(), proxy_us.base_url()),
                &server_private
            )
        ))
        .start()
        .await;
    tests::proxy::wait_proxies_connected(&server, 2).await;
    for p in [&proxy_de, &proxy_us] {
        p.wait_janus_connected().await;
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
    subscriber
        .expect_audio_and_video("RTP between the proxies")
        .await;
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
