//! Outgoing TLS trusts the operating system's store: a Nextcloud behind an
//! internal CA works once the CA is trusted by the system (here through
//! `SSL_CERT_FILE`, which the system store honours), without skipverify.

use serde_json::json;
use tests::certs::Certs;
use tests::client::TestClient;
use tests::server::{TestServer, TALK_SECRET};
use tests::talk::Talk;
use tests::tls_front::TlsFront;

/// Hello v1 through a Nextcloud at `https://127.0.0.1:<front>/`.
async fn hello_through(server: &TestServer, talk: &Talk, front: &TlsFront) -> serde_json::Value {
    let alice = talk.add_user("alice", "Alice");
    let (mut c, _) = TestClient::connect(server).await;
    let url = format!(
        "https://127.0.0.1:{}/ocs/v2.php/apps/spreed/api/v3/signaling/backend",
        front.port
    );
    let (_, reply) = c
        .hello_raw(json!({"version": "1.0", "auth": {"url": url, "params": {"userid": alice.id, "ticket": alice.ticket}}}))
        .await;
    reply
}

fn backend(front: &TlsFront) -> String {
    format!(
        "[backend]\nbackends = nc\n[nc]\nurls = https://127.0.0.1:{}/\nsecret = {TALK_SECRET}\n",
        front.port
    )
}

#[tokio::test]
async fn backend_behind_a_private_ca() {
    let certs = Certs::generate();
    let talk = Talk::start(TALK_SECRET).await;
    let talk_port: u16 = talk.url().trim_end_matches('/').rsplit(':').next().unwrap().parse().unwrap();
    let front = TlsFront::start(&certs, talk_port).await;

    // The CA is not in the store: the certificate is refused.
    let untrusting = TestServer::builder().extra(&backend(&front)).start().await;
    let reply = hello_through(&untrusting, &talk, &front).await;
    assert_eq!(reply["type"], "error", "{reply}");

    // Trusted through the system store: hello works, no skipverify.
    let trusting = TestServer::builder()
        .env("SSL_CERT_FILE", &certs.path("ca.crt").display().to_string())
        .extra(&backend(&front))
        .start()
        .await;
    let reply = hello_through(&trusting, &talk, &front).await;
    assert_eq!(reply["type"], "hello", "{reply}");
}
