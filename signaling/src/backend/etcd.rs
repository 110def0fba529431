//! Backends from etcd (`[backend] backendtype = etcd`, facts 2.7 mode 4):
//! JSON documents below `[backend] backendprefix`, one per backend, the key
//! being the backend id. The prefix is watched; added, changed and removed
//! backends take effect without a restart.

use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::config::{normalize_backend_url, BackendEntry, EtcdConfig, Secret};
use crate::hub::Hub;

#[derive(Deserialize)]
struct Doc {
    #[serde(default)]
    urls: Vec<String>,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    secret: String,
    #[serde(default)]
    maxstreambitrate: i64,
    #[serde(default)]
    maxscreenbitrate: i64,
    #[serde(default)]
    sessionlimit: i64,
}

/// Turns one etcd document into a backend; `None` (with a warning) if it
/// is unusable.
fn parse(key: &str, value: &[u8]) -> Option<BackendEntry> {
    let doc: Doc = match serde_json::from_slice(value) {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(key, error = %e, "invalid backend document in etcd");
            return None;
        }
    };
    let mut urls = doc.urls;
    if urls.is_empty() {
        urls.extend(doc.url);
    }
    let mut normalized = Vec::new();
    for u in &urls {
        match normalize_backend_url(key, "urls", u) {
            Ok(n) => normalized.push(n),
            Err(e) => tracing::warn!(key, error = %e, "invalid backend URL in etcd"),
        }
    }
    if normalized.is_empty() || doc.secret.is_empty() {
        tracing::warn!(
            key,
            "backend document in etcd without urls or secret ignored"
        );
        return None;
    }
    normalized.sort();
    normalized.dedup();
    Some(BackendEntry {
        id: key.to_owned(),
        allow_http: normalized.iter().any(|u| u.starts_with("http://")),
        urls: normalized,
        secret: Secret::new(doc.secret),
        session_limit: doc.sessionlimit.max(0) as u64,
        max_stream_bitrate: doc.maxstreambitrate.max(0) as u64,
        max_screen_bitrate: doc.maxscreenbitrate.max(0) as u64,
        hosts: Vec::new(),
    })
}

/// Keeps the hub's backends in sync with etcd until `shutdown`.
pub async fn watch(hub: Hub, etcd: EtcdConfig, prefix: String, shutdown: CancellationToken) {
    let status = hub.inner.etcd.clone();
    config_source::etcd::watch_prefix(etcd, prefix, status, shutdown, move |docs| {
        let entries: Vec<BackendEntry> = docs
            .iter()
            .filter_map(|(key, value)| parse(key, value))
            .collect();
        tracing::info!(count = entries.len(), "backends from etcd updated");
        hub.set_backend_entries(entries);
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn fuzz_backend_documents() {
        proto::fuzzing::run(
            "etcd_backend",
            &[
                br#"{"urls":["https://a.example/nc"],"secret":"s","sessionlimit":3,"maxstreambitrate":1,"maxscreenbitrate":2}"#,
                br#"{"url":"http://b.example","secret":"s"}"#,
            ],
            |b| {
                let _ = parse("/b/fuzz", b);
            },
        );
    }

    #[test]
    fn documents() {
        let b = parse(
            "/b/one",
            br#"{"urls":["https://a.example/nc"],"secret":"s","sessionlimit":3}"#,
        )
        .unwrap();
        assert_eq!(b.urls, vec!["https://a.example/nc/"]);
        assert_eq!(b.session_limit, 3);
        let legacy = parse("/b/two", br#"{"url":"http://b.example","secret":"s"}"#).unwrap();
        assert!(legacy.allow_http);
        assert!(parse("/b/x", br#"{"urls":["https://a"]}"#).is_none());
        assert!(parse("/b/x", b"not json").is_none());
    }
}
