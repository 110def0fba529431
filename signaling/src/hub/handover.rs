//! Moving a session from a draining node to the node its client
//! reconnected to, so the draining node can exit without ending it (ours;
//! the reference proxies such a session over gRPC and keeps it on the old
//! node until it ends).
//!
//! The taking node (where the client's resume `hello` arrived):
//! 1. `Prepare` on the owner: the owner agrees only while draining, takes
//!    the session off its connection and answers with the session's state
//!    and a token.
//! 2. creates the session with the same ids, subscribes its subjects
//!    (session, user, room) behind a gate that drops everything before
//!    each subject's marker, joins the room locally without events, and
//!    waits until the subscriptions are live.
//! 3. `Commit` on the owner: the owner publishes a marker with the token
//!    on each subject, keeps what arrived before the markers, forgets the
//!    session without leave events or Talk requests, and answers with the
//!    frames it had queued.
//! 4. once its own markers arrived, puts the owner's frames before what
//!    arrived since, resumes the client, and tells the other nodes where
//!    the session lives now.
//!
//! Media does not move: the session's publishers and subscribers on the
//! owner end, as when an SFU restarts, and the client negotiates new ones.

use std::sync::Arc;
use std::time::Duration;

use proto::ids::{BackendId, PrivateSessionId, PublicSessionId, RoomId, RoomSessionId};
use proto::RawJson;
use serde::{Deserialize, Serialize};

use super::handle::room::room_session_metric;
use super::session::{CarriedState, ClientType, NewSession, Session, Side, SubjectKind};
use super::Hub;
use crate::cluster::bus::now_us;
use crate::cluster::{BusMessage, BusPayload, Subject};
use crate::grpc::peers::Peer;
use crate::hub::session::Joined;

/// How long either side waits for its markers to come back.
const CUT_WAIT: Duration = Duration::from_secs(5);
/// How long the taker waits for each call to the owner.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// The session as the owner hands it over.
#[derive(Debug, Serialize, Deserialize)]
pub struct Snapshot {
    pub public_id: PublicSessionId,
    pub private_id: PrivateSessionId,
    pub index: u64,
    pub backend: BackendId,
    pub backend_url: String,
    pub user_id: String,
    pub user_data: Option<RawJson>,
    pub features: Vec<String>,
    pub room: Option<RoomState>,
    pub carried: CarriedState,
}

/// The session's room on the owner.
#[derive(Debug, Serialize, Deserialize)]
pub struct RoomState {
    pub room: RoomId,
    pub room_session: RoomSessionId,
    pub join_time_us: i64,
    pub room_user_id: Option<String>,
    pub properties: Option<RawJson>,
    pub in_call: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The owner does not give the session away (not draining, a client
    /// type that does not move, or a node without this service): proxy it.
    #[error("refused: {0}")]
    Refused(String),
    #[error("no such session")]
    NoSuchSession,
    #[error("{0}")]
    Failed(String),
}

impl Hub {
    /// The subjects a session of this node is subscribed to.
    fn subjects_of(&self, s: &Session) -> Vec<Subject> {
        let mut out = vec![Subject::Session(s.public_id.clone())];
        if !s.user_id.is_empty() {
            out.push(Subject::User {
                backend: s.backend.id.clone(),
                compat: s.backend.is_compat(),
                user: s.user_id.clone(),
            });
        }
        if let Some(room) = s.room() {
            out.push(room.subject());
        }
        out
    }

    /// Owner, step 1: agrees to give `resume_id`'s session away.
    pub fn prepare_handover(&self, resume_id: &str) -> Result<(Snapshot, String), HandoverError> {
        if !self.is_draining() {
            return Err(HandoverError::Refused("not draining".into()));
        }
        let s = self
            .resumable_session(resume_id)
            .ok_or(HandoverError::NoSuchSession)?;
        if s.client_type != ClientType::Client {
            return Err(HandoverError::Refused(format!(
                "{} sessions stay",
                s.client_type.as_str()
            )));
        }
        if s.federation().is_some() {
            return Err(HandoverError::Refused("federated sessions stay".into()));
        }
        // The client is on its way to the other node.
        if let Some(old) = s.take_outbox() {
            super::send_bye(&old, proto::server::bye_reason::SESSION_RESUMED);
        }
        let token = format!("{:032x}", rand::random::<u128>());
        let room = s.room().map(|room| RoomState {
            in_call: room.is_in_call(&s.public_id),
            room: room.id.clone(),
            room_session: s.room_session_id().unwrap_or_default(),
            join_time_us: s.join_time_us().unwrap_or_else(now_us),
            room_user_id: s.room_user_id(),
            properties: room.properties(),
        });
        let snapshot = Snapshot {
            public_id: s.public_id.clone(),
            private_id: s.private_id.clone(),
            index: s.index,
            backend: s.backend.id.clone(),
            backend_url: s.backend_url.clone(),
            user_id: s.user_id.clone(),
            user_data: s.user_data.clone(),
            features: s.features.clone(),
            room,
            carried: s.carried_state(),
        };
        s.open_gate(Side::Giving, &token, &s.subject_kinds());
        tracing::info!(session = %s.public_id, "handing the session over");
        Ok((snapshot, token))
    }

    /// Owner, step 2: cuts the session's subjects and forgets it; returns
    /// the frames queued for its client.
    pub async fn commit_handover(
        &self,
        resume_id: &str,
        token: &str,
    ) -> Result<Vec<String>, HandoverError> {
        let s = self
            .resumable_session(resume_id)
            .ok_or(HandoverError::NoSuchSession)?;
        let mut cut = s
            .gate_cut(token)
            .ok_or_else(|| HandoverError::Failed("no handover under way".into()))?;
        for subject in self.subjects_of(&s) {
            let marker = BusPayload::HandoverMarker {
                session: s.public_id.clone(),
                token: token.to_owned(),
            };
            self.publish(&subject, BusMessage::with_time(now_us(), marker));
        }
        // Our own copies come back without the NATS round trip; the taker
        // needs the markers on the server before we answer (and before
        // this node may exit).
        self.inner.bus.barrier().await;
        if tokio::time::timeout(CUT_WAIT, cut.wait_for(|done| *done))
            .await
            .is_err()
        {
            s.close_gate();
            return Err(HandoverError::Failed("markers did not come back".into()));
        }
        // Off the registry first: senders here now publish to the bus,
        // after the markers, where the taker gets them.
        self.inner.sessions.unregister(&s);
        if let Some(joined) = s.take_room() {
            let (room, _) = joined.into_parts();
            let (_, closed) = room.remove(&s.public_id);
            if closed {
                self.inner.rooms.remove_closed(&room);
            }
            room_session_metric(&room, &s).dec();
        }
        super::media::shut_down(&s);
        let frames = s.hand_over_pending();
        s.close_gate();
        tracing::info!(session = %s.public_id, frames = frames.len(), "session handed over");
        Ok(frames)
    }

    /// Taker: moves `resume_id`'s session from `peer` to this node. On
    /// `Refused` nothing changed and the caller proxies instead.
    pub async fn take_over(
        &self,
        peer: &Peer,
        resume_id: &str,
    ) -> Result<Arc<Session>, HandoverError> {
        let prepared = tokio::time::timeout(
            CALL_TIMEOUT,
            peer.handover()
                .prepare(proto::grpc::PrepareHandoverRequest {
                    resume_id: resume_id.to_owned(),
                }),
        )
        .await
        .map_err(|_| HandoverError::Refused("no answer".into()))?
        .map_err(|e| HandoverError::Refused(e.message().to_owned()))?
        .into_inner();
        let snap: Snapshot = serde_json::from_str(&prepared.state)
            .map_err(|e| HandoverError::Failed(format!("bad state: {e}")))?;
        let session = self.adopt(&snap, &prepared.token).await?;
        let committed = tokio::time::timeout(
            CALL_TIMEOUT * 2,
            peer.handover().commit(proto::grpc::CommitHandoverRequest {
                resume_id: resume_id.to_owned(),
                token: prepared.token.clone(),
            }),
        )
        .await;
        let frames = match committed {
            Ok(Ok(reply)) => reply.into_inner().frames,
            Ok(Err(e)) => {
                self.drop_adopted(&session);
                return Err(HandoverError::Failed(e.message().to_owned()));
            }
            Err(_) => {
                self.drop_adopted(&session);
                return Err(HandoverError::Failed("commit timed out".into()));
            }
        };
        let cut = session.gate_cut(&prepared.token);
        if let Some(mut cut) = cut {
            if tokio::time::timeout(CUT_WAIT, cut.wait_for(|done| *done))
                .await
                .is_err()
            {
                tracing::warn!(session = %session.public_id, "handover markers missing here; taking all");
            }
        }
        session.close_gate();
        session.prepend_pending(frames);
        if let Some(room) = session.room() {
            // The other nodes learn where the session lives now.
            self.announce_join(&room, &session);
        }
        tracing::info!(session = %session.public_id, "session taken over");
        Ok(session)
    }

    /// Taker, step 2: the session with its subscriptions and room, gated.
    async fn adopt(&self, snap: &Snapshot, token: &str) -> Result<Arc<Session>, HandoverError> {
        let backend = self
            .backends()
            .by_id(&snap.backend)
            .cloned()
            .ok_or_else(|| HandoverError::Failed(format!("unknown backend {}", snap.backend)))?;
        let session = Arc::new(Session::new(NewSession {
            tasks: self.inner.tasks.clone(),
            index: snap.index,
            public_id: snap.public_id.clone(),
            private_id: snap.private_id.clone(),
            client_type: ClientType::Client,
            backend: backend.clone(),
            backend_url: snap.backend_url.clone(),
            user_id: snap.user_id.clone(),
            user_data: snap.user_data.clone(),
            features: snap.features.clone(),
            virtual_owner: None,
            in_call: snap.carried.in_call,
            flags: snap.carried.flags,
        }));
        let mut kinds = vec![SubjectKind::Session];
        if !snap.user_id.is_empty() {
            kinds.push(SubjectKind::User);
        }
        if snap.room.is_some() {
            kinds.push(SubjectKind::Room);
        }
        session.open_gate(Side::Taking, token, &kinds);
        // Already counted for the backend's limit, on the owner.
        if self.inner.sessions.register(&session, 0).is_err() {
            return Err(HandoverError::Failed("session limit".into()));
        }
        super::handle::hello::subscribe_session(self, &session);
        if let Some(r) = &snap.room {
            let (room, _) = self.join_local_room(&session, &backend, &r.room, r.properties.clone());
            let sink = self.session_sink(&session, SubjectKind::Room);
            let subscription = match self.inner.bus.subscribe(&room.subject(), sink) {
                Ok(s) => s,
                Err(e) => {
                    room.remove(&session.public_id);
                    self.inner.rooms.remove_closed(&room);
                    self.inner.sessions.unregister(&session);
                    return Err(HandoverError::Failed(e.to_string()));
                }
            };
            session.set_room(Joined::new(
                room.clone(),
                r.room_session.clone(),
                r.join_time_us,
                r.room_user_id.clone(),
                subscription,
            ));
            if r.in_call {
                room.set_in_call(&session.public_id, true);
            }
            // The same public id claims the same Talk session id: nobody
            // is kicked, and notifications find it here.
            self.claim_room_session(&session, &r.room_session);
            room_session_metric(&room, &session).inc();
        }
        // After `set_room`, which starts a fresh seen set.
        session.restore_state(&snap.carried);
        self.inner.bus.barrier().await;
        Ok(session)
    }

    /// Taker: undoes [`Hub::adopt`] after a failed commit, without events.
    fn drop_adopted(&self, session: &Arc<Session>) {
        self.inner.sessions.unregister(session);
        if let Some(joined) = session.take_room() {
            let (room, _) = joined.into_parts();
            let (_, closed) = room.remove(&session.public_id);
            if closed {
                self.inner.rooms.remove_closed(&room);
            }
            room_session_metric(&room, session).dec();
        }
        session.mark_closed();
    }
}
