//! `room`: join, switch and leave (facts 1.9, 5.6, 5.7).

use std::sync::Arc;

use proto::client::RoomRequest;
use proto::error::{ErrorCode, WireError};
use proto::event::{Event, RoomEvent};
use proto::ids::{RoomId, RoomSessionId};
use proto::permissions::Permissions;
use proto::server::{Bandwidth, RoomMessage, ServerBody, ServerMessage};
use proto::talk::request::{self, BackendRequest, BACKEND_VERSION};
use proto::RawJson;

use crate::cluster::bus::now_us;
use crate::cluster::BusMessage;
use crate::hub::room::Room;
use crate::hub::session::{ClientType, Joined, Session};
use crate::hub::{ConnCtx, Hub, HubError};
use crate::metrics::METRICS;

pub async fn room(
    hub: &Hub,
    ctx: &ConnCtx,
    session: &Arc<Session>,
    id: Option<String>,
    req: RoomRequest,
) {
    if req.room_id.is_empty() {
        if let Some(fed) = session.take_federation() {
            // The remote answers the leave; its reply is relayed.
            let mut msg = serde_json::json!({"type": "room", "room": {"roomid": ""}});
            if let Some(id) = &id {
                msg["id"] = serde_json::Value::String(id.clone());
            }
            fed.leave(Some(msg));
            return;
        }
        if leave_room(hub, session, true) {
            if session.user_id.is_empty() && session.client_type != ClientType::Internal {
                session.set_join_deadline(Some(
                    tokio::time::Instant::now() + super::hello::ANONYMOUS_JOIN_TIMEOUT,
                ));
            }
            ctx.reply(&ServerMessage::reply(
                id,
                room_body(String::new(), None, None),
            ));
        }
        return;
    }
    if let Some(fed) = req.federation.clone() {
        join_federated(hub, ctx, session, id, req, fed).await;
        return;
    }
    if let Err(e) = join(hub, ctx, session, id.clone(), req).await {
        ctx.reply_error(id, e.into_wire());
    }
}

fn room_body(
    roomid: String,
    properties: Option<RawJson>,
    bandwidth: Option<Bandwidth>,
) -> ServerBody {
    ServerBody::Room {
        room: RoomMessage {
            roomid,
            properties,
            bandwidth,
        },
    }
}

/// The reply to Talk's join answer, in the shape of facts 2.5.2.
struct TalkJoin {
    properties: Option<RawJson>,
    room_user_id: Option<String>,
    permissions: Option<Vec<String>>,
}

async fn ask_talk(
    hub: &Hub,
    session: &Session,
    room_id: &RoomId,
    room_session: &RoomSessionId,
) -> Result<TalkJoin, HubError> {
    if session.is_internal() {
        return Ok(TalkJoin {
            properties: None,
            room_user_id: None,
            permissions: None,
        });
    }
    let sessionid = if room_session.is_empty() {
        session.public_id.0.clone()
    } else {
        room_session.0.clone()
    };
    let req = room_request(session, room_id, sessionid, None);
    let resp = hub
        .inner
        .client
        .request(&session.backend, &session.backend_url, &req)
        .await?;
    match (resp.kind.as_str(), resp.error, resp.room) {
        ("error", Some(e), _) => Err(e.into()),
        ("room", _, Some(room)) => {
            #[derive(serde::Deserialize)]
            struct SessionData {
                #[serde(default)]
                userid: String,
            }
            let room_user_id = room
                .session
                .and_then(|s| serde_json::from_str::<SessionData>(s.get()).ok())
                .map(|s| s.userid)
                .filter(|u| !u.is_empty());
            Ok(TalkJoin {
                properties: room.properties,
                room_user_id,
                permissions: room.permissions,
            })
        }
        _ => Err(ErrorCode::RoomJoinFailed.into()),
    }
}

/// A join (`action: None`) or leave request for Talk (facts 2.5.2).
fn room_request(
    session: &Session,
    room_id: &RoomId,
    sessionid: String,
    action: Option<&str>,
) -> BackendRequest {
    let (actorid, actortype) = actor(session);
    BackendRequest::Room {
        room: request::RoomRequest {
            version: BACKEND_VERSION.into(),
            roomid: room_id.0.clone(),
            userid: session.user_id.clone(),
            sessionid,
            action: action.map(str::to_owned),
            actorid,
            actortype,
            incall: None,
        },
    }
}

/// Actor fields for federated sessions, from their user data (facts 2.5.2).
fn actor(session: &Session) -> (Option<String>, Option<String>) {
    if session.client_type != ClientType::Federation {
        return (None, None);
    }
    let data: serde_json::Value = session
        .user_data
        .as_ref()
        .and_then(|d| serde_json::from_str(d.get()).ok())
        .unwrap_or_default();
    match (data["actorId"].as_str(), data["actorType"].as_str()) {
        (Some(id), Some(kind)) => (Some(id.to_owned()), Some(kind.to_owned())),
        _ => (None, None),
    }
}

fn bandwidth(hub: &Hub, session: &Session) -> Option<Bandwidth> {
    let pick = |sfu: u64, backend: u64| match (sfu, backend) {
        (0, b) => b,
        (s, 0) => s,
        (s, b) => s.min(b),
    };
    let (sfu_stream, sfu_screen) = hub.sfu().map(|s| s.max_bitrates()).unwrap_or((0, 0));
    let bw = Bandwidth {
        maxstreambitrate: pick(sfu_stream, session.backend.max_stream_bitrate),
        maxscreenbitrate: pick(sfu_screen, session.backend.max_screen_bitrate),
    };
    (bw.maxstreambitrate != 0 || bw.maxscreenbitrate != 0).then_some(bw)
}

async fn join(
    hub: &Hub,
    ctx: &ConnCtx,
    session: &Arc<Session>,
    id: Option<String>,
    req: RoomRequest,
) -> Result<(), HubError> {
    let room_session = req.session_id;
    // Already in this room: only the room session id changes (facts 5.10).
    if let Some(current) = session.room() {
        if current.id == req.room_id && current.backend.id == session.backend.id {
            let new_id = if room_session.is_empty() {
                RoomSessionId(session.public_id.0.clone())
            } else {
                room_session
            };
            if let Some(old) = session.room_session_id() {
                hub.release_room_session(session, &old);
            }
            hub.claim_room_session(session, &new_id);
            session.set_room_session_id(new_id);
            let mut details = serde_json::json!({"room": {"roomid": current.id.0}});
            if let Some(p) = current.properties() {
                let props: serde_json::Value =
                    serde_json::from_str(p.get()).unwrap_or(serde_json::Value::Null);
                details["room"]["properties"] = props;
            }
            let details = serde_json::value::to_raw_value(&details)
                .map_err(|_| HubError::from(ErrorCode::InternalError))?;
            return Err(WireError::new(ErrorCode::AlreadyJoined)
                .with_details(details)
                .into());
        }
    }

    let talk = ask_talk(hub, session, &req.room_id, &room_session).await?;
    if session.is_closed() || ctx.outbox.is_closed() {
        return Ok(());
    }

    // One connection per Talk session: kick whoever holds this id.
    if !room_session.is_empty() {
        // Other nodes kick theirs when the id is claimed below.
        hub.kick_room_session(&session.backend.id, &room_session, &session.public_id);
    }

    leave_room(hub, session, true);
    if let Some(fed) = session.take_federation() {
        fed.leave(None);
    }

    let backend = session.backend.clone();
    let effective_room_session = if room_session.is_empty() {
        RoomSessionId(session.public_id.0.clone())
    } else {
        room_session
    };
    let (room, others) =
        hub.join_local_room(session, &backend, &req.room_id, talk.properties.clone());
    let sink = hub.session_sink(session, crate::hub::session::SubjectKind::Room);
    let subscription = match hub.inner.bus.subscribe(&room.subject(), sink) {
        Ok(s) => s,
        Err(e) => {
            room.remove(&session.public_id);
            hub.inner.rooms.remove_closed(&room);
            session.send(&ServerMessage::new(room_body(String::new(), None, None)));
            return Err(WireError::with_message(ErrorCode::InternalError, e.to_string()).into());
        }
    };
    hub.claim_room_session(session, &effective_room_session);
    session.set_room(Joined::new(
        room.clone(),
        effective_room_session,
        now_us(),
        talk.room_user_id,
        subscription,
    ));
    if let Some(perms) = &talk.permissions {
        session.set_permissions(Permissions::from_list(perms.iter().map(String::as_str)));
    }
    room_session_metric(&room, session).inc();

    // Our room subscription must be live before anybody announces events.
    hub.inner.bus.barrier().await;
    ctx.reply(&ServerMessage::reply(
        id,
        room_body(
            room.id.0.clone(),
            room.properties(),
            bandwidth(hub, session),
        ),
    ));

    // The reference's order (facts 1.14): the room's transient data
    // (sent directly, while the events below travel through its bus),
    // the sessions that were already here and the flags of virtual ones
    // among them, then the joiner's own join event to everybody, then the
    // participants update an internal joiner triggers. Clients such as
    // the recording server take a join of a known session after their
    // own as a reconnect.
    if let Some(initial) = super::transient::initial(&room) {
        session.send(&initial);
    }
    let mut others = others;
    others.sort_by_key(|s| s.index);
    let entries: Vec<_> = others.iter().map(|s| hub.join_entry(s)).collect();
    let fresh = session.mark_seen(entries.iter().map(|e| &e.sessionid));
    let entries: Vec<_> = entries
        .into_iter()
        .filter(|e| fresh.contains(&e.sessionid))
        .collect();
    if !entries.is_empty() {
        session.send(&ServerMessage::new(ServerBody::Event {
            event: Event::Room(RoomEvent::Join { join: entries }),
        }));
    }
    for other in others.iter().filter(|s| s.is_virtual() && s.flags() != 0) {
        session.send(&super::internal::flags_event(
            &room.id,
            other,
            other.flags(),
        ));
    }
    let own = hub.join_entry(session);
    let event = ServerMessage::new(ServerBody::Event {
        event: Event::Room(RoomEvent::Join { join: vec![own] }),
    });
    hub.publish(&room.subject(), BusMessage::new(event));
    if session.is_internal() {
        hub.broadcast_cached_participants(&room);
    }
    // Members on other nodes come through the bus.
    hub.announce_join(&room, session);
    Ok(())
}

/// `signaling_room_sessions` of `session` in `room`.
pub(crate) fn room_session_metric(room: &Room, session: &Session) -> prometheus::IntGauge {
    METRICS.room_sessions.with_label_values(&[
        room.backend.id.as_str(),
        room.id.as_str(),
        session.client_type.as_str(),
    ])
}

/// Leaves the local room, if any (facts 5.7): `leave` event to the others,
/// Talk's `leave` request when `notify_backend`. Returns whether the
/// session was in a room.
pub(crate) fn leave_room(hub: &Hub, session: &Arc<Session>, notify_backend: bool) -> bool {
    leave_room_with(hub, session, notify_backend, true)
}

/// [`leave_room`] with a choice about the `leave` event (a deleted room
/// sends none).
pub(crate) fn leave_room_with(
    hub: &Hub,
    session: &Arc<Session>,
    notify_backend: bool,
    publish_event: bool,
) -> bool {
    let Some(joined) = session.take_room() else {
        return false;
    };
    crate::hub::media::close_all(session);
    let (room, room_session) = joined.into_parts();
    let (_, closed) = room.remove(&session.public_id);
    if closed {
        hub.inner.rooms.remove_closed(&room);
    }
    hub.release_room_session(session, &room_session);
    super::transient::remove(hub, &room, &format!("sd:{}", session.public_id));
    room_session_metric(&room, session).dec();
    let event = ServerMessage::new(ServerBody::Event {
        event: Event::Room(RoomEvent::Leave {
            leave: vec![session.public_id.clone()],
        }),
    });
    if publish_event {
        hub.publish(&room.subject(), BusMessage::new(event));
    }
    let left = BusMessage::with_time(
        now_us(),
        crate::cluster::BusPayload::SessionLeft {
            room: room.id.clone(),
            session: session.public_id.clone(),
            node: hub.inner.node,
        },
    );
    hub.publish(&room.backend_subject(), left);
    if session.is_internal() && !closed {
        hub.broadcast_cached_participants(&room);
    }
    if notify_backend
        && !room_session.is_empty()
        && matches!(
            session.client_type,
            ClientType::Client | ClientType::Federation
        )
    {
        notify_leave(hub, session, &room.id, room_session);
    }
    true
}

/// Tells Talk in the background that the session left (fire and forget).
fn notify_leave(hub: &Hub, session: &Arc<Session>, room_id: &RoomId, room_session: RoomSessionId) {
    let req = room_request(session, room_id, room_session.0, Some("leave"));
    let client = hub.inner.client.clone();
    let backend = session.backend.clone();
    let url = session.backend_url.clone();
    hub.inner.tasks.spawn(async move {
        if let Err(e) = client.request(&backend, &url, &req).await {
            tracing::warn!(url, error = %e, "leave request to Nextcloud failed");
        }
    });
}

/// Joins a room on another signaling server (facts 6.1-6.2).
async fn join_federated(
    hub: &Hub,
    ctx: &ConnCtx,
    session: &Arc<Session>,
    id: Option<String>,
    req: RoomRequest,
    fed: proto::client::FederationWire,
) {
    use crate::federation::{dial, Federation, Target};
    session.set_join_deadline(None);
    let signaling = if fed.signaling.ends_with('/') {
        fed.signaling.clone()
    } else {
        format!("{}/", fed.signaling)
    };
    let target = Target {
        signaling: signaling.clone(),
        url: fed.url.clone(),
        token: fed.token.clone(),
        local_room: req.room_id.0.clone(),
        remote_room: if fed.roomid.is_empty() {
            req.room_id.0.clone()
        } else {
            fed.roomid.clone()
        },
        room_session: if req.session_id.is_empty() {
            session.public_id.0.clone()
        } else {
            req.session_id.0.clone()
        },
    };
    if let Some(existing) = session.federation() {
        if existing.same_remote(&fed.url, &signaling) {
            existing.rejoin(target, id);
            return;
        }
    }
    let settings = &hub.inner.federation;
    match dial::dial(&signaling, settings.timeout, settings.skip_verify).await {
        Err(e) => {
            tracing::debug!(signaling, error = %e, "federation dial failed");
            ctx.reply(&crate::federation::dial_error_message(id, &e));
            if session.federation().is_none() && session.user_id.is_empty() {
                session.set_join_deadline(Some(
                    tokio::time::Instant::now() + super::hello::ANONYMOUS_JOIN_TIMEOUT,
                ));
            }
        }
        Ok(ws) => {
            leave_room(hub, session, true);
            if let Some(old) = session.take_federation() {
                old.close();
            }
            let f = Federation::start(
                session,
                target,
                id,
                ws,
                settings,
                &hub.inner.tasks,
                &hub.inner.shutdown,
            );
            session.set_federation(f);
        }
    }
}
