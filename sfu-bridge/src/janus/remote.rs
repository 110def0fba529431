//! Publishers of another Janus, received here (cluster facts 5.8, 6.7):
//! a room with a remote publisher (`add_remote_publisher`) whose RTP the
//! source Janus forwards to the ports this Janus opened. One per
//! (publisher, stream type), shared by every local subscriber of it and
//! torn down with the last one.

use std::sync::{Arc, Weak};

use proto::proxy::PublisherStream;
use serde_json::json;

use super::gateway::Handle;
use super::publisher::{create_room, feed_id, room_bitrate};
use super::sfu::{Inner, VIDEOROOM};
use super::subscriber::JanusSubscriber;
use super::JanusError;
use crate::sfu::{Client, Listener, PublisherSettings, SfuError, StreamType};

/// The other side of a remote publisher: where its streams come from and
/// who starts and stops the forwarding there (the source proxy).
#[async_trait::async_trait]
pub trait RemoteController: Send + Sync {
    /// The publisher's id on its own proxy.
    fn publisher_id(&self) -> &str;
    async fn streams(&self) -> Result<Vec<PublisherStream>, SfuError>;
    /// Asks the source to forward to `port`/`rtcp_port` of this Janus.
    async fn start_publishing(&self, port: u16, rtcp_port: u16) -> Result<(), SfuError>;
    async fn stop_publishing(&self, port: u16, rtcp_port: u16);
}

pub(crate) type RemoteKey = (String, StreamType);

/// The shared remote publisher of one key while subscribers hold it. The
/// SFU's map of these is a plain mutex, never held across a request:
/// creating the publisher (a Janus room, a call to the source proxy) runs
/// in the entry's cell, so only subscribers of the same publisher wait
/// for it.
#[derive(Default)]
pub(crate) struct RemoteEntry {
    cell: tokio::sync::OnceCell<Arc<RemotePublisher>>,
    /// Subscribers holding (or about to hold) it; changed only under the
    /// map lock.
    refs: parking_lot::Mutex<usize>,
}

pub(crate) type RemoteMap =
    parking_lot::Mutex<std::collections::HashMap<RemoteKey, Arc<RemoteEntry>>>;

/// Drops one hold on the entry of `key`; returns whether it was the last
/// one (the entry is then gone from the map).
fn unhold(map: &RemoteMap, key: &RemoteKey, entry: &Arc<RemoteEntry>) -> bool {
    let mut map = map.lock();
    let mut refs = entry.refs.lock();
    *refs = refs.saturating_sub(1);
    if *refs > 0 {
        return false;
    }
    if map.get(key).is_some_and(|e| Arc::ptr_eq(e, entry)) {
        map.remove(key);
    }
    true
}

pub struct RemotePublisher {
    key: RemoteKey,
    pub room: u64,
    pub bitrate: u64,
    port: u16,
    rtcp_port: u16,
    handle: Handle,
    controller: Arc<dyn RemoteController>,
    sfu: Weak<Inner>,
}

impl RemotePublisher {
    async fn create(
        sfu: &Arc<Inner>,
        controller: Arc<dyn RemoteController>,
        stream: StreamType,
    ) -> Result<RemotePublisher, SfuError> {
        let streams = controller.streams().await?;
        if streams.is_empty() {
            return Err(SfuError::Janus(JanusError::Protocol(
                "remote publisher has no streams".into(),
            )));
        }
        let (handle, mut events) = sfu.session()?.attach(VIDEOROOM).await?;
        let publisher_id = controller.publisher_id().to_owned();
        let bitrate = room_bitrate(sfu, stream, 0);
        let added = async {
            let room = create_room(
                &handle,
                &publisher_id,
                stream,
                bitrate,
                &PublisherSettings::default(),
            )
            .await?;
            let data = handle
                .request_sync(json!({
                    "request": "add_remote_publisher",
                    "room": room,
                    "id": feed_id(stream),
                    "streams": streams,
                }))
                .await?;
            let port = |k: &str| {
                data[k]
                    .as_u64()
                    .and_then(|p| u16::try_from(p).ok())
                    .ok_or_else(|| {
                        SfuError::Janus(JanusError::Protocol(format!(
                            "no {k} in add_remote_publisher reply {data}"
                        )))
                    })
            };
            Ok::<_, SfuError>((room, port("port")?, port("rtcp_port")?))
        }
        .await;
        let (room, port, rtcp_port) = match added {
            Ok(a) => a,
            Err(e) => {
                let _ = handle.detach().await;
                return Err(e);
            }
        };
        // Nothing on this handle needs an answer; the subscribers see
        // the room's fate themselves.
        sfu.tasks
            .spawn(async move { while events.recv().await.is_some() {} });
        let publisher = RemotePublisher {
            key: (publisher_id, stream),
            room,
            bitrate,
            port,
            rtcp_port,
            handle,
            controller,
            sfu: Arc::downgrade(sfu),
        };
        if let Err(e) = publisher.controller.start_publishing(port, rtcp_port).await {
            publisher.destroy().await;
            return Err(e);
        }
        tracing::info!(
            publisher = publisher.key.0,
            stream = stream.as_str(),
            room,
            port,
            rtcp_port,
            "remote publisher added"
        );
        Ok(publisher)
    }

    /// Drops one subscriber's hold; the last one tears it down.
    pub(crate) async fn release(&self) {
        let Some(sfu) = self.sfu.upgrade() else {
            return;
        };
        let entry = sfu.remote_publishers.lock().get(&self.key).cloned();
        let Some(entry) = entry.filter(|e| e.cell.get().is_some_and(|p| std::ptr::eq(&**p, self)))
        else {
            return;
        };
        if unhold(&sfu.remote_publishers, &self.key, &entry) {
            self.destroy().await;
        }
    }

    async fn destroy(&self) {
        self.controller
            .stop_publishing(self.port, self.rtcp_port)
            .await;
        let remove = json!({"request": "remove_remote_publisher", "room": self.room, "id": feed_id(self.key.1)});
        if let Err(e) = self.handle.request_sync(remove).await {
            tracing::debug!(room = self.room, error = %e, "could not remove remote publisher");
        }
        let destroy = json!({"request": "destroy", "room": self.room});
        if let Err(e) = self.handle.request_sync(destroy).await {
            tracing::debug!(room = self.room, error = %e, "could not destroy remote publisher room");
        }
        let _ = self.handle.detach().await;
        tracing::info!(
            publisher = self.key.0,
            room = self.room,
            "remote publisher removed"
        );
    }
}

/// A subscriber here of a publisher on another Janus: the shared remote
/// publisher is found or made first.
pub(crate) async fn new_remote_subscriber(
    sfu: &Arc<Inner>,
    listener: Arc<dyn Listener>,
    controller: Arc<dyn RemoteController>,
    stream: StreamType,
) -> Result<Arc<dyn Client>, SfuError> {
    if !sfu.remote_publishers_supported() {
        return Err(SfuError::RemoteUnsupported);
    }
    let key = (controller.publisher_id().to_owned(), stream);
    let entry = {
        let mut map = sfu.remote_publishers.lock();
        let entry = map.entry(key.clone()).or_default().clone();
        *entry.refs.lock() += 1;
        entry
    };
    let created = entry
        .cell
        .get_or_try_init(|| async {
            RemotePublisher::create(sfu, controller, stream)
                .await
                .map(Arc::new)
        })
        .await;
    let remote = match created {
        Ok(r) => r.clone(),
        Err(e) => {
            unhold(&sfu.remote_publishers, &key, &entry);
            return Err(e);
        }
    };
    let sub = JanusSubscriber::create_in_room(
        sfu,
        listener,
        &key.0,
        stream,
        remote.room,
        remote.bitrate,
        Some(remote.clone()),
    )
    .await?;
    Ok(sub)
}
