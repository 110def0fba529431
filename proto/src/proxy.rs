//! The signaling proxy protocol on `/proxy` (cluster facts 6.2): JSON
//! text frames between a signaling server (or another proxy) and a proxy
//! in front of one Janus.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{ErrorCode, WireError};

/// The only protocol version.
pub const PROXY_VERSION: &str = "1.0";
/// Feature a proxy offers when it can forward streams to other proxies.
pub const FEATURE_REMOTE_STREAMS: &str = "remote-streams";

/// Client -> proxy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<HelloClient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bye: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandClient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadClient>,
}

/// `resumeid` and `token` are always sent, empty when unused.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HelloClient {
    pub version: String,
    #[serde(default)]
    pub resumeid: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub features: Vec<String>,
    #[serde(default)]
    pub token: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandClient {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    #[serde(
        default,
        rename = "streamType",
        skip_serializing_if = "String::is_empty"
    )]
    pub stream_type: String,
    #[serde(
        default,
        rename = "publisherId",
        skip_serializing_if = "String::is_empty"
    )]
    pub publisher_id: String,
    #[serde(default, rename = "clientId", skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    /// Deprecated: `publisherSettings.bitrate`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    /// Deprecated: `publisherSettings.mediatypes`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediatypes: Option<u32>,
    #[serde(
        default,
        rename = "publisherSettings",
        skip_serializing_if = "Option::is_none"
    )]
    pub publisher_settings: Option<PublisherSettings>,
    #[serde(
        default,
        rename = "remoteUrl",
        skip_serializing_if = "String::is_empty"
    )]
    pub remote_url: String,
    #[serde(
        default,
        rename = "remoteToken",
        skip_serializing_if = "String::is_empty"
    )]
    pub remote_token: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub hostname: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, rename = "rtcpPort", skip_serializing_if = "Option::is_none")]
    pub rtcp_port: Option<u16>,
}

/// `NewPublisherSettings` (facts 4.2; underscores as upstream).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PublisherSettings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mediatypes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audiocodec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub videocodec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vp9_profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub h264_profile: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadClient {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Value>,
}

/// Proxy -> client.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ServerMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<WireError>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hello: Option<HelloServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bye: Option<ByeServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<CommandServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<PayloadServer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<EventServer>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct HelloServer {
    pub version: String,
    pub sessionid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerInfo>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerInfo {
    pub version: String,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ByeServer {
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandServer {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bitrate: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<Vec<PublisherStream>>,
}

/// One media line of a publisher, as a proxy describes it to another
/// proxy (`get-publisher-streams`) and as Janus's `add_remote_publisher`
/// takes it (cluster facts 5.8).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublisherStream {
    pub mid: String,
    pub mindex: usize,
    /// `audio`, `video` or `data`.
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub disabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub codec: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub stereo: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub fec: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub dtx: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub simulcast: bool,
    #[serde(default, skip_serializing_if = "is_false")]
    pub svc: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub h264_profile: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub vp9_profile: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub videoorient_ext_id: u32,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub playoutdelay_ext_id: u32,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PayloadServer {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(rename = "clientId")]
    pub client_id: String,
    #[serde(default)]
    pub payload: Option<Value>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventServer {
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, rename = "clientId", skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load: Option<u64>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<EventBandwidth>,
}

/// Percentages of the configured limits and absolute bits/s.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EventBandwidth {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incoming: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outgoing: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub received: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent: Option<u64>,
}

/// Proxy-only error codes (facts 6.2); the shared ones are in
/// [`ErrorCode`].
pub mod codes {
    pub const TIMEOUT: &str = "timeout";
    pub const UNKNOWN_CLIENT: &str = "unknown_client";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const UNSUPPORTED_PAYLOAD: &str = "unsupported_payload";
    pub const SHUTDOWN_SCHEDULED: &str = "shutdown_scheduled";
    pub const UNSUPPORTED_SUBSCRIBER: &str = "unsupported_subscriber";
}

/// A client message, decoded and validated once: what the proxy acts on.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientRequest {
    pub id: Option<String>,
    pub body: ClientBody,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClientBody {
    Hello(HelloClient),
    Bye,
    Command(Command),
    Payload(PayloadRequest),
}

/// Where a remote subscriber's publisher lives (facts 6.7).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteSource {
    pub url: String,
    pub token: String,
}

/// Where `publish-remote` sends a publisher's RTP.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RemoteTarget {
    pub hostname: String,
    pub port: u16,
    pub rtcp_port: u16,
}

/// The `command` message types (facts 6.2), each with the fields it needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    CreatePublisher {
        sid: String,
        stream_type: String,
        /// `publisherSettings`, with the deprecated top-level `bitrate` and
        /// `mediatypes` filled in where it has none.
        settings: PublisherSettings,
    },
    CreateSubscriber {
        sid: String,
        publisher_id: String,
        stream_type: String,
        remote: Option<RemoteSource>,
    },
    DeletePublisher {
        client_id: String,
    },
    DeleteSubscriber {
        client_id: String,
    },
    GetPublisherStreams {
        client_id: String,
    },
    PublishRemote {
        client_id: String,
        target: RemoteTarget,
    },
    UnpublishRemote {
        client_id: String,
        target: RemoteTarget,
    },
    /// A type this proxy does not know; answered with `bad_request`.
    Unsupported(String),
}

impl Command {
    /// The wire name, as counted in `signaling_proxy_command_messages_total`.
    pub fn name(&self) -> &str {
        match self {
            Command::CreatePublisher { .. } => "create-publisher",
            Command::CreateSubscriber { .. } => "create-subscriber",
            Command::DeletePublisher { .. } => "delete-publisher",
            Command::DeleteSubscriber { .. } => "delete-subscriber",
            Command::GetPublisherStreams { .. } => "get-publisher-streams",
            Command::PublishRemote { .. } => "publish-remote",
            Command::UnpublishRemote { .. } => "unpublish-remote",
            Command::Unsupported(kind) => kind,
        }
    }
}

/// The `payload` message types (facts 6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadKind {
    Offer,
    Answer,
    Candidate,
    EndOfCandidates,
    RequestOffer,
    SendOffer,
    SelectStream,
    /// Answered with `unsupported_payload`.
    Unsupported(String),
}

impl PayloadKind {
    pub fn parse(kind: &str) -> PayloadKind {
        match kind {
            "offer" => PayloadKind::Offer,
            "answer" => PayloadKind::Answer,
            "candidate" => PayloadKind::Candidate,
            "endOfCandidates" => PayloadKind::EndOfCandidates,
            "requestoffer" => PayloadKind::RequestOffer,
            "sendoffer" => PayloadKind::SendOffer,
            "selectStream" => PayloadKind::SelectStream,
            other => PayloadKind::Unsupported(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            PayloadKind::Offer => "offer",
            PayloadKind::Answer => "answer",
            PayloadKind::Candidate => "candidate",
            PayloadKind::EndOfCandidates => "endOfCandidates",
            PayloadKind::RequestOffer => "requestoffer",
            PayloadKind::SendOffer => "sendoffer",
            PayloadKind::SelectStream => "selectStream",
            PayloadKind::Unsupported(kind) => kind,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct PayloadRequest {
    pub kind: PayloadKind,
    pub client_id: String,
    pub sid: String,
    /// Present (not null) for offers, answers and candidates.
    pub payload: Option<Value>,
}

impl ClientMessage {
    /// Decodes and validates one frame (facts 6.2); an error carries the
    /// message id when there was one.
    pub fn decode(frame: &[u8]) -> Result<ClientRequest, (Option<String>, WireError)> {
        let msg: ClientMessage = serde_json::from_slice(frame)
            .map_err(|_| (None, WireError::new(ErrorCode::InvalidFormat)))?;
        let id = msg.id;
        let invalid = |why: &str| {
            let mut e = WireError::new(ErrorCode::InvalidFormat);
            e.message = why.to_owned();
            (id.clone(), e)
        };
        let body = match msg.kind.as_str() {
            "hello" => {
                let Some(h) = msg.hello else {
                    return Err(invalid("hello missing"));
                };
                if h.version != PROXY_VERSION {
                    return Err(invalid("unsupported hello version"));
                }
                if h.resumeid.is_empty() && h.token.is_empty() {
                    return Err(invalid("token missing"));
                }
                ClientBody::Hello(h)
            }
            "bye" => ClientBody::Bye,
            "command" => {
                let Some(c) = msg.command else {
                    return Err(invalid("command missing"));
                };
                if c.kind.is_empty() {
                    return Err(invalid("type missing"));
                }
                ClientBody::Command(
                    c.into_command()
                        .ok_or_else(|| invalid("required field missing"))?,
                )
            }
            "payload" => {
                let Some(p) = msg.payload else {
                    return Err(invalid("payload missing"));
                };
                if p.client_id.is_empty() {
                    return Err(invalid("clientId missing"));
                }
                let kind = PayloadKind::parse(&p.kind);
                let payload = p.payload.filter(|v| !v.is_null());
                if matches!(
                    kind,
                    PayloadKind::Offer | PayloadKind::Answer | PayloadKind::Candidate
                ) && payload.is_none()
                {
                    return Err(invalid("payload missing"));
                }
                ClientBody::Payload(PayloadRequest {
                    kind,
                    client_id: p.client_id,
                    sid: p.sid,
                    payload,
                })
            }
            _ => return Err(invalid("unsupported message type")),
        };
        Ok(ClientRequest { id, body })
    }
}

impl CommandClient {
    /// The typed command; `None` when a field it needs is missing.
    fn into_command(self) -> Option<Command> {
        let required = |s: String| (!s.is_empty()).then_some(s);
        let target = |c: &CommandClient| {
            Some(RemoteTarget {
                hostname: required(c.hostname.clone())?,
                port: c.port?,
                rtcp_port: c.rtcp_port?,
            })
        };
        Some(match self.kind.as_str() {
            "create-publisher" => {
                let mut settings = self.publisher_settings.unwrap_or_default();
                settings.bitrate = settings.bitrate.or(self.bitrate);
                settings.mediatypes = settings.mediatypes.or(self.mediatypes);
                Command::CreatePublisher {
                    sid: self.sid,
                    stream_type: required(self.stream_type)?,
                    settings,
                }
            }
            "create-subscriber" => {
                let remote = if self.remote_url.is_empty() {
                    None
                } else {
                    Some(RemoteSource {
                        url: self.remote_url,
                        token: required(self.remote_token)?,
                    })
                };
                Command::CreateSubscriber {
                    sid: self.sid,
                    publisher_id: required(self.publisher_id)?,
                    stream_type: required(self.stream_type)?,
                    remote,
                }
            }
            "delete-publisher" => Command::DeletePublisher {
                client_id: required(self.client_id)?,
            },
            "delete-subscriber" => Command::DeleteSubscriber {
                client_id: required(self.client_id)?,
            },
            "get-publisher-streams" => Command::GetPublisherStreams {
                client_id: required(self.client_id)?,
            },
            "publish-remote" => Command::PublishRemote {
                target: target(&self)?,
                client_id: required(self.client_id)?,
            },
            "unpublish-remote" => Command::UnpublishRemote {
                target: target(&self)?,
                client_id: required(self.client_id)?,
            },
            _ => Command::Unsupported(self.kind),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hello_always_has_resumeid_and_token() {
        let m = ClientMessage {
            id: Some("1".into()),
            kind: "hello".into(),
            hello: Some(HelloClient {
                version: PROXY_VERSION.into(),
                token: "t".into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let v = serde_json::to_value(&m).unwrap();
        assert_eq!(v["hello"]["resumeid"], "");
        assert_eq!(v["hello"]["token"], "t");
        assert!(ClientMessage::decode(v.to_string().as_bytes()).is_ok());
    }

    #[test]
    fn validation() {
        let bad = [
            r#"{"type":"hello","hello":{"version":"2.0","token":"t"}}"#,
            r#"{"type":"hello","hello":{"version":"1.0"}}"#,
            r#"{"type":"command","command":{"type":"create-publisher"}}"#,
            r#"{"type":"command","command":{"type":"create-subscriber","publisherId":"p","streamType":"video","remoteUrl":"wss://x"}}"#,
            r#"{"type":"payload","payload":{"type":"offer","clientId":"c"}}"#,
            r#"{"type":"other"}"#,
            "not json",
        ];
        for b in bad {
            let (_, e) = ClientMessage::decode(b.as_bytes()).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidFormat, "{b}");
        }
        let ok =
            r#"{"id":"7","type":"payload","payload":{"type":"endOfCandidates","clientId":"c"}}"#;
        let r = ClientMessage::decode(ok.as_bytes()).unwrap();
        assert_eq!(r.id.as_deref(), Some("7"));
        assert!(matches!(
            r.body,
            ClientBody::Payload(PayloadRequest {
                kind: PayloadKind::EndOfCandidates,
                ..
            })
        ));
    }

    #[test]
    fn commands_are_typed() {
        let decode = |s: &str| match ClientMessage::decode(s.as_bytes()).unwrap().body {
            ClientBody::Command(c) => c,
            other => panic!("{other:?}"),
        };
        // Deprecated top-level fields fill in missing publisherSettings.
        let c = decode(
            r#"{"type":"command","command":{"type":"create-publisher","streamType":"video","bitrate":5,"mediatypes":3,"publisherSettings":{"bitrate":7}}}"#,
        );
        let Command::CreatePublisher { settings, .. } = c else {
            panic!("{c:?}")
        };
        assert_eq!((settings.bitrate, settings.mediatypes), (Some(7), Some(3)));
        let c = decode(
            r#"{"type":"command","command":{"type":"publish-remote","clientId":"c","hostname":"h","port":1,"rtcpPort":2}}"#,
        );
        assert_eq!(
            c,
            Command::PublishRemote {
                client_id: "c".into(),
                target: RemoteTarget {
                    hostname: "h".into(),
                    port: 1,
                    rtcp_port: 2
                }
            }
        );
        let c = decode(
            r#"{"type":"command","command":{"type":"create-subscriber","publisherId":"p","streamType":"screen","remoteUrl":"wss://x","remoteToken":"t"}}"#,
        );
        assert!(matches!(
            c,
            Command::CreateSubscriber {
                remote: Some(_),
                ..
            }
        ));
        let c = decode(r#"{"type":"command","command":{"type":"frobnicate"}}"#);
        assert_eq!(c, Command::Unsupported("frobnicate".into()));
        assert_eq!(c.name(), "frobnicate");
    }
}
