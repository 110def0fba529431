//! The event bus over a NATS server (`[nats] url = nats://...`).
//!
//! One worker task owns the NATS client. Publishes and barriers go to it
//! through a bounded queue ([`PUBLISH_QUEUE`]; when NATS cannot keep up
//! for that long, further publishes fail and are counted in
//! `signaling_nats_publish_dropped_total` instead of growing memory).
//! Subscription changes are not queued: a subject whose local sinks
//! changed is marked, and the worker makes NATS match the sinks before it
//! takes the next queued item, so a subscription made before a publish is
//! in place on the server before that publish arrives, and the marks are
//! bounded by the number of subjects. One NATS subscription serves every
//! local sink of a subject. async-nats reconnects with backoff and
//! restores the subscriptions after a NATS restart.
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
use tokio::sync::{mpsc, Notify};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::bus::{BusError, BusMessage, BusSink, EventBus, Subject, Subscription};
use super::order::Ordered;
use super::sinks::Sinks;
use super::wire;
use crate::metrics::METRICS;

/// `<publisher id in hex>.<sequence number>` on every message we publish.
const ORDER_HEADER: &str = "Signaling-Order";
/// Set on a message this node must also receive from NATS rather than
/// locally: handover markers, which must come back in the server's order
/// relative to what other nodes published (`hub::handover`).
const ECHO_HEADER: &str = "Signaling-Echo";

/// Most messages handed to sinks between two looks at new subscriptions.
const DISPATCH_BATCH: usize = 1024;

/// Publishes (and barriers) waiting for the worker. About ten seconds of
/// a busy node's traffic: enough to ride out a NATS hiccup, small enough
/// that an outage cannot grow memory without bound.
pub const PUBLISH_QUEUE: usize = 16 * 1024;

/// Subscription changes between the worker and the dispatcher: one per
/// subject the worker (un)subscribed; the dispatcher takes them at once.
const SLOT_QUEUE: usize = 256;

enum Command {
    Barrier(tokio::sync::oneshot::Sender<()>),
    Publish {
        /// Delivered to this node's sinks from NATS, not locally.
        echo: bool,
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

/// Subjects whose local sinks changed since the worker last looked.
#[derive(Default)]
struct Marks {
    subjects: Mutex<HashSet<String>>,
    wake: Notify,
}

impl Marks {
    fn mark(&self, subject: String) {
        self.subjects.lock().insert(subject);
        self.wake.notify_one();
    }

    fn take(&self) -> HashSet<String> {
        std::mem::take(&mut *self.subjects.lock())
    }
}

pub struct NatsBus {
    commands: mpsc::Sender<Command>,
    marks: Arc<Marks>,
    sinks: Arc<Sinks<String>>,
    /// The last sequence number; locked while a publish is queued so that
    /// numbers and queue order agree.
    seq: Mutex<u64>,
    urls: Vec<String>,
    connected: Arc<AtomicBool>,
    /// The worker and the dispatcher; [`EventBus::close`] stops and
    /// awaits them.
    tasks: TaskTracker,
    stop: CancellationToken,
}

#[derive(Debug, thiserror::Error)]
#[error("could not connect to NATS at {urls}: {message}")]
pub struct ConnectError {
    urls: String,
    message: String,
}

struct Unsubscribe {
    sinks: Weak<Sinks<String>>,
    marks: Arc<Marks>,
    subject: String,
    id: u64,
}

impl Drop for Unsubscribe {
    fn drop(&mut self) {
        let Some(sinks) = self.sinks.upgrade() else {
            return;
        };
        if sinks.remove(&self.subject, self.id) {
            self.marks.mark(std::mem::take(&mut self.subject));
        }
    }
}

/// How long start-up waits for the first round trip to the NATS server.
const FIRST_FLUSH: Duration = Duration::from_secs(2);

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
        // do not sit in a queue. If it is not, the server starts anyway
        // (as the reference does) and reports NATS as disconnected until
        // the client's `Connected` event.
        if let Ok(Ok(())) = tokio::time::timeout(FIRST_FLUSH.min(timeout), client.flush()).await {
            connected.store(true, Ordering::Relaxed);
        } else {
            tracing::warn!("NATS not reachable yet: starting disconnected");
        }
        let sinks: Arc<Sinks<String>> = Arc::default();
        let origin: u64 = rand::random();
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let (slots_tx, slots_rx) = mpsc::channel(SLOT_QUEUE);
        let marks = Arc::new(Marks::default());
        let tasks = TaskTracker::new();
        let stop = CancellationToken::new();
        tasks.spawn(worker(
            client,
            rx,
            marks.clone(),
            Arc::downgrade(&sinks),
            slots_tx,
            origin,
            stop.clone(),
        ));
        // Unconstrained: tokio's task budget would make a subscription
        // look empty in the middle of a drain and break the order. It
        // ends with the worker, which holds the other end of `slots`.
        tasks.spawn(tokio::task::unconstrained(dispatcher(
            slots_rx,
            Arc::downgrade(&sinks),
            origin,
        )));
        Ok(NatsBus {
            commands: tx,
            marks,
            sinks,
            seq: Mutex::new(0),
            urls: urls.to_vec(),
            connected,
            tasks,
            stop,
        })
    }
}

async fn worker(
    client: async_nats::Client,
    mut rx: mpsc::Receiver<Command>,
    marks: Arc<Marks>,
    sinks: Weak<Sinks<String>>,
    slots: mpsc::Sender<Slot>,
    origin: u64,
    stop: CancellationToken,
) {
    let mut subscribed: HashSet<String> = HashSet::new();
    let mut barrier = ServerBarrier::new(&client);
    loop {
        let cmd = tokio::select! {
            biased;
            () = stop.cancelled() => {
                // Publishes still queued go out first: they are the last
                // words of the sessions this node closed. Bounded, as
                // NATS may be gone.
                let last_words = async {
                    while let Ok(cmd) = rx.try_recv() {
                        if let Command::Publish { echo, subject, payload, seq } = cmd {
                            publish(&client, origin, echo, subject, payload, seq).await;
                        }
                    }
                    client.flush().await
                };
                if !matches!(tokio::time::timeout(FIRST_FLUSH, last_words).await, Ok(Ok(()))) {
                    tracing::warn!("NATS: what was queued at shutdown may not have been sent");
                }
                return;
            }
            _ = marks.wake.notified() => None,
            cmd = rx.recv() => match cmd {
                Some(cmd) => Some(cmd),
                None => return,
            },
        };
        // Subscriptions first: whatever was marked before this command
        // was queued is in place before it runs.
        let Some(sinks) = sinks.upgrade() else { return };
        for subject in marks.take() {
            let wanted = sinks.contains(&subject);
            if wanted && !subscribed.contains(&subject) {
                match client.subscribe(subject.clone()).await {
                    Ok(sub) => {
                        subscribed.insert(subject.clone());
                        let _ = slots.send(Slot::Add(subject, sub)).await;
                    }
                    Err(e) => tracing::error!(subject, error = %e, "NATS subscribe failed"),
                }
            } else if !wanted && subscribed.remove(&subject) {
                let _ = slots.send(Slot::Remove(subject)).await;
            }
        }
        drop(sinks);
        match cmd {
            None => {}
            Some(Command::Barrier(done)) => {
                barrier.wait(&client).await;
                let _ = done.send(());
            }
            Some(Command::Publish {
                echo,
                subject,
                payload,
                seq,
            }) => {
                // A NATS that stopped reading must not hold up shutdown.
                tokio::select! {
                    biased;
                    () = publish(&client, origin, echo, subject, payload, seq) => {}
                    () = stop.cancelled() => {}
                }
            }
        }
    }
}

async fn publish(
    client: &async_nats::Client,
    origin: u64,
    echo: bool,
    subject: String,
    payload: Vec<u8>,
    seq: u64,
) {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(ORDER_HEADER, format!("{origin:x}.{seq}"));
    if echo {
        headers.insert(ECHO_HEADER, "1");
    }
    if let Err(e) = client
        .publish_with_headers(subject.clone(), headers, payload.into())
        .await
    {
        tracing::warn!(subject, error = %e, "NATS publish failed");
    }
}

/// Returns once the server has processed everything this connection sent
/// before: a flush only puts the bytes on the socket, so a message to an
/// inbox of ours is sent after them and waited for (the server handles
/// one connection's commands in order). The inbox subscription lives as
/// long as the worker, so a barrier costs one message.
struct ServerBarrier {
    inbox: String,
    sub: Option<async_nats::Subscriber>,
    next: u64,
}

impl ServerBarrier {
    fn new(client: &async_nats::Client) -> ServerBarrier {
        ServerBarrier {
            inbox: client.new_inbox(),
            sub: None,
            next: 0,
        }
    }

    async fn wait(&mut self, client: &async_nats::Client) {
        use futures_util::StreamExt;
        if self.sub.is_none() {
            match client.subscribe(self.inbox.clone()).await {
                Ok(s) => self.sub = Some(s),
                Err(e) => {
                    tracing::warn!(error = %e, "NATS barrier: subscribe failed");
                    return;
                }
            }
        }
        self.next += 1;
        let token = self.next.to_string();
        if let Err(e) = client
            .publish(self.inbox.clone(), token.clone().into())
            .await
        {
            tracing::warn!(error = %e, "NATS barrier: publish failed");
            return;
        }
        if let Err(e) = client.flush().await {
            tracing::warn!(error = %e, "NATS flush failed");
        }
        let Some(sub) = self.sub.as_mut() else { return };
        let wait = async {
            // Earlier barriers that timed out may still answer first.
            while let Some(m) = sub.next().await {
                if m.payload.as_ref() == token.as_bytes() {
                    return;
                }
            }
        };
        if tokio::time::timeout(Duration::from_secs(5), wait)
            .await
            .is_err()
        {
            tracing::warn!("NATS barrier: no answer within 5 s");
        }
    }
}

fn is_echo(msg: &async_nats::Message) -> bool {
    msg.headers
        .as_ref()
        .is_some_and(|h| h.get(ECHO_HEADER).is_some())
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
async fn dispatcher(mut slots: mpsc::Receiver<Slot>, sinks: Weak<Sinks<String>>, origin: u64) {
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
            // Our own messages reached our sinks when they were published,
            // but for the ones that must come back from NATS.
            .filter(|((from, _), msg)| *from != origin || is_echo(msg))
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
    fn close(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            self.stop.cancel();
            self.tasks.close();
            self.tasks.wait().await;
        })
    }

    fn publish(&self, subject: &Subject, msg: Arc<BusMessage>) -> Result<(), BusError> {
        let subject = subject.to_subject_string();
        let echo = matches!(msg.payload, super::BusPayload::HandoverMarker { .. });
        if !echo {
            self.sinks.deliver(subject.as_str(), &msg);
        }
        let payload = wire::encode(&msg);
        let mut seq = self.seq.lock();
        *seq += 1;
        let queued = self.commands.try_send(Command::Publish {
            echo,
            subject,
            payload,
            seq: *seq,
        });
        match queued {
            Ok(()) => Ok(()),
            Err(mpsc::error::TrySendError::Full(_)) => {
                METRICS.nats_publish_dropped_total.inc();
                Err(BusError::Overloaded)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Err(BusError::Closed),
        }
    }

    fn subscribe(&self, subject: &Subject, sink: BusSink) -> Result<Subscription, BusError> {
        let name = subject.to_subject_string();
        let (id, first) = self.sinks.add(&name, sink);
        if first {
            self.marks.mark(name.clone());
        }
        Ok(Subscription::new(Unsubscribe {
            sinks: Arc::downgrade(&self.sinks),
            marks: self.marks.clone(),
            subject: name,
            id,
        }))
    }

    fn barrier(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        // A full queue makes the barrier resolve at once: the caller goes
        // on as it would after the timeout below.
        let sent = self.commands.try_send(Command::Barrier(tx)).is_ok();
        Box::pin(async move {
            if sent {
                // Bounded: a NATS outage must not hang clients forever.
                let _ = tokio::time::timeout(Duration::from_secs(5), rx).await;
            }
        })
    }

    fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({"urls": self.urls, "connected": self.connected.load(Ordering::Relaxed)})
    }
}
