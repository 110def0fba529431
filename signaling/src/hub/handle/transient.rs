//! `transient`: room-scoped shared data (facts 1.12).

use std::sync::Arc;
use std::time::Duration;

use proto::client::TransientRequest;
use proto::error::{ErrorCode, WireError};
use proto::permissions::Permission;
use proto::server::{ServerBody, ServerMessage, TransientEvent};
use proto::RawJson;

use crate::cluster::BusMessage;
use crate::hub::room::{Room, TransientSet};
use crate::hub::session::Session;
use crate::hub::{ConnCtx, Hub};

pub fn transient(
    hub: &Hub,
    ctx: &ConnCtx,
    session: &Arc<Session>,
    id: Option<String>,
    req: TransientRequest,
) {
    let Some(room) = session.room() else {
        ctx.reply_error(id, WireError::new(ErrorCode::NotInRoom));
        return;
    };
    let key = match &req {
        TransientRequest::Other(_) => {
            ctx.reply_error(id, WireError::new(ErrorCode::Ignored));
            return;
        }
        TransientRequest::Set { key, .. } | TransientRequest::Remove { key } => key.clone(),
    };
    if !session.is_internal() {
        if !session.has_permission(Permission::TransientData) {
            ctx.reply_error(
                id,
                WireError::with_message(
                    ErrorCode::NotAllowed,
                    "Not allowed to update transient data.",
                ),
            );
            return;
        }
        if let Some(owner) = key.strip_prefix("sd:") {
            if owner != session.public_id.as_str() {
                ctx.reply_error(
                    id,
                    WireError::with_message(
                        ErrorCode::NotAllowed,
                        "Not allowed to update this transient data entry.",
                    ),
                );
                return;
            }
        }
    }
    match req {
        TransientRequest::Set {
            value: Some(value),
            ttl_ns,
            ..
        } => set(hub, &room, &key, value, ttl_ns),
        TransientRequest::Set { value: None, .. } | TransientRequest::Remove { .. } => {
            remove(hub, &room, &key)
        }
        TransientRequest::Other(_) => {}
    }
}

fn publish(hub: &Hub, room: &Room, event: TransientEvent) {
    let msg = ServerMessage::new(ServerBody::Transient { transient: event });
    if let Err(e) = hub
        .inner
        .bus
        .publish(&room.subject(), Arc::new(BusMessage::new(msg)))
    {
        tracing::warn!(room = %room.id, error = %e, "could not publish transient update");
    }
}

pub(crate) fn set(hub: &Hub, room: &Arc<Room>, key: &str, value: RawJson, ttl_ns: i64) {
    let generation = match room.transient_set(key, value.clone()) {
        TransientSet::Unchanged { generation } => generation,
        TransientSet::Changed { old, generation } => {
            publish(
                hub,
                room,
                TransientEvent {
                    kind: "set".into(),
                    key: Some(key.to_owned()),
                    value: Some(value),
                    oldvalue: old,
                    data: None,
                },
            );
            generation
        }
    };
    if ttl_ns > 0 {
        let weak = Arc::downgrade(room);
        let hub = hub.clone();
        let key = key.to_owned();
        hub.inner.tasks.clone().spawn(async move {
            tokio::time::sleep(Duration::from_nanos(ttl_ns as u64)).await;
            let Some(room) = weak.upgrade() else { return };
            if let Some(old) = room.transient_expire(&key, generation) {
                publish(&hub, &room, remove_event(&key, Some(old)));
            }
        });
    }
}

fn remove_event(key: &str, old: Option<RawJson>) -> TransientEvent {
    TransientEvent {
        kind: "remove".into(),
        key: Some(key.to_owned()),
        value: None,
        oldvalue: old,
        data: None,
    }
}

pub(crate) fn remove(hub: &Hub, room: &Room, key: &str) {
    if let Some(old) = room.transient_remove(key) {
        publish(hub, room, remove_event(key, Some(old)));
    }
}

/// The `initial` message for a joiner, if the room has data.
pub(crate) fn initial(room: &Room) -> Option<ServerMessage> {
    let data = room.transient_snapshot();
    (!data.is_empty()).then(|| {
        ServerMessage::new(ServerBody::Transient {
            transient: TransientEvent {
                kind: "initial".into(),
                key: None,
                value: None,
                oldvalue: None,
                data: Some(data),
            },
        })
    })
}
