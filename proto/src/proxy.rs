//! The signaling proxy protocol on `/proxy` (cluster facts 6.2): JSON
//! text frames between a signaling server (or another proxy) and a proxy
//! in front of one Janus.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::WireError;

mod request;

pub use request::{
    ClientBody, ClientRequest, Command, PayloadKind, PayloadRequest, RemoteSource, RemoteTarget,
};

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

#[cfg(test)]
mod tests;
