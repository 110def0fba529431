//! Notifications from Nextcloud (`POST /api/v1/room/{roomid}`, facts 3.4).
//!
//! User-bound parts (roomlist events) are published to the users' subjects;
//! room-bound parts are converted once (Talk session ids -> signaling ids)
//! and published to the room's backend subject, where every node that holds
//! the room applies them to its local members.

use std::collections::HashSet;
use std::sync::Arc;

use proto::event::{
    DisinviteEntry, Event, ParticipantEntry, RoomEvent, RoomEventMessage, RoomlistEntry,
    RoomlistEvent, SwitchtoEvent,
};
use proto::ids::{PublicSessionId, RoomId, RoomSessionId};
use proto::permissions::{flags, Permissions};
use proto::server::{RoomMessage, ServerBody, ServerMessage};
use proto::talk::notify::RoomNotification;
use proto::RawJson;
use serde_json::Value;

use super::room::Room;
use super::session::Session;
use super::Hub;
use crate::backend::Backend;
use crate::cluster::bus::now_us;
use crate::cluster::{BusMessage, BusPayload, RoomNotice, Subject};

/// A notification Nextcloud sent that cannot be processed.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error("Unsupported request type: {0}")]
    UnsupportedType(String),
    #[error("Missing {0} payload")]
    MissingPayload(String),
}

pub(super) fn event(e: Event) -> ServerMessage {
    ServerMessage::new(ServerBody::Event { event: e })
}

fn raw(v: &Value) -> Option<RawJson> {
    serde_json::value::to_raw_value(v).ok()
}

/// Sends one message to several sessions, serialized once (virtual
/// sessions, which have no connection, skip it).
pub(crate) fn deliver_all(members: &[Arc<Session>], msg: ServerMessage) {
    let msg = Arc::new(BusMessage::new(msg));
    for m in members {
        m.deliver(&msg);
    }
}

impl Hub {
    /// Joins `session` to the local room, creating it (and its backend
    /// subscription) if needed. Returns the room and the members that were
    /// there before.
    pub(crate) fn join_local_room(
        &self,
        session: &Arc<Session>,
        backend: &Arc<Backend>,
        id: &RoomId,
        properties: Option<RawJson>,
    ) -> (Arc<Room>, Vec<Arc<Session>>) {
        loop {
            let (room, created) = self
                .inner
                .rooms
                .get_or_create(backend, id, properties.clone());
            if created {
                let weak_room = Arc::downgrade(&room);
                let hub = Arc::downgrade(&self.inner);
                let sink = Arc::new(move |m: &Arc<BusMessage>| {
                    let (Some(room), Some(inner)) = (weak_room.upgrade(), hub.upgrade()) else {
                        return;
                    };
                    let hub = Hub { inner };
                    match &m.payload {
                        BusPayload::Room(notice) => hub.apply_room_notice(&room, notice),
                        BusPayload::Transient { change, .. } => {
                            super::handle::transient::apply(&hub, &room, change);
                        }
                        BusPayload::SessionJoined { session, node, .. }
                            if *node != hub.inner.node =>
                        {
                            hub.saw_node(*node);
                            room.add_remote(session.clone(), *node);
                            hub.send_members_to(&room, session);
                        }
                        BusPayload::Members {
                            sessions,
                            node,
                            transient,
                            ..
                        } if *node != hub.inner.node => {
                            hub.saw_node(*node);
                            for s in sessions {
                                room.add_remote(s.clone(), *node);
                            }
                            super::handle::transient::merge_remote(&room, transient);
                        }
                        BusPayload::SessionLeft { session, node, .. }
                            if *node != hub.inner.node =>
                        {
                            room.remove_remote(session);
                        }
                        _ => {}
                    }
                });
                match self.inner.bus.subscribe(&room.backend_subject(), sink) {
                    Ok(sub) => room.set_subscription(sub),
                    Err(e) => {
                        tracing::error!(room = %room.id, error = %e, "could not subscribe to backend events")
                    }
                }
            }
            if let Ok(others) = room.add(session) {
                return (room, others);
            }
        }
    }

    /// Tells the other nodes holding `room` that `session` joined, so they
    /// send it their members.
    pub(crate) fn announce_join(&self, room: &Arc<Room>, session: &Session) {
        let msg = BusMessage::with_time(
            now_us(),
            BusPayload::SessionJoined {
                room: room.id.clone(),
                session: session.public_id.clone(),
                node: self.inner.node,
            },
        );
        self.publish(&room.backend_subject(), msg);
    }

    /// This node's members of `room`, as a join event to a joiner elsewhere.
    fn send_members_to(&self, room: &Arc<Room>, joiner: &PublicSessionId) {
        let mut members = room.members();
        members.retain(|m| &m.public_id != joiner);
        if members.is_empty() {
            return;
        }
        members.sort_by_key(|m| m.index);
        let join = members.iter().map(|m| self.join_entry(m)).collect();
        self.publish_session(joiner, &event(Event::Room(RoomEvent::Join { join })));
        // The joiner's node learns where these members live.
        let msg = BusMessage::with_time(
            now_us(),
            BusPayload::Members {
                room: room.id.clone(),
                sessions: members.iter().map(|m| m.public_id.clone()).collect(),
                node: self.inner.node,
                transient: room.transient_snapshot(),
            },
        );
        self.publish(&room.backend_subject(), msg);
    }

    fn publish_user(&self, backend: &Backend, user: &str, msg: &ServerMessage) {
        let subject = Subject::User {
            backend: backend.id.clone(),
            compat: backend.is_compat(),
            user: user.to_owned(),
        };
        self.publish(&subject, BusMessage::new(msg.clone()));
    }

    fn publish_session(&self, id: &PublicSessionId, msg: &ServerMessage) {
        let subject = Subject::Session(id.clone());
        self.publish(&subject, BusMessage::new(msg.clone()));
    }

    /// Asks the owner of a disinvited virtual session to hang up
    /// (facts 1.11).
    fn hangup_virtual(&self, v: &Arc<Session>) {
        let (Some(owner), Some(info)) = (
            v.virtual_owner.as_ref().and_then(|o| o.owner.upgrade()),
            &v.virtual_owner,
        ) else {
            return;
        };
        let Some(data) =
            raw(&serde_json::json!({"type": "hangup", "hangup": {"reason": "disinvited"}}))
        else {
            return;
        };
        owner.send(&ServerMessage::new(ServerBody::Control {
            control: proto::server::MessageDelivery {
                sender: None,
                recipient: Some(proto::client::RecipientWire {
                    kind: "session".into(),
                    sessionid: Some(info.client_id.clone()),
                    userid: (!v.user_id.is_empty()).then(|| v.user_id.clone()),
                }),
                data,
            },
        }));
    }

    /// The signaling session of a Talk session id (`"0"` is never one).
    pub(crate) fn resolve_room_session(&self, talk_id: &str) -> Option<PublicSessionId> {
        if talk_id.is_empty() || talk_id == "0" {
            return None;
        }
        self.inner
            .sessions
            .by_room_session(&RoomSessionId(talk_id.to_owned()))
    }

    /// Replaces Talk session ids by signaling ids; drops unknown entries.
    fn convert_entries(&self, list: Vec<ParticipantEntry>) -> Vec<ParticipantEntry> {
        list.into_iter()
            .filter_map(|mut e| {
                let talk = e.get("sessionId").and_then(Value::as_str)?.to_owned();
                let id = self.resolve_room_session(&talk)?;
                e.insert("sessionId".into(), Value::String(id.0));
                Some(e)
            })
            .collect()
    }

    /// Processes a validated notification for `room_id` from `backend`.
    pub fn room_notification(
        &self,
        backend: &Arc<Backend>,
        room_id: &RoomId,
        mut n: RoomNotification,
    ) -> Result<(), NotifyError> {
        let roomlist = |e: RoomlistEvent| event(Event::Roomlist(e));
        let missing = |k: &str| NotifyError::MissingPayload(k.to_owned());
        let mut room_bound = false;
        let mut after_room: Vec<(String, ServerMessage)> = Vec::new();
        match n.kind.as_str() {
            "invite" => {
                let inv = n.invite.as_ref().ok_or_else(|| missing("invite"))?;
                let entry = RoomlistEntry {
                    roomid: room_id.0.clone(),
                    properties: inv.properties.clone(),
                };
                let invited: HashSet<&String> = inv.userids.iter().collect();
                let invite = roomlist(RoomlistEvent::Invite {
                    invite: entry.clone(),
                });
                let update = roomlist(RoomlistEvent::Update { update: entry });
                for u in &inv.userids {
                    self.publish_user(backend, u, &invite);
                }
                for u in inv.alluserids.iter().filter(|u| !invited.contains(u)) {
                    self.publish_user(backend, u, &update);
                }
            }
            "disinvite" => {
                let dis = n.disinvite.as_ref().ok_or_else(|| missing("disinvite"))?;
                let msg = roomlist(RoomlistEvent::Disinvite {
                    disinvite: DisinviteEntry {
                        roomid: room_id.0.clone(),
                        reason: "disinvited".into(),
                    },
                });
                let removed: HashSet<&String> = dis.userids.iter().collect();
                for u in &dis.userids {
                    self.publish_user(backend, u, &msg);
                }
                for talk in &dis.sessionids {
                    let Some(id) = self.resolve_room_session(talk) else {
                        continue;
                    };
                    match self
                        .inner
                        .sessions
                        .by_public(&id)
                        .filter(|s| s.is_virtual())
                    {
                        Some(v) => self.hangup_virtual(&v),
                        None => self.publish_session(&id, &msg),
                    }
                }
                let update = roomlist(RoomlistEvent::Update {
                    update: RoomlistEntry {
                        roomid: room_id.0.clone(),
                        properties: dis.properties.clone(),
                    },
                });
                for u in dis.alluserids.iter().filter(|u| !removed.contains(u)) {
                    self.publish_user(backend, u, &update);
                }
            }
            "update" => {
                let up = n.update.as_ref().ok_or_else(|| missing("update"))?;
                let msg = roomlist(RoomlistEvent::Update {
                    update: RoomlistEntry {
                        roomid: room_id.0.clone(),
                        properties: up.properties.clone(),
                    },
                });
                after_room.extend(up.userids.iter().map(|u| (u.clone(), msg.clone())));
                room_bound = true;
            }
            "delete" => {
                let del = n.delete.as_ref().ok_or_else(|| missing("delete"))?;
                let msg = roomlist(RoomlistEvent::Disinvite {
                    disinvite: DisinviteEntry {
                        roomid: room_id.0.clone(),
                        reason: "deleted".into(),
                    },
                });
                // Users hear about the deletion after the room is gone, so
                // members leave with the room rather than by disconnect.
                after_room.extend(del.userids.iter().map(|u| (u.clone(), msg.clone())));
                room_bound = true;
            }
            "incall" => {
                let inc = n.incall.as_mut().ok_or_else(|| missing("incall"))?;
                // Talk session ids are resolved by each node when it applies
                // the notice: a session that joined another node a moment
                // ago is known there before its claim reaches this node.
                if !inc.all && inc.users.is_empty() && inc.changed.is_empty() {
                    return Ok(());
                }
                room_bound = true;
            }
            "participants" => {
                let p = n
                    .participants
                    .as_mut()
                    .ok_or_else(|| missing("participants"))?;
                if p.users.is_empty() && p.changed.is_empty() {
                    return Ok(());
                }
                room_bound = true;
            }
            "message" => {
                n.message.as_ref().ok_or_else(|| missing("message"))?;
                room_bound = true;
            }
            "switchto" => {
                let sw = n.switchto.as_mut().ok_or_else(|| missing("switchto"))?;
                let resolved = self.resolve_switchto(&sw.sessions);
                if resolved.is_empty() {
                    return Ok(());
                }
                sw.sessions = raw(&Value::Object(resolved)).ok_or_else(|| missing("switchto"))?;
                room_bound = true;
            }
            other => return Err(NotifyError::UnsupportedType(other.to_owned())),
        }
        if room_bound {
            let subject = Subject::BackendRoom {
                backend: backend.id.clone(),
                compat: backend.is_compat(),
                room: room_id.clone(),
            };
            let notice = RoomNotice {
                room: room_id.clone(),
                notification: n,
                received_us: now_us(),
            };
            self.publish(&subject, BusMessage::room(notice));
        }
        for (user, msg) in after_room {
            self.publish_user(backend, &user, &msg);
        }
        Ok(())
    }

    /// `sessions` as list or map of Talk ids -> map of signaling id -> details.
    fn resolve_switchto(&self, sessions: &RawJson) -> serde_json::Map<String, Value> {
        let mut out = serde_json::Map::new();
        match serde_json::from_str::<Value>(sessions.get()) {
            Ok(Value::Array(list)) => {
                for talk in list.iter().filter_map(Value::as_str) {
                    if let Some(id) = self.resolve_room_session(talk) {
                        out.insert(id.0, Value::Null);
                    }
                }
            }
            Ok(Value::Object(map)) => {
                for (talk, details) in map {
                    if let Some(id) = self.resolve_room_session(&talk) {
                        out.insert(id.0, details);
                    }
                }
            }
            _ => {}
        }
        out
    }

    /// Applies a room-bound notification to the local room.
    pub(crate) fn apply_room_notice(&self, room: &Arc<Room>, notice: &RoomNotice) {
        let n = &notice.notification;
        if room.is_closed() || !room.accept_notification(&n.kind, notice.received_us) {
            return;
        }
        match n.kind.as_str() {
            "update" => {
                let props = n.update.as_ref().and_then(|u| u.properties.clone());
                if room.update_properties(props.clone()) {
                    let msg = ServerMessage::new(ServerBody::Room {
                        room: RoomMessage {
                            roomid: room.id.0.clone(),
                            properties: props,
                            bandwidth: None,
                        },
                    });
                    deliver_all(&room.members(), msg);
                }
            }
            "delete" => self.delete_room(room),
            "incall" => {
                if let Some(inc) = &n.incall {
                    if inc.all {
                        self.incall_all(room, &inc.incall);
                    } else {
                        let users = self.convert_entries(inc.users.clone());
                        let changed = self.convert_entries(inc.changed.clone());
                        room.set_participants(users.clone());
                        for c in &changed {
                            let (Some(id), Some(v)) =
                                (c.get("sessionId").and_then(Value::as_str), c.get("inCall"))
                            else {
                                continue;
                            };
                            let in_call = match v {
                                Value::Bool(b) => *b,
                                Value::Number(n) => n.as_i64().unwrap_or(0) & flags::IN_CALL != 0,
                                _ => continue,
                            };
                            room.set_in_call(&PublicSessionId(id.to_owned()), in_call);
                        }
                        self.broadcast_participants(room, users, changed);
                    }
                }
            }
            "participants" => {
                if let Some(p) = &n.participants {
                    let users = self.convert_entries(p.users.clone());
                    let changed = self.convert_entries(p.changed.clone());
                    for c in &changed {
                        let Some(id) = c.get("sessionId").and_then(Value::as_str) else {
                            continue;
                        };
                        let Some(Value::Array(perms)) = c.get("permissions") else {
                            continue;
                        };
                        let Some(list) =
                            perms.iter().map(Value::as_str).collect::<Option<Vec<_>>>()
                        else {
                            continue;
                        };
                        if let Some(s) = self
                            .inner
                            .sessions
                            .by_public(&PublicSessionId(id.to_owned()))
                        {
                            s.set_permissions(Permissions::from_list(list));
                        }
                    }
                    self.broadcast_participants(room, users, changed);
                }
            }
            "message" => {
                if let Some(m) = &n.message {
                    let msg = event(Event::Room(RoomEvent::Message {
                        message: RoomEventMessage {
                            roomid: room.id.0.clone(),
                            data: m.data.clone(),
                        },
                    }));
                    let bm = Arc::new(BusMessage::new(msg));
                    for member in room.members() {
                        member.deliver(&bm);
                    }
                }
            }
            "switchto" => {
                let Some(sw) = &n.switchto else { return };
                let Ok(Value::Object(map)) = serde_json::from_str::<Value>(sw.sessions.get())
                else {
                    return;
                };
                let members = room.members();
                for (id, details) in map {
                    let Some(member) = members.iter().find(|m| m.public_id.as_str() == id) else {
                        continue;
                    };
                    let details = if details.is_null() {
                        None
                    } else {
                        raw(&details)
                    };
                    member.send(&event(Event::Room(RoomEvent::Switchto {
                        switchto: SwitchtoEvent {
                            roomid: sw.roomid.clone(),
                            details,
                        },
                    })));
                }
            }
            _ => {}
        }
    }

    /// Room deleted by Nextcloud (facts 3.4.4): internal members hear
    /// `delete`, everybody leaves at once without leave events.
    fn delete_room(&self, room: &Arc<Room>) {
        let members = room.members();
        let internal: Vec<_> = members
            .iter()
            .filter(|m| m.is_internal())
            .cloned()
            .collect();
        deliver_all(&internal, event(Event::Room(RoomEvent::Delete)));
        for m in &members {
            super::handle::room::leave_room_with(self, m, true, false);
        }
        let left = ServerMessage::new(ServerBody::Room {
            room: RoomMessage {
                roomid: String::new(),
                properties: None,
                bandwidth: None,
            },
        });
        deliver_all(&members, left);
        room.close();
        self.inner.rooms.remove_closed(room);
    }
}
