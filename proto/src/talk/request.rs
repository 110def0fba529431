//! Requests the signaling server sends to Talk's signaling backend, and the
//! replies (facts 2.5). All sub-objects carry `"version":"1.0"`.

use serde::{Deserialize, Serialize};

use crate::error::WireError;
use crate::RawJson;

pub const BACKEND_VERSION: &str = "1.0";

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BackendRequest {
    Auth { auth: AuthRequest },
    Room { room: RoomRequest },
    Ping { ping: PingRequest },
    Session { session: SessionRequest },
}

impl BackendRequest {
    pub fn kind(&self) -> &'static str {
        match self {
            BackendRequest::Auth { .. } => "auth",
            BackendRequest::Room { .. } => "room",
            BackendRequest::Ping { .. } => "ping",
            BackendRequest::Session { .. } => "session",
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthRequest {
    pub version: String,
    pub params: RawJson,
}

/// Room join (no `action`) or leave (`action:"leave"`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomRequest {
    pub version: String,
    pub roomid: String,
    pub userid: String,
    pub sessionid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actorid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actortype: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PingRequest {
    pub version: String,
    pub roomid: String,
    pub entries: Vec<PingEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PingEntry {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub userid: String,
    pub sessionid: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRequest {
    pub version: String,
    pub roomid: String,
    pub action: String,
    pub sessionid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RawJson>,
}

/// Talk's reply `data`.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct BackendResponse {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuthResponse {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub userid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoomResponse {
    #[serde(default)]
    pub version: String,
    #[serde(default)]
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
    /// `{"userid": ..}` for anonymous sessions Talk maps to a user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<RawJson>,
    /// `null`/absent = unchanged; a list = exactly these.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<Vec<String>>,
}

// Decoded by hand because of the raw `params` (see `server.rs`); the Talk
// emulator uses this.
impl<'de> Deserialize<'de> for BackendRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use crate::tagged::{take, Tagged};
        let mut t = Tagged::<D::Error>::read(d, "type")?;
        let o = &mut t.obj;
        Ok(match t.tag.as_str() {
            "auth" => BackendRequest::Auth {
                auth: take(o, "auth")?,
            },
            "room" => BackendRequest::Room {
                room: take(o, "room")?,
            },
            "ping" => BackendRequest::Ping {
                ping: take(o, "ping")?,
            },
            "session" => BackendRequest::Session {
                session: take(o, "session")?,
            },
            other => return Err(serde::de::Error::custom(format!("unknown type {other:?}"))),
        })
    }
}
