//! A TLS front for a plain TCP service, as an operator's reverse proxy
//! terminating TLS in front of a signaling proxy: accepts TLS on a free
//! loopback port with the certificate of [`Certs`] and forwards the bytes
//! to `127.0.0.1:<port>`. Stops when dropped.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};

use crate::certs::Certs;

pub struct TlsFront {
    pub port: u16,
    task: tokio::task::JoinHandle<()>,
}

impl TlsFront {
    pub async fn start(certs: &Certs, backend_port: u16) -> TlsFront {
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_file_iter(certs.path("server.crt"))
                .expect("read server.crt")
                .collect::<Result<_, _>>()
                .expect("parse server.crt");
        let key = PrivateKeyDer::from_pem_file(certs.path("server.key")).expect("server.key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server certificate");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("local addr").port();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    // A refused handshake is what some tests want.
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend_port)).await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsFront { port, task }
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        self.task.abort();
    }
}
