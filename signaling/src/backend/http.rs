//! What every request to a Nextcloud shares: at most `[backend]
//! connectionsperhost` requests at once to one host (capabilities
//! included), and bounded response bodies.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::client::{http_error, BackendError};

/// Largest response body read from Nextcloud (capabilities of an instance
/// with many apps are a few hundred KiB).
pub const MAX_RESPONSE: usize = 4 * 1024 * 1024;

/// One semaphore per `host:port`; cheap to clone.
#[derive(Clone)]
pub struct HostSlots {
    per_host: usize,
    hosts: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

impl HostSlots {
    pub fn new(per_host: usize) -> Self {
        HostSlots {
            per_host: per_host.max(1),
            hosts: Arc::default(),
        }
    }

    pub fn per_host(&self) -> usize {
        self.per_host
    }

    /// Waits for a free slot for `url`'s host.
    pub async fn acquire(&self, url: &url::Url) -> Result<HostSlot, BackendError> {
        let host = url.host_str().unwrap_or("");
        let key = match url.port_or_known_default() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        let slot = self
            .hosts
            .lock()
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Semaphore::new(self.per_host)))
            .clone();
        let permit = slot
            .acquire_owned()
            .await
            .map_err(|_| BackendError::Http("client is shutting down".into()))?;
        let in_use = crate::metrics::METRICS
            .http_client_pool_connections
            .with_label_values(&[&key]);
        in_use.inc();
        Ok(HostSlot {
            _permit: permit,
            in_use,
        })
    }
}

/// A request's turn at its host, counted in
/// `signaling_http_client_pool_connections{host}` while held.
pub struct HostSlot {
    _permit: OwnedSemaphorePermit,
    in_use: prometheus::IntGauge,
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        self.in_use.dec();
    }
}

/// Reads a response body, refusing one over [`MAX_RESPONSE`].
pub async fn read_body(mut resp: reqwest::Response) -> Result<Bytes, BackendError> {
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_RESPONSE as u64)
    {
        return Err(too_large());
    }
    let mut body = BytesMut::new();
    while let Some(chunk) = resp.chunk().await.map_err(http_error)? {
        if body.len() + chunk.len() > MAX_RESPONSE {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn too_large() -> BackendError {
    BackendError::Http(format!("response larger than {MAX_RESPONSE} bytes"))
}
