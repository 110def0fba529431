//! Session permissions (facts 1.17) and in-call flags (facts 5.2).

use serde::{Deserialize, Serialize};

/// One permission string as sent by Nextcloud.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Permission {
    #[serde(rename = "publish-media")]
    PublishMedia,
    #[serde(rename = "publish-audio")]
    PublishAudio,
    #[serde(rename = "publish-video")]
    PublishVideo,
    #[serde(rename = "publish-screen")]
    PublishScreen,
    #[serde(rename = "control")]
    Control,
    #[serde(rename = "transient-data")]
    TransientData,
    #[serde(rename = "hide-displaynames")]
    HideDisplayNames,
}

impl Permission {
    pub fn from_wire(s: &str) -> Option<Self> {
        Some(match s {
            "publish-media" => Permission::PublishMedia,
            "publish-audio" => Permission::PublishAudio,
            "publish-video" => Permission::PublishVideo,
            "publish-screen" => Permission::PublishScreen,
            "control" => Permission::Control,
            "transient-data" => Permission::TransientData,
            "hide-displaynames" => Permission::HideDisplayNames,
            _ => return None,
        })
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The permission set of a session. `Default` is the state of a session that
/// never received a list: everything except `hide-displaynames`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Permissions {
    /// Nextcloud never sent a list (old Nextcloud): all but `hide-displaynames`.
    #[default]
    NeverSet,
    /// Exactly the listed permissions (an empty list means none).
    Set(u8),
}

impl Permissions {
    /// Builds the set from Nextcloud's strings; unknown strings are ignored.
    pub fn from_list<'a>(list: impl IntoIterator<Item = &'a str>) -> Self {
        Permissions::Set(
            list.into_iter()
                .filter_map(Permission::from_wire)
                .fold(0, |acc, p| acc | p.bit()),
        )
    }

    pub fn has(&self, p: Permission) -> bool {
        match self {
            Permissions::NeverSet => p != Permission::HideDisplayNames,
            Permissions::Set(bits) => bits & p.bit() != 0,
        }
    }
}

/// In-call flag bits shared with Talk's `Participant.php`.
pub mod flags {
    pub const DISCONNECTED: i64 = 0;
    pub const IN_CALL: i64 = 1;
    pub const WITH_AUDIO: i64 = 2;
    pub const WITH_VIDEO: i64 = 4;
    pub const WITH_PHONE: i64 = 8;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_set_allows_all_but_hide_displaynames() {
        let p = Permissions::default();
        assert!(p.has(Permission::Control));
        assert!(p.has(Permission::TransientData));
        assert!(!p.has(Permission::HideDisplayNames));
    }

    #[test]
    fn explicit_list_is_exact() {
        let p = Permissions::from_list(["control", "bogus"]);
        assert!(p.has(Permission::Control));
        assert!(!p.has(Permission::TransientData));
        let none = Permissions::from_list([]);
        assert!(!none.has(Permission::Control));
        assert!(!none.has(Permission::PublishMedia));
    }
}
