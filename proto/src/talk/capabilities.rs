//! The parts of Nextcloud's capabilities the signaling server uses
//! (facts 2.6): `capabilities.spreed.features` and
//! `capabilities.spreed.config.signaling`.

use serde::{Deserialize, Serialize};

/// `data` of the capabilities OCS response.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CapabilitiesData {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<serde_json::Value>,
    #[serde(default)]
    pub capabilities: CapabilitiesMap,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct CapabilitiesMap {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spreed: Option<SpreedCapabilities>,
}

#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SpreedCapabilities {
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub config: serde_json::Map<String, serde_json::Value>,
}

impl SpreedCapabilities {
    pub fn has_feature(&self, f: &str) -> bool {
        self.features.iter().any(|x| x == f)
    }

    fn signaling(&self) -> Option<&serde_json::Map<String, serde_json::Value>> {
        self.config.get("signaling").and_then(|s| s.as_object())
    }

    /// `config.signaling["hello-v2-token-key"]`.
    pub fn hello_v2_token_key(&self) -> Option<&str> {
        self.signaling()?
            .get("hello-v2-token-key")?
            .as_str()
            .filter(|s| !s.is_empty())
    }

    /// `config.signaling["session-ping-limit"]` if a positive number.
    pub fn session_ping_limit(&self) -> Option<usize> {
        let n = self.signaling()?.get("session-ping-limit")?.as_f64()?;
        (n >= 1.0).then_some(n as usize)
    }
}

pub const FEATURE_SIGNALING_V3: &str = "signaling-v3";
pub const FEATURE_FEDERATION_V2: &str = "federation-v2";
