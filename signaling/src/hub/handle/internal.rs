//! `internal`: requests only internal clients (SIP bridge, recording
//! server) may send (facts 1.13): virtual sessions, in-call flags, dialout
//! replies.

use std::sync::Arc;

use proto::client::{
    AddSessionWire, DialoutWire, InternalRequest, RemoveSessionWire, UpdateSessionWire,
};
use proto::error::{ErrorCode, WireError};
use proto::event::{Event, FlagsEntry, ParticipantsEvent, RoomEvent};
use proto::ids::{RoomId, RoomSessionId};
use proto::permissions::flags;
use proto::server::{ServerBody, ServerMessage};
use proto::session_id::SessionIdData;
use proto::talk::request::{self, BackendRequest, SessionRequest, BACKEND_VERSION};

use crate::cluster::bus::now_us;
use crate::cluster::{BusMessage, Subscription};
use crate::hub::session::{ClientType, Joined, NewSession, Session, VirtualOwner};
use crate::hub::{ConnCtx, Hub, HubError};
use crate::metrics::METRICS;

pub async fn internal(
    hub: &Hub,
    ctx: &ConnCtx,
    session: &Arc<Session>,
    id: Option<String>,
    req: InternalRequest,
) {
    // A reply to a dialout request the server sent is handed to its waiter
    // first (facts 1.13).
    let req = match req {
        InternalRequest::Dialout(d) => match hub.answer_dialout(id.as_deref(), d) {
            Some(d) => InternalRequest::Dialout(d),
            None => return,
        },
        other => other,
    };
    match req {
        InternalRequest::AddSession(a) => {
            if let Err(e) = add_session(hub, session, a).await {
                ctx.reply_error(id, e.into_wire());
            }
        }
        InternalRequest::UpdateSession(u) => update_session(hub, session, u),
        InternalRequest::RemoveSession(r) => remove_session(hub, ctx, session, id, r),
        InternalRequest::InCall(v) => {
            let old = session.set_in_call(v);
            tracing::debug!(session = %session.public_id, old, new = v, "internal incall");
            if old != v {
                if let Some(room) = session.room() {
                    room.set_in_call(&session.public_id, v & flags::IN_CALL != 0);
                    hub.broadcast_cached_participants(&room);
                }
            }
        }
        InternalRequest::Dialout(d) => dialout_status(hub, d),
        InternalRequest::Unknown(kind) => {
            tracing::debug!(session = %session.public_id, kind, "unknown internal request ignored");
        }
    }
}

fn publish_room(hub: &Hub, room: &crate::hub::room::Room, msg: ServerMessage) {
    hub.publish(&room.subject(), BusMessage::new(msg));
}

pub(super) fn flags_event(room: &RoomId, session: &Session, f: u32) -> ServerMessage {
    ServerMessage::new(ServerBody::Event {
        event: Event::Participants(ParticipantsEvent::Flags {
            flags: FlagsEntry {
                roomid: room.0.clone(),
                sessionid: session.public_id.clone(),
                flags: f,
            },
        }),
    })
}

/// `addsession` (facts 1.13.1).
async fn add_session(hub: &Hub, owner: &Arc<Session>, a: AddSessionWire) -> Result<(), HubError> {
    let room_id = RoomId(a.roomid.clone());
    let Some(room) = hub.inner.rooms.get(&owner.backend.id, &room_id) else {
        tracing::debug!(room = %room_id, "addsession for a room that does not exist here");
        return Ok(());
    };
    let index = hub.next_session_index();
    let data = SessionIdData {
        sid: index,
        created: now_us(),
        backend_id: owner.backend.id.0.clone(),
    };
    let internal_incall = owner.has_feature(proto::features::CLIENT_INTERNAL_INCALL);
    let in_call = a.incall.unwrap_or(if internal_incall {
        0
    } else {
        flags::IN_CALL | flags::WITH_PHONE
    });
    let actor = a
        .options
        .as_ref()
        .filter(|o| !o.actor_id.is_empty() && !o.actor_type.is_empty())
        .map(|o| (o.actor_id.clone(), o.actor_type.clone()));
    let codec = &hub.inner.codec;
    let session = Arc::new(Session::new(NewSession {
        tasks: hub.inner.tasks.clone(),
        index,
        public_id: codec.encode_public(&data),
        private_id: codec.encode_private(&data),
        client_type: ClientType::Virtual,
        backend: owner.backend.clone(),
        backend_url: owner.backend_url.clone(),
        user_id: a.userid.clone().unwrap_or_default(),
        user_data: a.user.clone(),
        features: Vec::new(),
        virtual_owner: Some(VirtualOwner {
            owner: Arc::downgrade(owner),
            owner_id: owner.public_id.clone(),
            client_id: a.sessionid.clone(),
            room_id: room_id.clone(),
            actor: actor.clone(),
        }),
        in_call,
        flags: a.flags.unwrap_or(0),
    }));

    // Tell Nextcloud first; a refusal leaves nothing behind.
    let client = &hub.inner.client;
    match &actor {
        Some((actor_id, actor_type)) => {
            let req = BackendRequest::Room {
                room: request::RoomRequest {
                    version: BACKEND_VERSION.into(),
                    roomid: room_id.0.clone(),
                    userid: session.user_id.clone(),
                    sessionid: session.public_id.0.clone(),
                    action: None,
                    actorid: Some(actor_id.clone()),
                    actortype: Some(actor_type.clone()),
                    incall: (in_call != 0).then_some(in_call),
                },
            };
            let resp = client
                .request(&owner.backend, &owner.backend_url, &req)
                .await
                .map_err(|_| {
                    WireError::with_message(ErrorCode::AddFailed, "Could not join virtual session.")
                })?;
            if let (Some(e), "error") = (resp.error, resp.kind.as_str()) {
                return Err(WireError::with_message(ErrorCode::AddFailed, e.message).into());
            }
        }
        None => {
            let req = session_request(&session, &room_id, "add");
            client
                .request(&owner.backend, &owner.backend_url, &req)
                .await
                .map_err(|_| {
                    WireError::with_message(ErrorCode::AddFailed, "Could not add virtual session.")
                })?;
        }
    }
    if owner.is_closed() || room.is_closed() {
        return Ok(());
    }
    if hub.inner.sessions.register(&session, 0).is_err() {
        return Err(ErrorCode::AddFailed.into());
    }
    match hub.inner.bus.subscribe(
        &crate::cluster::Subject::Session(session.public_id.clone()),
        hub.session_sink(&session, crate::hub::session::SubjectKind::Session),
    ) {
        Ok(sub) => session.add_subscription(sub),
        Err(e) => tracing::warn!(error = %e, "could not subscribe virtual session"),
    }
    let (room, _) = hub.join_local_room(&session, &owner.backend, &room_id, None);
    let room_session = RoomSessionId(session.public_id.0.clone());
    hub.claim_room_session(&session, &room_session);
    session.set_room(Joined::new(
        room.clone(),
        room_session,
        now_us(),
        None,
        Subscription::new(()),
    ));
    METRICS
        .room_sessions
        .with_label_values(&[owner.backend.id.as_str(), room.id.as_str(), "virtual"])
        .inc();
    let join = ServerMessage::new(ServerBody::Event {
        event: Event::Room(RoomEvent::Join {
            join: vec![hub.join_entry(&session)],
        }),
    });
    publish_room(hub, &room, join);
    hub.broadcast_cached_participants(&room);
    if session.flags() != 0 {
        publish_room(hub, &room, flags_event(&room.id, &session, session.flags()));
    }
    Ok(())
}

fn session_request(session: &Session, room: &RoomId, action: &str) -> BackendRequest {
    BackendRequest::Session {
        session: SessionRequest {
            version: BACKEND_VERSION.into(),
            roomid: room.0.clone(),
            action: action.into(),
            sessionid: session.public_id.0.clone(),
            userid: (!session.user_id.is_empty()).then(|| session.user_id.clone()),
            user: session.user_data.clone(),
        },
    }
}

/// `updatesession` (facts 1.13.2).
fn update_session(hub: &Hub, owner: &Arc<Session>, u: UpdateSessionWire) {
    let Some(session) = hub
        .inner
        .sessions
        .virtual_session(&owner.public_id, &u.sessionid)
    else {
        return;
    };
    let Some(room) = session.room() else { return };
    if let Some(f) = u.flags {
        if session.set_flags(f) != f {
            publish_room(hub, &room, flags_event(&room.id, &session, f));
        }
    }
    if let Some(v) = u.incall {
        if session.set_in_call(v) != v {
            room.set_in_call(&session.public_id, v & flags::IN_CALL != 0);
            hub.broadcast_cached_participants(&room);
        }
    }
}

/// `removesession` (facts 1.13.3).
fn remove_session(
    hub: &Hub,
    ctx: &ConnCtx,
    owner: &Arc<Session>,
    id: Option<String>,
    r: RemoveSessionWire,
) {
    let Some(session) = hub
        .inner
        .sessions
        .virtual_session(&owner.public_id, &r.sessionid)
    else {
        return;
    };
    let outbox = ctx.outbox.clone();
    close_virtual(hub, &session, Some((outbox, id)));
}

/// Closes a virtual session and tells Nextcloud in the background; errors
/// go to `reply` if given.
pub(crate) fn close_virtual(
    hub: &Hub,
    session: &Arc<Session>,
    reply: Option<(crate::client::Outbox, Option<String>)>,
) {
    let room = session.room();
    hub.close_session(session, false);
    if let Some(room) = &room {
        room.remove_participant(&session.public_id);
    }
    let Some(v) = &session.virtual_owner else {
        return;
    };
    let req = match &v.actor {
        Some((actor_id, actor_type)) => BackendRequest::Room {
            room: request::RoomRequest {
                version: BACKEND_VERSION.into(),
                roomid: v.room_id.0.clone(),
                userid: session.user_id.clone(),
                sessionid: session.public_id.0.clone(),
                action: Some("leave".into()),
                actorid: Some(actor_id.clone()),
                actortype: Some(actor_type.clone()),
                incall: None,
            },
        },
        None => session_request(session, &v.room_id, "remove"),
    };
    let client = hub.inner.client.clone();
    let backend = session.backend.clone();
    let url = session.backend_url.clone();
    hub.inner.tasks.spawn(async move {
        let error = match client.request(&backend, &url, &req).await {
            Err(e) => {
                tracing::warn!(error = %e, "removing a virtual session from Nextcloud failed");
                Some(WireError::with_message(
                    ErrorCode::RemoveFailed,
                    "Could not remove virtual session from backend.",
                ))
            }
            Ok(resp) => match resp.error {
                Some(e) if resp.kind == "error" && e.code.as_str() != "no_such_room" => {
                    Some(WireError::with_message(ErrorCode::RemoveFailed, e.message))
                }
                _ => None,
            },
        };
        if let (Some(e), Some((outbox, id))) = (error, reply) {
            outbox.send_text(ServerMessage::error(id, e).to_json().into());
        }
    });
}

/// A dialout message that was not a reply: store call status or broadcast
/// (facts 1.13.5).
fn dialout_status(hub: &Hub, d: DialoutWire) {
    let Some(room_id) = d.roomid.clone().filter(|r| !r.is_empty()) else {
        return;
    };
    let room = hub
        .backends()
        .all()
        .iter()
        .find_map(|b| hub.inner.rooms.get(&b.id, &RoomId(room_id.clone())));
    let Some(room) = room else { return };
    match (d.kind.as_str(), &d.status) {
        ("status", Some(status)) => {
            #[derive(serde::Deserialize)]
            struct Status {
                #[serde(default)]
                callid: String,
                #[serde(default)]
                status: String,
            }
            let Ok(st) = serde_json::from_str::<Status>(status.get()) else {
                return;
            };
            let ttl = if matches!(st.status.as_str(), "cleared" | "rejected") {
                5_000_000_000
            } else {
                0
            };
            super::transient::set(
                hub,
                &room,
                &format!("callstatus_{}", st.callid),
                status,
                ttl,
            );
        }
        _ => {
            let mut d = d;
            d.roomid = None;
            let Ok(raw) = serde_json::value::to_raw_value(&d) else {
                return;
            };
            crate::hub::notify::deliver_all(
                &room.members(),
                ServerMessage::new(ServerBody::Dialout { dialout: raw }),
            );
        }
    }
}
