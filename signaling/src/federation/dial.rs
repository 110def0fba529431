//! Dialing a remote signaling server (facts 6.2 steps 3-5).

use std::sync::Arc;
use std::time::Duration;

use proto::error::{ErrorCode, WireError};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::client::connection::MAX_MESSAGE_SIZE;

pub type RemoteSocket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a dial failed, mapped to the client's error.
#[derive(Debug, thiserror::Error)]
pub enum DialError {
    #[error("the target server does not support federation")]
    Unsupported,
    #[error("certificate verification failed: {0}")]
    Certificate(String),
    #[error("network error: {0}")]
    Network(String),
    #[error("{0}")]
    Other(String),
}

impl DialError {
    pub fn to_wire(&self) -> WireError {
        let detail = |code: &str, msg: &str| {
            serde_json::value::to_raw_value(&serde_json::json!({"code": code, "message": msg})).ok()
        };
        match self {
            DialError::Unsupported => WireError::new(ErrorCode::FederationUnsupported),
            DialError::Certificate(m) => with_details(detail("certificate_verification_error", m)),
            DialError::Network(m) => with_details(detail("network_error", m)),
            DialError::Other(m) => WireError::with_message(ErrorCode::FederationError, m.clone()),
        }
    }
}

fn with_details(details: Option<proto::RawJson>) -> WireError {
    let e = WireError::new(ErrorCode::FederationError);
    match details {
        Some(d) => e.with_details(d),
        None => e,
    }
}

/// `wss://host/path/` -> `wss://host/path/spreed` (http(s) become ws(s)).
pub fn dial_url(signaling: &str) -> String {
    let base = if let Some(rest) = signaling.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = signaling.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        signaling.to_owned()
    };
    format!("{base}spreed")
}

/// Accepts any certificate (`[federation] skipverify`).
#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
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
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn tls_config(skip_verify: bool) -> Result<Arc<rustls::ClientConfig>, DialError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| DialError::Other(e.to_string()))?;
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
            .with_no_client_auth()
    } else {
        let roots =
            rustls::RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(Arc::new(config))
}

/// Opens the WebSocket and checks the features header.
pub async fn dial(
    signaling: &str,
    timeout: Duration,
    skip_verify: bool,
) -> Result<RemoteSocket, DialError> {
    let url = dial_url(signaling);
    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| DialError::Network(e.to_string()))?;
    if let Ok(v) = format!("nextcloud-spreed-signaling/{}", proto::SERVER_VERSION).parse() {
        request.headers_mut().insert("User-Agent", v);
    }
    let connector = if url.starts_with("wss://") {
        Some(tokio_tungstenite::Connector::Rustls(tls_config(
            skip_verify,
        )?))
    } else {
        Some(tokio_tungstenite::Connector::Plain)
    };
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), false, connector);
    let (ws, resp) = match tokio::time::timeout(timeout, connect).await {
        Err(_) => return Err(DialError::Network("timeout".into())),
        Ok(Err(e)) => {
            let text = e.to_string();
            return Err(if text.to_ascii_lowercase().contains("certificate") {
                DialError::Certificate(text)
            } else {
                DialError::Network(text)
            });
        }
        Ok(Ok(pair)) => pair,
    };
    let supported = resp
        .headers()
        .get(proto::checksum::HEADER_FEATURES)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|f| f.trim() == "federation"));
    if !supported {
        let mut ws = ws;
        let _ = ws.close(None).await;
        return Err(DialError::Unsupported);
    }
    Ok(ws)
}

#[cfg(test)]
mod tests {
    use super::dial_url;

    #[test]
    fn dial_urls() {
        assert_eq!(
            dial_url("https://remote/standalone-signaling/"),
            "wss://remote/standalone-signaling/spreed"
        );
        assert_eq!(
            dial_url("http://127.0.0.1:8080/"),
            "ws://127.0.0.1:8080/spreed"
        );
    }
}
