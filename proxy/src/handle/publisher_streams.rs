//! `get-publisher-streams`: another proxy asks for the media lines of a
//! publisher here before it subscribes remotely (facts 6.7).

use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{CommandServer, ServerMessage};

use crate::reply::{command_reply, error_message, unknown_client};
use crate::state::Proxy;

pub async fn handle(proxy: &Arc<Proxy>, id: Option<String>, client_id: String) -> ServerMessage {
    let Some(p) = proxy.janus_publisher(&client_id) else {
        return unknown_client(id, &client_id);
    };
    let timeout = proxy.config.lock().timeout;
    match p.streams(timeout).await {
        Ok(streams) => command_reply(
            id,
            CommandServer {
                id: client_id,
                streams: Some(streams),
                ..Default::default()
            },
        ),
        Err(e) => error_message(id, ErrorCode::InternalError, &e.to_string()),
    }
}
