//! What Janus tells one publisher or subscriber of a session, turned into
//! the proxy protocol's payloads and events for its signaling server.

use std::sync::{Arc, Weak};

use serde_json::{json, Value};
use sfu_bridge::sfu::{ClientRef, Listener};

use crate::reply::payload;
use crate::session::ProxySession;
use crate::state::Proxy;

/// What Janus tells one client of a session.
pub struct ClientListener {
    pub session: Weak<ProxySession>,
    pub proxy: Weak<Proxy>,
    pub client_id: String,
}

impl Listener for ClientListener {
    fn on_update_offer(&self, _: &ClientRef, _: &str, jsep: Value) {
        if let Some(s) = self.session.upgrade() {
            s.send(&payload("offer", &self.client_id, json!({ "offer": jsep })));
        }
    }

    fn on_ice_candidate(&self, _: &ClientRef, _: &str, candidate: Value) {
        if let Some(s) = self.session.upgrade() {
            s.send(&payload(
                "candidate",
                &self.client_id,
                json!({ "candidate": candidate }),
            ));
        }
    }

    fn on_closed(&self, client: &ClientRef) {
        if client.is_publisher {
            if let Some(p) = self.proxy.upgrade() {
                p.publisher_deleted(&self.client_id);
            }
        }
        let Some(s) = self.session.upgrade() else {
            return;
        };
        let known = if client.is_publisher {
            s.remove_publisher(&self.client_id).is_some()
        } else {
            s.remove_subscriber(&self.client_id).is_some()
        };
        if known {
            let kind = if client.is_publisher {
                "publisher-closed"
            } else {
                "subscriber-closed"
            };
            s.event(kind, &self.client_id);
        }
    }
}

impl ClientListener {
    /// A fresh client id of `session` and the listener that reports to it.
    pub fn for_new_client(proxy: &Arc<Proxy>, session: &Arc<ProxySession>) -> Arc<ClientListener> {
        Arc::new(ClientListener {
            session: Arc::downgrade(session),
            proxy: Arc::downgrade(proxy),
            client_id: new_client_id(),
        })
    }
}

/// A random UUID (version 4), as the reference's client ids.
fn new_client_id() -> String {
    let mut b: [u8; 16] = rand::random();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}
