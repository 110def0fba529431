//! `create-subscriber`: a subscriber on our Janus of a publisher here, or
//! of a publisher on another proxy (`remoteUrl`, facts 6.7).

use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{RemoteSource, ServerMessage};
use sfu_bridge::sfu::{Sfu, StreamType};

use super::hello::verify_token;
use crate::listener::ClientListener;
use crate::metrics::METRICS;
use crate::remote::{RemoteEvents, RemotePublisherController};
use crate::reply::error_message;
use crate::session::ProxySession;
use crate::state::Proxy;

pub async fn handle(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    publisher_id: &str,
    stream_type: &str,
    remote: Option<RemoteSource>,
) -> ServerMessage {
    let Ok(stream) = StreamType::parse(stream_type) else {
        return super::invalid_stream_type(id);
    };
    if let Some(remote) = remote {
        return remote_subscriber(proxy, session, id, publisher_id, stream, remote).await;
    }
    let listener = ClientListener::for_new_client(proxy, session);
    let client_id = listener.client_id.clone();
    let created = proxy
        .sfu
        .new_subscriber(listener, publisher_id, stream, None)
        .await;
    super::adopt(session, id, client_id, created, "subscriber").await
}

/// A subscriber of a publisher on the proxy at `remote.url`: allowed by a
/// token of a trusted signaling server whose subject is that publisher.
async fn remote_subscriber(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    publisher_id: &str,
    stream: StreamType,
    remote: RemoteSource,
) -> ServerMessage {
    let Some(identity) = proxy.identity.as_ref() else {
        return super::remote_unsupported(id);
    };
    match verify_token(proxy, &remote.token).await {
        Err(e) => return error_message(id, e.code(), ""),
        Ok(claims) if claims.subject != publisher_id => {
            METRICS
                .token_errors_total
                .with_label_values(&["auth-failed"])
                .inc();
            return error_message(id, ErrorCode::AuthFailed, "");
        }
        Ok(_) => {}
    }
    tracing::info!(
        publisher = publisher_id,
        url = remote.url,
        "creating remote subscriber"
    );
    let events: std::sync::Weak<dyn RemoteEvents> = Arc::downgrade(proxy) as _;
    let timeout = proxy.config.lock().timeout;
    let controller = RemotePublisherController::new(
        &proxy.remotes,
        events,
        identity,
        (&remote.url, publisher_id),
        timeout,
        &proxy.shutdown,
    );
    let listener = ClientListener::for_new_client(proxy, session);
    let client_id = listener.client_id.clone();
    let created = proxy
        .sfu
        .new_remote_subscriber(listener, controller, stream)
        .await;
    super::adopt(session, id, client_id, created, "subscriber").await
}
