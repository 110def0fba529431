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

/// A client configuration trusting the CA certificates in `ca` (PEM)
/// instead of the system store, presenting `identity` (certificate chain
/// and key, PEM) when given: mutual TLS to etcd.
pub fn client_config_with(
    ca: Option<&std::path::Path>,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> Result<Arc<ClientConfig>, ServerCertError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder =
        ClientConfig::builder_with_provider(provider).with_safe_default_protocol_versions()?;
    let file_error = |path: &std::path::Path, message: String| ServerCertError::File {
        path: path.display().to_string(),
        message,
    };
    let roots = match ca {
        None => SYSTEM_ROOTS.clone(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in
                CertificateDer::pem_file_iter(path).map_err(|e| file_error(path, e.to_string()))?
            {
                let cert = cert.map_err(|e| file_error(path, e.to_string()))?;
                roots
                    .add(cert)
                    .map_err(|e| file_error(path, e.to_string()))?;
            }
            Arc::new(roots)
        }
    };
    let builder = builder.with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| file_error(cert, e.to_string()))?
                .collect::<Result<_, _>>()
                .map_err(|e| file_error(cert, e.to_string()))?;
            let key_der =
                PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
            builder.with_client_auth_cert(chain, key_der)?
        }
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
    let (mut added, mut ignored) = roots.add_parsable_certificates(found.certs);
    // The reference's container image adds the CA files of this folder to
    // the system store; an image running as a user cannot, so they are
    // added here.
    if let Some(dir) = std::env::var_os("CA_CERTIFICATES_FOLDER") {
        use rustls::pki_types::pem::PemObject;
        let files = std::fs::read_dir(&dir).into_iter().flatten().flatten();
        for file in files {
            let certs: Vec<_> = CertificateDer::pem_file_iter(file.path())
                .into_iter()
                .flatten()
                .flatten()
                .collect();
            let (a, i) = roots.add_parsable_certificates(certs);
            added += a;
            ignored += i;
        }
    }
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

/// A server certificate and key read from PEM files.
#[derive(Debug, thiserror::Error)]
pub enum ServerCertError {
    #[error("{path}: {message}")]
    File { path: String, message: String },
    #[error(transparent)]
    Tls(#[from] rustls::Error),
}

/// The certificate a TLS listener presents, read again from its files
/// when they change, so a renewed certificate (certbot, cert-manager) is
/// used by new connections without a restart.
#[derive(Debug)]
pub struct ReloadingCert {
    cert: std::path::PathBuf,
    key: std::path::PathBuf,
    provider: Arc<CryptoProvider>,
    current: parking_lot::RwLock<Arc<rustls::sign::CertifiedKey>>,
    stamp: parking_lot::Mutex<Option<(std::time::SystemTime, std::time::SystemTime)>>,
}

/// How often the certificate files are checked for changes.
pub const CERT_WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

fn modified(path: &std::path::Path) -> Option<std::time::SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

fn load_certified_key(
    provider: &CryptoProvider,
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<rustls::sign::CertifiedKey, ServerCertError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::PrivateKeyDer;
    let file_error = |path: &std::path::Path, message: String| ServerCertError::File {
        path: path.display().to_string(),
        message,
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| file_error(cert, e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| file_error(cert, e.to_string()))?;
    if chain.is_empty() {
        return Err(file_error(cert, "no certificate".into()));
    }
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e.to_string()))?;
    let signing = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| file_error(key, e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified
        .keys_match()
        .map_err(|e| file_error(key, format!("does not match the certificate: {e}")))?;
    Ok(certified)
}

impl ReloadingCert {
    /// Reads the files once; errors here stop start-up.
    pub fn load(
        cert: &std::path::Path,
        key: &std::path::Path,
    ) -> Result<Arc<ReloadingCert>, ServerCertError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = modified(cert).zip(modified(key));
        let current = load_certified_key(&provider, cert, key)?;
        Ok(Arc::new(ReloadingCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: parking_lot::RwLock::new(Arc::new(current)),
            stamp: parking_lot::Mutex::new(stamp),
        }))
    }

    /// Reads the files again if they changed; a bad new pair is logged
    /// and the old certificate kept.
    pub fn reload_if_changed(&self) {
        let stamp = modified(&self.cert).zip(modified(&self.key));
        if stamp.is_none() || *self.stamp.lock() == stamp {
            return;
        }
        match load_certified_key(&self.provider, &self.cert, &self.key) {
            Ok(k) => {
                *self.current.write() = Arc::new(k);
                *self.stamp.lock() = stamp;
                tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded");
            }
            Err(e) => {
                tracing::error!(error = %e, "new TLS certificate unusable, keeping the old one")
            }
        }
    }

    /// Checks the files every [`CERT_WATCH_INTERVAL`] until `stop`.
    pub async fn watch(self: Arc<Self>, stop: tokio_util::sync::CancellationToken) {
        let mut tick = tokio::time::interval(CERT_WATCH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.reload_if_changed(),
            }
        }
    }

    /// An acceptor presenting the current certificate (HTTP/1.1 only).
    pub fn acceptor(self: &Arc<Self>) -> Result<tokio_rustls::TlsAcceptor, ServerCertError> {
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
    }
}

impl rustls::server::ResolvesServerCert for ReloadingCert {
    fn resolve(
        &self,
        _hello: rustls::server::ClientHello<'_>,
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.current.read().clone())
    }
}
