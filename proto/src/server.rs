//! Server -> client messages on `/spreed` (facts 1.2-1.14).
//!
//! [`ServerMessage`] serializes as `{"id"?, "type": T, T: payload}`; the same
//! types deserialize, which the test clients and the load generator use.

use serde::{Deserialize, Serialize};

use crate::client::RecipientWire;
use crate::error::WireError;
use crate::event::Event;
use crate::ids::{PrivateSessionId, PublicSessionId};
use crate::RawJson;

#[derive(Debug, Clone, Serialize)]
pub struct ServerMessage {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(flatten)]
    pub body: ServerBody,
}

impl ServerMessage {
    /// An unsolicited message (no request id).
    pub fn new(body: ServerBody) -> Self {
        ServerMessage { id: None, body }
    }

    /// A direct reply to the request with `id`.
    pub fn reply(id: Option<String>, body: ServerBody) -> Self {
        ServerMessage { id, body }
    }

    pub fn error(id: Option<String>, error: WireError) -> Self {
        ServerMessage {
            id,
            body: ServerBody::Error { error },
        }
    }

    /// Serializes to the exact text frame.
    pub fn to_json(&self) -> String {
        // Serializing these types cannot fail: every map key is a string
        // and raw values are already valid JSON.
        serde_json::to_string(self).unwrap_or_else(|_| String::from("{}"))
    }
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerBody {
    Welcome {
        welcome: WelcomeMessage,
    },
    Hello {
        hello: HelloResponse,
    },
    /// The reply to a client `bye` carries no payload; server-initiated
    /// byes carry a reason (facts 1.7).
    Bye {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bye: Option<ByeMessage>,
    },
    Room {
        room: RoomMessage,
    },
    Message {
        message: MessageDelivery,
    },
    Control {
        control: MessageDelivery,
    },
    Event {
        event: Event,
    },
    Transient {
        transient: TransientEvent,
    },
    Internal {
        internal: InternalServerMessage,
    },
    Dialout {
        dialout: RawJson,
    },
    Error {
        error: WireError,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct WelcomeMessage {
    pub version: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ServerInfo {
    pub version: String,
    #[serde(default)]
    pub features: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HelloResponse {
    pub version: String,
    pub sessionid: PublicSessionId,
    pub resumeid: PrivateSessionId,
    pub userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ByeMessage {
    pub reason: String,
}

/// Bye reasons the server sends (facts 1.7).
pub mod bye_reason {
    pub const HELLO_TIMEOUT: &str = "hello_timeout";
    pub const ROOM_JOIN_TIMEOUT: &str = "room_join_timeout";
    pub const SESSION_RESUMED: &str = "session_resumed";
    pub const ROOM_SESSION_RECONNECTED: &str = "room_session_reconnected";
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Bandwidth {
    pub maxstreambitrate: u64,
    pub maxscreenbitrate: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomMessage {
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct MessageSender {
    #[serde(rename = "type")]
    pub kind: String,
    pub sessionid: PublicSessionId,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userid: String,
}

/// A delivered `message` or `control`. `sender` is `null` only for the
/// server-generated hangup control (facts 1.11).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageDelivery {
    pub sender: Option<MessageSender>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<RecipientWire>,
    pub data: RawJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TransientEvent {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldvalue: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Server -> internal client requests (dialout, facts 1.13.5).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InternalServerMessage {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialout: Option<DialoutRequest>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DialoutRequest {
    pub roomid: String,
    pub backend: String,
    pub request: DialoutRequestBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DialoutRequestBody {
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RawJson>,
}

// Raw JSON values cannot pass through serde's buffering of tagged enums, so
// the tagged types deserialize by hand: read a `Value`, dispatch on the tag,
// decode the payload. Only clients (tests, load generator) decode these.
impl<'de> Deserialize<'de> for ServerMessage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::tagged::{take, take_opt, Tagged};
        let mut t = Tagged::<D::Error>::read(d, "type")?;
        let id = match t.obj.remove("id") {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) => Some(s),
            Some(_) => return Err(serde::de::Error::custom("id must be a string")),
        };
        let o = &mut t.obj;
        let body = match t.tag.as_str() {
            "welcome" => ServerBody::Welcome {
                welcome: take(o, "welcome")?,
            },
            "hello" => ServerBody::Hello {
                hello: take(o, "hello")?,
            },
            "bye" => ServerBody::Bye {
                bye: take_opt(o, "bye")?,
            },
            "room" => ServerBody::Room {
                room: take(o, "room")?,
            },
            "message" => ServerBody::Message {
                message: take(o, "message")?,
            },
            "control" => ServerBody::Control {
                control: take(o, "control")?,
            },
            "event" => ServerBody::Event {
                event: take(o, "event")?,
            },
            "transient" => ServerBody::Transient {
                transient: take(o, "transient")?,
            },
            "internal" => ServerBody::Internal {
                internal: take(o, "internal")?,
            },
            "dialout" => ServerBody::Dialout {
                dialout: take(o, "dialout")?,
            },
            "error" => ServerBody::Error {
                error: take(o, "error")?,
            },
            other => return Err(serde::de::Error::custom(format!("unknown type {other:?}"))),
        };
        Ok(ServerMessage { id, body })
    }
}
