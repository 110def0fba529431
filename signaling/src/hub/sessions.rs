//! Registry of the sessions on this node and their id lookups: by index
//! (resume ids), by public id, and Talk room session id <-> public id
//! (facts 5.6). Sharded by id so lookups of unrelated sessions do not
//! contend.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::ids::{BackendId, PublicSessionId, RoomSessionId};

use super::session::{ClientType, Session};
use crate::metrics::METRICS;

const SHARDS: usize = 16;

#[derive(Default)]
struct Shard {
    by_index: HashMap<u64, Arc<Session>>,
    by_public: HashMap<PublicSessionId, Arc<Session>>,
}

pub struct Sessions {
    shards: Vec<Mutex<Shard>>,
    room_sessions: Mutex<HashMap<RoomSessionId, PublicSessionId>>,
    /// Client/federation sessions per backend, for `sessionlimit`.
    per_backend: Mutex<HashMap<BackendId, u64>>,
    /// Virtual sessions by `<owner public id>|<client id>`.
    virtuals: Mutex<HashMap<String, Arc<Session>>>,
    /// Sessions other than internal ones: a draining node exits when this
    /// reaches zero (internal clients reconnect elsewhere on their own).
    clients: tokio::sync::watch::Sender<usize>,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Sessions {
    fn default() -> Self {
        Sessions {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            room_sessions: Mutex::default(),
            per_backend: Mutex::default(),
            virtuals: Mutex::default(),
            clients: tokio::sync::watch::Sender::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
        }
    }
}

fn counts_for_limit(t: ClientType) -> bool {
    matches!(t, ClientType::Client | ClientType::Federation)
}

/// The session limit of its backend was reached.
#[derive(Debug)]
pub struct LimitReached;

impl Sessions {
    fn shard_of_index(&self, index: u64) -> &Mutex<Shard> {
        &self.shards[(index as usize) % SHARDS]
    }

    /// Public ids live in the shard their hash picks, so a lookup by
    /// public id is one probe.
    fn shard_of_public(&self, id: &PublicSessionId) -> &Mutex<Shard> {
        use std::hash::BuildHasher;
        &self.shards[(self.hasher.hash_one(id) as usize) % SHARDS]
    }

    /// Registers a session, enforcing the backend's session limit
    /// (facts 2.8) atomically with the registration.
    /// `remote` = sessions of the same backend on other nodes.
    pub fn register(&self, session: &Arc<Session>, remote: u64) -> Result<(), LimitReached> {
        if counts_for_limit(session.client_type) {
            let mut counts = self.per_backend.lock();
            let n = counts.entry(session.backend.id.clone()).or_default();
            let limit = session.backend.session_limit;
            if limit > 0 && *n + remote >= limit {
                METRICS
                    .backend_session_limit_exceeded_total
                    .with_label_values(&[session.backend.id.as_str()])
                    .inc();
                return Err(LimitReached);
            }
            *n += 1;
        }
        if let Some(v) = &session.virtual_owner {
            self.virtuals.lock().insert(v.key(), session.clone());
        }
        self.shard_of_index(session.index)
            .lock()
            .by_index
            .insert(session.index, session.clone());
        self.shard_of_public(&session.public_id)
            .lock()
            .by_public
            .insert(session.public_id.clone(), session.clone());
        if session.client_type != ClientType::Internal {
            self.clients.send_modify(|n| *n += 1);
        }
        let labels = [session.backend.id.as_str(), session.client_type.as_str()];
        METRICS.hub_sessions.with_label_values(&labels).inc();
        METRICS.hub_sessions_total.with_label_values(&labels).inc();
        Ok(())
    }

    pub fn unregister(&self, session: &Session) {
        if let Some(v) = &session.virtual_owner {
            let mut virtuals = self.virtuals.lock();
            if virtuals
                .get(&v.key())
                .is_some_and(|s| s.index == session.index)
            {
                virtuals.remove(&v.key());
            }
        }
        let removed = self
            .shard_of_index(session.index)
            .lock()
            .by_index
            .remove(&session.index)
            .is_some();
        self.shard_of_public(&session.public_id)
            .lock()
            .by_public
            .remove(&session.public_id);
        if !removed {
            return;
        }
        if session.client_type != ClientType::Internal {
            self.clients.send_modify(|n| *n = n.saturating_sub(1));
        }
        if counts_for_limit(session.client_type) {
            if let Some(n) = self.per_backend.lock().get_mut(&session.backend.id) {
                *n = n.saturating_sub(1);
            }
        }
        METRICS
            .hub_sessions
            .with_label_values(&[session.backend.id.as_str(), session.client_type.as_str()])
            .dec();
    }

    pub fn virtual_session(
        &self,
        owner: &PublicSessionId,
        client_id: &str,
    ) -> Option<Arc<Session>> {
        self.virtuals
            .lock()
            .get(&format!("{owner}|{client_id}"))
            .cloned()
    }

    /// The virtual sessions an internal client owns.
    pub fn virtuals_of(&self, owner: &PublicSessionId) -> Vec<Arc<Session>> {
        let prefix = format!("{owner}|");
        self.virtuals
            .lock()
            .iter()
            .filter(|(k, _)| k.starts_with(&prefix))
            .map(|(_, s)| s.clone())
            .collect()
    }

    pub fn by_index(&self, index: u64) -> Option<Arc<Session>> {
        self.shard_of_index(index)
            .lock()
            .by_index
            .get(&index)
            .cloned()
    }

    pub fn by_public(&self, id: &PublicSessionId) -> Option<Arc<Session>> {
        self.shard_of_public(id).lock().by_public.get(id).cloned()
    }

    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().by_index.len()).sum()
    }

    /// Waits until no session but internal ones is left.
    pub async fn no_clients(&self) {
        let mut rx = self.clients.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn all(&self) -> Vec<Arc<Session>> {
        self.shards
            .iter()
            .flat_map(|s| s.lock().by_index.values().cloned().collect::<Vec<_>>())
            .collect()
    }

    /// Maps a Talk room session id to `public`; returns the session that
    /// held it before, if another one did.
    pub fn set_room_session(
        &self,
        room_session: &RoomSessionId,
        public: &PublicSessionId,
    ) -> Option<PublicSessionId> {
        if room_session.is_empty() {
            return None;
        }
        self.room_sessions
            .lock()
            .insert(room_session.clone(), public.clone())
            .filter(|prev| prev != public)
    }

    /// Removes the mapping if it still points at `public`.
    pub fn clear_room_session(&self, room_session: &RoomSessionId, public: &PublicSessionId) {
        let mut map = self.room_sessions.lock();
        if map.get(room_session) == Some(public) {
            map.remove(room_session);
        }
    }

    /// Drops every Talk session id mapped to `public` (a dead node's).
    pub fn forget_room_sessions_of(&self, public: &PublicSessionId) {
        self.room_sessions.lock().retain(|_, p| p != public);
    }

    /// Counted sessions per backend id.
    pub fn counts(&self) -> std::collections::HashMap<String, u64> {
        self.per_backend
            .lock()
            .iter()
            .map(|(b, n)| (b.0.clone(), *n))
            .collect()
    }

    /// Sessions of one backend counted for its session limit.
    pub fn limited_count(&self, backend: &BackendId) -> u64 {
        self.per_backend.lock().get(backend).copied().unwrap_or(0)
    }

    pub fn by_room_session(&self, room_session: &RoomSessionId) -> Option<PublicSessionId> {
        self.room_sessions.lock().get(room_session).cloned()
    }
}
