//! A publisher or subscriber of ours living on a signaling proxy: the
//! [`Client`] the hub talks to, fed by the proxy connection's events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use proto::proxy::{ClientMessage, CommandClient, PayloadClient};
use serde_json::{json, Value};

use super::connection::{ProxyClientEvents, ProxyConnection};
use super::sfu::Inner;
use crate::sfu::{Client, ClientRef, Listener, ProxyLocation, Request, SfuError};

/// A publisher or subscriber living on a proxy.
pub struct ProxyClient {
    client: ClientRef,
    conn: Arc<ProxyConnection>,
    proxy_id: String,
    sid: Mutex<String>,
    bitrate: u64,
    listener: Arc<dyn Listener>,
    sfu: Weak<Inner>,
    closed: AtomicBool,
}

impl ProxyClient {
    pub(super) fn new(
        sfu: &Arc<Inner>,
        conn: Arc<ProxyConnection>,
        proxy_id: String,
        client: ClientRef,
        sid: String,
        bitrate: u64,
        listener: Arc<dyn Listener>,
    ) -> Arc<ProxyClient> {
        let c = Arc::new(ProxyClient {
            client,
            conn: conn.clone(),
            proxy_id: proxy_id.clone(),
            sid: Mutex::new(sid),
            bitrate,
            listener,
            sfu: Arc::downgrade(sfu),
            closed: AtomicBool::new(false),
        });
        let weak: Weak<dyn ProxyClientEvents> = Arc::downgrade(&c) as _;
        conn.register(&proxy_id, weak);
        c
    }

    /// Forgets the client locally; true the first time.
    fn mark_closed(&self) -> bool {
        if self.closed.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.conn.unregister(&self.proxy_id);
        if self.client.is_publisher {
            if let Some(sfu) = self.sfu.upgrade() {
                let key = (self.client.publisher.clone(), self.client.stream);
                let mut map = sfu.publishers.lock();
                if map.get(&key).is_some_and(|h| h.proxy_id == self.proxy_id) {
                    map.remove(&key);
                }
            }
        }
        true
    }
}

impl ProxyClientEvents for ProxyClient {
    fn on_payload(&self, kind: &str, payload: &Value) {
        let sid = self.sid.lock().clone();
        match kind {
            "offer" => self
                .listener
                .on_update_offer(&self.client, &sid, payload["offer"].clone()),
            "candidate" => {
                self.listener
                    .on_ice_candidate(&self.client, &sid, payload["candidate"].clone())
            }
            _ => {}
        }
    }

    fn on_closed_by_proxy(&self) {
        if self.mark_closed() {
            self.listener.on_closed(&self.client);
        }
    }
}

#[async_trait::async_trait]
impl Client for ProxyClient {
    fn client_ref(&self) -> &ClientRef {
        &self.client
    }

    fn sid(&self) -> String {
        self.sid.lock().clone()
    }

    fn max_bitrate(&self) -> u64 {
        self.bitrate
    }

    async fn send(&self, request: Request, sid: &str) -> Result<Option<Value>, SfuError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(SfuError::Closed);
        }
        let kind = request.kind();
        let payload = match request {
            Request::Offer(j) | Request::Answer(j) => Some(j),
            Request::Candidate(c) => Some(json!({ "candidate": c })),
            Request::SelectStream(sel) => {
                let mut m = serde_json::Map::new();
                sel.apply(&mut m);
                Some(Value::Object(m))
            }
            Request::EndOfCandidates | Request::RequestOffer(_) => None,
        };
        let reply = self
            .conn
            .request(ClientMessage {
                kind: "payload".into(),
                payload: Some(PayloadClient {
                    kind: kind.into(),
                    client_id: self.proxy_id.clone(),
                    sid: sid.to_owned(),
                    payload,
                }),
                ..Default::default()
            })
            .await?;
        Ok(reply
            .payload
            .and_then(|p| p.payload)
            .filter(|v| !v.is_null()))
    }

    fn proxy_location(&self) -> Option<ProxyLocation> {
        Some(ProxyLocation {
            url: self.conn.base_url.clone(),
            ip: self.conn.ip,
            client_id: self.proxy_id.clone(),
        })
    }

    async fn close(&self) {
        if !self.mark_closed() {
            return;
        }
        self.listener.on_closed(&self.client);
        let kind = if self.client.is_publisher {
            "delete-publisher"
        } else {
            "delete-subscriber"
        };
        let _ = self
            .conn
            .request(ClientMessage {
                kind: "command".into(),
                command: Some(CommandClient {
                    kind: kind.into(),
                    client_id: self.proxy_id.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await;
    }
}
