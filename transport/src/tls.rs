//! TLS for every connection this workspace dials: Nextcloud backends,
//! signaling proxies, other proxies (remote streams), federated servers,
//! the GeoIP download.
//!
//! Certificates are checked against the operating system's trust store,
//! as the reference does, so a Nextcloud behind an internal CA works once
//! that CA is installed (`update-ca-certificates`, or `SSL_CERT_FILE` /
//! `SSL_CERT_DIR`); `skipverify` accepts any certificate (development).

use std::sync::{Arc, LazyLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};

/// A client configuration; `skip_verify` accepts any server certificate
/// (signatures of the handshake are still checked).
pub fn client_config(skip_verify: bool) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        builder
            .with_root_certificates(SYSTEM_ROOTS.clone())
            .with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// The system's trusted certificates, read once.
static SYSTEM_ROOTS: LazyLock<Arc<rustls::RootCertStore>> = LazyLock::new(|| {
    let found = rustls_native_certs::load_native_certs();
    for e in &found.errors {
        tracing::warn!(error = %e, "reading the system's trusted certificates");
    }
    let mut roots = rustls::RootCertStore::empty();
    let (added, ignored) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        tracing::error!(
            "no trusted certificates in the system store: TLS connections will fail \
             (install ca-certificates, or set SSL_CERT_FILE)"
        );
    } else {
        tracing::debug!(added, ignored, "system trust store loaded");
    }
    Arc::new(roots)
});

/// The connector for `url`: ours for `wss://`, plain TCP otherwise.
pub fn connector(url: &str, config: &Arc<ClientConfig>) -> tokio_tungstenite::Connector {
    if url.starts_with("wss://") {
        tokio_tungstenite::Connector::Rustls(config.clone())
    } else {
        tokio_tungstenite::Connector::Plain
    }
}

#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
