//! Cache of Nextcloud capabilities per URL (facts 2.6): `max-age` (at least
//! 60 s), ETags, forced invalidation at most once a minute per URL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use proto::talk::capabilities::{CapabilitiesData, SpreedCapabilities};
use proto::talk::ocs::decode_ocs;
use tokio::time::Instant;

use super::client::{http_error, BackendError};
use super::http::{read_body, HostSlots};

const MIN_CACHE: Duration = Duration::from_secs(60);
const MIN_INVALIDATE_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Entry {
    data: Option<Arc<SpreedCapabilities>>,
    etag: Option<String>,
    next_refresh: Option<Instant>,
    last_invalidated: Option<Instant>,
}

/// Shared capabilities cache; cheap to clone.
#[derive(Clone)]
pub struct Capabilities {
    http: reqwest::Client,
    timeout: Duration,
    user_agent: String,
    slots: HostSlots,
    entries: Arc<Mutex<HashMap<String, Entry>>>,
}

/// The result of a lookup: the data (if Nextcloud has a `spreed` section)
/// and whether it came from the cache without a request.
pub struct Lookup {
    pub data: Option<Arc<SpreedCapabilities>>,
    pub cached: bool,
}

/// `<base>/ocs/v2.php/cloud/capabilities` for a base or backend URL.
pub fn capabilities_url(url: &str) -> String {
    if let Some(pos) = url.find("/ocs/v2.php") {
        format!("{}/ocs/v2.php/cloud/capabilities", &url[..pos])
    } else if url.ends_with('/') {
        format!("{url}{}", proto::talk::CAPABILITIES_PATH)
    } else {
        format!("{url}/{}", proto::talk::CAPABILITIES_PATH)
    }
}

impl Capabilities {
    pub fn new(
        http: reqwest::Client,
        timeout: Duration,
        user_agent: String,
        slots: HostSlots,
    ) -> Self {
        Capabilities {
            http,
            timeout,
            user_agent,
            slots,
            entries: Arc::default(),
        }
    }

    /// Capabilities for `url`, fetched if the cache entry is stale.
    pub async fn get(&self, url: &str) -> Result<Lookup, BackendError> {
        let etag = {
            let entries = self.entries.lock();
            match entries.get(url) {
                Some(e) if e.next_refresh.is_some_and(|t| Instant::now() < t) => {
                    return Ok(Lookup {
                        data: e.data.clone(),
                        cached: true,
                    })
                }
                Some(e) => e.etag.clone(),
                None => None,
            }
        };
        self.fetch(url, etag).await
    }

    /// Forgets the cached data of `url` unless that was done less than a
    /// minute ago. Returns whether it was invalidated.
    pub fn invalidate(&self, url: &str) -> bool {
        let mut entries = self.entries.lock();
        let e = entries.entry(url.to_owned()).or_default();
        let now = Instant::now();
        if e.last_invalidated
            .is_some_and(|t| now.duration_since(t) < MIN_INVALIDATE_INTERVAL)
        {
            return false;
        }
        e.last_invalidated = Some(now);
        e.next_refresh = None;
        e.etag = None;
        true
    }

    async fn fetch(&self, url: &str, etag: Option<String>) -> Result<Lookup, BackendError> {
        let target = capabilities_url(url);
        let parsed = url::Url::parse(&target).map_err(|_| BackendError::Url(target.clone()))?;
        let _permit = self.slots.acquire(&parsed).await?;
        let mut req = self
            .http
            .get(parsed)
            .timeout(self.timeout)
            .header("Accept", "application/json")
            .header("OCS-APIRequest", "true")
            .header("User-Agent", &self.user_agent);
        if let Some(etag) = &etag {
            req = req.header("If-None-Match", etag);
        }
        // Network errors (and below, failures while nothing is known yet)
        // do not advance the refresh time.
        let resp = req.send().await.map_err(http_error)?;
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = read_body(resp).await?;
        let cache_control = headers
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_ascii_lowercase();
        let mut max_age = MIN_CACHE;
        let mut must_revalidate = false;
        for part in cache_control.split(',').map(str::trim) {
            if let Some(v) = part.strip_prefix("max-age=") {
                if let Ok(secs) = v.parse::<u64>() {
                    max_age = max_age.max(Duration::from_secs(secs));
                }
            } else if part == "must-revalidate" {
                must_revalidate = true;
            }
        }
        let next_refresh = Instant::now() + max_age;
        let mut entries = self.entries.lock();
        let entry = entries.entry(url.to_owned()).or_default();
        if status == reqwest::StatusCode::NOT_MODIFIED {
            entry.next_refresh = Some(next_refresh);
            return Ok(Lookup {
                data: entry.data.clone(),
                cached: false,
            });
        }
        let content_type = headers.get("content-type").and_then(|v| v.to_str().ok());
        let decoded = if status == reqwest::StatusCode::OK {
            decode_ocs::<CapabilitiesData>(content_type, &body).map_err(BackendError::Ocs)
        } else {
            Err(BackendError::Status(status.as_u16()))
        };
        match decoded {
            Ok(data) => {
                entry.next_refresh = Some(next_refresh);
                entry.data = data.capabilities.spreed.map(Arc::new);
                entry.etag = headers
                    .get("etag")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                Ok(Lookup {
                    data: entry.data.clone(),
                    cached: false,
                })
            }
            Err(e) if must_revalidate => {
                entry.next_refresh = Some(next_refresh);
                entry.data = None;
                Err(e)
            }
            // Nothing known yet: an error, not "no capabilities", so that a
            // hello v2 answers internal_error instead of invalid_token, and
            // not cached, so that the next hello asks again.
            Err(e) if entry.data.is_none() => Err(e),
            Err(e) => {
                entry.next_refresh = Some(next_refresh);
                tracing::warn!(url, error = %e, "could not refresh capabilities, keeping previous data");
                Ok(Lookup {
                    data: entry.data.clone(),
                    cached: false,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::capabilities_url;

    #[test]
    fn capability_urls() {
        assert_eq!(
            capabilities_url("https://c.example/"),
            "https://c.example/ocs/v2.php/cloud/capabilities"
        );
        assert_eq!(
            capabilities_url(
                "https://c.example/nc/ocs/v2.php/apps/spreed/api/v1/signaling/backend"
            ),
            "https://c.example/nc/ocs/v2.php/cloud/capabilities"
        );
        assert_eq!(
            capabilities_url("https://c.example/nc"),
            "https://c.example/nc/ocs/v2.php/cloud/capabilities"
        );
    }
}
