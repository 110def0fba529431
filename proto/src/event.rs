//! `event` payloads (facts 1.14): `{"target": .., "type": .., <type>: ..}`.

use serde::{Deserialize, Serialize};

use crate::ids::PublicSessionId;
use crate::RawJson;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "target", rename_all = "lowercase")]
pub enum Event {
    Room(RoomEvent),
    Roomlist(RoomlistEvent),
    Participants(ParticipantsEvent),
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RoomEvent {
    Join {
        join: Vec<JoinEntry>,
    },
    Leave {
        leave: Vec<PublicSessionId>,
    },
    /// Defined by the protocol; upstream never emits it.
    Change {
        change: Vec<JoinEntry>,
    },
    Message {
        message: RoomEventMessage,
    },
    Switchto {
        switchto: SwitchtoEvent,
    },
    /// Sent to internal sessions of a room Nextcloud deleted.
    Delete,
    FederationInterrupted,
    FederationResumed {
        resumed: bool,
    },
}

/// One session in a `join` event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JoinEntry {
    pub sessionid: PublicSessionId,
    pub userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RawJson>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub roomsessionid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub federated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomEventMessage {
    pub roomid: String,
    pub data: RawJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchtoEvent {
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum RoomlistEvent {
    Invite { invite: RoomlistEntry },
    Disinvite { disinvite: DisinviteEntry },
    Update { update: RoomlistEntry },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomlistEntry {
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DisinviteEntry {
    pub roomid: String,
    pub reason: String,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ParticipantsEvent {
    Update { update: ParticipantsUpdate },
    Flags { flags: FlagsEntry },
}

pub type ParticipantEntry = serde_json::Map<String, serde_json::Value>;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ParticipantsUpdate {
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ParticipantEntry>,
    /// Never sent to clients: folded into `users` per receiver.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ParticipantEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlagsEntry {
    pub roomid: String,
    pub sessionid: PublicSessionId,
    pub flags: u32,
}

// See the note in `server.rs`: tagged enums holding raw JSON decode by hand.
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::tagged::{take, take_opt, Tagged};
        use serde::de::Error;
        let t = Tagged::<D::Error>::read(d, "target")?;
        let sub = t.tag.clone();
        let mut inner = Tagged::<D::Error>::from_map(t.obj, "type")?;
        let o = &mut inner.obj;
        Ok(match (sub.as_str(), inner.tag.as_str()) {
            ("room", "join") => Event::Room(RoomEvent::Join {
                join: take(o, "join")?,
            }),
            ("room", "leave") => Event::Room(RoomEvent::Leave {
                leave: take(o, "leave")?,
            }),
            ("room", "change") => Event::Room(RoomEvent::Change {
                change: take(o, "change")?,
            }),
            ("room", "message") => Event::Room(RoomEvent::Message {
                message: take(o, "message")?,
            }),
            ("room", "switchto") => Event::Room(RoomEvent::Switchto {
                switchto: take(o, "switchto")?,
            }),
            ("room", "delete") => Event::Room(RoomEvent::Delete),
            ("room", "federation_interrupted") => Event::Room(RoomEvent::FederationInterrupted),
            ("room", "federation_resumed") => Event::Room(RoomEvent::FederationResumed {
                resumed: take_opt(o, "resumed")?.unwrap_or(false),
            }),
            ("roomlist", "invite") => Event::Roomlist(RoomlistEvent::Invite {
                invite: take(o, "invite")?,
            }),
            ("roomlist", "disinvite") => Event::Roomlist(RoomlistEvent::Disinvite {
                disinvite: take(o, "disinvite")?,
            }),
            ("roomlist", "update") => Event::Roomlist(RoomlistEvent::Update {
                update: take(o, "update")?,
            }),
            ("participants", "update") => Event::Participants(ParticipantsEvent::Update {
                update: take(o, "update")?,
            }),
            ("participants", "flags") => Event::Participants(ParticipantsEvent::Flags {
                flags: take(o, "flags")?,
            }),
            (target, kind) => {
                return Err(D::Error::custom(format!("unknown event {target}/{kind}")))
            }
        })
    }
}
