//! `hello`: a new session signed in with a token of a trusted signaling
//! server, or a resumed one (facts 6.3, 6.4).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{
    EventServer, HelloClient, HelloServer, ServerInfo, ServerMessage, FEATURE_REMOTE_STREAMS,
    PROXY_VERSION,
};
use proto::proxy_token::{ProxyClaims, ProxyTokenError};
use proto::session_id::SessionIdData;
use transport::ws::Outbox;

use crate::metrics::METRICS;
use crate::reply::{error_message, event_message, send, send_bye};
use crate::session::ProxySession;
use crate::state::Proxy;
use crate::tokens::now_secs;

/// Answers the hello on `outbox`; the session, if it was accepted.
pub async fn hello(
    proxy: &Arc<Proxy>,
    outbox: &Outbox,
    id: Option<String>,
    hello: HelloClient,
) -> Option<Arc<ProxySession>> {
    let session = if !hello.resumeid.is_empty() {
        let Some(s) = proxy.session(&hello.resumeid) else {
            send(outbox, &error_message(id, ErrorCode::NoSuchSession, ""));
            return None;
        };
        if let Some(old) = s.attach(outbox.clone()) {
            send_bye(&old, "session_resumed");
        }
        METRICS.sessions_resumed_total.inc();
        s
    } else {
        if let Err(e) = verify_token(proxy, &hello.token).await {
            tracing::info!(error = %e, "proxy hello refused");
            send(outbox, &error_message(id, e.code(), ""));
            return None;
        }
        let sid = proxy.next_sid.fetch_add(1, Ordering::Relaxed);
        let data = SessionIdData {
            sid,
            created: now_us(),
            backend_id: String::new(),
        };
        let s = ProxySession::new(proxy.codec.encode_public(&data).0, sid);
        s.attach(outbox.clone());
        proxy.sessions.lock().insert(s.id.clone(), s.clone());
        METRICS.sessions.inc();
        METRICS.sessions_total.inc();
        s
    };
    let country = proxy.config.lock().country.clone();
    send(
        outbox,
        &ServerMessage {
            id,
            kind: "hello".into(),
            hello: Some(HelloServer {
                version: PROXY_VERSION.into(),
                sessionid: session.id.clone(),
                server: Some(ServerInfo {
                    version: proto::SERVER_VERSION.into(),
                    features: vec![FEATURE_REMOTE_STREAMS.into()],
                    country,
                }),
            }),
            ..Default::default()
        },
    );
    let first_event = if proxy.is_draining() {
        EventServer {
            kind: "shutdown-scheduled".into(),
            ..Default::default()
        }
    } else {
        proxy.load_event()
    };
    session.send(&event_message(first_event));
    Some(session)
}

/// Checks a token of a signaling server or proxy against `[tokens]`;
/// refusals are counted.
pub async fn verify_token(proxy: &Proxy, token: &str) -> Result<ProxyClaims, ProxyTokenError> {
    let key = match proto::proxy_token::issuer(token) {
        Some(iss) => proxy.tokens.get(&iss).await,
        None => None,
    };
    proto::proxy_token::verify(token, |_| key, now_secs()).inspect_err(|e| {
        METRICS
            .token_errors_total
            .with_label_values(&[e.reason()])
            .inc();
    })
}

/// Microseconds since the epoch, as session `created` stamps.
fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
