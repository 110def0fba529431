//! `message` and `control`: client-to-client delivery (facts 1.10, 1.11).

use std::sync::Arc;

use proto::client::{MessageRequest, Recipient, RecipientWire};
use proto::permissions::Permission;
use proto::server::{MessageDelivery, MessageSender, ServerBody, ServerMessage};

use crate::cluster::{BusMessage, Subject};
use crate::hub::media;
use crate::hub::session::Session;
use crate::hub::Hub;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Message,
    Control,
}

fn body(kind: Kind, delivery: MessageDelivery) -> ServerBody {
    match kind {
        Kind::Message => ServerBody::Message { message: delivery },
        Kind::Control => ServerBody::Control { control: delivery },
    }
}

fn recipient_wire(r: &Recipient) -> RecipientWire {
    RecipientWire {
        kind: r.kind().to_owned(),
        sessionid: match r {
            Recipient::Session(id) => Some(id.0.clone()),
            _ => None,
        },
        userid: match r {
            Recipient::User(u) => Some(u.clone()),
            _ => None,
        },
    }
}

pub fn message(
    hub: &Hub,
    sender: &Arc<Session>,
    id: Option<String>,
    req: MessageRequest,
    kind: Kind,
) {
    if kind == Kind::Control && !sender.is_internal() && !sender.has_permission(Permission::Control)
    {
        tracing::debug!(session = %sender.public_id, "control message without permission ignored");
        return;
    }
    let from = MessageSender {
        kind: req.recipient.kind().to_owned(),
        sessionid: sender.public_id.clone(),
        userid: sender.effective_user_id(),
    };
    // Only with an SFU are messages to sessions looked into: without one,
    // direct messages (the hot path) are relayed without a second parse.
    if let (Kind::Message, Recipient::Session(target), Some(_)) = (kind, &req.recipient, hub.sfu())
    {
        match data_type(&req.data).as_deref() {
            Some(t) if media::is_sfu_message(t) => {
                media::submit(hub, sender, id, target.clone(), &req.data);
                return;
            }
            Some("unshareScreen") if *target == sender.public_id => {
                media::unshare_screen(sender);
            }
            Some("sendoffer") => {
                media::send_offer(hub, sender, id, target, &req.data);
                return;
            }
            _ => {}
        }
    }
    let backend = &sender.backend;
    let (subject, recipient) = match &req.recipient {
        Recipient::Session(target) => {
            if *target == sender.public_id {
                return;
            }
            if let Some(local) = hub.inner.sessions.by_public(target) {
                // Sessions of different backends never see each other's
                // messages (facts 1.10). The reference lets control
                // messages through; we do not: a moderator of one
                // Nextcloud must not mute a session of another.
                if local.backend.id != backend.id {
                    tracing::debug!(session = %sender.public_id, "message to a session of another backend dropped");
                    return;
                }
                // Through the per-receiver rules: a virtual session's
                // messages go to its owner.
                let msg = ServerMessage::new(body(
                    kind,
                    MessageDelivery {
                        sender: Some(from),
                        recipient: None,
                        data: req.data,
                    },
                ));
                local.deliver(&Arc::new(BusMessage::new(msg)));
                return;
            }
            // A session on another node: its id says which backend it
            // belongs to (cluster nodes share the session keys).
            match hub.inner.codec.decode_public(target.as_str()) {
                Ok(data) if data.backend_id != backend.id.as_str() => {
                    tracing::debug!(session = %sender.public_id, "message to a session of another backend dropped");
                    return;
                }
                Ok(_) => {}
                // The reference drops control messages to ids it cannot
                // read and publishes plain messages anyway.
                Err(_) if kind == Kind::Control => return,
                Err(_) => {}
            }
            (
                Subject::Session(target.clone()),
                recipient_wire(&req.recipient),
            )
        }
        Recipient::User(user) => {
            if *user == sender.user_id {
                return;
            }
            (
                Subject::User {
                    backend: backend.id.clone(),
                    compat: backend.is_compat(),
                    user: user.clone(),
                },
                recipient_wire(&req.recipient),
            )
        }
        Recipient::Room | Recipient::Call => {
            let Some(room) = sender.room() else {
                return;
            };
            (room.subject(), recipient_wire(&req.recipient))
        }
    };
    let msg = ServerMessage::new(body(
        kind,
        MessageDelivery {
            sender: Some(from),
            recipient: Some(recipient),
            data: req.data,
        },
    ));
    hub.publish(&subject, BusMessage::new(msg));
}

/// The `type` of a message's `data`, if it is an object with one.
fn data_type(data: &proto::RawJson) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Typed {
        #[serde(rename = "type")]
        kind: Option<String>,
    }
    serde_json::from_str::<Typed>(data.get()).ok()?.kind
}
