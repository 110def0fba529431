//! One handler per proxy protocol message (cluster facts 6.2-6.7). Each
//! takes the decoded, validated message and returns the reply; the
//! connection sends it.

mod create_publisher;
mod create_subscriber;
mod delete;
pub mod hello;
mod payload;
mod publish_remote;
mod publisher_streams;

use std::sync::Arc;

use proto::error::ErrorCode;
use proto::proxy::{codes, Command, CommandServer, ServerMessage};
use sfu_bridge::sfu::{Client, SfuError};

use crate::reply::{command_reply, error_message, other_error};
use crate::session::ProxySession;
use crate::state::Proxy;

pub use payload::payload;

/// A `command` of `session`.
pub async fn command(
    proxy: &Arc<Proxy>,
    session: &Arc<ProxySession>,
    id: Option<String>,
    command: Command,
) -> ServerMessage {
    match command {
        Command::CreatePublisher {
            sid,
            stream_type,
            settings,
        } => create_publisher::handle(proxy, session, id, &sid, &stream_type, settings).await,
        Command::CreateSubscriber {
            publisher_id,
            stream_type,
            remote,
            ..
        } => {
            create_subscriber::handle(proxy, session, id, &publisher_id, &stream_type, remote).await
        }
        Command::DeletePublisher { client_id } => {
            delete::handle(session, id, client_id, delete::Kind::Publisher).await
        }
        Command::DeleteSubscriber { client_id } => {
            delete::handle(session, id, client_id, delete::Kind::Subscriber).await
        }
        Command::GetPublisherStreams { client_id } => {
            publisher_streams::handle(proxy, id, client_id).await
        }
        Command::PublishRemote { client_id, target } => {
            let action = publish_remote::Action::Publish;
            publish_remote::handle(proxy, session, id, client_id, target, action).await
        }
        Command::UnpublishRemote { client_id, target } => {
            let action = publish_remote::Action::Unpublish;
            publish_remote::handle(proxy, session, id, client_id, target, action).await
        }
        Command::Unsupported(kind) => other_error(
            id,
            codes::BAD_REQUEST,
            &format!("Unsupported command {kind}"),
        ),
    }
}

/// The reply to a create command with a stream type we do not know.
fn invalid_stream_type(id: Option<String>) -> ServerMessage {
    error_message(id, ErrorCode::InvalidFormat, "unsupported stream type")
}

/// Adds a created publisher or subscriber to the session and builds the
/// reply: its id, and its bitrate (publishers) or sid (subscribers).
async fn adopt(
    session: &ProxySession,
    id: Option<String>,
    client_id: String,
    created: Result<Arc<dyn Client>, SfuError>,
    what: &str,
) -> ServerMessage {
    let client = match created {
        Ok(c) => c,
        Err(e) => return sfu_failure(id, e, what),
    };
    if !session.add(client_id.clone(), client.clone()) {
        client.close().await;
        return error_message(id, ErrorCode::NoSuchSession, "");
    }
    let mut reply = CommandServer {
        id: client_id,
        ..Default::default()
    };
    if client.client_ref().is_publisher {
        reply.bitrate = Some(client.max_bitrate());
    } else {
        reply.sid = client.sid();
    }
    command_reply(id, reply)
}

fn sfu_failure(id: Option<String>, e: SfuError, what: &str) -> ServerMessage {
    match e {
        SfuError::RemoteUnsupported => remote_unsupported(id),
        SfuError::NoPublisher(_) | SfuError::Janus(sfu_bridge::janus::JanusError::Timeout) => {
            other_error(id, codes::TIMEOUT, &format!("Timeout creating {what}."))
        }
        other => error_message(id, ErrorCode::InternalError, &other.to_string()),
    }
}

fn remote_unsupported(id: Option<String>) -> ServerMessage {
    other_error(
        id,
        codes::UNSUPPORTED_SUBSCRIBER,
        "Remote subscribers are not supported.",
    )
}
