//! The event bus over a NATS server (`[nats] url = nats://...`).
//!
//! One worker task owns the NATS client and handles subscribe, unsubscribe
//! and publish requests in the order they were made, so a subscription
//! made before a publish is in place on the server before that publish
//! arrives. One NATS subscription serves every local sink of a subject.
//! async-nats reconnects with backoff and restores the subscriptions after
//! a NATS restart.
//!
//! Order: this node's subscribers get this node's messages at once, in
//! `publish` (as on the loopback bus); the copy NATS echoes back is
//! dropped. Messages from other nodes carry their publisher's sequence
//! number in a header, and one dispatcher reads every subscription through
//! [`Ordered`], so each publisher's messages reach a session in the order
//! they were published, whatever subjects they took.

use std::collections::{HashMap, HashSet};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::task::Poll;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::bus::{BusError, BusMessage, BusSink, EventBus, Subject, Subscription};
use super::order::Ordered;
use super::sinks::Sinks;
use super::wire;

/// `<publisher id in hex>.<sequence number>` on every message we publish.
const ORDER_HEADER: &str = "Signaling-Order";

/// Most messages handed to sinks between two looks at new subscriptions.
const DISPATCH_BATCH: usize = 1024;

enum Command {
    Barrier(tokio::sync::oneshot::Sender<()>),
    Subscribe(String),
    Unsubscribe(String),
    Publish {
        subject: String,
        payload: Vec<u8>,
        seq: u64,
    },
}

/// The worker's word to the dispatcher.
enum Slot {
    Add(String, async_nats::Subscriber),
    Remove(String),
}

pub struct NatsBus {
    commands: mpsc::UnboundedSender<Command>,
    sinks: Arc<Sinks<String>>,
    /// The last sequence number; locked while a publish is queued so that
    /// numbers and queue order agree.
    seq: Mutex<u64>,
    urls: Vec<String>,
    connected: Arc<AtomicBool>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not connect to NATS at {urls}: {message}")]
pub struct ConnectError {
    urls: String,
    message: String,
}

struct Unsubscribe {
    sinks: Weak<Sinks<String>>,
    commands: mpsc::UnboundedSender<Command>,
    subject: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let Some(sinks) = self.sinks.upgrade() else {
            return;
        };
        if sinks.remove(&self.subject, self.id) {
            let _ = self
                .commands
                .send(Command::Unsubscribe(self.subject.clone()));
        }
    }
}

impl NatsBus {
    /// Connects (retrying until `timeout`) and starts the worker.
    pub async fn connect(urls: &[String], timeout: Duration) -> Result<NatsBus, ConnectError> {
        let connected = Arc::new(AtomicBool::new(false));
        let flag = connected.clone();
        let options = async_nats::ConnectOptions::new()
            .name("nextcloud-spreed-signaling")
            .retry_on_initial_connect()
            .event_callback(move |event| {
                let flag = flag.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            flag.store(true, Ordering::Relaxed);
                            tracing::info!("connected to NATS");
                        }
                        async_nats::Event::Disconnected => {
                            flag.store(false, Ordering::Relaxed);
                            tracing::warn!("disconnected from NATS, reconnecting");
                        }
                        other => tracing::debug!(event = %other, "NATS event"),
                    }
                }
            });
        let addrs: Vec<async_nats::ServerAddr> =
            urls.iter().filter_map(|u| u.parse().ok()).collect();
        let err = |message: String| ConnectError {
            urls: urls.join(","),
            message,
        };
        if addrs.is_empty() {
            return Err(err("no valid URL".into()));
        }
        let client = tokio::time::timeout(timeout, options.connect(addrs))
            .await
            .map_err(|_| err("timeout".into()))?
            .map_err(|e| err(e.to_string()))?;
        // Wait until the connection is really up, so the first requests
        // do not sit in a queue.
        let _ = tokio::time::timeout(timeout, client.flush()).await;
        connected.store(true, Ordering::Relaxed);
        let sinks: Arc<Sinks<String>> = Arc::default();
        let origin: u64 = rand::random();
        let (tx, rx) = mpsc::unbounded_channel();
        let (slots_tx, slots_rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(client, rx, Arc::downgrade(&sinks), slots_tx, origin));
        // Unconstrained: tokio's task budget would make a subscription
        // look empty in the middle of a drain and break the order.
        tokio::spawn(tokio::task::unconstrained(dispatcher(
            slots_rx,
            Arc::downgrade(&sinks),
            origin,
        )));
        Ok(NatsBus {
            commands: tx,
            sinks,
            seq: Mutex::new(0),
            urls: urls.to_vec(),
            connected,
        })
    }
}

async fn worker(
    client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<Command>,
    sinks: Weak<Sinks<String>>,
    slots: mpsc::UnboundedSender<Slot>,
    origin: u64,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Subscribe(subject) => {
                if subscribed.contains(&subject) {
                    continue;
                }
                match client.subscribe(subject.clone()).await {
                    Ok(sub) => {
                        subscribed.insert(subject.clone());
                        let _ = slots.send(Slot::Add(subject, sub));
                    }
                    Err(e) => tracing::error!(subject, error = %e, "NATS subscribe failed"),
                }
            }
            Command::Barrier(done) => {
                if let Err(e) = client.flush().await {
                    tracing::warn!(error = %e, "NATS flush failed");
                }
                let _ = done.send(());
            }
            Command::Unsubscribe(subject) => {
                let still_wanted = sinks.upgrade().is_some_and(|s| s.contains(&subject));
                if !still_wanted && subscribed.remove(&subject) {
                    let _ = slots.send(Slot::Remove(subject));
                }
            }
            Command::Publish {
                subject,
                payload,
                seq,
            } => {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert(ORDER_HEADER, format!("{origin:x}.{seq}"));
                if let Err(e) = client
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                {
                    tracing::warn!(subject, error = %e, "NATS publish failed");
                }
            }
        }
    }
}

/// Publisher and sequence number of a message; messages without them (a
/// node of the reference) sort first and keep their arrival order.
fn order_key(msg: &async_nats::Message) -> (u64, u64) {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(ORDER_HEADER))
        .and_then(|v| {
            let (origin, seq) = v.as_str().split_once('.')?;
            Some((u64::from_str_radix(origin, 16).ok()?, seq.parse().ok()?))
        })
        .unwrap_or((0, 0))
}

/// Reads every subscription and hands messages to the sinks, each
/// publisher's in its order.
async fn dispatcher(
    mut slots: mpsc::UnboundedReceiver<Slot>,
    sinks: Weak<Sinks<String>>,
    origin: u64,
) {
    let mut subs: Ordered<async_nats::Subscriber> = Ordered::default();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let mut batch = Vec::new();
    loop {
        let slot = poll_fn(|cx| match slots.poll_recv(cx) {
            Poll::Ready(slot) => Poll::Ready(Some(slot)),
            Poll::Pending => subs.poll_ready(cx).map(|()| None),
        })
        .await;
        match slot {
            Some(None) => return,
            Some(Some(Slot::Add(subject, sub))) => {
                let id = subs.insert(sub);
                if let Some(old) = ids.insert(subject, id) {
                    subs.remove(old);
                }
                continue;
            }
            Some(Some(Slot::Remove(subject))) => {
                if let Some(id) = ids.remove(&subject) {
                    subs.remove(id);
                }
                continue;
            }
            None => {}
        }
        subs.drain(&mut batch, DISPATCH_BATCH);
        let Some(sinks) = sinks.upgrade() else { return };
        let mut keyed: Vec<((u64, u64), async_nats::Message)> = batch
            .drain(..)
            .map(|(_, msg)| (order_key(&msg), msg))
            // Our own messages reached our sinks when they were published.
            .filter(|((from, _), _)| *from != origin)
            .collect();
        keyed.sort_by_key(|(key, _)| *key);
        for (_, msg) in keyed {
            let Some(bus) = wire::decode(&msg.payload) else {
                tracing::warn!(subject = %msg.subject, "undecodable bus message");
                continue;
            };
            sinks.deliver(msg.subject.as_str(), &Arc::new(bus));
        }
    }
}

impl EventBus for NatsBus {
    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError> {
        let subject = subject.to_subject_string();
        self.sinks.deliver(subject.as_str(), &msg);
        let payload = wire::encode(&msg);
        let mut seq = self.seq.lock();
        *seq += 1;
        self.commands
            .send(Command::Publish {
                subject,
                payload,
                seq: *seq,
            })
            .map_err(|_| BusError::Closed)
    }

    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError> {
        let name = subject.to_subject_string();
        let (id, first) = self.sinks.add(&name, sink);
        if first {
            self.commands
                .send(Command::Subscribe(name.clone()))
                .map_err(|_| BusError::Closed)?;
        }
        Ok(Subscription::new(Unsubscribe {
            sinks: Arc::downgrade(&self.sinks),
            commands: self.commands.clone(),
            subject: name,
            id,
        }))
    }

    fn barrier(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let sent = self.commands.send(Command::Barrier(tx)).is_ok();
        Box::pin(async move {
            if sent {
                // Bounded: a NATS outage must not hang clients forever.
                let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
            }
        })
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"urls": self.urls, "connected": self.connected.load(Ordering::Relaxed)})
    }
}
