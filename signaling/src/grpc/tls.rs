//! `[grpc]` TLS (cluster facts 2.6): the server presents
//! `servercertificate`/`serverkey` and, with `clientca`, requires client
//! certificates signed by it; clients trust `serverca` (or the system
//! roots) and present `clientcertificate`/`clientkey`. Without files both
//! sides speak plain HTTP/2.
//!
//! The files are checked every [`WATCH_INTERVAL`], as the reference watches
//! them: a renewed certificate (cert-manager, ACME) applies to the next
//! connections on the server side, and the clients reconnect with it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::config::GrpcConfig;

/// How often the certificate files are looked at.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[grpc] {0} and {1} must be set together")]
    Pair(&'static str, &'static str),
    #[error("[grpc] reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("[grpc] {path}: {message}")]
    Pem { path: PathBuf, message: String },
    #[error("[grpc] TLS settings: {0}")]
    Rustls(#[from] rustls::Error),
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })
}

fn pem_error(path: &Path) -> impl Fn(rustls::pki_types::pem::Error) -> TlsError + '_ {
    move |e| TlsError::Pem {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_error(path))?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.to_owned(),
            message: "no certificate".into(),
        });
    }
    Ok(certs)
}

/// Modification time and size of each file, to notice replacements.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp(Vec<Option<(SystemTime, u64)>>);

/// A set of files and how they looked when last read well.
struct WatchedFiles {
    paths: Vec<Option<PathBuf>>,
    last: Mutex<Stamp>,
}

impl WatchedFiles {
    fn new(paths: [&Option<PathBuf>; 3]) -> WatchedFiles {
        let paths: Vec<_> = paths.into_iter().cloned().collect();
        let last = Mutex::new(Self::stamp(&paths));
        WatchedFiles { paths, last }
    }

    fn stamp(paths: &[Option<PathBuf>]) -> Stamp {
        Stamp(
            paths
                .iter()
                .map(|p| {
                    let meta = std::fs::metadata(p.as_deref()?).ok()?;
                    Some((meta.modified().ok()?, meta.len()))
                })
                .collect(),
        )
    }

    /// `build`'s result when the files changed since they were last read
    /// well; a failed `build` is logged and tried again at the next
    /// change.
    fn reread<T>(&self, what: &str, build: impl FnOnce() -> Result<T, TlsError>) -> Option<T> {
        let stamp = Self::stamp(&self.paths);
        if *self.last.lock() == stamp {
            return None;
        }
        match build() {
            Ok(v) => {
                *self.last.lock() = stamp;
                tracing::info!("[grpc] {what} certificate reloaded");
                Some(v)
            }
            Err(e) => {
                tracing::warn!(error = %e, "[grpc] {what} certificate not reloaded");
                None
            }
        }
    }
}

/// The listener's TLS settings, replaced when the files change.
pub struct ServerTls {
    config: GrpcConfig,
    current: RwLock<Arc<rustls::ServerConfig>>,
    files: WatchedFiles,
}

impl ServerTls {
    /// `None` for plain text.
    pub fn load(config: &GrpcConfig) -> Result<Option<Arc<ServerTls>>, TlsError> {
        let files = server_files(config);
        let Some(current) = server_config(config)? else {
            tracing::warn!("no [grpc] server certificate: the gRPC listener is unencrypted");
            return Ok(None);
        };
        Ok(Some(Arc::new(ServerTls {
            config: config.clone(),
            current: RwLock::new(Arc::new(current)),
            files,
        })))
    }

    /// The settings for the next connection.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        self.current.read().clone()
    }

    /// Reads the files again if they changed; a broken replacement keeps
    /// the old settings.
    pub fn reload_if_changed(&self) {
        if let Some(Some(c)) = self.files.reread("server", || server_config(&self.config)) {
            *self.current.write() = Arc::new(c);
        }
    }
}

fn server_files(config: &GrpcConfig) -> WatchedFiles {
    WatchedFiles::new([
        &config.server_certificate,
        &config.server_key,
        &config.client_ca,
    ])
}

fn server_config(config: &GrpcConfig) -> Result<Option<rustls::ServerConfig>, TlsError> {
    let (cert, key) = match (&config.server_certificate, &config.server_key) {
        (None, None) => {
            if config.client_ca.is_some() {
                return Err(TlsError::Pair("servercertificate", "clientca"));
            }
            return Ok(None);
        }
        (Some(c), Some(k)) => (c, k),
        _ => return Err(TlsError::Pair("servercertificate", "serverkey")),
    };
    let chain = certificates(cert)?;
    let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(pem_error(key))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match &config.client_ca {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certificates(ca)? {
                roots.add(c)?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| TlsError::Pem {
                path: ca.clone(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut tls = builder.with_single_cert(chain, key)?;
    // gRPC is HTTP/2 only.
    tls.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Some(tls))
}

/// The clients' TLS settings and when their files last changed.
pub struct ClientTls {
    config: GrpcConfig,
    files: WatchedFiles,
}

impl ClientTls {
    /// The settings to start with (`None` for plain text) and a watcher
    /// for later changes.
    pub fn load(config: &GrpcConfig) -> Result<(Option<ClientTlsConfig>, ClientTls), TlsError> {
        let files = WatchedFiles::new([
            &config.client_certificate,
            &config.client_key,
            &config.server_ca,
        ]);
        let tls = client_config(config)?;
        if tls.is_none()
            && (!config.targets.is_empty() || config.target_type == config_source::SourceType::Etcd)
        {
            tracing::warn!("no [grpc] client certificate or CA: expecting unencrypted connections");
        }
        Ok((
            tls,
            ClientTls {
                config: config.clone(),
                files,
            },
        ))
    }

    /// New settings when the files changed and read well.
    pub fn changed(&self) -> Option<Option<ClientTlsConfig>> {
        self.files.reread("client", || client_config(&self.config))
    }
}

fn client_config(config: &GrpcConfig) -> Result<Option<ClientTlsConfig>, TlsError> {
    let id = match (&config.client_certificate, &config.client_key) {
        (None, None) => None,
        (Some(c), Some(k)) => Some(Identity::from_pem(read(c)?, read(k)?)),
        _ => return Err(TlsError::Pair("clientcertificate", "clientkey")),
    };
    let ca = config.server_ca.as_deref().map(read).transpose()?;
    if id.is_none() && ca.is_none() {
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
        None => tls.with_native_roots(),
    };
    if let Some(id) = id {
        tls = tls.identity(id);
    }
    Ok(Some(tls))
}
