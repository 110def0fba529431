//! `delete-publisher` and `delete-subscriber`: the session's client closes.

use proto::proxy::ServerMessage;

use crate::reply::{command_done, unknown_client};
use crate::session::ProxySession;

pub enum Kind {
    Publisher,
    Subscriber,
}

pub async fn handle(
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    kind: Kind,
) -> ServerMessage {
    let client = match kind {
        Kind::Publisher => session.remove_publisher(&client_id),
        Kind::Subscriber => session.remove_subscriber(&client_id),
    };
    let Some(client) = client else {
        return unknown_client(id, &client_id);
    };
    client.close().await;
    command_done(id, client_id)
}
