//! Client -> server messages on `/spreed` (facts 1.2, 1.5, 1.9-1.13).
//!
//! Decoding happens in two steps: serde reads the frame into the `*Wire`
//! structs (which are also what test clients serialize), then
//! [`ClientMessage::decode`] validates them into typed requests, so the hub
//! never sees a hello without a URL or a message without a recipient.

use serde::{Deserialize, Serialize};

use crate::error::{ErrorCode, WireError};
use crate::ids::{PrivateSessionId, PublicSessionId, RoomId, RoomSessionId};
use crate::RawJson;

// === wire shapes ===

/// The envelope as it appears on the wire.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ClientMessageWire {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<HelloWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bye: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room: Option<RoomWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub control: Option<MessageWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal: Option<InternalWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transient: Option<TransientWire>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HelloWire {
    #[serde(default)]
    pub version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resumeid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<HelloAuthWire>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct HelloAuthWire {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub params: Option<RawJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct RoomWire {
    #[serde(default)]
    pub roomid: String,
    #[serde(default)]
    pub sessionid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationWire>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct FederationWire {
    #[serde(default)]
    pub signaling: String,
    #[serde(default)]
    pub url: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub roomid: String,
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RecipientWire {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessionid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct MessageWire {
    #[serde(default)]
    pub recipient: RecipientWire,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<RawJson>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TransientWire {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<RawJson>,
    /// Nanoseconds; must be a JSON integer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<i64>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct InternalWire {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub addsession: Option<AddSessionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updatesession: Option<UpdateSessionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub removesession: Option<RemoveSessionWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<InCallWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialout: Option<DialoutWire>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AddSessionWire {
    #[serde(default)]
    pub sessionid: String,
    #[serde(default)]
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<RawJson>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<AddSessionOptions>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct AddSessionOptions {
    #[serde(rename = "actorId", default, skip_serializing_if = "String::is_empty")]
    pub actor_id: String,
    #[serde(
        rename = "actorType",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub actor_type: String,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct UpdateSessionWire {
    #[serde(default)]
    pub sessionid: String,
    #[serde(default)]
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flags: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<i64>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct RemoveSessionWire {
    #[serde(default)]
    pub sessionid: String,
    #[serde(default)]
    pub roomid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userid: Option<String>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct InCallWire {
    #[serde(default)]
    pub incall: i64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct DialoutWire {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roomid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RawJson>,
}

// === validated messages ===

/// A validated client message.
#[derive(Debug)]
pub struct ClientMessage {
    pub id: Option<String>,
    pub body: ClientRequest,
}

/// What the client asks for, one variant per message type.
#[derive(Debug)]
pub enum ClientRequest {
    Hello(HelloRequest),
    Bye,
    Room(RoomRequest),
    Message(MessageRequest),
    Control(MessageRequest),
    Internal(InternalRequest),
    Transient(TransientRequest),
    /// A type this server does not know: `hello_expected` before hello,
    /// ignored afterwards (facts 1.2).
    Unknown(String),
}

impl ClientRequest {
    pub fn is_hello(&self) -> bool {
        matches!(self, ClientRequest::Hello(_))
    }

    /// The message type as written on the wire, for logs and metrics.
    pub fn kind(&self) -> &str {
        match self {
            ClientRequest::Hello(_) => "hello",
            ClientRequest::Bye => "bye",
            ClientRequest::Room(_) => "room",
            ClientRequest::Message(_) => "message",
            ClientRequest::Control(_) => "control",
            ClientRequest::Internal(_) => "internal",
            ClientRequest::Transient(_) => "transient",
            ClientRequest::Unknown(_) => "unknown",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HelloVersion {
    V1,
    V2,
}

impl HelloVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            HelloVersion::V1 => "1.0",
            HelloVersion::V2 => "2.0",
        }
    }
}

#[derive(Debug)]
pub struct HelloRequest {
    pub version: HelloVersion,
    pub features: Vec<String>,
    pub auth: HelloAuth,
}

/// How the client authenticates.
#[derive(Debug)]
pub enum HelloAuth {
    /// Resume an existing session; `auth` is ignored.
    Resume(PrivateSessionId),
    /// v1: `params` are posted to Nextcloud verbatim.
    ClientV1 { url: String, params: RawJson },
    /// v2: a JWT verified with the key from the capabilities.
    ClientV2 { url: String, token: String },
    /// v2 federation hello from a remote signaling server.
    Federation { url: String, token: String },
    /// Internal client (HMAC over `random` with `[clients] internalsecret`).
    Internal {
        random: String,
        token: String,
        backend: String,
    },
}

#[derive(Debug)]
pub struct RoomRequest {
    pub room_id: RoomId,
    pub session_id: RoomSessionId,
    pub federation: Option<FederationWire>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    Session(PublicSessionId),
    User(String),
    Room,
    Call,
}

impl Recipient {
    pub fn kind(&self) -> &'static str {
        match self {
            Recipient::Session(_) => "session",
            Recipient::User(_) => "user",
            Recipient::Room => "room",
            Recipient::Call => "call",
        }
    }
}

#[derive(Debug)]
pub struct MessageRequest {
    pub recipient: Recipient,
    pub data: RawJson,
}

#[derive(Debug)]
pub enum TransientRequest {
    Set {
        key: String,
        /// `None` when the value is missing or `null` (= remove).
        value: Option<RawJson>,
        ttl_ns: i64,
    },
    Remove {
        key: String,
    },
    /// A sub-type other than set/remove: answered with `ignored`.
    Other(String),
}

#[derive(Debug)]
pub enum InternalRequest {
    AddSession(AddSessionWire),
    UpdateSession(UpdateSessionWire),
    RemoveSession(RemoveSessionWire),
    InCall(i64),
    Dialout(DialoutWire),
    Unknown(String),
}

/// A frame that could not be turned into a [`ClientMessage`]; the reply is
/// `error` carries (facts 1.2) with the request id if one was readable.
#[derive(Debug)]
pub struct DecodeError {
    pub id: Option<String>,
    pub error: WireError,
}

fn invalid() -> WireError {
    WireError::new(ErrorCode::InvalidFormat)
}

impl ClientMessage {
    /// Parses and validates one text frame.
    pub fn decode(frame: &[u8]) -> Result<ClientMessage, DecodeError> {
        let wire: ClientMessageWire = match serde_json::from_slice(frame) {
            Ok(w) => w,
            Err(_) => {
                // Upstream replies with the id when the JSON was readable
                // but did not match the schema.
                let id = serde_json::from_slice::<serde_json::Value>(frame)
                    .ok()
                    .and_then(|v| v.get("id").and_then(|i| i.as_str()).map(str::to_owned));
                return Err(DecodeError {
                    id,
                    error: invalid(),
                });
            }
        };
        let id = wire.id.clone();
        match Self::validate(wire) {
            Ok(body) => Ok(ClientMessage { id, body }),
            Err(error) => Err(DecodeError { id, error }),
        }
    }

    fn validate(wire: ClientMessageWire) -> Result<ClientRequest, WireError> {
        Ok(match wire.kind.as_str() {
            "" => return Err(invalid()),
            "hello" => ClientRequest::Hello(validate_hello(wire.hello.ok_or_else(invalid)?)?),
            "bye" => ClientRequest::Bye,
            "room" => {
                let room = wire.room.ok_or_else(invalid)?;
                if let Some(fed) = &room.federation {
                    validate_federation(fed)?;
                }
                ClientRequest::Room(RoomRequest {
                    room_id: RoomId(room.roomid),
                    session_id: RoomSessionId(room.sessionid),
                    federation: room.federation,
                })
            }
            "message" => {
                ClientRequest::Message(validate_message(wire.message.ok_or_else(invalid)?)?)
            }
            "control" => {
                ClientRequest::Control(validate_message(wire.control.ok_or_else(invalid)?)?)
            }
            "internal" => {
                ClientRequest::Internal(validate_internal(wire.internal.ok_or_else(invalid)?)?)
            }
            "transient" => {
                ClientRequest::Transient(validate_transient(wire.transient.ok_or_else(invalid)?)?)
            }
            other => ClientRequest::Unknown(other.to_owned()),
        })
    }
}

fn validate_hello(h: HelloWire) -> Result<HelloRequest, WireError> {
    let version = match h.version.as_str() {
        "1.0" => HelloVersion::V1,
        "2.0" => HelloVersion::V2,
        _ => return Err(WireError::new(ErrorCode::InvalidHelloVersion)),
    };
    let features = h.features.unwrap_or_default();
    if let Some(resume) = h.resumeid.filter(|r| !r.is_empty()) {
        return Ok(HelloRequest {
            version,
            features,
            auth: HelloAuth::Resume(PrivateSessionId(resume)),
        });
    }
    let auth = h.auth.ok_or_else(invalid)?;
    let params = auth.params.ok_or_else(invalid)?;
    let kind = auth.kind.unwrap_or_default();
    let auth = match kind.as_str() {
        "" | "client" | "federation" => {
            let url = normalize_hello_url(auth.url.as_deref().unwrap_or(""))?;
            match (kind.as_str(), version) {
                ("federation", _) => HelloAuth::Federation {
                    url,
                    token: token_param(&params)?,
                },
                (_, HelloVersion::V1) => HelloAuth::ClientV1 { url, params },
                (_, HelloVersion::V2) => HelloAuth::ClientV2 {
                    url,
                    token: token_param(&params)?,
                },
            }
        }
        "internal" => {
            #[derive(Deserialize)]
            struct InternalParams {
                #[serde(default)]
                random: String,
                #[serde(default)]
                token: String,
                #[serde(default)]
                backend: String,
            }
            let p: InternalParams = serde_json::from_str(params.get()).map_err(|_| invalid())?;
            if p.backend.is_empty() {
                return Err(invalid());
            }
            HelloAuth::Internal {
                random: p.random,
                token: p.token,
                backend: canonicalize_url(&with_trailing_slash(&p.backend))?,
            }
        }
        _ => return Err(invalid()),
    };
    Ok(HelloRequest {
        version,
        features,
        auth,
    })
}

fn token_param(params: &RawJson) -> Result<String, WireError> {
    #[derive(Deserialize)]
    struct TokenParams {
        #[serde(default)]
        token: String,
    }
    let p: TokenParams = serde_json::from_str(params.get()).map_err(|_| invalid())?;
    if p.token.is_empty() {
        return Err(invalid());
    }
    Ok(p.token)
}

fn with_trailing_slash(s: &str) -> String {
    if s.ends_with('/') {
        s.to_owned()
    } else {
        format!("{s}/")
    }
}

/// Parses an absolute URL and drops an explicit default port (facts 1.5.2
/// step 4-5). A bare absolute path is accepted like Go's `ParseRequestURI`
/// does; it simply never matches a backend.
pub fn canonicalize_url(s: &str) -> Result<String, WireError> {
    if s.starts_with('/') {
        return Ok(s.to_owned());
    }
    let url = url::Url::parse(s).map_err(|_| invalid())?;
    if url.cannot_be_a_base() {
        return Err(invalid());
    }
    // `url` already omits default ports when serializing.
    Ok(url.to_string())
}

/// Normalizes the hello `auth.url` (facts 1.5.2): non-empty, `/` appended,
/// cut at `ocs/v2.php/apps/spreed/`, canonicalized.
pub fn normalize_hello_url(raw: &str) -> Result<String, WireError> {
    if raw.is_empty() {
        return Err(invalid());
    }
    let mut url = with_trailing_slash(raw);
    if let Some(pos) = url.find("ocs/v2.php/apps/spreed/") {
        url.truncate(pos);
    }
    canonicalize_url(&url)
}

fn validate_federation(f: &FederationWire) -> Result<(), WireError> {
    if f.signaling.is_empty() || f.url.is_empty() || f.token.is_empty() {
        return Err(invalid());
    }
    url::Url::parse(&f.signaling).map_err(|_| invalid())?;
    url::Url::parse(&f.url).map_err(|_| invalid())?;
    Ok(())
}

fn validate_message(m: MessageWire) -> Result<MessageRequest, WireError> {
    let data = m.data.ok_or_else(invalid)?;
    let r = m.recipient;
    let recipient = match r.kind.as_str() {
        "session" => Recipient::Session(PublicSessionId(
            r.sessionid.filter(|s| !s.is_empty()).ok_or_else(invalid)?,
        )),
        "user" => Recipient::User(r.userid.filter(|s| !s.is_empty()).ok_or_else(invalid)?),
        "room" => Recipient::Room,
        "call" => Recipient::Call,
        _ => return Err(invalid()),
    };
    Ok(MessageRequest { recipient, data })
}

fn validate_transient(t: TransientWire) -> Result<TransientRequest, WireError> {
    let key = t.key.unwrap_or_default();
    Ok(match t.kind.as_str() {
        "" => return Err(invalid()),
        "set" | "remove" if key.is_empty() => return Err(invalid()),
        "set" => TransientRequest::Set {
            key,
            value: t.value,
            ttl_ns: t.ttl.unwrap_or(0),
        },
        "remove" => TransientRequest::Remove { key },
        other => TransientRequest::Other(other.to_owned()),
    })
}

fn validate_internal(i: InternalWire) -> Result<InternalRequest, WireError> {
    fn ids_present(session: &str, room: &str) -> Result<(), WireError> {
        if session.is_empty() || room.is_empty() {
            Err(invalid())
        } else {
            Ok(())
        }
    }
    Ok(match i.kind.as_str() {
        "" => return Err(invalid()),
        "addsession" => {
            let a = i.addsession.ok_or_else(invalid)?;
            ids_present(&a.sessionid, &a.roomid)?;
            InternalRequest::AddSession(a)
        }
        "updatesession" => {
            let u = i.updatesession.ok_or_else(invalid)?;
            ids_present(&u.sessionid, &u.roomid)?;
            InternalRequest::UpdateSession(u)
        }
        "removesession" => {
            let r = i.removesession.ok_or_else(invalid)?;
            ids_present(&r.sessionid, &r.roomid)?;
            InternalRequest::RemoveSession(r)
        }
        "incall" => InternalRequest::InCall(i.incall.ok_or_else(invalid)?.incall.max(0)),
        "dialout" => {
            let d = i.dialout.ok_or_else(invalid)?;
            match d.kind.as_str() {
                "" => return Err(invalid()),
                "error" if d.error.is_none() => return Err(invalid()),
                "status" if d.status.is_none() => return Err(invalid()),
                _ => {}
            }
            InternalRequest::Dialout(d)
        }
        other => InternalRequest::Unknown(other.to_owned()),
    })
}

#[cfg(test)]
mod tests;
