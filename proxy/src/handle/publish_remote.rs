//! `publish-remote` and `unpublish-remote`: another proxy asks us to
//! forward (or stop forwarding) a publisher's RTP to its Janus
//! (facts 6.7). The session remembers its forwardings so they stop when
//! it ends.

use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{RemoteTarget, ServerMessage};

use crate::reply::{command_done, error_message, unknown_client};
use crate::session::ProxySession;
use crate::state::Proxy;

pub async fn publish(
    proxy: &Arc<Proxy>,
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    target: RemoteTarget,
) -> ServerMessage {
    let Some(p) = proxy.janus_publisher(&client_id) else {
        return unknown_client(id, &client_id);
    };
    let result = p
        .publish_remotely(&session.id, &target.hostname, target.port, target.rtcp_port)
        .await;
    match result {
        Ok(()) => {
            session.add_remote(&client_id, target);
            command_done(id, client_id)
        }
        Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
    }
}

pub async fn unpublish(
    proxy: &Arc<Proxy>,
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    target: RemoteTarget,
) -> ServerMessage {
    let Some(p) = proxy.janus_publisher(&client_id) else {
        return unknown_client(id, &client_id);
    };
    session.remove_remote(&client_id, &target);
    let result = p
        .unpublish_remotely(&session.id, &target.hostname, target.port, target.rtcp_port)
        .await;
    match result {
        Ok(()) => command_done(id, client_id),
        Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
    }
}
