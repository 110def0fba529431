//! Backends from etcd (`[backend] backendtype = etcd`): added, changed and
//! removed at run time, against a real etcd.

use std::time::Duration;

use serde_json::json;
use tests::client::TestClient;
use tests::etcd::Etcd;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;
use tests::wait::eventually;

async fn hello_result(server: &TestServer, talk: &Talk) -> serde_json::Value {
    let (mut c, _) = TestClient::connect(server).await;
    let (_, v) = c
        .hello_raw(json!({"version": "2.0", "auth": {"url": talk.url(), "params": {"token": talk.v2_token("bob")}}}))
        .await;
    v
}

/// Waits until a hello v2 of bob gets `expect` (`"hello"` or an error
/// code): backends from etcd arrive through its watch.
async fn hellos_get(server: &TestServer, talk: &Talk, expect: &str) {
    let got = eventually(Duration::from_secs(10), || async {
        let v = hello_result(server, talk).await;
        (v["type"] == expect || v["error"]["code"] == expect).then_some(())
    })
    .await;
    assert!(
        got.is_some(),
        "hellos never got {expect}:\n{}",
        server.process.log_tail(30)
    );
}

/// A backend put into etcd is accepted without restart; removing it makes
/// hellos fail with `invalid_backend` again.
#[tokio::test]
async fn backends_follow_etcd() {
    let etcd = Etcd::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /signaling/backend/\n[etcd]\nendpoints = {}\n",
            etcd.endpoint
        ))
        .start()
        .await;
    assert_eq!(
        hello_result(&server, &talk).await["error"]["code"],
        "invalid_backend"
    );

    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string();
    etcd.put("/signaling/backend/one", &doc).await;
    hellos_get(&server, &talk, "hello").await;

    etcd.delete("/signaling/backend/one").await;
    hellos_get(&server, &talk, "invalid_backend").await;
}

/// `[etcd] discoverysrv`/`discoveryservice`: the endpoints come from the
/// DNS SRV record `_etcd-client-<service>._tcp.<domain>`, answered by a
/// DNS server the test starts on 127.0.0.1:53 in a network namespace of
/// its own (with a `resolv.conf` naming it); the target's address comes
/// from the same server.
#[tokio::test]
async fn endpoints_from_dns_srv() {
    if !tests::netns::run_inside(
        "endpoints_from_dns_srv",
        "",
        Some("nameserver 127.0.0.1\noptions timeout:1 attempts:2\n"),
    ) {
        return;
    }
    use tests::dns::{DnsServer, Record};
    let etcd = Etcd::start().await;
    let port: u16 = etcd.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let _dns = DnsServer::start(
        "127.0.0.1:53".parse().unwrap(),
        vec![
            (
                "_etcd-client-signaling._tcp.example.test".into(),
                Record::Srv {
                    port,
                    target: "etcd.example.test.".into(),
                },
            ),
            (
                "etcd.example.test".into(),
                Record::A(std::net::Ipv4Addr::LOCALHOST),
            ),
        ],
    )
    .await;
    let talk = Talk::start(TALK_SECRET).await;
    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string();
    etcd.put("/signaling/backend/one", &doc).await;
    let server = TestServer::builder()
        .extra(
            "[backend]\nbackendtype = etcd\nbackendprefix = /signaling/backend/\n\
             [etcd]\ndiscoverysrv = example.test\ndiscoveryservice = signaling\n",
        )
        .start()
        .await;
    hellos_get(&server, &talk, "hello").await;
    let info = server.serverinfo().await;
    assert_eq!(
        info["etcd"]["endpoints"],
        json!([format!("http://etcd.example.test:{port}")]),
        "{info}"
    );
}

/// etcd options in `[mcu]` (where older versions had them) still work,
/// with a deprecation warning, as in the reference.
#[tokio::test]
async fn deprecated_mcu_etcd_options() {
    let etcd = Etcd::start().await;
    let talk = Talk::start(TALK_SECRET).await;
    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string();
    etcd.put("/signaling/backend/one", &doc).await;
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /signaling/backend/\n[mcu]\nendpoints = {}\n",
            etcd.endpoint
        ))
        .start()
        .await;
    hellos_get(&server, &talk, "hello").await;
    let log = std::fs::read_to_string(server.process.log_path()).unwrap();
    assert!(
        log.contains("[mcu] endpoints is deprecated: set it in [etcd] instead"),
        "{log}"
    );
}

/// etcd with mutual TLS: `[etcd] cacert`, `clientcert` and `clientkey`.
#[tokio::test]
async fn mutual_tls() {
    let certs = tests::certs::Certs::generate();
    let etcd = Etcd::start_tls(&certs).await;
    let talk = Talk::start(TALK_SECRET).await;
    let doc = json!({"urls": [talk.url()], "secret": TALK_SECRET}).to_string();
    etcd.put("/signaling/backend/one", &doc).await;
    let server = TestServer::builder()
        .extra(&format!(
            "[backend]\nbackendtype = etcd\nbackendprefix = /signaling/backend/\n\
             [etcd]\nendpoints = {}\ncacert = {}\nclientcert = {}\nclientkey = {}\n",
            etcd.endpoint,
            certs.path("ca.crt").display(),
            certs.path("client.crt").display(),
            certs.path("client.key").display(),
        ))
        .start()
        .await;
    hellos_get(&server, &talk, "hello").await;
    // Changes arrive through the watch over TLS as well.
    etcd.delete("/signaling/backend/one").await;
    hellos_get(&server, &talk, "invalid_backend").await;
}
