//! One signaling session: who it is (ids, user, backend, client type) and
//! its mutable state (connection, room, permissions, pending messages).
//!
//! The state sits inside one `parking_lot::Mutex`; nothing awaits under it.
//! The session never holds a hub reference: operations that need the hub
//! live in `hub/handle/*` and take the session as an argument.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use proto::event::{Event, JoinEntry, ParticipantsEvent, RoomEvent, RoomlistEvent};
use proto::ids::{PrivateSessionId, PublicSessionId, RoomSessionId};
use proto::permissions::{Permission, Permissions};
use proto::server::{ServerBody, ServerMessage};
use proto::RawJson;
use tokio::time::Instant;

mod deliver;
mod handover;

pub use handover::{CarriedState, Side, SubjectKind};

use super::filter;
use super::room::Room;
use crate::backend::Backend;
use crate::client::{ConnectionId, Outbox};
use crate::cluster::{BusMessage, Subscription};
use crate::federation::Federation;

/// Pending messages kept while disconnected before a warning is logged.
const PENDING_WARN: usize = 32;
/// At most this many messages wait for a disconnected session ...
pub const PENDING_MAX_FRAMES: usize = 2048;
/// ... holding at most this many bytes; beyond either, the oldest are
/// dropped (and counted): a session that resumes gets the newest, and a
/// dropped session id cannot be used to fill the server's memory.
pub const PENDING_MAX_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientType {
    Client,
    Internal,
    Federation,
    Virtual,
}

impl ClientType {
    pub const ALL: [ClientType; 4] = [
        ClientType::Client,
        ClientType::Internal,
        ClientType::Federation,
        ClientType::Virtual,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClientType::Client => "client",
            ClientType::Internal => "internal",
            ClientType::Federation => "federation",
            ClientType::Virtual => "virtual",
        }
    }
}

/// The session's membership in a local room.
pub struct Joined {
    pub room: Arc<Room>,
    pub room_session_id: RoomSessionId,
    /// Unix microseconds; bus events sent earlier are dropped.
    pub join_time_us: i64,
    /// `session.userid` from Talk's join reply (anonymous mapped users).
    pub room_user_id: Option<String>,
    _subscription: Subscription,
}

impl Joined {
    pub fn new(
        room: Arc<Room>,
        room_session_id: RoomSessionId,
        join_time_us: i64,
        room_user_id: Option<String>,
        subscription: Subscription,
    ) -> Self {
        Joined {
            room,
            room_session_id,
            join_time_us,
            room_user_id,
            _subscription: subscription,
        }
    }
}

impl Joined {
    /// The room and room session id; the room subscription ends here.
    pub fn into_parts(self) -> (Arc<Room>, RoomSessionId) {
        (self.room, self.room_session_id)
    }
}

#[derive(Default)]
struct State {
    outbox: Option<Outbox>,
    /// Frames queued while disconnected, flushed on resume.
    pending: std::collections::VecDeque<Arc<str>>,
    pending_bytes: usize,
    pending_chat_refresh: bool,
    disconnected_at: Option<Instant>,
    /// Anonymous sessions must join a room before this.
    join_deadline: Option<Instant>,
    room: Option<Joined>,
    permissions: Permissions,
    /// Session ids seen in `join` events since joining the current room.
    seen: HashSet<PublicSessionId>,
    closed: bool,
    subscriptions: Vec<Subscription>,
    /// Set while the session is in a room on a remote server.
    federation: Option<Arc<Federation>>,
    /// In-call flags (internal and virtual sessions keep their own).
    in_call: i64,
    /// Virtual session flags (muted, talking).
    flags: u32,
    /// Last `flags` value sent to this receiver per session (dedupe).
    seen_flags: HashMap<PublicSessionId, u32>,
}

/// The owner of a virtual session and the id it chose for it.
pub struct VirtualOwner {
    pub owner: Weak<Session>,
    pub owner_id: PublicSessionId,
    pub client_id: String,
    pub room_id: proto::ids::RoomId,
    /// `options.actorId` / `options.actorType` of `addsession`.
    pub actor: Option<(String, String)>,
}

impl VirtualOwner {
    /// The registry key `<owner public id>|<client id>`.
    pub fn key(&self) -> String {
        format!("{}|{}", self.owner_id, self.client_id)
    }
}

/// What a delivery asks of the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivered {
    No,
    Yes,
    /// Written; now close the connection and the session (disinvite from
    /// the current room, facts 1.7).
    CloseAfter,
}

pub struct Session {
    pub index: u64,
    pub public_id: PublicSessionId,
    pub private_id: PrivateSessionId,
    pub client_type: ClientType,
    pub backend: Arc<Backend>,
    /// The normalized URL the session authenticated against.
    pub backend_url: String,
    pub user_id: String,
    pub user_data: Option<RawJson>,
    pub features: Vec<String>,
    /// Set for virtual sessions.
    pub virtual_owner: Option<VirtualOwner>,
    /// Publishers and subscribers in the SFU.
    pub media: super::media::MediaClients,
    /// Media of the video publisher (`media::AUDIO | media::VIDEO`).
    pub published_media: std::sync::atomic::AtomicU32,
    /// Country of the client's current connection, when known.
    pub country: Mutex<Option<String>>,
    state: Mutex<State>,
    /// Set while the session moves between nodes (`handover`).
    gate: Mutex<Option<handover::Gate>>,
    /// Whether `gate` is set: every bus delivery asks, and almost never
    /// needs the lock.
    gated: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Session({}, {})", self.index, self.public_id)
    }
}

/// Everything needed to create a session.
pub struct NewSession {
    /// The hub's tasks, for the session's media work.
    pub tasks: tokio_util::task::TaskTracker,
    pub index: u64,
    pub public_id: PublicSessionId,
    pub private_id: PrivateSessionId,
    pub client_type: ClientType,
    pub backend: Arc<Backend>,
    pub backend_url: String,
    pub user_id: String,
    pub user_data: Option<RawJson>,
    pub features: Vec<String>,
    pub virtual_owner: Option<VirtualOwner>,
    pub in_call: i64,
    pub flags: u32,
}

impl Session {
    pub fn new(n: NewSession) -> Self {
        Session {
            index: n.index,
            public_id: n.public_id,
            private_id: n.private_id,
            client_type: n.client_type,
            backend: n.backend,
            backend_url: n.backend_url,
            user_id: n.user_id,
            user_data: n.user_data,
            features: n.features,
            virtual_owner: n.virtual_owner,
            media: super::media::MediaClients::new(n.tasks),
            published_media: Default::default(),
            country: Mutex::new(None),
            gate: Mutex::new(None),
            gated: Default::default(),
            state: Mutex::new(State {
                in_call: n.in_call,
                flags: n.flags,
                ..State::default()
            }),
        }
    }

    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }

    pub fn is_internal(&self) -> bool {
        self.client_type == ClientType::Internal
    }

    // === connection ===

    /// Binds a connection; returns the previously attached one (takeover).
    pub fn attach(&self, outbox: Outbox) -> Option<Outbox> {
        let mut s = self.state.lock();
        s.disconnected_at = None;
        s.outbox.replace(outbox)
    }

    /// Unbinds `conn` if it is the attached one; the session then waits for
    /// a resume. Returns whether it was attached.
    pub fn detach(&self, conn: ConnectionId) -> bool {
        let mut s = self.state.lock();
        if s.outbox.as_ref().is_some_and(|o| o.id() == conn) {
            s.outbox = None;
            s.disconnected_at = Some(Instant::now());
            true
        } else {
            false
        }
    }

    /// Whether a connection is bound to the session.
    pub fn is_connected(&self) -> bool {
        self.state.lock().outbox.is_some()
    }

    /// Whether `conn` is the connection currently bound to the session.
    pub fn is_attached(&self, conn: ConnectionId) -> bool {
        self.state
            .lock()
            .outbox
            .as_ref()
            .is_some_and(|o| o.id() == conn)
    }

    /// Unbinds whatever connection is attached and returns it.
    pub fn take_outbox(&self) -> Option<Outbox> {
        self.state.lock().outbox.take()
    }

    pub fn disconnected_since(&self) -> Option<Instant> {
        self.state.lock().disconnected_at
    }

    /// Binds a resuming connection: `reply` (the hello answer) goes out
    /// first, then everything queued meanwhile as one batch, before any
    /// message that arrives from now on. Returns the connection that was
    /// attached before (a takeover) and how many queued messages went out.
    pub fn resume(&self, outbox: Outbox, reply: Arc<str>) -> (Option<Outbox>, usize) {
        let mut s = self.state.lock();
        let pending: Vec<Arc<str>> = s.pending.drain(..).collect();
        s.pending_bytes = 0;
        s.pending_chat_refresh = false;
        s.disconnected_at = None;
        let n = pending.len();
        outbox.send_text(reply);
        if !pending.is_empty() {
            outbox.send_batch(pending);
        }
        (s.outbox.replace(outbox), n)
    }

    // === sending ===

    /// Sends a message straight to this session's client (or queues it while
    /// disconnected).
    pub fn send(&self, msg: &ServerMessage) {
        if self.virtual_owner.is_some() {
            // Virtual sessions have no connection of their own.
            return;
        }
        self.send_frame(Arc::from(msg.to_json()), false);
    }

    fn send_frame(&self, frame: Arc<str>, chat_refresh: bool) {
        let mut s = self.state.lock();
        if s.closed {
            return;
        }
        if let Some(outbox) = &s.outbox {
            outbox.send_text(frame);
            return;
        }
        if chat_refresh {
            if s.pending_chat_refresh {
                return;
            }
            s.pending_chat_refresh = true;
        }
        s.pending_bytes += frame.len();
        s.pending.push_back(frame);
        if s.pending.len() == PENDING_WARN {
            tracing::warn!(session = %self.public_id, "many messages pending for a disconnected session");
        }
        let mut dropped = 0;
        while s.pending.len() > PENDING_MAX_FRAMES || s.pending_bytes > PENDING_MAX_BYTES {
            let Some(old) = s.pending.pop_front() else {
                break;
            };
            s.pending_bytes -= old.len();
            dropped += 1;
        }
        if dropped > 0 {
            crate::metrics::METRICS
                .session_pending_dropped_total
                .inc_by(dropped);
            tracing::debug!(session = %self.public_id, dropped, "queue of a disconnected session full: oldest dropped");
        }
    }

    /// Sends an already serialized message (relayed from a remote server).
    pub fn send_raw(&self, json: String) {
        self.send_frame(Arc::from(json), false);
    }

    /// Marks ids as seen without an event (the joiner's initial list).
    pub fn mark_seen<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a PublicSessionId>,
    ) -> Vec<PublicSessionId> {
        let mut s = self.state.lock();
        ids.into_iter()
            .filter(|id| s.seen.insert((*id).clone()))
            .cloned()
            .collect()
    }

    // === room ===

    pub fn room(&self) -> Option<Arc<Room>> {
        self.state.lock().room.as_ref().map(|j| j.room.clone())
    }

    pub fn room_session_id(&self) -> Option<RoomSessionId> {
        self.state
            .lock()
            .room
            .as_ref()
            .map(|j| j.room_session_id.clone())
    }

    pub fn set_room_session_id(&self, id: RoomSessionId) {
        if let Some(j) = self.state.lock().room.as_mut() {
            j.room_session_id = id;
        }
    }

    /// The user id others see: the auth user id, or the one Talk gave this
    /// anonymous session for its room (facts 5.6).
    pub fn effective_user_id(&self) -> String {
        if !self.user_id.is_empty() {
            return self.user_id.clone();
        }
        self.state
            .lock()
            .room
            .as_ref()
            .and_then(|j| j.room_user_id.clone())
            .unwrap_or_default()
    }

    /// Sets the room membership; returns the previous one.
    pub fn set_room(&self, joined: Joined) -> Option<Joined> {
        let mut s = self.state.lock();
        s.seen.clear();
        s.join_deadline = None;
        s.room.replace(joined)
    }

    pub fn take_room(&self) -> Option<Joined> {
        let mut s = self.state.lock();
        s.seen.clear();
        s.room.take()
    }

    /// Forgets which sessions were seen in join events.
    pub fn reset_seen(&self) {
        self.state.lock().seen.clear();
    }

    // === federation ===

    pub fn federation(&self) -> Option<Arc<Federation>> {
        self.state.lock().federation.clone()
    }

    pub fn set_federation(&self, f: Arc<Federation>) -> Option<Arc<Federation>> {
        self.state.lock().federation.replace(f)
    }

    pub fn take_federation(&self) -> Option<Arc<Federation>> {
        self.state.lock().federation.take()
    }

    /// Drops `f` if it is still the session's federation.
    pub fn detach_federation(&self, f: &Federation) {
        let mut s = self.state.lock();
        if s.federation
            .as_ref()
            .is_some_and(|x| std::ptr::eq(Arc::as_ptr(x), f))
        {
            s.federation = None;
        }
    }

    // === call state ===

    pub fn in_call(&self) -> i64 {
        self.state.lock().in_call
    }

    /// Sets the in-call flags; returns the previous value.
    pub fn set_in_call(&self, v: i64) -> i64 {
        std::mem::replace(&mut self.state.lock().in_call, v)
    }

    pub fn flags(&self) -> u32 {
        self.state.lock().flags
    }

    pub fn set_flags(&self, v: u32) -> u32 {
        std::mem::replace(&mut self.state.lock().flags, v)
    }

    pub fn is_virtual(&self) -> bool {
        self.virtual_owner.is_some()
    }

    // === permissions and timers ===

    /// Publishers that are no longer allowed close.
    pub fn set_permissions(&self, p: Permissions) {
        self.state.lock().permissions = p;
        super::media::permissions_changed(self);
    }

    pub fn has_permission(&self, p: Permission) -> bool {
        match self.client_type {
            ClientType::Virtual => true,
            _ => self.state.lock().permissions.has(p),
        }
    }

    pub fn set_join_deadline(&self, at: Option<Instant>) {
        self.state.lock().join_deadline = at;
    }

    /// True if the anonymous join deadline passed while not in a room.
    pub fn join_deadline_expired(&self, now: Instant) -> bool {
        let s = self.state.lock();
        s.room.is_none() && s.join_deadline.is_some_and(|d| now >= d)
    }

    pub fn add_subscription(&self, sub: Subscription) {
        self.state.lock().subscriptions.push(sub);
    }

    /// Marks the session closed and drops its subscriptions. Returns false
    /// if it already was closed.
    pub fn mark_closed(&self) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        s.closed = true;
        s.subscriptions.clear();
        s.pending.clear();
        s.pending_bytes = 0;
        true
    }

    pub fn is_closed(&self) -> bool {
        self.state.lock().closed
    }
}

fn event_message(event: Event) -> ServerMessage {
    ServerMessage::new(ServerBody::Event { event })
}

fn is_chat_refresh(msg: &ServerMessage) -> bool {
    let ServerBody::Event {
        event: Event::Room(RoomEvent::Message { message }),
    } = &msg.body
    else {
        return false;
    };
    #[derive(serde::Deserialize)]
    struct Chat {
        #[serde(rename = "type")]
        kind: String,
        chat: Option<ChatBody>,
    }
    #[derive(serde::Deserialize)]
    struct ChatBody {
        #[serde(default)]
        refresh: bool,
    }
    serde_json::from_str::<Chat>(message.data.get())
        .is_ok_and(|c| c.kind == "chat" && c.chat.is_some_and(|b| b.refresh))
}
