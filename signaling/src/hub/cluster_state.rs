//! This node's view of the cluster: the node-wide subjects (Talk session
//! id claims, heartbeats), which node holds which Talk session id, and
//! the session counts of the other nodes for session limits.

use std::sync::Arc;

use proto::server::bye_reason;

use super::session::Session;
use super::Hub;

impl Hub {
    /// Subscribes to the node-wide subjects: Talk session id claims
    /// (one connection per Talk session across the cluster, and where each
    /// Talk session lives) and node heartbeats.
    pub(super) fn subscribe_cluster_subjects(&self) {
        use crate::cluster::Subject;
        for subject in [Subject::RoomSessions, Subject::Nodes] {
            let weak = Arc::downgrade(&self.inner);
            let sink = Arc::new(move |m: &Arc<crate::cluster::BusMessage>| {
                if let Some(inner) = weak.upgrade() {
                    Hub { inner }.on_cluster_message(&m.payload);
                }
            });
            match self.inner.bus.subscribe(&subject, sink) {
                Ok(sub) => self.inner.cluster_subscriptions.lock().push(sub),
                Err(e) => {
                    tracing::error!(subject = %subject.to_subject_string(), error = %e, "could not subscribe")
                }
            }
        }
    }

    fn on_cluster_message(&self, payload: &crate::cluster::BusPayload) {
        use crate::cluster::BusPayload;
        match payload {
            BusPayload::RoomSessionClaimed {
                backend,
                room_session,
                claimer,
                node,
            } if *node != self.inner.node => {
                self.kick_room_session(backend, room_session, claimer);
                // Remember where the Talk session lives, to resolve Talk ids
                // in notifications for it.
                self.inner.sessions.set_room_session(room_session, claimer);
            }
            BusPayload::RoomSessionReleased {
                room_session,
                session,
            } => {
                self.inner
                    .sessions
                    .clear_room_session(room_session, session);
            }
            BusPayload::Heartbeat { node, counts } if *node != self.inner.node => {
                self.inner
                    .remote_counts
                    .lock()
                    .insert(*node, counts.clone());
                self.saw_node(*node);
            }
            _ => {}
        }
    }

    /// Disconnects the local session holding `room_session` unless it is
    /// `claimer` (facts 1.9.3 step 4): `bye` `room_session_reconnected`,
    /// no Talk leave request.
    pub(crate) fn kick_room_session(
        &self,
        backend: &proto::ids::BackendId,
        room_session: &proto::ids::RoomSessionId,
        claimer: &proto::ids::PublicSessionId,
    ) {
        let Some(holder) = self.inner.sessions.by_room_session(room_session) else {
            return;
        };
        if &holder == claimer {
            return;
        }
        if let Some(other) = self
            .inner
            .sessions
            .by_public(&holder)
            .filter(|o| &o.backend.id == backend)
        {
            tracing::debug!(session = %other.public_id, "kicked: room session reconnected elsewhere");
            self.bye_and_close(&other, bye_reason::ROOM_SESSION_RECONNECTED, false);
        }
    }

    /// Sessions of `backend` on the other nodes (as of their last
    /// heartbeat).
    pub(crate) fn remote_session_count(&self, backend: &proto::ids::BackendId) -> u64 {
        self.inner
            .remote_counts
            .lock()
            .values()
            .filter_map(|c| c.get(backend.as_str()))
            .sum()
    }

    pub(crate) fn saw_node(&self, node: u64) {
        self.inner
            .nodes
            .lock()
            .insert(node, tokio::time::Instant::now());
    }

    /// Maps `talk_id` to `session` here and on every other node.
    pub(crate) fn claim_room_session(
        &self,
        session: &Session,
        talk_id: &proto::ids::RoomSessionId,
    ) {
        if talk_id.is_empty() {
            return;
        }
        self.inner
            .sessions
            .set_room_session(talk_id, &session.public_id);
        self.publish_claim(crate::cluster::BusPayload::RoomSessionClaimed {
            backend: session.backend.id.clone(),
            room_session: talk_id.clone(),
            claimer: session.public_id.clone(),
            node: self.inner.node,
        });
    }

    /// Undoes [`Hub::claim_room_session`].
    pub(crate) fn release_room_session(
        &self,
        session: &Session,
        talk_id: &proto::ids::RoomSessionId,
    ) {
        if talk_id.is_empty() {
            return;
        }
        self.inner
            .sessions
            .clear_room_session(talk_id, &session.public_id);
        self.publish_claim(crate::cluster::BusPayload::RoomSessionReleased {
            room_session: talk_id.clone(),
            session: session.public_id.clone(),
        });
    }

    fn publish_claim(&self, payload: crate::cluster::BusPayload) {
        let msg = crate::cluster::BusMessage::with_time(crate::cluster::bus::now_us(), payload);
        self.publish(&crate::cluster::Subject::RoomSessions, msg);
    }
}
