//! The messages the proxy sends (facts 6.2), built in one place.

use std::sync::Arc;

use proto::error::{ErrorCode, WireError};
use proto::proxy::{ByeServer, CommandServer, EventServer, PayloadServer, ServerMessage};
use serde_json::Value;
use transport::ws::{Outbox, CLOSE_GOING_AWAY, CLOSE_NORMAL};

pub fn event_message(event: EventServer) -> ServerMessage {
    ServerMessage {
        kind: "event".into(),
        event: Some(event),
        ..Default::default()
    }
}

/// An error with one of the shared codes.
pub fn error_message(id: Option<String>, code: ErrorCode, message: &str) -> ServerMessage {
    let mut e = WireError::new(code);
    if !message.is_empty() {
        e.message = message.to_owned();
    }
    ServerMessage {
        id,
        kind: "error".into(),
        error: Some(e),
        ..Default::default()
    }
}

/// An error with one of the proxy's own codes (`proto::proxy::codes`).
pub fn other_error(id: Option<String>, code: &str, message: &str) -> ServerMessage {
    error_message(id, ErrorCode::Other(code.to_owned()), message)
}

pub fn command_reply(id: Option<String>, command: CommandServer) -> ServerMessage {
    ServerMessage {
        id,
        kind: "command".into(),
        command: Some(command),
        ..Default::default()
    }
}

/// A command's reply that only names the client it acted on.
pub fn command_done(id: Option<String>, client_id: String) -> ServerMessage {
    command_reply(
        id,
        CommandServer {
            id: client_id,
            ..Default::default()
        },
    )
}

pub fn unknown_client(id: Option<String>, client_id: &str) -> ServerMessage {
    other_error(
        id,
        proto::proxy::codes::UNKNOWN_CLIENT,
        &format!("Unknown client {client_id}"),
    )
}

pub fn payload(kind: &str, client_id: &str, payload: Value) -> ServerMessage {
    ServerMessage {
        kind: "payload".into(),
        payload: Some(PayloadServer {
            kind: kind.into(),
            client_id: client_id.into(),
            payload: Some(payload),
        }),
        ..Default::default()
    }
}

/// Queues `msg` on a connection.
pub fn send(outbox: &Outbox, msg: &ServerMessage) {
    if let Ok(text) = serde_json::to_string(msg) {
        outbox.send_text(Arc::from(text));
    }
}

/// Sends `bye` with a reason, then closes the connection (1001 when the
/// proxy is going away, 1000 otherwise).
pub fn send_bye(outbox: &Outbox, reason: &str) {
    let msg = ServerMessage {
        kind: "bye".into(),
        bye: Some(ByeServer {
            reason: reason.into(),
        }),
        ..Default::default()
    };
    send(outbox, &msg);
    let code = if reason == "shutdown" {
        CLOSE_GOING_AWAY
    } else {
        CLOSE_NORMAL
    };
    outbox.close(code, "");
}
