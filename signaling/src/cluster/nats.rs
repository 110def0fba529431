//! The event bus over a NATS server (`[nats] url = nats://...`).
//!
//! One worker task owns the NATS client and handles subscribe, unsubscribe
//! and publish requests in the order they were made, so a subscription
//! made before a publish is in place on the server before that publish
//! arrives. One NATS subscription serves every local sink of a subject.
//! async-nats reconnects with backoff and restores the subscriptions after
//! a NATS restart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::bus::{BusError, BusMessage, BusSink, EventBus, Subject, Subscription};
use super::wire;

enum Command {
    Barrier(tokio::sync::oneshot::Sender<()>),
    Subscribe(String),
    Unsubscribe(String),
    Publish(String, Vec<u8>),
}

#[derive(Default)]
struct Sinks {
    by_subject: HashMap<String, Vec<(u64, BusSink)>>,
}

pub struct NatsBus {
    commands: mpsc::UnboundedSender<Command>,
    sinks: Arc<Mutex<Sinks>>,
    next_id: AtomicU64,
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
    sinks: Weak<Mutex<Sinks>>,
    commands: mpsc::UnboundedSender<Command>,
    subject: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let Some(sinks) = self.sinks.upgrade() else {
            return;
        };
        let mut sinks = sinks.lock();
        if let Some(list) = sinks.by_subject.get_mut(&self.subject) {
            list.retain(|(id, _)| *id != self.id);
            if list.is_empty() {
                sinks.by_subject.remove(&self.subject);
                let _ = self
                    .commands
                    .send(Command::Unsubscribe(self.subject.clone()));
            }
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
        let sinks: Arc<Mutex<Sinks>> = Arc::default();
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(worker(client, rx, Arc::downgrade(&sinks)));
        Ok(NatsBus {
            commands: tx,
            sinks,
            next_id: AtomicU64::new(1),
            urls: urls.to_vec(),
            connected,
        })
    }
}

async fn worker(
    client: async_nats::Client,
    mut rx: mpsc::UnboundedReceiver<Command>,
    sinks: Weak<Mutex<Sinks>>,
) {
    let mut readers: HashMap<String, tokio::task::JoinHandle<()>> = HashMap::new();
    while let Some(cmd) = rx.recv().await {
        match cmd {
            Command::Subscribe(subject) => {
                if readers.contains_key(&subject) {
                    continue;
                }
                match client.subscribe(subject.clone()).await {
                    Ok(mut sub) => {
                        let sinks = sinks.clone();
                        let name = subject.clone();
                        readers.insert(
                            subject,
                            tokio::spawn(async move {
                                while let Some(msg) = sub.next().await {
                                    let Some(bus) = wire::decode(&msg.payload) else {
                                        tracing::warn!(subject = name, "undecodable bus message");
                                        continue;
                                    };
                                    let bus = Arc::new(bus);
                                    let targets: Vec<BusSink> = match sinks.upgrade() {
                                        Some(s) => s
                                            .lock()
                                            .by_subject
                                            .get(&name)
                                            .map(|l| l.iter().map(|(_, s)| s.clone()).collect())
                                            .unwrap_or_default(),
                                        None => return,
                                    };
                                    for sink in targets {
                                        sink(&bus);
                                    }
                                }
                            }),
                        );
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
                let still_wanted = sinks
                    .upgrade()
                    .is_some_and(|s| s.lock().by_subject.contains_key(&subject));
                if !still_wanted {
                    if let Some(h) = readers.remove(&subject) {
                        h.abort();
                    }
                }
            }
            Command::Publish(subject, payload) => {
                if let Err(e) = client.publish(subject.clone(), payload.into()).await {
                    tracing::warn!(subject, error = %e, "NATS publish failed");
                }
            }
        }
    }
}

impl EventBus for NatsBus {
    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError> {
        self.commands
            .send(Command::Publish(
                subject.to_subject_string(),
                wire::encode(&msg),
            ))
            .map_err(|_| BusError::Closed)
    }

    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError> {
        let name = subject.to_subject_string();
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let first = {
            let mut sinks = self.sinks.lock();
            let list = sinks.by_subject.entry(name.clone()).or_default();
            list.push((id, sink));
            list.len() == 1
        };
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
