//! A subscriber: a handle joined to the room of one publisher
//! (cluster facts 5.4). Its sid is its Janus handle id.

use std::sync::Arc;

use parking_lot::Mutex;
use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::error::videoroom;
use super::gateway::{Handle, HandleEvent};
use super::publisher::feed_id;
use super::queue::{Perform, RequestQueue};
use super::remote::RemotePublisher;
use super::sfu::{Inner, VIDEOROOM};
use crate::sfu::{Client, ClientRef, Listener, Request, SfuError, StreamSelection, StreamType};

struct State {
    handle: Handle,
    joined: bool,
}

pub struct JanusSubscriber {
    client: ClientRef,
    room: u64,
    bitrate: u64,
    /// For a subscriber of a publisher on another Janus.
    remote: Option<Arc<RemotePublisher>>,
    state: Mutex<State>,
    listener: Arc<dyn Listener>,
    sfu: std::sync::Weak<Inner>,
    queue: RequestQueue,
    me: std::sync::Weak<JanusSubscriber>,
}

impl JanusSubscriber {
    pub(crate) async fn create(
        sfu: &Arc<Inner>,
        listener: Arc<dyn Listener>,
        publisher: &str,
        stream: StreamType,
    ) -> Result<Arc<JanusSubscriber>, SfuError> {
        // The publisher may still be on its way (its offer and the
        // subscriber's request cross): wait for it, bounded.
        let deadline = tokio::time::Instant::now() + sfu.config.timeout;
        let p = loop {
            let changed = sfu.publishers_changed.notified();
            if let Some(p) = sfu.publisher(publisher, stream) {
                break p;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return Err(SfuError::NoPublisher(publisher.to_owned()));
            }
        };
        Self::create_in_room(
            sfu,
            listener,
            publisher,
            stream,
            p.room,
            p.max_bitrate(),
            None,
        )
        .await
    }

    /// A subscriber of the publisher in `room` (local, or the remote
    /// publisher it then holds until it closes).
    pub(crate) async fn create_in_room(
        sfu: &Arc<Inner>,
        listener: Arc<dyn Listener>,
        publisher: &str,
        stream: StreamType,
        room: u64,
        bitrate: u64,
        remote: Option<Arc<RemotePublisher>>,
    ) -> Result<Arc<JanusSubscriber>, SfuError> {
        let attached = match sfu.session() {
            Ok(session) => session.attach(VIDEOROOM).await.map_err(SfuError::from),
            Err(e) => Err(e),
        };
        let (handle, events) = match attached {
            Ok(a) => a,
            Err(e) => {
                if let Some(r) = remote {
                    r.release().await;
                }
                return Err(e);
            }
        };
        let (queue, jobs) = RequestQueue::new();
        let sub = Arc::new_cyclic(|me| JanusSubscriber {
            client: ClientRef {
                id: sfu.next_id(),
                publisher: publisher.to_owned(),
                stream,
                is_publisher: false,
            },
            room,
            bitrate,
            remote,
            state: Mutex::new(State {
                handle,
                joined: false,
            }),
            listener,
            sfu: Arc::downgrade(sfu),
            queue,
            me: me.clone(),
        });
        jobs.start(&sfu.tasks, Arc::downgrade(&sub), sfu.shutdown.clone());
        let weak: std::sync::Weak<dyn Client> = Arc::downgrade(&sub) as _;
        sfu.register(sub.client.id, weak);
        let m = &crate::metrics::METRICS;
        m.subscribers.with_label_values(&[stream.as_str()]).inc();
        m.subscribers_total
            .with_label_values(&[stream.as_str()])
            .inc();
        sfu.tasks.spawn(event_loop(Arc::downgrade(&sub), events));
        Ok(sub)
    }

    /// The publisher on this Janus, if it is here (not a remote stream).
    fn local_publisher(&self) -> Option<Arc<super::publisher::JanusPublisher>> {
        self.sfu
            .upgrade()?
            .publisher(&self.client.publisher, self.client.stream)
    }

    fn handle(&self) -> Handle {
        self.state.lock().handle.clone()
    }

    /// Joins the publisher's room; an offer comes back.
    async fn join(&self, selection: &StreamSelection) -> Result<Option<Value>, SfuError> {
        let Some(sfu) = self.sfu.upgrade() else {
            return Err(SfuError::Closed);
        };
        let deadline = tokio::time::Instant::now() + sfu.config.timeout;
        let mut body = Map::new();
        body.insert("request".into(), "join".into());
        body.insert("ptype".into(), "subscriber".into());
        body.insert("room".into(), self.room.into());
        let feed = feed_id(self.client.stream);
        if sfu.multistream() {
            body.insert("streams".into(), json!([{ "feed": feed }]));
        } else {
            body.insert("feed".into(), feed.into());
        }
        selection.apply(&mut body);
        let body = Value::Object(body);
        let mut counted_missing = false;
        loop {
            let handle = self.handle();
            let changed = sfu.publishers_changed.notified();
            match handle.message(body.clone(), None).await {
                Ok((_, jsep)) => {
                    self.state.lock().joined = true;
                    return Ok(jsep);
                }
                Err(e) if e.is_plugin(videoroom::ALREADY_JOINED) => {
                    // A fresh handle for the new join; the client learns
                    // the new sid with the offer.
                    let session = sfu.session()?;
                    let (fresh, events) = session.attach(VIDEOROOM).await?;
                    let old = std::mem::replace(&mut self.state.lock().handle, fresh);
                    let _ = old.detach().await;
                    sfu.tasks.spawn(event_loop(self.me.clone(), events));
                }
                Err(e) if e.is_plugin(videoroom::NO_SUCH_ROOM) => {
                    self.close().await;
                    return Err(SfuError::NoPublisher(self.client.publisher.clone()));
                }
                Err(e) if e.is_plugin(videoroom::NO_SUCH_FEED) => {
                    if !counted_missing {
                        counted_missing = true;
                        crate::metrics::METRICS
                            .nopublisher_total
                            .with_label_values(&[self.client.stream.as_str()])
                            .inc();
                    }
                    // Not negotiated yet: wait for the publisher's media.
                    if tokio::time::timeout_at(deadline, changed).await.is_err() {
                        self.close().await;
                        return Err(SfuError::NoPublisher(self.client.publisher.clone()));
                    }
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

async fn event_loop(s: std::sync::Weak<JanusSubscriber>, mut events: mpsc::Receiver<HandleEvent>) {
    while let Some(event) = events.recv().await {
        let Some(s) = s.upgrade() else { return };
        match event {
            HandleEvent::Plugin { data, jsep } => {
                if data["videoroom"] == "destroyed" {
                    s.close().await;
                    return;
                }
                if data["videoroom"] == "updated" {
                    let streams = data["streams"].as_array().cloned().unwrap_or_default();
                    let active = streams.iter().any(|st| {
                        matches!(st["type"].as_str(), Some("audio" | "video"))
                            && st["active"] != false
                    });
                    if !streams.is_empty() && !active {
                        s.close().await;
                        return;
                    }
                }
                if data["configured"] == "ok" {
                    if let Some(offer) = jsep.filter(|j| j["type"] == "offer") {
                        s.listener.on_update_offer(&s.client, &s.sid(), offer);
                    }
                }
            }
            HandleEvent::Hangup { .. } | HandleEvent::Detached | HandleEvent::Disconnected => {
                s.close().await;
                return;
            }
            HandleEvent::Trickle(Some(c)) => {
                s.listener.on_ice_candidate(&s.client, &s.sid(), c);
            }
            HandleEvent::WebrtcUp => {
                if let Some(p) = s.local_publisher() {
                    p.stats.add_subscriber(s.client.id);
                }
            }
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl Client for JanusSubscriber {
    fn client_ref(&self) -> &ClientRef {
        &self.client
    }

    fn sid(&self) -> String {
        self.state.lock().handle.id.to_string()
    }

    fn max_bitrate(&self) -> u64 {
        self.bitrate
    }

    async fn send(&self, request: Request, sid: &str) -> Result<Option<Value>, SfuError> {
        self.queue.submit(request, sid).await
    }

    async fn close(&self) {
        if !self.queue.close() {
            return;
        }
        if let Some(sfu) = self.sfu.upgrade() {
            sfu.unregister(self.client.id);
            sfu.events.forget_handle(self.handle().id);
        }
        crate::metrics::METRICS
            .subscribers
            .with_label_values(&[self.client.stream.as_str()])
            .dec();
        if let Some(p) = self.local_publisher() {
            p.stats.remove_subscriber(self.client.id);
        }
        let _ = self.handle().detach().await;
        if let Some(r) = &self.remote {
            r.release().await;
        }
        self.listener.on_closed(&self.client);
    }
}

#[async_trait::async_trait]
impl Perform for JanusSubscriber {
    async fn perform(&self, request: Request, sid: &str) -> Result<Option<Value>, SfuError> {
        let same_sid = !sid.is_empty() && sid == self.sid();
        match request {
            Request::RequestOffer(selection) => {
                if same_sid && self.state.lock().joined {
                    let mut body = Map::new();
                    body.insert("request".into(), "configure".into());
                    body.insert("update".into(), true.into());
                    selection.apply(&mut body);
                    let (_, jsep) = self.handle().message(Value::Object(body), None).await?;
                    Ok(jsep)
                } else {
                    self.join(&selection).await
                }
            }
            Request::Answer(jsep) => {
                let body = json!({"request": "start", "room": self.room});
                self.handle().message(body, Some(jsep)).await?;
                Ok(None)
            }
            Request::Candidate(c) => {
                if !sid.is_empty() && !same_sid {
                    return Err(SfuError::SidMismatch);
                }
                self.handle().trickle(c).await?;
                Ok(None)
            }
            Request::EndOfCandidates => Ok(None),
            Request::SelectStream(selection) => {
                if selection.is_empty() {
                    return Ok(None);
                }
                let mut body = Map::new();
                body.insert("request".into(), "configure".into());
                selection.apply(&mut body);
                self.handle().message(Value::Object(body), None).await?;
                Ok(None)
            }
            Request::Offer(_) => Err(SfuError::Unsupported),
        }
    }
}
