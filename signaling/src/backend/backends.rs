//! Configured backends and URL lookup (facts 2.7).

use std::collections::HashMap;
use std::sync::Arc;

use proto::ids::BackendId;

use crate::config::{BackendConfig, BackendEntry, Secret};

/// One Nextcloud (or the compat backend) as the hub sees it.
#[derive(Debug)]
pub struct Backend {
    pub id: BackendId,
    /// Normalized URLs; empty for the compat backend.
    pub urls: Vec<String>,
    pub secret: Secret,
    pub allow_http: bool,
    pub session_limit: u64,
    pub max_stream_bitrate: u64,
    pub max_screen_bitrate: u64,
    /// Legacy `allowed` host list of the compat backend (empty = any).
    hosts: Vec<String>,
}

impl Backend {
    fn from_entry(e: &BackendEntry) -> Self {
        Backend {
            id: BackendId(e.id.clone()),
            urls: e.urls.clone(),
            secret: e.secret.clone(),
            allow_http: e.allow_http,
            session_limit: e.session_limit,
            max_stream_bitrate: e.max_stream_bitrate,
            max_screen_bitrate: e.max_screen_bitrate,
            hosts: e.hosts.clone(),
        }
    }

    pub fn is_compat(&self) -> bool {
        self.urls.is_empty()
    }

    /// Scheme and prefix check of facts 2.7 step 4.
    fn matches(&self, url: &url::Url, url_str: &str) -> bool {
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http => {}
            _ => return false,
        }
        if self.is_compat() {
            return true;
        }
        let with_slash;
        let s = if url_str.ends_with('/') {
            url_str
        } else {
            with_slash = format!("{url_str}/");
            &with_slash
        };
        self.urls.iter().any(|u| s.starts_with(u.as_str()))
    }
}

fn host_key(url: &url::Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    })
}

/// All configured backends, indexed by `host[:port]`.
#[derive(Debug, Default)]
pub struct Backends {
    by_host: HashMap<String, Vec<Arc<Backend>>>,
    all: Vec<Arc<Backend>>,
    compat: Option<Arc<Backend>>,
    allow_all: bool,
}

impl Backends {
    pub fn new(config: &BackendConfig) -> Self {
        Self::from_parts(&config.backends, config.compat.as_ref(), config.allow_all)
    }

    /// Backends from a dynamic source (etcd): no compat backend.
    pub fn from_entries(entries: &[BackendEntry]) -> Self {
        Self::from_parts(entries, None, false)
    }

    fn from_parts(
        entries: &[BackendEntry],
        compat: Option<&BackendEntry>,
        allow_all: bool,
    ) -> Self {
        let mut b = Backends {
            allow_all,
            ..Default::default()
        };
        for entry in entries {
            let backend = Arc::new(Backend::from_entry(entry));
            for u in &backend.urls {
                if let Some(host) = url::Url::parse(u).ok().as_ref().and_then(host_key) {
                    let list = b.by_host.entry(host).or_default();
                    if !list.iter().any(|x| Arc::ptr_eq(x, &backend)) {
                        list.push(backend.clone());
                    }
                }
            }
            b.all.push(backend);
        }
        if let Some(c) = compat {
            let compat = Arc::new(Backend::from_entry(c));
            for h in &compat.hosts {
                b.by_host.entry(h.clone()).or_default().push(compat.clone());
            }
            b.all.push(compat.clone());
            b.compat = Some(compat);
        }
        b
    }

    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    pub fn all(&self) -> &[Arc<Backend>] {
        &self.all
    }

    pub fn compat(&self) -> Option<&Arc<Backend>> {
        self.compat.as_ref()
    }

    pub fn by_id(&self, id: &BackendId) -> Option<&Arc<Backend>> {
        self.all.iter().find(|b| &b.id == id)
    }

    /// The backend for a (normalized) URL, or `None` (facts 2.7 lookup).
    pub fn lookup(&self, url_str: &str) -> Option<Arc<Backend>> {
        let url = url::Url::parse(url_str).ok()?;
        // Canonical form: default ports dropped.
        let url_str = url.as_str();
        let host = host_key(&url)?;
        let candidates = self.by_host.get(&host);
        if candidates.is_none() && self.allow_all {
            return self.compat.clone().filter(|c| c.matches(&url, url_str));
        }
        candidates?
            .iter()
            .find(|b| b.matches(&url, url_str))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn backends(extra: &str) -> Backends {
        let text = format!("[sessions]\nhashkey = k\n{extra}");
        let c = Config::from_ini_str(&text, &std::collections::BTreeMap::new()).unwrap();
        Backends::new(&c.backend)
    }

    #[test]
    fn prefix_and_host_matching() {
        let b = backends(
            "[backend]\nbackends = nc\n[nc]\nurls = https://cloud.example.com/nextcloud\nsecret = s\n",
        );
        assert!(b.lookup("https://cloud.example.com/nextcloud/").is_some());
        assert!(b
            .lookup("https://cloud.example.com/nextcloud/sub/")
            .is_some());
        assert!(b
            .lookup("https://cloud.example.com:443/nextcloud/")
            .is_some());
        assert!(b.lookup("https://cloud.example.com/nextcloud2/").is_none());
        assert!(b.lookup("http://cloud.example.com/nextcloud/").is_none());
        assert!(b.lookup("https://other.example.com/nextcloud/").is_none());
        assert!(b.lookup("garbage").is_none());
    }

    #[test]
    fn http_needs_http_backend_and_allowall_matches_everything() {
        let b =
            backends("[backend]\nbackends = nc\n[nc]\nurls = http://127.0.0.1:9000/\nsecret = s\n");
        assert!(b.lookup("http://127.0.0.1:9000/").is_some());
        assert!(b.lookup("http://127.0.0.1:9001/").is_none());
        let b = backends("[backend]\nallowall = true\nsecret = s\n");
        let compat = b.lookup("https://anything.example/x/").unwrap();
        assert_eq!(compat.id.as_str(), "compat");
        assert!(b.lookup("http://anything.example/").is_some());
    }

    #[test]
    fn legacy_allowed_hosts() {
        let b = backends("[backend]\nallowed = cloud.example.com/path\nsecret = s\n");
        assert!(b.lookup("https://cloud.example.com/any/").is_some());
        assert!(b.lookup("https://evil.example.com/").is_none());
        assert!(b.lookup("http://cloud.example.com/").is_none());
    }
}
