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

pub enum Action {
    Publish,
    Unpublish,
}

pub async fn handle(
    proxy: &Arc<Proxy>,
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    target: RemoteTarget,
    action: Action,
) -> ServerMessage {
    let Some(p) = proxy.janus_publisher(&client_id) else {
        return unknown_client(id, &client_id);
    };
    let (host, port, rtcp_port) = (&target.hostname, target.port, target.rtcp_port);
    let result = match action {
        Action::Publish => {
            let r = p.publish_remotely(&session.id, host, port, rtcp_port).await;
            if r.is_ok() {
                session.add_remote(&client_id, target.clone());
            }
            r
        }
        Action::Unpublish => {
            session.remove_remote(&client_id, &target);
            p.unpublish_remotely(&session.id, host, port, rtcp_port)
                .await
        }
    };
    match result {
        Ok(()) => command_done(id, client_id),
        Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
    }
}
