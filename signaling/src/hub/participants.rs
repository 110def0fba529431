//! Participants updates (facts 5.3): what Nextcloud sends, with the
//! entries clients expect for internal and virtual members added, and the
//! `incall` change for a whole room.

use std::collections::HashSet;
use std::sync::Arc;

use proto::event::{Event, ParticipantEntry, ParticipantsEvent, ParticipantsUpdate};
use proto::permissions::flags;
use serde_json::Value;

use super::notify::{deliver_all, event};
use super::room::Room;
use super::session::ClientType;
use super::Hub;
use crate::cluster::BusMessage;

impl Hub {
    /// `incall` with `all: true` (facts 3.4.5).
    pub(super) fn incall_all(&self, room: &Arc<Room>, value: &Value) {
        let incall = match value {
            Value::Bool(b) => i64::from(*b),
            Value::Number(n) => match n.as_i64() {
                Some(v) => v,
                None => return,
            },
            _ => return,
        };
        room.set_all_participants_in_call(incall);
        let members = room.members();
        let msg = event(Event::Participants(ParticipantsEvent::Update {
            update: ParticipantsUpdate {
                roomid: room.id.0.clone(),
                incall: Some(incall),
                all: true,
                ..Default::default()
            },
        }));
        if incall & flags::IN_CALL != 0 {
            let clients: Vec<_> = members
                .iter()
                .filter(|m| m.client_type == ClientType::Client)
                .collect();
            let mut added = false;
            for m in &clients {
                added |= room.set_in_call(&m.public_id, true);
            }
            if added {
                let clients: Vec<_> = clients.into_iter().cloned().collect();
                deliver_all(&clients, msg);
            }
        } else if !room.clear_call().is_empty() {
            deliver_all(&members, msg);
        }
    }

    /// Sends a participants update with internal/virtual entries added.
    pub(crate) fn broadcast_participants(
        &self,
        room: &Arc<Room>,
        users: Vec<ParticipantEntry>,
        changed: Vec<ParticipantEntry>,
    ) {
        // Clients never see `changed`: it is folded into `users`.
        let mut users = users;
        for c in changed {
            let id = c.get("sessionId").cloned();
            if !users.iter().any(|u| u.get("sessionId") == id.as_ref()) {
                users.push(c);
            }
        }
        let users = self.augment_participants(room, users);
        if users.is_empty() {
            return;
        }
        let msg = event(Event::Participants(ParticipantsEvent::Update {
            update: ParticipantsUpdate {
                roomid: room.id.0.clone(),
                users,
                ..Default::default()
            },
        }));
        let bm = Arc::new(BusMessage::new(msg));
        for m in room.members() {
            m.deliver(&bm);
        }
    }

    /// Facts 5.3: strip permissions, fill user ids, mark virtual sessions,
    /// add synthetic entries for internal and virtual members.
    pub(crate) fn augment_participants(
        &self,
        room: &Arc<Room>,
        users: Vec<ParticipantEntry>,
    ) -> Vec<ParticipantEntry> {
        let members = room.members();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let mut listed: HashSet<String> = HashSet::new();
        let mut out: Vec<ParticipantEntry> = users
            .into_iter()
            .map(|mut e| {
                e.remove("permissions");
                let id = e
                    .get("sessionId")
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                let has_user = e
                    .get("userId")
                    .and_then(Value::as_str)
                    .is_some_and(|u| !u.is_empty());
                if let (Some(id), false) = (&id, has_user) {
                    if let Some(m) = members.iter().find(|m| m.public_id.as_str() == id) {
                        let uid = m.effective_user_id();
                        if m.is_virtual() {
                            e.insert("virtual".into(), Value::Bool(true));
                            e.insert("inCall".into(), Value::from(m.in_call()));
                            listed.insert(id.clone());
                        } else if !uid.is_empty() {
                            e.insert("userId".into(), Value::String(uid));
                        }
                    }
                }
                e
            })
            .collect();
        for m in &members {
            if listed.contains(m.public_id.as_str()) {
                continue;
            }
            let mut e = ParticipantEntry::new();
            match m.client_type {
                ClientType::Internal => {
                    e.insert("inCall".into(), Value::from(m.in_call()));
                    e.insert("sessionId".into(), Value::String(m.public_id.0.clone()));
                    e.insert("lastPing".into(), Value::from(now));
                    e.insert("internal".into(), Value::Bool(true));
                    if !m.features.is_empty() {
                        e.insert("features".into(), Value::from(m.features.clone()));
                    }
                }
                ClientType::Virtual => {
                    e.insert("inCall".into(), Value::from(m.in_call()));
                    e.insert("sessionId".into(), Value::String(m.public_id.0.clone()));
                    e.insert("lastPing".into(), Value::from(now));
                    e.insert("virtual".into(), Value::Bool(true));
                }
                _ => continue,
            }
            out.push(e);
        }
        out
    }

    /// The cached list plus internal/virtual entries, sent when internal or
    /// virtual members change (facts 5.3 case 2); nothing if empty.
    pub(crate) fn broadcast_cached_participants(&self, room: &Arc<Room>) {
        self.broadcast_participants(room, room.participants(), Vec::new());
    }
}
