//! The proxy protocol's client messages as the proxy acts on them:
//! [`ClientMessage::decode`] validates a frame once into a
//! [`ClientRequest`] with typed commands and payloads.

use serde_json::Value;

use super::{ClientMessage, CommandClient, HelloClient, PublisherSettings, PROXY_VERSION};
use crate::error::{ErrorCode, WireError};

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
