//! The event-bus trait and its message type (cluster-sfu-facts 1.2-1.3).

use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use proto::ids::{BackendId, PublicSessionId, RoomId};
use proto::server::ServerMessage;
use proto::talk::notify::RoomNotification;

/// Where a message goes. The string form is the NATS subject the reference
/// uses, so nodes of both implementations can share a bus.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// One session, wherever it lives.
    Session(PublicSessionId),
    /// Every session of a user on one backend.
    User {
        backend: BackendId,
        compat: bool,
        user: String,
    },
    /// Client-facing events of a room.
    Room {
        backend: BackendId,
        compat: bool,
        room: RoomId,
    },
    /// Backend notifications for the room object on every node.
    BackendRoom {
        backend: BackendId,
        compat: bool,
        room: RoomId,
    },
    /// Claims of Talk session ids, so the previous holder on any node is
    /// disconnected (ours; the reference asks over gRPC).
    RoomSessions,
    /// Node heartbeats (ours): a node that stops sending them is dead and
    /// its sessions leave their rooms on the other nodes.
    Nodes,
}

fn encode_pair(id: &str, backend: &BackendId, compat: bool) -> String {
    if compat {
        STANDARD.encode(id)
    } else {
        STANDARD.encode(format!("{id}|{backend}"))
    }
}

impl Subject {
    pub fn to_subject_string(&self) -> String {
        match self {
            Subject::Session(id) => format!("session.{id}"),
            Subject::User {
                backend,
                compat,
                user,
            } => format!("user.{}", encode_pair(user, backend, *compat)),
            Subject::Room {
                backend,
                compat,
                room,
            } => format!("room.{}", encode_pair(room.as_str(), backend, *compat)),
            Subject::BackendRoom {
                backend,
                compat,
                room,
            } => format!(
                "backend.room.{}",
                encode_pair(room.as_str(), backend, *compat)
            ),
            Subject::RoomSessions => "signaling.roomsessions".to_owned(),
            Subject::Nodes => "signaling.nodes".to_owned(),
        }
    }
}

/// What travels on the bus.
#[derive(Debug)]
pub enum BusPayload {
    /// A message for clients; receivers apply the per-receiver rules.
    Message(ServerMessage),
    /// A backend notification for the room object on every node that
    /// holds the room (facts 3.3).
    Room(Box<RoomNotice>),
    /// A session joined a room on node `node`; the other nodes holding the
    /// room send it their members (the joiner's initial list).
    SessionJoined {
        room: RoomId,
        session: PublicSessionId,
        node: u64,
    },
    /// `node` has these members in `room` (its answer to a join), and
    /// this transient data (for a node that just created the room).
    Members {
        room: RoomId,
        sessions: Vec<PublicSessionId>,
        node: u64,
        transient: serde_json::Map<String, serde_json::Value>,
    },
    /// A session on `node` left `room`.
    SessionLeft {
        room: RoomId,
        session: PublicSessionId,
        node: u64,
    },
    /// `node` is alive and has this many sessions per backend (for
    /// cluster-wide session limits).
    Heartbeat {
        node: u64,
        counts: std::collections::HashMap<String, u64>,
    },
    /// A session on `node` joined with Talk session id `room_session`.
    RoomSessionClaimed {
        backend: BackendId,
        room_session: proto::ids::RoomSessionId,
        claimer: PublicSessionId,
        node: u64,
    },
    /// The session gave up Talk session id `room_session` (left its room).
    RoomSessionReleased {
        room_session: proto::ids::RoomSessionId,
        session: PublicSessionId,
    },
    /// A `sendoffer` of `sender` for the session of this subject: its node
    /// has the SFU offer the sender's stream to it (facts 1.6 step 5).
    SendOffer {
        message_id: Option<String>,
        sender: PublicSessionId,
        data: serde_json::Value,
    },
    /// A transient data change, applied by every node holding the room.
    Transient {
        room: RoomId,
        change: TransientChange,
    },
    /// Where a session moving between nodes cuts each of its subjects
    /// (`hub::handover`): the giving node keeps what came before, the
    /// taking node what comes after. Other receivers ignore it.
    HandoverMarker {
        session: PublicSessionId,
        token: String,
    },
}

/// One change of a room's transient data.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum TransientChange {
    Set {
        key: String,
        // A plain value: raw JSON cannot pass serde's tagged-enum decoding.
        value: serde_json::Value,
        ttl_ns: i64,
    },
    #[serde(rename = "delete")]
    Remove { key: String },
}

/// A Nextcloud room notification with the time it was received.
#[derive(Debug)]
pub struct RoomNotice {
    pub room: RoomId,
    pub notification: RoomNotification,
    pub received_us: i64,
}

/// A message on the bus. The JSON form is cached so a room broadcast is
/// serialized once however many receivers pass it through unchanged.
#[derive(Debug)]
pub struct BusMessage {
    /// When the message was published (Unix microseconds); receivers drop
    /// room events older than their own join (facts 1.15.5).
    pub send_time_us: i64,
    pub payload: BusPayload,
    json: OnceLock<Arc<str>>,
}

pub fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl BusMessage {
    pub fn new(message: ServerMessage) -> Self {
        BusMessage {
            send_time_us: now_us(),
            payload: BusPayload::Message(message),
            json: OnceLock::new(),
        }
    }

    pub fn with_time(send_time_us: i64, payload: BusPayload) -> Self {
        BusMessage {
            send_time_us,
            payload,
            json: OnceLock::new(),
        }
    }

    pub fn room(notice: RoomNotice) -> Self {
        BusMessage {
            send_time_us: now_us(),
            payload: BusPayload::Room(Box::new(notice)),
            json: OnceLock::new(),
        }
    }

    /// The client message, if this is one.
    pub fn message(&self) -> Option<&ServerMessage> {
        match &self.payload {
            BusPayload::Message(m) => Some(m),
            _ => None,
        }
    }

    /// The client message as a text frame, serialized at most once.
    pub fn json(&self) -> Arc<str> {
        self.json
            .get_or_init(|| match &self.payload {
                BusPayload::Message(m) => Arc::from(m.to_json()),
                _ => Arc::from("{}"),
            })
            .clone()
    }
}

/// Receives the messages of one subscription. Called without any hub lock
/// held; must not block.
pub type BusSink = Arc<dyn Fn(&Arc<BusMessage>) + Send + Sync>;

/// Dropping it ends the subscription.
pub struct Subscription(#[allow(dead_code)] Box<dyn Send + Sync>);

impl Subscription {
    pub fn new(guard: impl Send + Sync + 'static) -> Self {
        Subscription(Box::new(guard))
    }
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Subscription")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BusError {
    #[error("event bus is closed")]
    Closed,
    #[error("event bus queue is full, message dropped")]
    Overloaded,
}

/// Everything that would cross nodes goes through this trait.
pub trait EventBus: Send + Sync {
    /// Delivers `msg` to every subscriber of `subject` on any node.
    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError>;

    /// Registers `sink` for `subject` until the returned guard is dropped.
    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError>;

    /// A short description for `/api/v1/serverinfo`.
    fn describe(&self) -> serde_json::Value;

    /// Whether messages reach the other nodes now (readiness).
    fn is_connected(&self) -> bool;

    /// Whether this node is the whole cluster, so a session that is not
    /// here exists nowhere.
    fn is_single_node(&self) -> bool {
        false
    }

    /// Completes once every earlier subscribe and publish of this node has
    /// reached the bus, so subscriptions made before are live.
    fn barrier(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    /// Stops the bus's own tasks, after what was published has been
    /// handed to the bus, and waits for them; at shutdown. Nothing is
    /// delivered afterwards.
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_match_reference_format() {
        let s = Subject::Room {
            backend: "backend-1".into(),
            compat: false,
            room: "abc".into(),
        };
        assert_eq!(
            s.to_subject_string(),
            format!("room.{}", STANDARD.encode("abc|backend-1"))
        );
        let u = Subject::User {
            backend: "compat".into(),
            compat: true,
            user: "alice".into(),
        };
        assert_eq!(
            u.to_subject_string(),
            format!("user.{}", STANDARD.encode("alice"))
        );
        assert_eq!(
            Subject::Session("xyz".into()).to_subject_string(),
            "session.xyz"
        );
    }
}
