//! The SFU abstraction the hub drives (cluster facts 4): publishers (one
//! per session and stream type) and subscribers (one per session and
//! stream of another session), each taking the client's signaling
//! requests and answering with a JSEP when there is one.

use std::sync::Arc;

use serde_json::Value;

use crate::janus::JanusError;

/// The kinds of media a client can publish (facts 4.1); `audio` exists in
/// the protocol but no SFU supports it as a stream of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamType {
    Video,
    Screen,
}

impl StreamType {
    /// The `roomType` of a client message; empty means `video`.
    pub fn parse(s: &str) -> Result<StreamType, SfuError> {
        match s {
            "" | "video" => Ok(StreamType::Video),
            "screen" => Ok(StreamType::Screen),
            other => Err(SfuError::UnsupportedStreamType(other.to_owned())),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StreamType::Video => "video",
            StreamType::Screen => "screen",
        }
    }
}

/// `MediaType` bits (facts 4.1).
pub mod media {
    pub const AUDIO: u32 = 1;
    pub const VIDEO: u32 = 2;
    pub const SCREEN: u32 = 4;
}

/// How a publisher is created (facts 4.2 `NewPublisherSettings`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublisherSettings {
    /// Country of the publishing client, to place it nearby (not sent to
    /// Janus).
    pub country: Option<String>,
    /// Requested bits/s after the backend's cap; 0 = the SFU's maximum.
    pub bitrate: u64,
    pub media_types: u32,
    pub audio_codec: Option<String>,
    pub video_codec: Option<String>,
    pub vp9_profile: Option<String>,
    pub h264_profile: Option<String>,
}

/// Simulcast / stream selection (facts 4.8).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamSelection {
    pub substream: Option<i64>,
    pub temporal: Option<i64>,
    pub audio: Option<bool>,
    pub video: Option<bool>,
}

impl StreamSelection {
    /// Reads the selection keys of a `payload`; numbers may be floats,
    /// other types are refused.
    pub fn from_payload(payload: &Value) -> Result<StreamSelection, SfuError> {
        let int = |k: &str| -> Result<Option<i64>, SfuError> {
            match payload.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .or_else(|| n.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| SfuError::InvalidSelection(k.to_owned())),
                Some(_) => Err(SfuError::InvalidSelection(k.to_owned())),
            }
        };
        let boolean = |k: &str| -> Result<Option<bool>, SfuError> {
            match payload.get(k) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Bool(b)) => Ok(Some(*b)),
                Some(_) => Err(SfuError::InvalidSelection(k.to_owned())),
            }
        };
        Ok(StreamSelection {
            substream: int("substream")?,
            temporal: int("temporal")?,
            audio: boolean("audio")?,
            video: boolean("video")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        *self == StreamSelection::default()
    }

    /// Adds the selected keys to a Janus request body.
    pub fn apply(&self, body: &mut serde_json::Map<String, Value>) {
        if let Some(v) = self.substream {
            body.insert("substream".into(), v.into());
        }
        if let Some(v) = self.temporal {
            body.insert("temporal".into(), v.into());
        }
        if let Some(v) = self.audio {
            body.insert("audio".into(), v.into());
        }
        if let Some(v) = self.video {
            body.insert("video".into(), v.into());
        }
    }
}

/// A client's signaling request for one of its SFU clients.
#[derive(Debug, Clone, PartialEq)]
pub enum Request {
    /// Publisher: the client's offer; answered with the SFU's answer.
    Offer(Value),
    /// Subscriber: the client's answer to the SFU's offer.
    Answer(Value),
    /// The client's candidate object (`{candidate, sdpMid, ...}`).
    Candidate(Value),
    EndOfCandidates,
    /// Subscriber: `requestoffer`/`sendoffer`; answered with an offer.
    RequestOffer(StreamSelection),
    SelectStream(StreamSelection),
}

impl Request {
    /// The client message type, for `signaling_mcu_messages_total`.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Offer(_) => "offer",
            Request::Answer(_) => "answer",
            Request::Candidate(_) => "candidate",
            Request::EndOfCandidates => "endOfCandidates",
            Request::RequestOffer(_) => "requestoffer",
            Request::SelectStream(_) => "selectStream",
        }
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SfuError {
    #[error(transparent)]
    Janus(#[from] JanusError),
    #[error("the SFU is not connected")]
    NotConnected,
    #[error("unsupported stream type {0:?}")]
    UnsupportedStreamType(String),
    #[error("Publisher {0} not created yet")]
    NoPublisher(String),
    #[error("the SFU client is closed")]
    Closed,
    #[error("invalid stream selection: {0}")]
    InvalidSelection(String),
    #[error("sid does not match")]
    SidMismatch,
    #[error("not supported by this client")]
    Unsupported,
    #[error("proxy error {code}: {message}")]
    Proxy { code: String, message: String },
    #[error("no MCU connection available")]
    NoBackend,
    #[error("remote streams are not supported")]
    RemoteUnsupported,
}

/// A client on a signaling proxy: the proxy's base URL, the address
/// dialled (DNS discovery) and the client's id there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyLocation {
    pub url: String,
    pub ip: Option<std::net::IpAddr>,
    pub client_id: String,
}

/// Which of a session's SFU clients an event is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRef {
    pub id: u64,
    /// The public id of the session whose stream this is (the session
    /// itself for a publisher).
    pub publisher: String,
    pub stream: StreamType,
    pub is_publisher: bool,
}

/// What an SFU tells the session owning a client (implemented by the hub).
pub trait Listener: Send + Sync + 'static {
    /// The SFU renegotiates: a new offer for the client.
    fn on_update_offer(&self, client: &ClientRef, sid: &str, jsep: Value);
    /// A trickled candidate of the SFU.
    fn on_ice_candidate(&self, client: &ClientRef, sid: &str, candidate: Value);
    /// The client was closed by the SFU (Janus gone, room destroyed,
    /// hangup) and must be forgotten.
    fn on_closed(&self, client: &ClientRef);
}

/// A publisher or subscriber.
#[async_trait::async_trait]
pub trait Client: Send + Sync {
    fn client_ref(&self) -> &ClientRef;
    /// The sid the client knows this object by.
    fn sid(&self) -> String;
    fn max_bitrate(&self) -> u64;
    /// Handles one request; the JSEP to send back, if any.
    async fn send(&self, request: Request, sid: &str) -> Result<Option<Value>, SfuError>;
    /// Tears the client down in the SFU (idempotent).
    async fn close(&self);
    /// For clients on a signaling proxy: where (shared with other nodes
    /// over gRPC).
    fn proxy_location(&self) -> Option<ProxyLocation> {
        None
    }
}

/// An SFU.
#[async_trait::async_trait]
pub trait Sfu: Send + Sync {
    #[allow(clippy::too_many_arguments)]
    async fn new_publisher(
        &self,
        listener: Arc<dyn Listener>,
        public_id: &str,
        sid: &str,
        stream: StreamType,
        settings: PublisherSettings,
    ) -> Result<Arc<dyn Client>, SfuError>;

    /// `country`: of the subscribing client, to serve it nearby.
    async fn new_subscriber(
        &self,
        listener: Arc<dyn Listener>,
        publisher: &str,
        stream: StreamType,
        country: Option<String>,
    ) -> Result<Arc<dyn Client>, SfuError>;

    /// The SFU's caps (bits/s) for `video` and `screen`.
    fn max_bitrates(&self) -> (u64, u64);
    fn is_connected(&self) -> bool;
    /// For `/api/v1/stats` (`mcu`).
    fn stats(&self) -> Value;
    /// For `/api/v1/serverinfo` (`sfu`).
    fn server_info(&self) -> Value;
    /// Where janus-events frames go, if this SFU takes them.
    fn events(&self) -> Option<Arc<crate::janus::events::EventsHandler>>;
    /// Waits until every task of the SFU has ended; call after its stop
    /// token fired.
    async fn stopped(&self);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn selection() {
        let s = StreamSelection::from_payload(
            &json!({"substream": 1.0, "temporal": 2, "audio": false}),
        )
        .unwrap();
        assert_eq!(s.substream, Some(1));
        assert_eq!(s.temporal, Some(2));
        assert_eq!(s.audio, Some(false));
        assert!(StreamSelection::from_payload(&json!({"substream": "1"})).is_err());
        assert!(StreamSelection::from_payload(&json!({"sdp": "x"}))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn stream_types() {
        assert_eq!(StreamType::parse("").unwrap(), StreamType::Video);
        assert_eq!(StreamType::parse("screen").unwrap(), StreamType::Screen);
        assert!(StreamType::parse("audio").is_err());
    }
}
