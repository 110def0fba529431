//! The signaling server using two signaling proxies (`[mcu] type =
//! proxy`), each in front of its own Janus: publishers go to the less
//! loaded proxy, a draining proxy gets none, and a killed proxy's
//! publishers are dropped while new ones go to the survivor.

use std::time::Duration;

use serde_json::{json, Value};
use tests::client::{user, TestClient};
use tests::etcd::Etcd;
use tests::janus::{Janus, JanusOptions};
use tests::proxy::{rsa_key, ProxyServer, TOKEN_ID};
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::{Room, Talk, User};
use tests::wait::eventually;

const PROXY_PREFIX: &str = "/signaling/proxy/";

struct World {
    talk: Talk,
    /// `janus[i]` is behind `proxies[i]`.
    janus: [Janus; 2],
    proxies: [ProxyServer; 2],
    server: TestServer,
    _key_dir: tempfile::TempDir,
    users: Vec<User>,
}

async fn world() -> World {
    world_with(["", ""], "", Urls::Static).await
}

/// How the server learns the proxies' URLs.
enum Urls<'a> {
    /// `[mcu] url` with addresses.
    Static,
    /// `[mcu] url` with the name `localhost` and `dnsdiscovery`.
    Dns,
    /// From etcd (none at first).
    Etcd(&'a Etcd),
}

/// `proxy_extra` is appended to each proxy's config, `server_extra` to the
/// server's.
async fn world_with(proxy_extra: [&str; 2], server_extra: &str, urls: Urls<'_>) -> World {
    let (key, public) = rsa_key();
    let janus = [
        Janus::start(JanusOptions::default()).await,
        Janus::start(JanusOptions::default()).await,
    ];
    let p1 =
        ProxyServer::start_with_key(&janus[0].url, proxy_extra[0], (key.clone(), public.clone()))
            .await;
    let p2 =
        ProxyServer::start_with_key(&janus[1].url, proxy_extra[1], (key.clone(), public)).await;
    let (key_dir, key_file) = tests::proxy::write_token_key(&key);
    let talk = Talk::start(TALK_SECRET).await;
    let users = ["alice", "bob", "carol"]
        .iter()
        .map(|u| talk.add_user(u, u))
        .collect();
    talk.add_room("room1", Room::open("Room one"));
    let expect_connected = match urls {
        Urls::Etcd(_) => 0,
        _ => 2,
    };
    let urls = match urls {
        Urls::Static => format!("url = {} {}\n", p1.base_url(), p2.base_url()),
        Urls::Dns => format!(
            "url = http://localhost:{}/ http://localhost:{}/\ndnsdiscovery = true\n",
            p1.port, p2.port
        ),
        Urls::Etcd(e) => format!(
            "urltype = etcd\nkeyprefix = {PROXY_PREFIX}\n\n[etcd]\nendpoints = {}\n\n[mcu]\n",
            e.endpoint
        ),
    };
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = proxy\n{urls}token_id = {TOKEN_ID}\ntoken_key = {}\nproxytimeout = 5\n{server_extra}",
            key_file.display()
        ))
        .start()
        .await;
    tests::proxy::wait_proxies_connected(&server, expect_connected).await;
    World {
        talk,
        janus,
        proxies: [p1, p2],
        server,
        _key_dir: key_dir,
        users,
    }
}

/// Whether the server's first proxy is connected.
async fn proxy_connected(s: &TestServer) -> bool {
    s.serverinfo().await["sfu"]["proxies"][0]["connected"] == true
}

/// Publishes a synthetic offer for `c`; returns the reply.
async fn publish(c: &mut TestClient, room_type: &str) -> Value {
    let me = c.session_id.clone();
    let media: &[&str] = if room_type == "screen" {
        &["video"]
    } else {
        &["audio", "video"]
    };
    c.request(
        "message",
        json!({"recipient": {"type": "session", "sessionid": me}, "data": {"type": "offer", "sid": "s", "roomType": room_type, "payload": {"type": "offer", "sdp": tests::sdp::publisher_offer(media)}}}),
    )
    .await;
    c.recv_until(|v| v["type"] == "error" || v["message"]["data"]["type"] == "answer")
        .await
}

/// Offers video until an offer is answered (a proxy just added may still
/// be connecting); false after ten seconds.
async fn publish_until_answered(c: &mut TestClient) -> bool {
    for _ in 0..40 {
        if publish(c, "video").await["message"]["data"]["type"] == "answer" {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    false
}

async fn publishers(p: &ProxyServer) -> f64 {
    p.metric("signaling_proxy_publishers{type=\"video\"} ")
        .await
}

/// Waits until the proxies report `expect` video publishers each.
/// Waits until the server's view of its proxies (`serverinfo`) satisfies
/// `pred` for some proxy: load reports and drain notices arrive
/// asynchronously.
async fn wait_proxy_view(w: &World, what: &str, pred: impl Fn(&Value) -> bool) {
    let seen = eventually(Duration::from_secs(15), || {
        let info = w.server.serverinfo();
        let pred = &pred;
        async move {
            let info = info.await;
            let proxies = info["sfu"]["proxies"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            proxies.iter().any(pred).then_some(())
        }
    })
    .await;
    assert!(seen.is_some(), "the server never saw {what}");
}

async fn expect_publishers(w: &World, expect: [f64; 2]) {
    let ok = eventually(Duration::from_secs(10), || async {
        let got = [
            publishers(&w.proxies[0]).await,
            publishers(&w.proxies[1]).await,
        ];
        (got == expect).then_some(())
    })
    .await;
    let got = [
        publishers(&w.proxies[0]).await,
        publishers(&w.proxies[1]).await,
    ];
    assert!(
        ok.is_some(),
        "publishers per proxy: {got:?}, expected {expect:?}"
    );
}

/// Load reports spread publishers: the second goes to the other proxy.
/// A draining proxy (SIGUSR1) gets no new publisher.
#[tokio::test]
async fn load_and_draining_steer_publishers() {
    let w = world().await;
    let mut a = user(&w.server, &w.talk, &w.users[0]).await;
    a.join_ok("room1", "ta").await;
    let v = publish(&mut a, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    let first = if publishers(&w.proxies[0]).await == 1.0 {
        0
    } else {
        1
    };
    let other = 1 - first;
    let mut expect = [0.0, 0.0];
    expect[first] = 1.0;
    expect_publishers(&w, expect).await;

    // Once the first proxy's load report reached the server, the next
    // publisher goes to the idle proxy.
    wait_proxy_view(&w, "a proxy with load", |p| {
        p["load"].as_u64().unwrap_or(0) > 0
    })
    .await;
    // Ready: the proxies are connected.
    let r = reqwest::get(format!("{}readyz", w.server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // `serverinfo` has each proxy's features and since when it is up.
    let info = w.server.serverinfo().await;
    for p in info["sfu"]["proxies"].as_array().unwrap() {
        assert_eq!(p["features"], json!(["remote-streams"]), "{p}");
        let uptime = p["uptime"].as_str().unwrap_or_default();
        assert!(
            uptime.len() == 27 && uptime.ends_with('Z') && uptime.starts_with("20"),
            "{p}"
        );
    }
    // The reference's per-proxy gauges follow the same reports.
    let text = w.server.metrics_text().await;
    let values = |prefix: &str| -> Vec<f64> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
            .collect()
    };
    assert_eq!(
        values("signaling_mcu_backend_connections{")
            .iter()
            .sum::<f64>(),
        2.0,
        "{text}"
    );
    assert!(
        values("signaling_mcu_backend_load{url=")
            .iter()
            .any(|v| *v > 0.0),
        "{text}"
    );
    assert_eq!(
        values("signaling_mcu_backend_usage{").len(),
        4,
        "two proxies, two directions: {text}"
    );
    let mut b = user(&w.server, &w.talk, &w.users[1]).await;
    b.join_ok("room1", "tb").await;
    let v = publish(&mut b, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    expect[other] = 1.0;
    expect_publishers(&w, expect).await;

    // The proxy of the first publisher drains: the next one must go to
    // the other even though loads are equal.
    w.proxies[first].process.signal(10);
    wait_proxy_view(&w, "a draining proxy", |p| p["shutdown"] == true).await;
    let mut c = user(&w.server, &w.talk, &w.users[2]).await;
    c.join_ok("room1", "tc").await;
    let v = publish(&mut c, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    expect[other] = 2.0;
    expect_publishers(&w, expect).await;
}

/// A killed proxy: its Janus hangs up the publisher (which is how the
/// client's peer connection learns it), the server drops it, and the
/// client's next offer publishes on the surviving proxy.
#[tokio::test]
async fn killed_proxy() {
    let mut w = world().await;
    let mut a = user(&w.server, &w.talk, &w.users[0]).await;
    a.join_ok("room1", "ta").await;
    let v = publish(&mut a, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    let first = if publishers(&w.proxies[0]).await == 1.0 {
        0
    } else {
        1
    };
    let other = 1 - first;
    assert_eq!(w.janus[first].participants().await, 1);
    w.proxies[first].process.signal(9);
    let _ = w.proxies[first].process.stop(Duration::from_secs(1));
    let hung_up = eventually(Duration::from_secs(10), || async {
        (w.janus[first].participants().await == 0).then_some(())
    })
    .await;
    assert!(
        hung_up.is_some(),
        "the killed proxy's publisher is still in Janus"
    );
    // After the resume grace the publisher is gone: a new offer creates a
    // new one, on the other proxy.
    let mut published = false;
    for _ in 0..40 {
        let v = publish(&mut a, "video").await;
        assert!(
            v["type"] != "error"
                || v["error"]["code"] == "processing_failed"
                || v["error"]["code"] == "client_not_found",
            "{v}"
        );
        if publishers(&w.proxies[other]).await == 1.0 {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(published, "no publisher on the surviving proxy");
}

/// A client's country (here from `[geoip-overrides]`) comes before load:
/// publishers of a US client go to the US proxy even when it is busier.
#[tokio::test]
async fn country_before_load() {
    let w = world_with(
        ["[app]\ncountry = DE\n", "[app]\ncountry = us\n"],
        "\n[geoip-overrides]\n127.0.0.1/32 = US\n",
        Urls::Static,
    )
    .await;
    let (_, welcome) = TestClient::connect(&w.server).await;
    assert_eq!(welcome["welcome"]["country"], "US");
    let mut a = user(&w.server, &w.talk, &w.users[0]).await;
    a.join_ok("room1", "ta").await;
    let v = publish(&mut a, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    expect_publishers(&w, [0.0, 1.0]).await;
    // The US proxy now reports more load; the country still wins.
    wait_proxy_view(&w, "load on the US proxy", |p| {
        p["country"] == "US" && p["load"].as_u64().unwrap_or(0) > 0
    })
    .await;
    let mut b = user(&w.server, &w.talk, &w.users[1]).await;
    b.join_ok("room1", "tb").await;
    let v = publish(&mut b, "video").await;
    assert_eq!(v["message"]["data"]["type"], "answer", "{v}");
    expect_publishers(&w, [0.0, 2.0]).await;
}

/// `[mcu] dnsdiscovery`: a proxy URL's name is resolved and each address
/// gets its own connection (dialled by address, the URL keeps the name).
/// SIGHUP with one URL fewer drops that proxy and keeps the other's
/// connection.
#[tokio::test]
async fn proxy_urls_by_dns() {
    let w = world_with(["", ""], "", Urls::Dns).await;
    let info = w.server.serverinfo().await;
    let proxies = info["sfu"]["proxies"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for p in &w.proxies {
        let url = format!("ws://localhost:{}/proxy", p.port);
        assert!(
            proxies.iter().any(|e| e["url"] == url.as_str()
                && e["ip"] == "127.0.0.1"
                && e["connected"] == true),
            "{url} not connected by address: {proxies:?}"
        );
    }
    let mut a = user(&w.server, &w.talk, &w.users[0]).await;
    a.join_ok("room1", "ta").await;
    assert!(
        publish_until_answered(&mut a).await,
        "no publisher through a discovered proxy"
    );

    let [kept, dropped] = [w.proxies[0].port, w.proxies[1].port];
    w.server
        .reload(|c| c.replace(&format!(" http://localhost:{dropped}/"), ""));
    let kept_url = format!("ws://localhost:{kept}/proxy");
    let only_kept = eventually(Duration::from_secs(10), || async {
        let info = w.server.serverinfo().await;
        let proxies = info["sfu"]["proxies"].as_array()?.clone();
        let kept_ok = proxies
            .iter()
            .any(|e| e["url"] == kept_url.as_str() && e["connected"] == true);
        let dropped_gone = !proxies.iter().any(|e| {
            e["url"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!(":{dropped}/"))
        });
        (kept_ok && dropped_gone).then_some(())
    })
    .await;
    assert!(
        only_kept.is_some(),
        "after SIGHUP: {}",
        w.server.serverinfo().await["sfu"]
    );
    let log = std::fs::read_to_string(w.server.process.log_path()).unwrap_or_default();
    let dials = log
        .lines()
        .filter(|l| l.contains("connected to proxy") && l.contains(&kept_url))
        .count();
    assert_eq!(dials, 1, "the kept proxy was dialled again");
    let mut b = user(&w.server, &w.talk, &w.users[1]).await;
    b.join_ok("room1", "tb").await;
    assert!(
        publish_until_answered(&mut b).await,
        "no publisher after the reload"
    );
}

/// `[mcu] urltype = etcd`: proxies added to and removed from etcd are
/// used without a restart.
#[tokio::test]
async fn proxies_from_etcd() {
    let etcd = Etcd::start().await;
    let w = world_with(["", ""], "", Urls::Etcd(&etcd)).await;
    let mut a = user(&w.server, &w.talk, &w.users[0]).await;
    a.join_ok("room1", "ta").await;
    let v = publish(&mut a, "video").await;
    // As the reference: no SFU client could be created.
    assert_eq!(v["error"]["code"], "client_not_found", "no proxy yet: {v}");

    let doc = |p: &ProxyServer| json!({"address": p.base_url()}).to_string();
    etcd.put(&format!("{PROXY_PREFIX}one"), &doc(&w.proxies[0]))
        .await;
    assert!(
        publish_until_answered(&mut a).await,
        "proxy from etcd not used"
    );
    expect_publishers(&w, [1.0, 0.0]).await;

    // Swap proxies: the next publisher goes to the new one.
    etcd.put(&format!("{PROXY_PREFIX}two"), &doc(&w.proxies[1]))
        .await;
    etcd.delete(&format!("{PROXY_PREFIX}one")).await;
    let mut b = user(&w.server, &w.talk, &w.users[1]).await;
    b.join_ok("room1", "tb").await;
    assert!(
        publish_until_answered(&mut b).await,
        "second proxy from etcd not used"
    );
    expect_publishers(&w, [1.0, 1.0]).await;
}

/// A subscriber on another node than the publisher's: that node learns
/// over gRPC (`GetPublisherId`) which proxy holds the publisher and
/// creates the subscriber there.
#[tokio::test]
async fn subscriber_on_another_node() {
    subscriber_across_nodes(false).await;
}

/// The same when the subscriber's node does not use the publisher's proxy
/// (each node has its own): it connects to it temporarily with the token
/// the publisher's node gave it.
#[tokio::test]
async fn subscriber_on_a_node_without_that_proxy() {
    subscriber_across_nodes(true).await;
}

/// alice publishes through node 1, bob subscribes through node 2; with
/// `separate_proxies` node 2 is configured with another proxy only.
async fn subscriber_across_nodes(separate_proxies: bool) {
    let nats = tests::nats::NatsServer::start().await;
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let proxy = ProxyServer::start_with_key(&janus.url, "", (key.clone(), public.clone())).await;
    let other = if separate_proxies {
        let janus = Janus::start(JanusOptions::default()).await;
        let proxy = ProxyServer::start_with_key(&janus.url, "", (key.clone(), public)).await;
        Some((janus, proxy))
    } else {
        None
    };
    let urls = [
        proxy.base_url(),
        other
            .as_ref()
            .map_or_else(|| proxy.base_url(), |(_, p)| p.base_url()),
    ];
    let (_key_dir, key_file) = tests::proxy::write_token_key(&key);
    let (talk, alice, bob) = Talk::start_with_room1(TALK_SECRET).await;
    let grpc = [tests::process::free_port(), tests::process::free_port()];
    let mut nodes = Vec::new();
    for (own, url) in grpc.into_iter().zip(&urls) {
        nodes.push(
            TestServer::builder()
                .talk(&talk)
                .nats(&nats.url)
                .extra(&tests::proxy::cluster_node_config(
                    url, &key_file, own, &grpc, "",
                ))
                .start()
                .await,
        );
    }
    for n in &nodes {
        tests::proxy::wait_cluster_node_ready(n).await;
    }
    let mut a = user(&nodes[0], &talk, &alice).await;
    let mut b = user(&nodes[1], &talk, &bob).await;
    a.join_ok("room1", "ta").await;
    b.join("room1", "tb").await;
    talk.alice_and_bob_join_call(&nodes[0].http_url(), "room1")
        .await;
    // Each node applies the notification on its own: both must have.
    for c in [&mut a, &mut b] {
        c.recv_until(|v| v["event"]["target"] == "participants")
            .await;
    }
    let mut published = false;
    for _ in 0..40 {
        if publish(&mut a, "video").await["message"]["data"]["type"] == "answer" {
            published = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(published);
    let alice_id = a.session_id.clone();
    // The in-call check asks node 1 over gRPC (1 s timeout); on a loaded
    // machine a request may be refused before both nodes agree, and a
    // client asks again, as this loop does.
    let mut created = None;
    for _ in 0..10 {
        b.request(
            "message",
            json!({"recipient": {"type": "session", "sessionid": alice_id}, "data": {"type": "requestoffer", "roomType": "video"}}),
        )
        .await;
        // No media flows here, so Janus will not let the subscriber join;
        // the subscriber object on the proxy shows that node 2 found the
        // publisher.
        created = eventually(Duration::from_secs(2), || async {
            (proxy
                .metric("signaling_proxy_subscribers{type=\"video\"} ")
                .await
                == 1.0)
                .then_some(())
        })
        .await;
        if created.is_some() {
            break;
        }
    }
    if created.is_none() {
        let mut got = Vec::new();
        while let Ok(Some(v)) = b.try_recv_within(Duration::from_millis(200)).await {
            got.push(v);
        }
        panic!(
            "no subscriber on the publisher's proxy; bob got {got:?}\n{}",
            nodes[1].process.log_tail(60)
        );
    }
    let proxies = nodes[1].serverinfo().await["sfu"]["proxies"].clone();
    let temporary: Vec<_> = proxies
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["temporary"] == true)
        .map(|p| p["url"].clone())
        .collect();
    if separate_proxies {
        assert_eq!(temporary, vec![json!(proxy.ws_url())], "{proxies}");
    } else {
        assert!(temporary.is_empty(), "{proxies}");
    }
}

/// A proxy behind TLS (`https://` URL, so `wss://`) with a certificate of
/// a private CA: refused by default, accepted with `[mcu] skipverify`, and
/// accepted without it once the CA is in the system trust store (here
/// through `SSL_CERT_FILE`).
#[tokio::test]
async fn wss_proxy_and_skipverify() {
    let certs = tests::certs::Certs::generate();
    let janus = Janus::start(JanusOptions::default()).await;
    let (key, public) = rsa_key();
    let proxy = ProxyServer::start_with_key(&janus.url, "", (key.clone(), public)).await;
    let front = tests::tls_front::TlsFront::start(&certs, proxy.port).await;
    let (_key_dir, key_file) = tests::proxy::write_token_key(&key);
    let server = |skip: bool| {
        TestServer::builder()
            .extra(&format!(
                "\n[mcu]\ntype = proxy\nurl = https://127.0.0.1:{}/\ntoken_id = {TOKEN_ID}\ntoken_key = {}\nskipverify = {skip}\n",
                front.port,
                key_file.display()
            ))
            .start()
    };
    let strict = server(false).await;
    let lax = server(true).await;
    let lax_ok = eventually(Duration::from_secs(10), || async {
        proxy_connected(&lax).await.then_some(())
    })
    .await;
    assert!(lax_ok.is_some(), "{}", lax.serverinfo().await["sfu"]);
    let refused = eventually(Duration::from_secs(10), || async {
        let log = std::fs::read_to_string(strict.process.log_path()).unwrap_or_default();
        log.contains("UnknownIssuer").then_some(())
    })
    .await;
    assert!(
        refused.is_some(),
        "no certificate error: {}",
        strict.process.log_tail(20)
    );
    assert!(
        !proxy_connected(&strict).await,
        "connected despite the certificate"
    );

    let trusting = TestServer::builder()
        .env("SSL_CERT_FILE", &certs.path("ca.crt").display().to_string())
        .extra(&format!(
            "\n[mcu]\ntype = proxy\nurl = https://127.0.0.1:{}/\ntoken_id = {TOKEN_ID}\ntoken_key = {}\n",
            front.port,
            key_file.display()
        ))
        .start()
        .await;
    let trusted = eventually(Duration::from_secs(10), || async {
        proxy_connected(&trusting).await.then_some(())
    })
    .await;
    assert!(trusted.is_some(), "{}", trusting.serverinfo().await["sfu"]);
}

/// No proxy reachable: a publisher cannot be placed, which the reference
/// counts in `signaling_mcu_no_backend_available_total{type}`.
#[tokio::test]
async fn no_backend_available_is_counted() {
    let (key, _) = rsa_key();
    let (_key_dir, key_file) = tests::proxy::write_token_key(&key);
    let talk = tests::talk::Talk::start(tests::server::TALK_SECRET).await;
    let alice = talk.add_user("alice", "Alice");
    talk.add_room("room1", tests::talk::Room::open("Room one"));
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "\n[mcu]\ntype = proxy\nurl = http://127.0.0.1:{}/\ntoken_id = {TOKEN_ID}\ntoken_key = {}\n",
            tests::process::free_port(),
            key_file.display()
        ))
        .start()
        .await;
    // Not ready while no proxy is connected.
    let r = reqwest::get(format!("{}readyz", server.http_url()))
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body["checks"]["sfu"]["detail"], "proxies not connected",
        "{body}"
    );
    let mut a = user(&server, &talk, &alice).await;
    a.join_ok("room1", "ta").await;
    let v = publish(&mut a, "video").await;
    assert_eq!(v["type"], "error", "{v}");
    assert_eq!(
        server
            .metric("signaling_mcu_no_backend_available_total{type=\"video\"} ")
            .await,
        1.0
    );
}
