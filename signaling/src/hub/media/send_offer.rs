//! `sendoffer` (cluster facts 1.6 step 5, 4.3): a publisher has the SFU
//! offer its stream to a recipient that did not ask for it (a screen
//! share shown to somebody who joined late). The recipient's node gets or
//! creates the recipient's subscriber of (sender, roomType) and sends the
//! SFU's offer to the recipient as if it came from the sender. A recipient
//! on another node gets the request as a `sendoffer` bus message; failures
//! go back to the sender as errors with its message id.

use std::sync::Arc;

use proto::error::{ErrorCode, WireError};
use proto::ids::PublicSessionId;
use proto::server::ServerMessage;
use proto::RawJson;
use serde::Deserialize;
use serde_json::Value;
use sfu_bridge::sfu::{Request, StreamSelection, StreamType};

use super::{
    error, may_send_offer, reply_error, sfu_message, subscriber_for, validate, Session, SfuData,
};
use crate::cluster::{BusMessage, BusPayload, Subject};
use crate::hub::Hub;

/// A client's `sendoffer` to `target`.
pub(crate) fn send_offer(
    hub: &Hub,
    sender: &Arc<Session>,
    id: Option<String>,
    target: &PublicSessionId,
    raw: &RawJson,
) {
    let data: Value = match serde_json::from_str(raw.get()) {
        Ok(d) => d,
        Err(_) => return reply_error(sender, id, WireError::new(ErrorCode::InvalidFormat)),
    };
    let parsed = match SfuData::deserialize(&data).ok() {
        Some(p) => p,
        None => return reply_error(sender, id, WireError::new(ErrorCode::InvalidFormat)),
    };
    if let Err(e) = validate(&parsed) {
        return reply_error(sender, id, e);
    }
    let stream = StreamType::parse(&parsed.room_type).unwrap_or(StreamType::Video);
    if !may_send_offer(sender, stream) {
        return reply_error(
            sender,
            id,
            error(ErrorCode::NotAllowed, "Not allowed to send offer"),
        );
    }
    if *target == sender.public_id {
        return;
    }
    if let Some(recipient) = hub.inner.sessions.by_public(target) {
        // Sessions of different backends never reach each other.
        if recipient.backend.id != sender.backend.id {
            return;
        }
        let (hub, publisher) = (hub.clone(), sender.public_id.clone());
        hub.inner
            .tasks
            .clone()
            .spawn(async move { offer_to(&hub, &recipient, publisher, id, parsed).await });
        return;
    }
    let other_backend = hub
        .inner
        .codec
        .decode_public(target.as_str())
        .is_ok_and(|d| d.backend_id != sender.backend.id.as_str());
    if other_backend {
        return;
    }
    if hub.inner.bus.is_single_node() {
        tracing::debug!(session = %sender.public_id, target = %target, "sendoffer to an unknown session");
        return reply_error(sender, id, WireError::new(ErrorCode::ClientNotFound));
    }
    let msg = BusMessage::with_time(
        crate::cluster::bus::now_us(),
        BusPayload::SendOffer {
            message_id: id,
            sender: sender.public_id.clone(),
            data,
        },
    );
    hub.publish(&Subject::Session(target.clone()), msg);
}

/// A `sendoffer` from another node for `recipient`, a session of ours.
pub(crate) fn send_offer_received(
    hub: &Hub,
    recipient: &Arc<Session>,
    message_id: Option<String>,
    sender: PublicSessionId,
    data: &Value,
) {
    let Some(parsed) = SfuData::deserialize(data).ok() else {
        tracing::debug!(session = %recipient.public_id, "undecodable sendoffer from another node");
        return;
    };
    let (hub, recipient) = (hub.clone(), recipient.clone());
    hub.inner
        .tasks
        .clone()
        .spawn(async move { offer_to(&hub, &recipient, sender, message_id, parsed).await });
}

/// Subscribes `recipient` to `publisher`'s stream and sends it the SFU's
/// offer. Runs on its own: the publisher may still be starting.
async fn offer_to(
    hub: &Hub,
    recipient: &Arc<Session>,
    publisher: PublicSessionId,
    id: Option<String>,
    data: SfuData,
) {
    let Some(sfu) = hub.inner.sfu.clone() else {
        return;
    };
    let stream = StreamType::parse(&data.room_type).unwrap_or(StreamType::Video);
    let subscriber = match subscriber_for(&sfu, recipient, &publisher, stream).await {
        Ok(Some(s)) => s,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!(recipient = %recipient.public_id, publisher = %publisher, error = %e, "sendoffer: no subscriber");
            return reply_to_sender(hub, &publisher, id, ErrorCode::ClientNotFound);
        }
    };
    let result = match StreamSelection::from_payload(&data.payload) {
        Ok(selection) => {
            subscriber
                .send(Request::RequestOffer(selection), &data.sid)
                .await
        }
        Err(e) => Err(e),
    };
    match result {
        Ok(Some(offer)) => recipient.send(&sfu_message(
            None,
            recipient,
            &publisher,
            "offer",
            stream,
            offer,
            &subscriber.sid(),
        )),
        Ok(None) => {}
        Err(e) => {
            tracing::debug!(recipient = %recipient.public_id, publisher = %publisher, error = %e, "sendoffer failed");
            reply_to_sender(hub, &publisher, id, ErrorCode::ProcessingFailed);
        }
    }
}

/// An error for the sender of a `sendoffer`, wherever it is.
fn reply_to_sender(hub: &Hub, sender: &PublicSessionId, id: Option<String>, code: ErrorCode) {
    let e = WireError::new(code);
    match hub.inner.sessions.by_public(sender) {
        Some(s) => reply_error(&s, id, e),
        None => hub.publish(
            &Subject::Session(sender.clone()),
            BusMessage::new(ServerMessage::error(id, e)),
        ),
    }
}
