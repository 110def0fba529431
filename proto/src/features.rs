//! Feature strings (facts 1.16). All lists are sorted ascending.

/// Features every server reports to regular clients, without an SFU.
const CLIENT_BASE: &[&str] = &[
    "audio-video-permissions",
    "chat-relay",
    "dialout",
    "federation",
    "hello-v2",
    "incall-all",
    "join-features",
    "recipient-call",
    "serverinfo",
    "switchto",
    "transient-data",
    "transient-sessiondata",
    "welcome",
];

/// Added to every list when an SFU is configured. `offer-codecs` is
/// among them (upstream always lists it): codec preferences only mean
/// something to an SFU.
const SFU: &[&str] = &["mcu", "offer-codecs", "simulcast", "update-sdp"];

/// Client feature: the client wants full chat comments relayed.
pub const CLIENT_CHAT_RELAY: &str = "chat-relay";
/// Client feature: an internal client manages its in-call flags itself.
pub const CLIENT_INTERNAL_INCALL: &str = "internal-incall";
/// Client feature: an internal client can place phone calls.
pub const CLIENT_START_DIALOUT: &str = "start-dialout";

/// The three server feature lists of facts 1.16.
#[derive(Debug, Clone)]
pub struct ServerFeatures {
    pub client: Vec<String>,
    pub internal: Vec<String>,
    pub welcome: Vec<String>,
}

impl ServerFeatures {
    pub fn new(with_sfu: bool) -> Self {
        let mut client: Vec<String> = CLIENT_BASE.iter().map(|s| s.to_string()).collect();
        if with_sfu {
            client.extend(SFU.iter().map(|s| s.to_string()));
        }
        let mut internal: Vec<String> = client
            .iter()
            .filter(|f| f.as_str() != "audio-video-permissions")
            .cloned()
            .collect();
        internal.push("virtual-sessions".into());
        let mut welcome = client.clone();
        welcome.push("virtual-sessions".into());
        for list in [&mut client, &mut internal, &mut welcome] {
            list.sort();
            list.dedup();
        }
        ServerFeatures {
            client,
            internal,
            welcome,
        }
    }

    /// The `X-Spreed-Signaling-Features` header value.
    pub fn header_value(&self) -> String {
        self.client.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_list_in_upstream_order() {
        let f = ServerFeatures::new(false);
        assert_eq!(
            f.header_value(),
            "audio-video-permissions, chat-relay, dialout, federation, hello-v2, incall-all, \
             join-features, recipient-call, serverinfo, switchto, transient-data, \
             transient-sessiondata, welcome"
        );
        assert!(f.welcome.contains(&"virtual-sessions".to_string()));
        assert!(f.welcome.contains(&"audio-video-permissions".to_string()));
        assert!(!f.internal.contains(&"audio-video-permissions".to_string()));
        let mut sorted = f.welcome.clone();
        sorted.sort();
        assert_eq!(sorted, f.welcome);
    }

    #[test]
    fn sfu_adds_mcu_features() {
        let f = ServerFeatures::new(true);
        for list in [&f.client, &f.internal, &f.welcome] {
            assert!(list.iter().any(|x| x == "mcu"));
            assert!(list.iter().any(|x| x == "simulcast"));
            assert!(list.iter().any(|x| x == "offer-codecs"));
        }
    }
}
