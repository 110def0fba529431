//! One room on this node (facts 5.1): its members, properties and call set.
//! The room exists while at least one local session is in it. It never
//! touches sessions' locks while holding its own (lock order: session, then
//! room), and knows nothing of the hub.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::ids::{PublicSessionId, RoomId};
use proto::RawJson;

use super::session::{ClientType, Session};
use crate::backend::Backend;
use crate::cluster::{Subject, Subscription};
use crate::metrics::METRICS;
use proto::event::ParticipantEntry;

/// One transient data entry; `generation` tells a TTL timer whether the
/// value it was armed for is still the stored one.
struct TransientEntry {
    value: serde_json::Value,
    raw: RawJson,
    generation: u64,
}

/// What a transient `set` changed.
pub enum TransientSet {
    /// Same value: no notification; the TTL is re-armed or cancelled.
    Unchanged { generation: u64 },
    Changed {
        old: Option<RawJson>,
        generation: u64,
    },
}

#[derive(Default)]
struct State {
    /// The last `users` list of an `incall` notification (facts 5.3).
    participants: Vec<ParticipantEntry>,
    /// Receive time of the newest notification per type (facts 3.3).
    last_notification: HashMap<String, i64>,
    /// Members on other nodes, with their node, for clean-up when a node
    /// dies.
    remote: HashMap<PublicSessionId, u64>,
    /// The backend-room subscription; dropped when the room closes.
    subscription: Option<Subscription>,
    properties: Option<RawJson>,
    transient: HashMap<String, TransientEntry>,
    transient_generation: u64,
    members: HashMap<PublicSessionId, Arc<Session>>,
    /// Who is in the call, with the client type for the call metrics.
    in_call: HashMap<PublicSessionId, ClientType>,
    /// Set when the last member left; a closed room is never reused.
    closed: bool,
}

pub struct Room {
    pub id: RoomId,
    pub backend: Arc<Backend>,
    state: Mutex<State>,
}

impl std::fmt::Debug for Room {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Room({}|{})", self.id, self.backend.id)
    }
}

/// The room was closed between lookup and join; look it up again.
#[derive(Debug)]
pub struct RoomClosed;

impl Room {
    pub fn new(id: RoomId, backend: Arc<Backend>, properties: Option<RawJson>) -> Self {
        Room {
            id,
            backend,
            state: Mutex::new(State {
                properties,
                ..Default::default()
            }),
        }
    }

    /// The bus subject of the room's client-facing events.
    pub fn subject(&self) -> Subject {
        Subject::Room {
            backend: self.backend.id.clone(),
            compat: self.backend.is_compat(),
            room: self.id.clone(),
        }
    }

    pub fn properties(&self) -> Option<RawJson> {
        self.state.lock().properties.clone()
    }

    /// Adds a member; returns the members that were already there.
    pub fn add(&self, session: &Arc<Session>) -> Result<Vec<Arc<Session>>, RoomClosed> {
        let mut s = self.state.lock();
        if s.closed {
            return Err(RoomClosed);
        }
        let others = s
            .members
            .values()
            .filter(|m| m.public_id != session.public_id)
            .cloned()
            .collect();
        s.members.insert(session.public_id.clone(), session.clone());
        Ok(others)
    }

    /// Removes a member. Returns (was a member, room is now empty and closed).
    pub fn remove(&self, id: &PublicSessionId) -> (bool, bool) {
        let mut s = self.state.lock();
        let was = s.members.remove(id).is_some();
        if let Some(t) = s.in_call.remove(id) {
            self.call_left(t, s.in_call.is_empty());
        }
        if s.members.is_empty() {
            s.closed = true;
            s.subscription = None;
        }
        (was, s.closed)
    }

    /// The subject of backend notifications for this room.
    pub fn backend_subject(&self) -> Subject {
        Subject::BackendRoom {
            backend: self.backend.id.clone(),
            compat: self.backend.is_compat(),
            room: self.id.clone(),
        }
    }

    pub fn set_subscription(&self, sub: Subscription) {
        let mut s = self.state.lock();
        if !s.closed {
            s.subscription = Some(sub);
        }
    }

    /// Accepts a notification of `kind` received at `at` unless a newer one
    /// of the same kind was already applied.
    pub fn accept_notification(&self, kind: &str, at: i64) -> bool {
        let mut s = self.state.lock();
        let last = s
            .last_notification
            .entry(kind.to_owned())
            .or_insert(i64::MIN);
        if at < *last {
            return false;
        }
        *last = at;
        true
    }

    /// Stores new properties; returns whether they differ from the old.
    pub fn update_properties(&self, properties: Option<RawJson>) -> bool {
        let mut s = self.state.lock();
        let same = s.properties.as_ref().map(|p| p.get()) == properties.as_ref().map(|p| p.get());
        if !same {
            s.properties = properties;
        }
        !same
    }

    pub fn participants(&self) -> Vec<ParticipantEntry> {
        self.state.lock().participants.clone()
    }

    pub fn set_participants(&self, list: Vec<ParticipantEntry>) {
        self.state.lock().participants = list;
    }

    /// Sets `inCall` of every cached participant (the "all" update).
    pub fn set_all_participants_in_call(&self, value: i64) {
        for p in self.state.lock().participants.iter_mut() {
            p.insert("inCall".into(), serde_json::Value::from(value));
        }
    }

    /// Drops the cached entry of a removed virtual session.
    pub fn remove_participant(&self, id: &PublicSessionId) {
        self.state
            .lock()
            .participants
            .retain(|p| p.get("sessionId").and_then(|v| v.as_str()) != Some(id.as_str()));
    }

    pub fn add_remote(&self, id: PublicSessionId, node: u64) {
        self.state.lock().remote.insert(id, node);
    }

    pub fn remove_remote(&self, id: &PublicSessionId) {
        self.state.lock().remote.remove(id);
    }

    /// Forgets and returns the members that lived on `node`.
    pub fn take_remote_of(&self, node: u64) -> Vec<PublicSessionId> {
        let mut s = self.state.lock();
        let gone: Vec<_> = s
            .remote
            .iter()
            .filter(|(_, n)| **n == node)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &gone {
            s.remote.remove(id);
        }
        gone
    }

    /// Empties the call set; returns who was in it. Their media ends.
    pub fn clear_call(&self) -> Vec<PublicSessionId> {
        let (ids, left): (Vec<_>, Vec<_>) = {
            let mut s = self.state.lock();
            let ids: Vec<_> = s.in_call.drain().map(|(id, _)| id).collect();
            if !ids.is_empty() {
                self.call_ended();
            }
            let left = ids
                .iter()
                .filter_map(|id| s.members.get(id).cloned())
                .collect();
            (ids, left)
        };
        for m in left {
            super::media::close_all(&m);
        }
        ids
    }

    pub fn call_is_empty(&self) -> bool {
        self.state.lock().in_call.is_empty()
    }

    /// Closes the room at once (deleted by Nextcloud): returns the members.
    pub fn close(&self) -> Vec<Arc<Session>> {
        let mut s = self.state.lock();
        s.closed = true;
        s.subscription = None;
        if !s.in_call.is_empty() {
            s.in_call.clear();
            self.call_ended();
        }
        s.members.drain().map(|(_, m)| m).collect()
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }

    pub fn members(&self) -> Vec<Arc<Session>> {
        self.state.lock().members.values().cloned().collect()
    }

    pub fn member_count(&self) -> usize {
        self.state.lock().members.len()
    }

    pub fn is_in_call(&self, id: &PublicSessionId) -> bool {
        self.state.lock().in_call.contains_key(id)
    }

    /// Stores a transient value (facts 1.12).
    pub fn transient_set(&self, key: &str, raw: RawJson) -> TransientSet {
        let value: serde_json::Value =
            serde_json::from_str(raw.get()).unwrap_or(serde_json::Value::Null);
        let mut s = self.state.lock();
        s.transient_generation += 1;
        let generation = s.transient_generation;
        match s.transient.get_mut(key) {
            Some(e) if e.value == value => {
                e.generation = generation;
                TransientSet::Unchanged { generation }
            }
            _ => {
                let old = s.transient.insert(
                    key.to_owned(),
                    TransientEntry {
                        value,
                        raw,
                        generation,
                    },
                );
                TransientSet::Changed {
                    old: old.map(|e| e.raw),
                    generation,
                }
            }
        }
    }

    /// Removes a key; returns the old value if there was one.
    pub fn transient_remove(&self, key: &str) -> Option<RawJson> {
        self.state.lock().transient.remove(key).map(|e| e.raw)
    }

    /// TTL expiry: removes the key only if it still holds the value the
    /// timer was armed for.
    pub fn transient_expire(&self, key: &str, generation: u64) -> Option<RawJson> {
        let mut s = self.state.lock();
        if s.transient
            .get(key)
            .is_some_and(|e| e.generation == generation)
        {
            s.transient.remove(key).map(|e| e.raw)
        } else {
            None
        }
    }

    /// Adds entries this node does not have (data set before the room
    /// existed here); returns what was added.
    pub fn transient_merge(
        &self,
        data: &serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        let mut s = self.state.lock();
        let mut added = serde_json::Map::new();
        for (k, v) in data {
            if s.transient.contains_key(k) {
                continue;
            }
            let Ok(raw) = serde_json::value::to_raw_value(v) else {
                continue;
            };
            s.transient_generation += 1;
            let generation = s.transient_generation;
            s.transient.insert(
                k.clone(),
                TransientEntry {
                    value: v.clone(),
                    raw,
                    generation,
                },
            );
            added.insert(k.clone(), v.clone());
        }
        added
    }

    /// The whole store, for a joiner's `initial` message.
    pub fn transient_snapshot(&self) -> serde_json::Map<String, serde_json::Value> {
        self.state
            .lock()
            .transient
            .iter()
            .map(|(k, e)| (k.clone(), e.value.clone()))
            .collect()
    }

    /// Adds or removes a session from the call set; returns whether it
    /// changed.
    /// A session leaving the call loses its publishers and subscribers.
    pub fn set_in_call(&self, id: &PublicSessionId, in_call: bool) -> bool {
        let mut s = self.state.lock();
        if in_call {
            let Some(t) = s.members.get(id).map(|m| m.client_type) else {
                return false;
            };
            let was_empty = s.in_call.is_empty();
            if s.in_call.insert(id.clone(), t).is_some() {
                return false;
            }
            self.call_joined(t, was_empty);
            return true;
        }
        let left = match s.in_call.remove(id) {
            Some(t) => {
                self.call_left(t, s.in_call.is_empty());
                true
            }
            None => false,
        };
        let member = s.members.get(id).cloned();
        drop(s);
        if let Some(m) = member.filter(|_| left) {
            super::media::close_all(&m);
        }
        left
    }

    // === call metrics (the reference's `signaling_call_*`) ===

    fn call_joined(&self, t: ClientType, first: bool) {
        let backend = self.backend.id.as_str();
        if first {
            METRICS.call_rooms_total.with_label_values(&[backend]).inc();
        }
        METRICS
            .call_sessions
            .with_label_values(&[backend, self.id.as_str(), t.as_str()])
            .inc();
        METRICS
            .call_sessions_total
            .with_label_values(&[backend, t.as_str()])
            .inc();
    }

    fn call_left(&self, t: ClientType, now_empty: bool) {
        if now_empty {
            self.call_ended();
        } else {
            METRICS
                .call_sessions
                .with_label_values(&[self.backend.id.as_str(), self.id.as_str(), t.as_str()])
                .dec();
        }
    }

    /// Nobody is in the call: the room's gauges go away.
    fn call_ended(&self) {
        for t in ClientType::ALL {
            let _ = METRICS.call_sessions.remove_label_values(&[
                self.backend.id.as_str(),
                self.id.as_str(),
                t.as_str(),
            ]);
        }
    }
}
