//! Notifications Talk posts to `POST /api/v1/room/{roomid}` (facts 3.4).
//! Payloads are optional here so that a known type without its payload is
//! answered with 400 instead of crashing (facts 3.3).

use serde::{Deserialize, Serialize};

use crate::event::ParticipantEntry;
use crate::RawJson;

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct RoomNotification {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invite: Option<InviteNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disinvite: Option<DisinviteNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update: Option<UpdateNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delete: Option<DeleteNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incall: Option<InCallNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<ParticipantsNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<MessageNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub switchto: Option<SwitchtoNotification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dialout: Option<DialoutNotification>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct InviteNotification {
    #[serde(default)]
    pub userids: Vec<String>,
    #[serde(default)]
    pub alluserids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DisinviteNotification {
    #[serde(default)]
    pub userids: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sessionids: Vec<String>,
    #[serde(default)]
    pub alluserids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct UpdateNotification {
    #[serde(default)]
    pub userids: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<RawJson>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DeleteNotification {
    #[serde(default)]
    pub userids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct InCallNotification {
    /// A number, or a boolean in the "all" form.
    #[serde(default)]
    pub incall: serde_json::Value,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub all: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ParticipantEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ParticipantEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct ParticipantsNotification {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ParticipantEntry>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub users: Vec<ParticipantEntry>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageNotification {
    pub data: RawJson,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SwitchtoNotification {
    pub roomid: String,
    /// A list of Talk session ids or a map of Talk session id -> details.
    pub sessions: RawJson,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct DialoutNotification {
    #[serde(default)]
    pub number: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<RawJson>,
}
