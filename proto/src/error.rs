//! The client-visible error object (facts 1.3) and the decode error of the
//! client protocol.

use serde::{Deserialize, Serialize};

use crate::RawJson;

/// Every error code the server emits towards WebSocket clients, plus a
/// pass-through for codes Nextcloud sends (facts 1.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidFormat,
    HelloExpected,
    InvalidHelloVersion,
    InvalidClientType,
    InvalidBackend,
    AuthFailed,
    InvalidToken,
    TokenNotValidYet,
    TokenExpired,
    TooManyRequests,
    NoSuchSession,
    SessionLimitExceeded,
    RoomJoinFailed,
    AlreadyJoined,
    FederationUnsupported,
    FederationError,
    NotInRoom,
    NotAllowed,
    Ignored,
    AddFailed,
    RemoveFailed,
    ClientNotFound,
    ProcessingFailed,
    InvalidSdp,
    NoCandidate,
    InvalidCandidate,
    InternalError,
    /// A code we do not generate ourselves, e.g. forwarded from Nextcloud
    /// (`no_such_room`, `invalid_ticket`, ...).
    Other(String),
}

impl ErrorCode {
    pub fn as_str(&self) -> &str {
        match self {
            ErrorCode::InvalidFormat => "invalid_format",
            ErrorCode::HelloExpected => "hello_expected",
            ErrorCode::InvalidHelloVersion => "invalid_hello_version",
            ErrorCode::InvalidClientType => "invalid_client_type",
            ErrorCode::InvalidBackend => "invalid_backend",
            ErrorCode::AuthFailed => "auth_failed",
            ErrorCode::InvalidToken => "invalid_token",
            ErrorCode::TokenNotValidYet => "token_not_valid_yet",
            ErrorCode::TokenExpired => "token_expired",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::NoSuchSession => "no_such_session",
            ErrorCode::SessionLimitExceeded => "session_limit_exceeded",
            ErrorCode::RoomJoinFailed => "room_join_failed",
            ErrorCode::AlreadyJoined => "already_joined",
            ErrorCode::FederationUnsupported => "federation_unsupported",
            ErrorCode::FederationError => "federation_error",
            ErrorCode::NotInRoom => "not_in_room",
            ErrorCode::NotAllowed => "not_allowed",
            ErrorCode::Ignored => "ignored",
            ErrorCode::AddFailed => "add_failed",
            ErrorCode::RemoveFailed => "remove_failed",
            ErrorCode::ClientNotFound => "client_not_found",
            ErrorCode::ProcessingFailed => "processing_failed",
            ErrorCode::InvalidSdp => "invalid_sdp",
            ErrorCode::NoCandidate => "no_candidate",
            ErrorCode::InvalidCandidate => "invalid_candidate",
            ErrorCode::InternalError => "internal_error",
            ErrorCode::Other(s) => s,
        }
    }

    fn from_wire(s: &str) -> Self {
        const KNOWN: &[ErrorCode] = &[
            ErrorCode::InvalidFormat,
            ErrorCode::HelloExpected,
            ErrorCode::InvalidHelloVersion,
            ErrorCode::InvalidClientType,
            ErrorCode::InvalidBackend,
            ErrorCode::AuthFailed,
            ErrorCode::InvalidToken,
            ErrorCode::TokenNotValidYet,
            ErrorCode::TokenExpired,
            ErrorCode::TooManyRequests,
            ErrorCode::NoSuchSession,
            ErrorCode::SessionLimitExceeded,
            ErrorCode::RoomJoinFailed,
            ErrorCode::AlreadyJoined,
            ErrorCode::FederationUnsupported,
            ErrorCode::FederationError,
            ErrorCode::NotInRoom,
            ErrorCode::NotAllowed,
            ErrorCode::Ignored,
            ErrorCode::AddFailed,
            ErrorCode::RemoveFailed,
            ErrorCode::ClientNotFound,
            ErrorCode::ProcessingFailed,
            ErrorCode::InvalidSdp,
            ErrorCode::NoCandidate,
            ErrorCode::InvalidCandidate,
            ErrorCode::InternalError,
        ];
        KNOWN
            .iter()
            .find(|c| c.as_str() == s)
            .cloned()
            .unwrap_or_else(|| ErrorCode::Other(s.to_owned()))
    }

    /// The upstream English text for codes that have a fixed one.
    pub fn default_message(&self) -> &'static str {
        match self {
            ErrorCode::InvalidFormat => "Invalid data format.",
            ErrorCode::HelloExpected => "Expected Hello request.",
            ErrorCode::InvalidHelloVersion => "The hello version is not supported.",
            ErrorCode::InvalidClientType => "The client type is not supported.",
            ErrorCode::InvalidBackend => "The backend URL is not supported.",
            ErrorCode::AuthFailed => "The user could not be authenticated.",
            ErrorCode::InvalidToken => "The passed token is invalid.",
            ErrorCode::TokenNotValidYet => "The token is not valid yet.",
            ErrorCode::TokenExpired => "The token is expired.",
            ErrorCode::TooManyRequests => "Too many requests.",
            ErrorCode::NoSuchSession => "The session to resume does not exist.",
            ErrorCode::SessionLimitExceeded => "Too many sessions connected for this backend.",
            ErrorCode::RoomJoinFailed => "Could not join the room.",
            ErrorCode::AlreadyJoined => "Already joined this room.",
            ErrorCode::FederationUnsupported => "The target server does not support federation.",
            ErrorCode::FederationError => "Failed to create federation client.",
            ErrorCode::NotInRoom => "No room joined yet.",
            ErrorCode::NotAllowed => "Not allowed.",
            ErrorCode::Ignored => "Unsupported message type.",
            ErrorCode::AddFailed => "Could not add virtual session.",
            ErrorCode::RemoveFailed => "Could not remove virtual session from backend.",
            ErrorCode::ClientNotFound => "No MCU client found to send message to.",
            ErrorCode::ProcessingFailed => {
                "Processing of the message failed, please check server logs."
            }
            ErrorCode::InvalidSdp => "Payload does not contain a valid SDP.",
            ErrorCode::NoCandidate => "Payload does not contain a candidate.",
            ErrorCode::InvalidCandidate => "Payload does not contain a valid candidate.",
            ErrorCode::InternalError => "Internal error.",
            ErrorCode::Other(_) => "",
        }
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ErrorCode::from_wire(&s))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"code","message","details"?}`: the payload of a `type:"error"` message,
/// also used by Nextcloud inside its `type:"error"` replies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireError {
    pub code: ErrorCode,
    #[serde(default)]
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<RawJson>,
}

impl WireError {
    /// An error with the upstream default text for its code.
    pub fn new(code: ErrorCode) -> Self {
        let message = code.default_message().to_owned();
        WireError {
            code,
            message,
            details: None,
        }
    }

    pub fn with_message(code: ErrorCode, message: impl Into<String>) -> Self {
        WireError {
            code,
            message: message.into(),
            details: None,
        }
    }

    pub fn with_details(mut self, details: RawJson) -> Self {
        self.details = Some(details);
        self
    }
}

impl PartialEq for WireError {
    fn eq(&self, other: &Self) -> bool {
        self.code == other.code
            && self.message == other.message
            && self.details.as_ref().map(|d| d.get()) == other.details.as_ref().map(|d| d.get())
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for WireError {}
