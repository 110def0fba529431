//! Everything a Janus request can end with besides success.

/// Janus gateway error codes the bridge reacts to.
pub mod codes {
    /// The session does not exist (expired or Janus restarted).
    pub const NO_SUCH_SESSION: i64 = 458;
    /// The handle does not exist.
    pub const NO_SUCH_HANDLE: i64 = 459;
    /// A request cancelled because the connection was lost.
    pub const CANCELLED: i64 = 500;
}

/// Videoroom plugin error codes the bridge reacts to.
pub mod videoroom {
    /// The subscriber handle already joined a room.
    pub const ALREADY_JOINED: i64 = 425;
    pub const NO_SUCH_ROOM: i64 = 426;
    /// The publisher has not negotiated yet.
    pub const NO_SUCH_FEED: i64 = 428;
    /// `publish_remotely` with a remote id already in use.
    pub const REMOTE_ID_EXISTS: i64 = 436;
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum JanusError {
    /// `{"janus":"error","error":{"code","reason"}}`.
    #[error("janus error {code}: {reason}")]
    Gateway { code: i64, reason: String },
    /// `plugindata.data.error_code`/`error` of a plugin reply.
    #[error("videoroom error {code}: {reason}")]
    Plugin { code: i64, reason: String },
    #[error("janus request timed out")]
    Timeout,
    /// The connection dropped while the request was pending, or is down.
    #[error("connection to janus lost")]
    Disconnected,
    #[error("could not connect to janus: {0}")]
    Connect(String),
    /// A reply Janus should not have sent.
    #[error("unexpected janus reply: {0}")]
    Protocol(String),
}

impl JanusError {
    /// The numeric code, as upstream reports it (500 for local failures).
    pub fn code(&self) -> i64 {
        match self {
            JanusError::Gateway { code, .. } | JanusError::Plugin { code, .. } => *code,
            _ => codes::CANCELLED,
        }
    }

    pub fn is_plugin(&self, code: i64) -> bool {
        matches!(self, JanusError::Plugin { code: c, .. } if *c == code)
    }
}
