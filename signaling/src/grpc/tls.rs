//! `[grpc]` TLS (cluster facts 2.6): the server presents
//! `servercertificate`/`serverkey` and, with `clientca`, requires client
//! certificates signed by it; clients trust `serverca` (or the system
//! roots) and present `clientcertificate`/`clientkey`. Without files both
//! sides speak plain HTTP/2. Certificates are read at start-up and on
//! reload of the targets, not watched.

use std::path::{Path, PathBuf};

use tonic::transport::{Certificate, ClientTlsConfig, Identity, ServerTlsConfig};

use crate::config::GrpcConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[grpc] {0} and {1} must be set together")]
    Pair(&'static str, &'static str),
    #[error("[grpc] reading {path}: {source}")]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::File {
        path: path.to_owned(),
        source,
    })
}

fn identity(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    names: (&'static str, &'static str),
) -> Result<Option<Identity>, TlsError> {
    match (cert, key) {
        (None, None) => Ok(None),
        (Some(c), Some(k)) => Ok(Some(Identity::from_pem(read(c)?, read(k)?))),
        _ => Err(TlsError::Pair(names.0, names.1)),
    }
}

/// The listener's TLS settings, `None` for plain text.
pub fn server(config: &GrpcConfig) -> Result<Option<ServerTlsConfig>, TlsError> {
    let id = identity(
        &config.server_certificate,
        &config.server_key,
        ("servercertificate", "serverkey"),
    )?;
    let ca = config.client_ca.as_deref().map(read).transpose()?;
    let Some(id) = id else {
        if ca.is_some() {
            return Err(TlsError::Pair("servercertificate", "clientca"));
        }
        tracing::warn!("no [grpc] server certificate: the gRPC listener is unencrypted");
        return Ok(None);
    };
    let mut tls = ServerTlsConfig::new().identity(id);
    if let Some(ca) = ca {
        tls = tls.client_ca_root(Certificate::from_pem(ca));
    }
    Ok(Some(tls))
}

/// The clients' TLS settings, `None` for plain text.
pub fn client(config: &GrpcConfig) -> Result<Option<ClientTlsConfig>, TlsError> {
    let id = identity(
        &config.client_certificate,
        &config.client_key,
        ("clientcertificate", "clientkey"),
    )?;
    let ca = config.server_ca.as_deref().map(read).transpose()?;
    if id.is_none() && ca.is_none() {
        if !config.targets.is_empty() || config.target_type == "etcd" {
            tracing::warn!("no [grpc] client certificate or CA: expecting unencrypted connections");
        }
        return Ok(None);
    }
    let mut tls = ClientTlsConfig::new();
    tls = match ca {
        Some(ca) => tls.ca_certificate(Certificate::from_pem(ca)),
        None => tls.with_webpki_roots(),
    };
    if let Some(id) = id {
        tls = tls.identity(id);
    }
    Ok(Some(tls))
}
