//! Dialing a remote signaling server (facts 6.2 steps 3-5).

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
    let tls =
        transport::tls::client_config(skip_verify).map_err(|e| DialError::Other(e.to_string()))?;
    let connector = Some(transport::tls::connector(&url, &tls));
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE));
    // `true`: TCP_NODELAY, relayed messages must not wait for Nagle.
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, connector);
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
