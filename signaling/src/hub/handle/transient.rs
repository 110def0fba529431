//! `transient`: room-scoped shared data (facts 1.12).

use std::sync::Arc;
use std::time::Duration;

use proto::client::TransientRequest;
use proto::error::{ErrorCode, WireError};
use proto::permissions::Permission;
use proto::server::{ServerBody, ServerMessage, TransientEvent};
use proto::RawJson;

use crate::cluster::bus::{now_us, TransientChange};
use crate::cluster::{BusMessage, BusPayload};
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
        } => set(hub, &room, &key, &value, ttl_ns),
        TransientRequest::Set { value: None, .. } | TransientRequest::Remove { .. } => {
            remove(hub, &room, &key)
        }
        TransientRequest::Other(_) => {}
    }
}

/// Sends a transient event to this node's members of `room`.
fn notify_local(room: &Room, event: TransientEvent) {
    let msg = Arc::new(BusMessage::new(ServerMessage::new(ServerBody::Transient {
        transient: event,
    })));
    for m in room.members() {
        m.deliver(&msg);
    }
}

/// Broadcasts a change to every node holding the room; each applies it to
/// its copy and tells its members ([`apply`]).
fn broadcast(hub: &Hub, room: &Room, change: TransientChange) {
    let msg = BusMessage::with_time(
        now_us(),
        BusPayload::Transient {
            room: room.id.clone(),
            change,
        },
    );
    hub.publish(&room.backend_subject(), msg);
}

pub(crate) fn set(hub: &Hub, room: &Arc<Room>, key: &str, value: &RawJson, ttl_ns: i64) {
    broadcast(
        hub,
        room,
        TransientChange::Set {
            key: key.to_owned(),
            value: serde_json::from_str(value.get()).unwrap_or(serde_json::Value::Null),
            ttl_ns,
        },
    );
}

pub(crate) fn remove(hub: &Hub, room: &Room, key: &str) {
    broadcast(
        hub,
        room,
        TransientChange::Remove {
            key: key.to_owned(),
        },
    );
}

/// Applies a change on this node (facts 1.12 semantics).
pub(crate) fn apply(hub: &Hub, room: &Arc<Room>, change: &TransientChange) {
    match change {
        TransientChange::Set { key, value, ttl_ns } => {
            let Ok(value) = serde_json::value::to_raw_value(value) else {
                return;
            };
            let generation = match room.transient_set(key, value.clone()) {
                TransientSet::Unchanged { generation } => generation,
                TransientSet::Changed { old, generation } => {
                    notify_local(
                        room,
                        TransientEvent {
                            kind: "set".into(),
                            key: Some(key.clone()),
                            value: Some(value.clone()),
                            oldvalue: old,
                            data: None,
                        },
                    );
                    generation
                }
            };
            if *ttl_ns > 0 {
                let weak = Arc::downgrade(room);
                let key = key.clone();
                let ttl = Duration::from_nanos(*ttl_ns as u64);
                hub.inner.tasks.spawn(async move {
                    tokio::time::sleep(ttl).await;
                    let Some(room) = weak.upgrade() else { return };
                    if let Some(old) = room.transient_expire(&key, generation) {
                        notify_local(&room, remove_event(&key, Some(old)));
                    }
                });
            }
        }
        TransientChange::Remove { key } => {
            if let Some(old) = room.transient_remove(key) {
                notify_local(room, remove_event(key, Some(old)));
            }
        }
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

/// Entries another node had before this node held the room: stored, and
/// sent to the local members as an extra `initial` (facts 1.12: clients
/// merge several `initial` messages).
pub(crate) fn merge_remote(room: &Room, data: &serde_json::Map<String, serde_json::Value>) {
    if data.is_empty() {
        return;
    }
    let added = room.transient_merge(data);
    if added.is_empty() {
        return;
    }
    let msg = Arc::new(BusMessage::new(ServerMessage::new(ServerBody::Transient {
        transient: TransientEvent {
            kind: "initial".into(),
            key: None,
            value: None,
            oldvalue: None,
            data: Some(added),
        },
    })));
    for m in room.members() {
        m.deliver(&msg);
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
