//! HTTP client for requests to Nextcloud's signaling backend (facts 2.1-2.5):
//! checksum headers, per-host concurrency limit, OCS envelope, and the
//! switch to the v3 path when Talk advertises `signaling-v3`.

use std::time::Duration;

use proto::checksum::{self, HEADER_CHECKSUM, HEADER_FEATURES, HEADER_RANDOM};
use proto::talk::capabilities::FEATURE_SIGNALING_V3;
use proto::talk::ocs::{decode_ocs, OcsError};
use proto::talk::request::{BackendRequest, BackendResponse};

use super::backends::Backend;
use super::capabilities::Capabilities;
use super::http::{read_body, HostSlots};
use crate::config::BackendConfig;
use crate::metrics;

#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("no backend configured for {0}")]
    NoBackend(String),
    #[error("{0}")]
    Http(String),
    #[error("context deadline exceeded")]
    Timeout,
    #[error("unexpected status {0}")]
    Status(u16),
    #[error(transparent)]
    Ocs(OcsError),
    #[error("invalid URL {0}")]
    Url(String),
}

pub(crate) fn http_error(e: reqwest::Error) -> BackendError {
    if e.is_timeout() {
        BackendError::Timeout
    } else {
        // reqwest's Display hides the cause; the chain names it.
        let mut msg = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            msg = format!("{msg}: {s}");
            source = s.source();
        }
        BackendError::Http(msg)
    }
}

/// Client for all requests to Nextcloud; cheap to clone.
#[derive(Clone)]
pub struct BackendClient {
    http: reqwest::Client,
    timeout: Duration,
    slots: HostSlots,
    features_header: String,
    user_agent: String,
    pub capabilities: Capabilities,
}

impl BackendClient {
    pub fn new(config: &BackendConfig, features_header: String) -> Result<Self, BackendError> {
        let user_agent = format!("nextcloud-spreed-signaling/{}", proto::SERVER_VERSION);
        let slots = HostSlots::new(config.connections_per_host);
        let http = reqwest::Client::builder()
            // reqwest's default, stated: requests must not wait for Nagle.
            .tcp_nodelay(true)
            // No more idle connections than requests may run at once.
            .pool_max_idle_per_host(slots.per_host())
            // The system's trust store, or any certificate with skipverify.
            .use_preconfigured_tls(
                (*transport::tls::client_config(config.skip_verify)
                    .map_err(|e| BackendError::Http(e.to_string()))?)
                .clone(),
            )
            .redirect(reqwest::redirect::Policy::custom(|attempt| {
                // Follow only redirects that keep scheme and host.
                let same = attempt.previous().last().is_some_and(|prev| {
                    prev.scheme() == attempt.url().scheme() && prev.host() == attempt.url().host()
                });
                if attempt.previous().len() >= 10 || !same {
                    attempt.error("redirect to another host or too many redirects")
                } else {
                    attempt.follow()
                }
            }))
            .build()
            .map_err(|e| BackendError::Http(e.to_string()))?;
        Ok(BackendClient {
            capabilities: Capabilities::new(
                http.clone(),
                config.timeout,
                user_agent.clone(),
                slots.clone(),
            ),
            http,
            timeout: config.timeout,
            slots,
            features_header,
            user_agent,
        })
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Posts `request` to the signaling backend below `base_url` and
    /// returns Talk's reply `data`. The whole call, waiting for a slot
    /// included, is bounded by `[backend] timeout`.
    pub async fn request(
        &self,
        backend: &Backend,
        base_url: &str,
        request: &BackendRequest,
    ) -> Result<BackendResponse, BackendError> {
        let kind = request.kind();
        let started = std::time::Instant::now();
        let result =
            tokio::time::timeout(self.timeout, self.do_request(backend, base_url, request))
                .await
                .unwrap_or(Err(BackendError::Timeout));
        metrics::backend_request(backend.id.as_str(), kind, result.is_ok(), started.elapsed());
        result
    }

    async fn do_request(
        &self,
        backend: &Backend,
        base_url: &str,
        request: &BackendRequest,
    ) -> Result<BackendResponse, BackendError> {
        let mut url = url::Url::parse(base_url)
            .and_then(|u| u.join(proto::talk::BACKEND_PATH_V1))
            .map_err(|_| BackendError::Url(base_url.to_owned()))?;
        let caps = self.capabilities.get(url.as_str()).await;
        if let Ok(lookup) = caps {
            if lookup
                .data
                .is_some_and(|c| c.has_feature(FEATURE_SIGNALING_V3))
            {
                url = url::Url::parse(base_url)
                    .and_then(|u| u.join(proto::talk::BACKEND_PATH_V3))
                    .map_err(|_| BackendError::Url(base_url.to_owned()))?;
            }
        }
        let _permit = self.slots.acquire(&url).await?;
        let body = serde_json::to_vec(request).map_err(|e| BackendError::Http(e.to_string()))?;
        let random = checksum::new_random();
        let sum = checksum::backend_checksum(backend.secret.expose().as_bytes(), &random, &body);
        let mut req = self
            .http
            .post(url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .header("OCS-APIRequest", "true")
            .header("User-Agent", &self.user_agent)
            .header(HEADER_RANDOM, random)
            .header(HEADER_CHECKSUM, sum);
        if !self.features_header.is_empty() {
            req = req.header(HEADER_FEATURES, &self.features_header);
        }
        let resp = req.body(body).send().await.map_err(http_error)?;
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let bytes = read_body(resp).await?;
        decode_ocs(content_type.as_deref(), &bytes).map_err(BackendError::Ocs)
    }
}
