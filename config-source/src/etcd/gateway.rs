//! An etcd v3 client over etcd's own HTTP/JSON gateway (`/v3/kv/range`,
//! `/v3/watch`, `/v3/maintenance/status`), which every etcd 3.4+ serves on
//! its client port. It covers what we need (read a key or a prefix, watch
//! a prefix, ask for status) without a generated gRPC client, whose build
//! would need `protoc`.
//!
//! Keys and values travel base64-encoded; 64-bit numbers are JSON strings.
//! Requests go to the first endpoint that answers.

use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use bytes::{Buf, BytesMut};
use serde::Deserialize;
use serde_json::json;

use super::{Documents, EtcdConfig, EtcdError};

/// How long one request may take (watches excepted).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Connecting to one endpoint.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Largest watch event batch read at once.
const MAX_WATCH_MESSAGE: usize = 16 * 1024 * 1024;

/// A handle to etcd; cheap to clone.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    endpoints: Arc<Vec<String>>,
}

#[derive(Deserialize, Default)]
struct Header {
    #[serde(default)]
    revision: Option<String>,
}

#[derive(Deserialize)]
struct KeyValue {
    #[serde(default)]
    key: String,
    #[serde(default)]
    value: String,
}

#[derive(Deserialize)]
struct RangeReply {
    #[serde(default)]
    header: Header,
    #[serde(default)]
    kvs: Vec<KeyValue>,
}

#[derive(Deserialize)]
struct WatchEvent {
    #[serde(default, rename = "type")]
    kind: Option<String>,
    kv: Option<KeyValue>,
}

#[derive(Deserialize, Default)]
struct WatchResult {
    #[serde(default)]
    events: Vec<WatchEvent>,
    #[serde(default)]
    canceled: bool,
    #[serde(default)]
    cancel_reason: Option<String>,
}

#[derive(Deserialize)]
struct WatchMessage {
    #[serde(default)]
    result: Option<WatchResult>,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// One change below a watched prefix.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

fn decode(s: &str) -> Result<Vec<u8>, EtcdError> {
    STANDARD
        .decode(s)
        .map_err(|e| EtcdError::Protocol(format!("bad base64 from etcd: {e}")))
}

fn decode_key(s: &str) -> Result<String, EtcdError> {
    String::from_utf8(decode(s)?).map_err(|_| EtcdError::Protocol("etcd key is not UTF-8".into()))
}

/// The end of the key range of everything starting with `prefix`
/// (etcd's `GetPrefixRangeEnd`).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // Every byte was 0xff (or the prefix was empty): all keys.
    vec![0]
}

impl Client {
    /// A client for `endpoints` with the TLS settings of `config`; checks
    /// that one of them answers.
    pub async fn connect(config: &EtcdConfig, endpoints: Vec<String>) -> Result<Client, EtcdError> {
        if endpoints.is_empty() {
            return Err(EtcdError::NoEndpoints);
        }
        let identity = match (&config.client_key, &config.client_cert, &config.ca_cert) {
            (None, None, None) => None,
            (Some(key), Some(cert), Some(_)) => Some((cert.as_path(), key.as_path())),
            _ => return Err(EtcdError::PartialTls),
        };
        let tls = transport::tls::client_config_with(config.ca_cert.as_deref(), identity)
            .map_err(|e| EtcdError::Tls(e.to_string()))?;
        let http = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(DIAL_TIMEOUT)
            .tcp_nodelay(true)
            .build()
            .map_err(|e| EtcdError::Http(e.to_string()))?;
        let client = Client {
            http,
            endpoints: Arc::new(
                endpoints
                    .into_iter()
                    .map(|e| e.trim_end_matches('/').to_owned())
                    .collect(),
            ),
        };
        client.status().await?;
        Ok(client)
    }

    /// Posts `body` to `path` on the first endpoint that answers; etcd's
    /// own errors (a JSON body with `error`/`message` and a non-2xx code)
    /// are returned as such, not tried elsewhere.
    async fn post(
        &self,
        path: &str,
        body: &serde_json::Value,
        timeout: Option<Duration>,
    ) -> Result<reqwest::Response, EtcdError> {
        let mut last = EtcdError::NoEndpoints;
        for endpoint in self.endpoints.iter() {
            let mut req = self.http.post(format!("{endpoint}{path}")).json(body);
            if let Some(t) = timeout {
                req = req.timeout(t);
            }
            match req.send().await {
                Ok(resp) if resp.status().is_success() => return Ok(resp),
                Ok(resp) => {
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    return Err(EtcdError::Http(format!("{status}: {}", text.trim())));
                }
                Err(e) => last = EtcdError::Http(e.without_url().to_string()),
            }
        }
        Err(last)
    }

    async fn range(&self, body: serde_json::Value) -> Result<RangeReply, EtcdError> {
        let resp = self
            .post("/v3/kv/range", &body, Some(REQUEST_TIMEOUT))
            .await?;
        resp.json::<RangeReply>()
            .await
            .map_err(|e| EtcdError::Protocol(e.to_string()))
    }

    /// The value at `key`, if any.
    pub async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, EtcdError> {
        let reply = self.range(json!({"key": STANDARD.encode(key)})).await?;
        match reply.kvs.first() {
            Some(kv) => Ok(Some(decode(&kv.value)?)),
            None => Ok(None),
        }
    }

    /// Every key below `prefix` with its value, and the revision read.
    pub async fn get_prefix(&self, prefix: &str) -> Result<(Documents, i64), EtcdError> {
        let reply = self
            .range(json!({
                "key": STANDARD.encode(prefix),
                "range_end": STANDARD.encode(prefix_end(prefix.as_bytes())),
            }))
            .await?;
        let revision = reply
            .header
            .revision
            .as_deref()
            .and_then(|r| r.parse().ok())
            .unwrap_or(0);
        let mut docs = Documents::new();
        for kv in reply.kvs {
            docs.insert(decode_key(&kv.key)?, decode(&kv.value)?);
        }
        Ok((docs, revision))
    }

    /// etcd answers (readiness).
    pub async fn status(&self) -> Result<(), EtcdError> {
        self.post("/v3/maintenance/status", &json!({}), Some(REQUEST_TIMEOUT))
            .await
            .map(|_| ())
    }

    /// Watches `prefix` from `start_revision`.
    pub async fn watch_prefix(
        &self,
        prefix: &str,
        start_revision: i64,
    ) -> Result<Watch, EtcdError> {
        let body = json!({"create_request": {
            "key": STANDARD.encode(prefix),
            "range_end": STANDARD.encode(prefix_end(prefix.as_bytes())),
            "start_revision": start_revision.to_string(),
        }});
        let resp = self.post("/v3/watch", &body, None).await?;
        Ok(Watch {
            resp,
            buf: BytesMut::new(),
        })
    }
}

/// A running watch: the gateway streams one JSON object per batch.
pub struct Watch {
    resp: reqwest::Response,
    buf: BytesMut,
}

impl Watch {
    /// The next batch of changes; `None` when the stream ends.
    pub async fn next(&mut self) -> Result<Option<Vec<Change>>, EtcdError> {
        loop {
            if let Some(message) = self.take_message()? {
                let Some(result) = message.result else {
                    let error = message.error.unwrap_or_default();
                    return Err(EtcdError::Protocol(format!("watch failed: {error}")));
                };
                if result.canceled {
                    return Err(EtcdError::Protocol(format!(
                        "watch canceled: {}",
                        result.cancel_reason.unwrap_or_default()
                    )));
                }
                if result.events.is_empty() {
                    // The creation notice or a progress report.
                    continue;
                }
                let mut changes = Vec::with_capacity(result.events.len());
                for e in result.events {
                    let Some(kv) = e.kv else { continue };
                    let key = decode_key(&kv.key)?;
                    changes.push(match e.kind.as_deref() {
                        Some("DELETE") => Change::Delete { key },
                        _ => Change::Put {
                            key,
                            value: decode(&kv.value)?,
                        },
                    });
                }
                return Ok(Some(changes));
            }
            match self.resp.chunk().await {
                Ok(Some(chunk)) => {
                    if self.buf.len() + chunk.len() > MAX_WATCH_MESSAGE {
                        return Err(EtcdError::Protocol("watch message too large".into()));
                    }
                    self.buf.extend_from_slice(&chunk);
                }
                Ok(None) => return Ok(None),
                Err(e) => return Err(EtcdError::Http(e.without_url().to_string())),
            }
        }
    }

    /// One complete JSON object from the buffer, if there is one.
    fn take_message(&mut self) -> Result<Option<WatchMessage>, EtcdError> {
        let start = self
            .buf
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(self.buf.len());
        self.buf.advance(start);
        if self.buf.is_empty() {
            return Ok(None);
        }
        let mut stream =
            serde_json::Deserializer::from_slice(&self.buf).into_iter::<WatchMessage>();
        match stream.next() {
            Some(Ok(m)) => {
                let used = stream.byte_offset();
                self.buf.advance(used);
                Ok(Some(m))
            }
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(EtcdError::Protocol(format!("bad watch message: {e}"))),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_ends() {
        assert_eq!(prefix_end(b"/a/"), b"/a0".to_vec());
        assert_eq!(prefix_end(b"a\xff"), b"b".to_vec());
        assert_eq!(prefix_end(b""), vec![0]);
        assert_eq!(prefix_end(b"\xff\xff"), vec![0]);
    }
}
