//! A session's publishers and subscribers on the SFU, and the queue of
//! its SFU requests.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use proto::ids::PublicSessionId;
use sfu_bridge::sfu::{Client, ClientRef, StreamType};
use tokio::sync::mpsc;
use tokio_util::task::TaskTracker;

use super::Job;

#[derive(Default)]
pub(super) struct Clients {
    pub(super) publishers: HashMap<StreamType, Arc<dyn Client>>,
    pub(super) subscribers: HashMap<(PublicSessionId, StreamType), Arc<dyn Client>>,
    pub(super) queue: Option<mpsc::Sender<Job>>,
    pub(super) closed: bool,
}

/// A session's publishers and subscribers.
pub struct MediaClients {
    pub(super) inner: Mutex<Clients>,
    /// The hub's tasks: work for these clients (queued requests,
    /// closing) runs there, so shutdown waits for it.
    pub(super) tasks: TaskTracker,
}

impl MediaClients {
    pub(crate) fn new(tasks: TaskTracker) -> Self {
        MediaClients {
            inner: Mutex::default(),
            tasks,
        }
    }

    pub(crate) fn publisher(&self, stream: StreamType) -> Option<Arc<dyn Client>> {
        self.inner.lock().publishers.get(&stream).cloned()
    }

    pub(super) fn subscriber(
        &self,
        publisher: &PublicSessionId,
        stream: StreamType,
    ) -> Option<Arc<dyn Client>> {
        self.inner
            .lock()
            .subscribers
            .get(&(publisher.clone(), stream))
            .cloned()
    }

    /// Forgets a client the SFU closed.
    pub(super) fn forget(&self, client: &ClientRef) {
        let mut c = self.inner.lock();
        if client.is_publisher {
            if c.publishers
                .get(&client.stream)
                .is_some_and(|p| p.client_ref().id == client.id)
            {
                c.publishers.remove(&client.stream);
            }
        } else {
            let key = (PublicSessionId(client.publisher.clone()), client.stream);
            if c.subscribers
                .get(&key)
                .is_some_and(|s| s.client_ref().id == client.id)
            {
                c.subscribers.remove(&key);
            }
        }
    }

    /// Removes every client; with `end`, no new ones are accepted (the
    /// session is closing).
    pub(super) fn take_all(&self, end: bool) -> Vec<Arc<dyn Client>> {
        let mut c = self.inner.lock();
        if end {
            c.closed = true;
            c.queue = None;
        }
        let mut all: Vec<_> = c.publishers.drain().map(|(_, p)| p).collect();
        all.extend(c.subscribers.drain().map(|(_, s)| s));
        all
    }

    pub(super) fn take_publisher(&self, stream: StreamType) -> Option<Arc<dyn Client>> {
        self.inner.lock().publishers.remove(&stream)
    }
}
