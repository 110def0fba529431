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
    let talk_port = talk.addr.port();
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

/// A client config trusting the CAs of `certs`.
fn trusting(certs: &[&Certs]) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    for c in certs {
        roots
            .add(CertificateDer::from_pem_file(c.path("ca.crt")).unwrap())
            .unwrap();
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    std::sync::Arc::new(
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

/// The leaf certificate the server at `port` presents.
async fn presented(port: u16, config: std::sync::Arc<rustls::ClientConfig>) -> Vec<u8> {
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
        .unwrap();
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn der_of(certs: &Certs, file: &str) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::from_pem_file(certs.path(file))
        .unwrap()
        .to_vec()
}

/// `[https] listen`: clients connect with `wss://`; a renewed certificate
/// written over the files is presented to new connections without a
/// restart.
#[tokio::test]
async fn https_listener_reloads_its_certificate() {
    let first = Certs::generate();
    let second = Certs::generate();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("tls.crt"), dir.path().join("tls.key"));
    std::fs::copy(first.path("server.crt"), &cert).unwrap();
    std::fs::copy(first.path("server.key"), &key).unwrap();
    let port = tests::process::free_port();
    let talk = Talk::start(TALK_SECRET).await;
    let server = TestServer::builder()
        .talk(&talk)
        .extra(&format!(
            "[https]\nlisten = 127.0.0.1:{port}\ncertificate = {}\nkey = {}\n",
            cert.display(),
            key.display()
        ))
        .start()
        .await;
    let config = trusting(&[&first, &second]);
    assert_eq!(
        presented(port, config.clone()).await,
        der_of(&first, "server.crt")
    );

    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        format!("wss://127.0.0.1:{port}/spreed"),
        None,
        true,
        Some(tokio_tungstenite::Connector::Rustls(config.clone())),
    )
    .await
    .unwrap();
    use futures_util::StreamExt;
    let welcome = ws.next().await.unwrap().unwrap();
    let welcome: serde_json::Value = serde_json::from_str(welcome.to_text().unwrap()).unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");

    // Renewal: key first, then certificate, as a renewal tool writes them.
    std::fs::copy(second.path("server.key"), &key).unwrap();
    std::fs::copy(second.path("server.crt"), &cert).unwrap();
    let wanted = der_of(&second, "server.crt");
    let renewed = tests::wait::eventually(std::time::Duration::from_secs(15), || {
        let config = config.clone();
        let wanted = wanted.clone();
        async move { (presented(port, config).await == wanted).then_some(()) }
    })
    .await;
    assert!(renewed.is_some(), "{}", server.process.log_tail(20));
}
