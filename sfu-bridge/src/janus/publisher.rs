//! A publisher: one Janus videoroom room per published stream, the
//! session joined as its only publisher (cluster facts 5.3).

use std::sync::Arc;

use serde_json::{json, Map, Value};
use tokio::sync::mpsc;

use super::error::codes;
use super::gateway::{Handle, HandleEvent};
use super::queue::RequestQueue;
use super::sfu::{cap, Inner, VIDEOROOM};
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
    sid: String,
    pub room: u64,
    bitrate: u64,
    handle: Handle,
    listener: Arc<dyn Listener>,
    sfu: std::sync::Weak<Inner>,
    queue: RequestQueue,
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
        let max = match stream {
            StreamType::Video => sfu.config.max_stream_bitrate,
            StreamType::Screen => sfu.config.max_screen_bitrate,
        };
        let bitrate = cap(settings.bitrate, max);
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
        let created = async {
            let data = handle.request_sync(Value::Object(create)).await?;
            let room = data["room"].as_u64().filter(|r| *r != 0).ok_or_else(|| {
                SfuError::Janus(super::JanusError::Protocol(format!(
                    "no room in create reply {data}"
                )))
            })?;
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
        let publisher = Arc::new(JanusPublisher {
            client: ClientRef {
                id: sfu.next_id(),
                publisher: public_id.to_owned(),
                stream,
                is_publisher: true,
            },
            sid: sid.to_owned(),
            room,
            bitrate,
            handle,
            listener,
            sfu: Arc::downgrade(sfu),
            queue: RequestQueue::default(),
        });
        let weak: std::sync::Weak<dyn Client> = Arc::downgrade(&publisher) as _;
        sfu.register(publisher.client.id, weak);
        sfu.add_publisher(publisher.clone());
        let m = &crate::metrics::METRICS;
        m.publishers.with_label_values(&[stream.as_str()]).inc();
        m.publishers_total
            .with_label_values(&[stream.as_str()])
            .inc();
        tokio::spawn(event_loop(Arc::downgrade(&publisher), events));
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
}

async fn event_loop(
    p: std::sync::Weak<JanusPublisher>,
    mut events: mpsc::UnboundedReceiver<HandleEvent>,
) {
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
        let _turn = self.queue.begin(&request).await?;
        match request {
            Request::Offer(jsep) => {
                let body =
                    json!({"request": "configure", "audio": true, "video": true, "data": true});
                let (_, answer) = self.handle.message(body, Some(jsep)).await?;
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
