//! A session's side of moving between nodes (`hub::handover`): the gate
//! that cuts each of its bus subjects at a marker, and what the session
//! exports and takes over.
//!
//! While a session moves, both nodes are subscribed to its subjects. The
//! giving node publishes a [`BusPayload::HandoverMarker`] on each; NATS
//! hands every subscriber of a subject the same order, so the giving node
//! keeps what arrived before the marker and the taking node what arrived
//! after it: nothing is lost and nothing is delivered twice.

use std::collections::HashSet;
use std::sync::atomic::Ordering;

use proto::ids::PublicSessionId;
use proto::permissions::Permissions;
use tokio::sync::watch;

use super::Session;
use crate::cluster::{BusMessage, BusPayload};

/// The kinds of subject a session is subscribed to, as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubjectKind {
    Session = 1,
    User = 2,
    Room = 4,
}

impl SubjectKind {
    fn bit(self) -> u8 {
        self as u8
    }
}

/// Which side of a move this node is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Keeps messages until each subject's marker.
    Giving,
    /// Keeps messages from each subject's marker on.
    Taking,
}

#[derive(Debug)]
pub(super) struct Gate {
    side: Side,
    token: String,
    expected: u8,
    cut: u8,
    all_cut: watch::Sender<bool>,
}

impl Session {
    /// Starts cutting the subjects in `kinds` at the markers carrying
    /// `token`; the returned receiver turns true once all are cut.
    pub fn open_gate(
        &self,
        side: Side,
        token: &str,
        kinds: &[SubjectKind],
    ) -> watch::Receiver<bool> {
        let expected = kinds.iter().fold(0, |acc, k| acc | k.bit());
        let (tx, rx) = watch::channel(expected == 0);
        *self.gate.lock() = Some(Gate {
            side,
            token: token.to_owned(),
            expected,
            cut: 0,
            all_cut: tx,
        });
        self.gated.store(true, Ordering::Release);
        rx
    }

    /// The receiver of a gate opened with `token`, if one is.
    pub fn gate_cut(&self, token: &str) -> Option<watch::Receiver<bool>> {
        self.gate
            .lock()
            .as_ref()
            .filter(|g| g.token == token)
            .map(|g| g.all_cut.subscribe())
    }

    /// When the session joined its room (Unix microseconds).
    pub fn join_time_us(&self) -> Option<i64> {
        self.state.lock().room.as_ref().map(|j| j.join_time_us)
    }

    /// The user id Talk gave this session for its room, if any.
    pub fn room_user_id(&self) -> Option<String> {
        self.state
            .lock()
            .room
            .as_ref()
            .and_then(|j| j.room_user_id.clone())
    }

    pub fn close_gate(&self) {
        let mut gate = self.gate.lock();
        *gate = None;
        self.gated.store(false, Ordering::Release);
    }

    /// Whether a message that arrived on a subject of `kind` is this
    /// node's to deliver. Markers are consumed here.
    pub fn admit(&self, kind: SubjectKind, m: &BusMessage) -> bool {
        let is_marker = matches!(m.payload, BusPayload::HandoverMarker { .. });
        if !self.gated.load(Ordering::Acquire) {
            return !is_marker;
        }
        let mut gate = self.gate.lock();
        let Some(g) = gate.as_mut() else {
            return !matches!(m.payload, BusPayload::HandoverMarker { .. });
        };
        if let BusPayload::HandoverMarker { session, token } = &m.payload {
            tracing::debug!(session = %self.public_id, ?kind, mine = session == &self.public_id && token == &g.token, "handover marker");
            if session == &self.public_id && token == &g.token {
                g.cut |= kind.bit();
                if g.cut & g.expected == g.expected {
                    g.all_cut.send_replace(true);
                }
            }
            return false;
        }
        let cut = g.cut & kind.bit() != 0;
        match g.side {
            Side::Giving => !cut,
            Side::Taking => cut,
        }
    }

    /// Unbinds the client's connection, closing it with 1012 so the client
    /// reconnects (to another node) and resumes; the session waits.
    pub fn release_connection(&self) -> bool {
        let mut s = self.state.lock();
        let Some(outbox) = s.outbox.take() else {
            return false;
        };
        s.disconnected_at = Some(tokio::time::Instant::now());
        outbox.close(transport::ws::CLOSE_SERVICE_RESTART, "service restart");
        true
    }

    /// The subjects this session is subscribed to.
    pub fn subject_kinds(&self) -> Vec<SubjectKind> {
        let mut kinds = vec![SubjectKind::Session];
        if !self.user_id.is_empty() {
            kinds.push(SubjectKind::User);
        }
        if self.state.lock().room.is_some() {
            kinds.push(SubjectKind::Room);
        }
        kinds
    }

    /// The giving side's last step: everything queued for the client, and
    /// the session closed here (without leave events; it lives on
    /// elsewhere).
    pub fn hand_over_pending(&self) -> Vec<String> {
        let mut s = self.state.lock();
        s.closed = true;
        s.subscriptions.clear();
        s.room = None;
        s.pending_bytes = 0;
        s.pending_chat_refresh = false;
        s.pending.drain(..).map(|f| f.to_string()).collect()
    }

    /// The taking side: frames the giving node had queued go before
    /// whatever arrived here since.
    pub fn prepend_pending(&self, frames: Vec<String>) {
        let mut s = self.state.lock();
        for f in frames.into_iter().rev() {
            s.pending_bytes += f.len();
            s.pending.push_front(f.into());
        }
    }

    /// The frames queued for the (absent) client, for tests.
    #[cfg(test)]
    pub fn pending_frames(&self) -> Vec<String> {
        self.state
            .lock()
            .pending
            .iter()
            .map(|f| f.to_string())
            .collect()
    }

    /// What moves with the session besides its identity.
    pub fn carried_state(&self) -> CarriedState {
        let s = self.state.lock();
        CarriedState {
            permissions: match s.permissions {
                Permissions::NeverSet => None,
                Permissions::Set(bits) => Some(bits),
            },
            seen: s.seen.iter().cloned().collect(),
            in_call: s.in_call,
            flags: s.flags,
        }
    }

    /// The taking side: the carried state, and detached until the
    /// client's connection is attached.
    pub fn restore_state(&self, c: &CarriedState) {
        let mut s = self.state.lock();
        s.permissions = match c.permissions {
            None => Permissions::NeverSet,
            Some(bits) => Permissions::Set(bits),
        };
        s.seen = c.seen.iter().cloned().collect::<HashSet<_>>();
        s.in_call = c.in_call;
        s.flags = c.flags;
        s.disconnected_at = Some(tokio::time::Instant::now());
    }
}

/// Session state that is not part of [`super::NewSession`].
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CarriedState {
    pub permissions: Option<u8>,
    pub seen: Vec<PublicSessionId>,
    pub in_call: i64,
    pub flags: u32,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BackendEntry, Secret};
    use proto::error::{ErrorCode, WireError};
    use proto::server::ServerMessage;

    fn session(id: &str) -> Session {
        let backends = crate::backend::Backends::from_entries(&[BackendEntry {
            id: "b".into(),
            urls: vec!["https://nc.example/".into()],
            secret: Secret::new("s"),
            allow_http: false,
            session_limit: 0,
            max_stream_bitrate: 0,
            max_screen_bitrate: 0,
            hosts: Vec::new(),
        }]);
        Session::new(super::super::NewSession {
            tasks: tokio_util::task::TaskTracker::new(),
            index: 1,
            public_id: PublicSessionId(id.into()),
            private_id: proto::ids::PrivateSessionId(format!("private-{id}")),
            client_type: super::super::ClientType::Client,
            backend: backends.all()[0].clone(),
            backend_url: "https://nc.example/".into(),
            user_id: "alice".into(),
            user_data: None,
            features: Vec::new(),
            virtual_owner: None,
            in_call: 0,
            flags: 0,
        })
    }

    fn marker(session: &str, token: &str) -> BusMessage {
        BusMessage::with_time(
            0,
            BusPayload::HandoverMarker {
                session: PublicSessionId(session.into()),
                token: token.into(),
            },
        )
    }

    fn message() -> BusMessage {
        BusMessage::new(ServerMessage::error(
            None,
            WireError::new(ErrorCode::InternalError),
        ))
    }

    #[test]
    fn giving_keeps_until_the_marker_taking_from_it() {
        let giving = session("s1");
        let taking = session("s1");
        let kinds = [SubjectKind::Session, SubjectKind::Room];
        let mut g_done = giving.open_gate(Side::Giving, "t", &kinds);
        let t_done = taking.open_gate(Side::Taking, "t", &kinds);
        let m = message();
        // Before the markers the giving node delivers.
        assert!(giving.admit(SubjectKind::Session, &m));
        assert!(!taking.admit(SubjectKind::Session, &m));
        // Another session's marker, or another token, changes nothing.
        assert!(!giving.admit(SubjectKind::Session, &marker("s2", "t")));
        assert!(!giving.admit(SubjectKind::Session, &marker("s1", "old")));
        assert!(giving.admit(SubjectKind::Session, &m));
        for s in [&giving, &taking] {
            assert!(!s.admit(SubjectKind::Session, &marker("s1", "t")));
        }
        // The session subject is cut, the room subject not yet.
        assert!(!giving.admit(SubjectKind::Session, &m));
        assert!(taking.admit(SubjectKind::Session, &m));
        assert!(giving.admit(SubjectKind::Room, &m));
        assert!(!taking.admit(SubjectKind::Room, &m));
        assert!(!*g_done.borrow_and_update());
        for s in [&giving, &taking] {
            s.admit(SubjectKind::Room, &marker("s1", "t"));
        }
        assert!(*g_done.borrow());
        assert!(*t_done.borrow());
        taking.close_gate();
        assert!(taking.admit(SubjectKind::Room, &m));
        // Without a gate, stray markers are never delivered.
        assert!(!taking.admit(SubjectKind::Room, &marker("s1", "t")));
    }

    #[test]
    fn pending_frames_move_in_order() {
        let giving = session("s1");
        let taking = session("s1");
        giving.send(&ServerMessage::error(
            None,
            WireError::new(ErrorCode::InternalError),
        ));
        giving.send(&ServerMessage::error(
            None,
            WireError::new(ErrorCode::NoSuchSession),
        ));
        taking.send(&ServerMessage::error(
            None,
            WireError::new(ErrorCode::InvalidToken),
        ));
        let frames = giving.hand_over_pending();
        assert_eq!(frames.len(), 2);
        assert!(giving.is_closed());
        taking.prepend_pending(frames);
        let order: Vec<String> = taking
            .state
            .lock()
            .pending
            .iter()
            .map(|f| f.to_string())
            .collect();
        assert!(order[0].contains("internal_error"), "{order:?}");
        assert!(order[1].contains("no_such_session"), "{order:?}");
        assert!(order[2].contains("invalid_token"), "{order:?}");
    }
}
