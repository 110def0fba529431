//! A proxy session (cluster facts 6.4): one signaling server's view of this
//! proxy, with the publishers and subscribers it created. It outlives its
//! connection for a minute so the server can resume it; messages meanwhile
//! are queued.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::proxy::{EventServer, RemoteTarget, ServerMessage};
use sfu_bridge::sfu::Client;
use tokio::time::Instant;
use transport::ws::Outbox;

/// Unused sessions are removed after this.
pub const SESSION_EXPIRY: std::time::Duration = std::time::Duration::from_secs(60);
/// Messages kept for a detached session.
const PENDING_MAX: usize = 256;

#[derive(Default)]
struct State {
    outbox: Option<Outbox>,
    pending: Vec<String>,
    publishers: HashMap<String, Arc<dyn Client>>,
    subscribers: HashMap<String, Arc<dyn Client>>,
    /// Forwardings to other proxies this session asked for, by publisher.
    remote: HashMap<String, Vec<RemoteTarget>>,
    closed: bool,
}

pub struct ProxySession {
    pub id: String,
    pub sid: u64,
    state: Mutex<State>,
    last_used: Mutex<Instant>,
}

impl ProxySession {
    pub fn new(id: String, sid: u64) -> Arc<ProxySession> {
        Arc::new(ProxySession {
            id,
            sid,
            state: Mutex::default(),
            last_used: Mutex::new(Instant::now()),
        })
    }

    pub fn touch(&self) {
        *self.last_used.lock() = Instant::now();
    }

    pub fn expired(&self, now: Instant) -> bool {
        now.duration_since(*self.last_used.lock()) > SESSION_EXPIRY
    }

    /// Attaches a connection; returns the previous one and flushes what
    /// was queued.
    pub fn attach(&self, outbox: Outbox) -> Option<Outbox> {
        self.touch();
        let mut s = self.state.lock();
        for text in s.pending.drain(..) {
            outbox.send_text(Arc::from(text));
        }
        s.outbox.replace(outbox)
    }

    /// Detaches `conn` if it is still the attached connection.
    pub fn detach(&self, conn: transport::ws::ConnectionId) {
        self.touch();
        let mut s = self.state.lock();
        if s.outbox.as_ref().is_some_and(|o| o.id() == conn) {
            s.outbox = None;
        }
    }

    pub fn send(&self, msg: &ServerMessage) {
        let text = match serde_json::to_string(msg) {
            Ok(t) => t,
            Err(_) => return,
        };
        let mut s = self.state.lock();
        if s.closed {
            return;
        }
        match &s.outbox {
            Some(o) => {
                o.send_text(Arc::from(text));
            }
            None if s.pending.len() < PENDING_MAX => s.pending.push(text),
            None => {}
        }
    }

    pub fn event(&self, kind: &str, client_id: &str) {
        self.send(&ServerMessage {
            kind: "event".into(),
            event: Some(EventServer {
                kind: kind.into(),
                client_id: client_id.into(),
                ..Default::default()
            }),
            ..Default::default()
        });
    }

    /// Adds a new publisher or subscriber; false if the session closed
    /// meanwhile.
    pub fn add(&self, id: String, client: Arc<dyn Client>) -> bool {
        let mut s = self.state.lock();
        if s.closed {
            return false;
        }
        count(&client, 1);
        if client.client_ref().is_publisher {
            s.publishers.insert(id, client);
        } else {
            s.subscribers.insert(id, client);
        }
        true
    }

    pub fn publisher(&self, id: &str) -> Option<Arc<dyn Client>> {
        self.state.lock().publishers.get(id).cloned()
    }

    pub fn subscriber(&self, id: &str) -> Option<Arc<dyn Client>> {
        self.state.lock().subscribers.get(id).cloned()
    }

    pub fn remove_publisher(&self, id: &str) -> Option<Arc<dyn Client>> {
        let c = self.state.lock().publishers.remove(id);
        c.inspect(|c| count(c, -1))
    }

    pub fn remove_subscriber(&self, id: &str) -> Option<Arc<dyn Client>> {
        let c = self.state.lock().subscribers.remove(id);
        c.inspect(|c| count(c, -1))
    }

    /// Subscribers (of this session) to the publisher with client id
    /// `publisher` (here or on another proxy).
    pub fn subscribers_of(&self, publisher: &str) -> Vec<Arc<dyn Client>> {
        self.state
            .lock()
            .subscribers
            .values()
            .filter(|c| c.client_ref().publisher == publisher)
            .cloned()
            .collect()
    }

    pub fn add_remote(&self, publisher: &str, target: RemoteTarget) {
        let mut s = self.state.lock();
        let targets = s.remote.entry(publisher.to_owned()).or_default();
        if !targets.contains(&target) {
            targets.push(target);
        }
    }

    pub fn remove_remote(&self, publisher: &str, target: &RemoteTarget) {
        let mut s = self.state.lock();
        if let Some(targets) = s.remote.get_mut(publisher) {
            targets.retain(|t| t != target);
            if targets.is_empty() {
                s.remote.remove(publisher);
            }
        }
    }

    /// Forgets the forwardings of a publisher; true if there were any.
    pub fn forget_remote(&self, publisher: &str) -> bool {
        self.state.lock().remote.remove(publisher).is_some()
    }

    /// Every forwarding this session asked for, forgotten.
    pub fn take_remote(&self) -> HashMap<String, Vec<RemoteTarget>> {
        std::mem::take(&mut self.state.lock().remote)
    }

    pub fn client_count(&self) -> usize {
        let s = self.state.lock();
        s.publishers.len() + s.subscribers.len()
    }

    /// Sum of the clients' bitrates: (publishers = incoming, subscribers
    /// = outgoing).
    pub fn bitrates(&self) -> (u64, u64) {
        let s = self.state.lock();
        (
            s.publishers.values().map(|p| p.max_bitrate()).sum(),
            s.subscribers.values().map(|p| p.max_bitrate()).sum(),
        )
    }

    /// Ends the session: returns the attached connection, if any, and
    /// its clients, which the caller closes.
    pub fn close(&self) -> (Option<Outbox>, Vec<Arc<dyn Client>>) {
        let (clients, outbox) = {
            let mut s = self.state.lock();
            s.closed = true;
            let mut clients: Vec<_> = s.publishers.drain().map(|(_, c)| c).collect();
            clients.extend(s.subscribers.drain().map(|(_, c)| c));
            (clients, s.outbox.take())
        };
        for c in &clients {
            count(c, -1);
        }
        (outbox, clients)
    }
}

/// Keeps `signaling_proxy_publishers`/`subscribers` in step with the
/// client maps; creation also counts the totals.
fn count(client: &Arc<dyn Client>, delta: i64) {
    let r = client.client_ref();
    let m = &crate::metrics::METRICS;
    let (gauge, total) = if r.is_publisher {
        (&m.publishers, &m.publishers_total)
    } else {
        (&m.subscribers, &m.subscribers_total)
    };
    gauge.with_label_values(&[r.stream.as_str()]).add(delta);
    if delta > 0 {
        total.with_label_values(&[r.stream.as_str()]).inc();
    }
}
