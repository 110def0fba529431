//! A publisher: one Janus videoroom room per published stream, the
//! session joined as its only publisher (cluster facts 5.3).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use std::time::Duration;

use proto::proxy::PublisherStream;

use super::error::{codes, videoroom};
use super::gateway::{Handle, HandleEvent};
use super::queue::{Perform, RequestQueue};
use super::sfu::{cap, Inner, VIDEOROOM};
use super::JanusError;
use crate::sfu::{Client, ClientRef, Listener, PublisherSettings, Request, SfuError, StreamType};

/// The feed id of a stream type inside its room.
pub(crate) fn feed_id(stream: StreamType) -> u64 {
    match stream {
        StreamType::Video => 1,
        StreamType::Screen => 2,
    }
}

pub struct JanusPublisher {
    pub client: ClientRef,
    /// The last offer and Janus's answer to it (SDP text), to describe
    /// the streams to other Janus servers.
    sdp: tokio::sync::watch::Sender<Option<(String, String)>>,
    sid: String,
    pub room: u64,
    bitrate: u64,
    handle: Handle,
    listener: Arc<dyn Listener>,
    sfu: std::sync::Weak<Inner>,
    queue: RequestQueue,
    /// This publisher's share of the stream gauges.
    pub(crate) stats: super::stream_stats::StreamStats,
}

impl JanusPublisher {
    pub(crate) async fn create(
        sfu: &Arc<Inner>,
        listener: Arc<dyn Listener>,
        public_id: &str,
        sid: &str,
        stream: StreamType,
        settings: PublisherSettings,
    ) -> Result<Arc<JanusPublisher>, SfuError> {
        let session = sfu.session()?;
        let (handle, events) = session.attach(VIDEOROOM).await?;
        let bitrate = room_bitrate(sfu, stream, settings.bitrate);
        let created = async {
            let room = create_room(&handle, public_id, stream, bitrate, &settings).await?;
            let join = json!({"request": "join", "ptype": "publisher", "room": room, "id": feed_id(stream)});
            handle.message(join, None).await?;
            Ok::<u64, SfuError>(room)
        }
        .await;
        let room = match created {
            Ok(r) => r,
            Err(e) => {
                let _ = handle.detach().await;
                return Err(e);
            }
        };
        let (queue, jobs) = RequestQueue::new();
        let publisher = Arc::new(JanusPublisher {
            client: ClientRef {
                id: sfu.next_id(),
                publisher: public_id.to_owned(),
                stream,
                is_publisher: true,
            },
            sid: sid.to_owned(),
            sdp: tokio::sync::watch::channel(None).0,
            room,
            bitrate,
            handle,
            listener,
            sfu: Arc::downgrade(sfu),
            queue,
            stats: Default::default(),
        });
        jobs.start(&sfu.tasks, Arc::downgrade(&publisher), sfu.shutdown.clone());
        let weak: std::sync::Weak<dyn Client> = Arc::downgrade(&publisher) as _;
        sfu.register(publisher.client.id, weak);
        sfu.add_publisher(publisher.clone());
        let m = &crate::metrics::METRICS;
        m.publishers.with_label_values(&[stream.as_str()]).inc();
        m.publishers_total
            .with_label_values(&[stream.as_str()])
            .inc();
        sfu.tasks
            .spawn(event_loop(Arc::downgrade(&publisher), events));
        tracing::debug!(
            session = public_id,
            stream = stream.as_str(),
            room,
            "publisher created"
        );
        Ok(publisher)
    }

    pub fn handle_id(&self) -> u64 {
        self.handle.id
    }

    /// The published streams, once an offer was answered (waits up to
    /// `timeout` for that).
    pub async fn streams(&self, timeout: Duration) -> Result<Vec<PublisherStream>, SfuError> {
        let mut rx = self.sdp.subscribe();
        let negotiated = tokio::time::timeout(timeout, rx.wait_for(Option::is_some)).await;
        match negotiated {
            Ok(Ok(sdp)) => {
                let (offer, answer) = sdp.as_ref().cloned().unwrap_or_default();
                Ok(super::streams::publisher_streams(&offer, &answer))
            }
            Ok(Err(_)) => Err(SfuError::Closed),
            Err(_) => Err(SfuError::Janus(JanusError::Timeout)),
        }
    }

    /// The id Janus knows a forwarding of this publisher to `host` by; the
    /// requesting proxy session makes it unique per receiver.
    fn remote_id(&self, requester: &str, host: &str, port: u16, rtcp_port: u16) -> String {
        format!(
            "{}-{requester}@{host}:{port}:{rtcp_port}",
            self.client.publisher
        )
    }

    /// Forwards this publisher's RTP (and RTCP) to a remote publisher on
    /// another Janus (`publish_remotely`, facts 5.8). An existing
    /// forwarding with the same id (Janus error 436) is replaced.
    pub async fn publish_remotely(
        &self,
        requester: &str,
        host: &str,
        port: u16,
        rtcp_port: u16,
    ) -> Result<(), SfuError> {
        let remote_id = self.remote_id(requester, host, port, rtcp_port);
        let body = json!({
            "request": "publish_remotely",
            "room": self.room,
            "publisher_id": feed_id(self.client.stream),
            "remote_id": remote_id,
            "host": host,
            "port": port,
            "rtcp_port": rtcp_port,
        });
        match self.handle.request_sync(body.clone()).await {
            Err(e) if e.is_plugin(videoroom::REMOTE_ID_EXISTS) => {
                self.unpublish_remotely(requester, host, port, rtcp_port)
                    .await?;
                self.handle.request_sync(body).await?;
            }
            other => {
                other?;
            }
        }
        tracing::debug!(
            publisher = self.client.publisher,
            host,
            port,
            rtcp_port,
            "publishing remotely"
        );
        Ok(())
    }

    /// Stops a forwarding started by [`JanusPublisher::publish_remotely`].
    pub async fn unpublish_remotely(
        &self,
        requester: &str,
        host: &str,
        port: u16,
        rtcp_port: u16,
    ) -> Result<(), SfuError> {
        let body = json!({
            "request": "unpublish_remotely",
            "room": self.room,
            "publisher_id": feed_id(self.client.stream),
            "remote_id": self.remote_id(requester, host, port, rtcp_port),
        });
        self.handle.request_sync(body).await?;
        Ok(())
    }
}

/// The SFU's cap applied to a requested bitrate for `stream`.
pub(crate) fn room_bitrate(sfu: &Inner, stream: StreamType, requested: u64) -> u64 {
    let max = match stream {
        StreamType::Video => sfu.config.max_stream_bitrate,
        StreamType::Screen => sfu.config.max_screen_bitrate,
    };
    cap(requested, max)
}

/// Creates the room of one published stream; its id.
pub(crate) async fn create_room(
    handle: &Handle,
    public_id: &str,
    stream: StreamType,
    bitrate: u64,
    settings: &PublisherSettings,
) -> Result<u64, SfuError> {
    let mut create = Map::new();
    create.insert("request".into(), "create".into());
    create.insert(
        "description".into(),
        format!("{public_id}|{}", stream.as_str()).into(),
    );
    create.insert("publishers".into(), 1.into());
    // Breaks orientation changes in Firefox (upstream's finding).
    create.insert("videoorient_ext".into(), false.into());
    create.insert("bitrate".into(), bitrate.into());
    for (key, value) in [
        ("audiocodec", &settings.audio_codec),
        ("videocodec", &settings.video_codec),
        ("vp9_profile", &settings.vp9_profile),
        ("h264_profile", &settings.h264_profile),
    ] {
        if let Some(v) = value.as_deref().filter(|v| !v.is_empty()) {
            create.insert(key.into(), v.into());
        }
    }
    let data = handle.request_sync(Value::Object(create)).await?;
    data["room"].as_u64().filter(|r| *r != 0).ok_or_else(|| {
        SfuError::Janus(JanusError::Protocol(format!(
            "no room in create reply {data}"
        )))
    })
}

async fn event_loop(p: std::sync::Weak<JanusPublisher>, mut events: mpsc::Receiver<HandleEvent>) {
    while let Some(event) = events.recv().await {
        let Some(p) = p.upgrade() else { return };
        match event {
            HandleEvent::Plugin { data, .. } if data["videoroom"] == "destroyed" => {
                p.close().await;
                return;
            }
            HandleEvent::Hangup { .. } | HandleEvent::Detached | HandleEvent::Disconnected => {
                p.close().await;
                return;
            }
            HandleEvent::WebrtcUp => {
                if let Some(sfu) = p.sfu.upgrade() {
                    sfu.publishers_changed.notify_waiters();
                }
            }
            HandleEvent::Trickle(Some(c)) => {
                p.listener.on_ice_candidate(&p.client, &p.sid, c);
            }
            HandleEvent::Media { kind, receiving } => {
                p.stats.media(&kind, p.client.stream, receiving);
            }
            HandleEvent::SlowLink { uplink, lost } => {
                tracing::debug!(
                    session = p.client.publisher,
                    uplink,
                    lost,
                    "publisher slow link"
                );
            }
            _ => {}
        }
    }
}

#[async_trait::async_trait]
impl Client for JanusPublisher {
    fn client_ref(&self) -> &ClientRef {
        &self.client
    }

    fn sid(&self) -> String {
        self.sid.clone()
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
            sfu.remove_publisher(self);
            sfu.unregister(self.client.id);
            sfu.events.forget_handle(self.handle.id);
        }
        crate::metrics::METRICS
            .publishers
            .with_label_values(&[self.client.stream.as_str()])
            .dec();
        self.stats.reset();
        let destroy = json!({"request": "destroy", "room": self.room});
        if let Err(e) = self.handle.request_sync(destroy).await {
            if e.code() != codes::CANCELLED {
                tracing::debug!(room = self.room, error = %e, "could not destroy publisher room");
            }
        }
        let _ = self.handle.detach().await;
        tracing::debug!(
            session = self.client.publisher,
            room = self.room,
            "publisher closed"
        );
        self.listener.on_closed(&self.client);
    }
}

#[async_trait::async_trait]
impl Perform for JanusPublisher {
    async fn perform(&self, request: Request, sid: &str) -> Result<Option<Value>, SfuError> {
        match request {
            Request::Offer(jsep) => {
                let offer = jsep["sdp"].as_str().unwrap_or_default().to_owned();
                let body =
                    json!({"request": "configure", "audio": true, "video": true, "data": true});
                let (_, answer) = self.handle.message(body, Some(jsep)).await?;
                if let Some(sdp) = answer.as_ref().and_then(|a| a["sdp"].as_str()) {
                    self.sdp.send_replace(Some((offer, sdp.to_owned())));
                }
                Ok(answer)
            }
            Request::Candidate(c) => {
                if !sid.is_empty() && sid != self.sid {
                    return Err(SfuError::SidMismatch);
                }
                self.handle.trickle(c).await?;
                Ok(None)
            }
            Request::EndOfCandidates => Ok(None),
            _ => Err(SfuError::Unsupported),
        }
    }
}
