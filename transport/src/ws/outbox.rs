//! The bounded outgoing queue of one connection. Senders never block: a
//! full queue means the client does not read, and the connection is closed
//! with a reason instead of buffering without bound.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus::IntCounter;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Frames a connection can hold before the client is considered stuck.
pub const OUTBOX_CAPACITY: usize = 512;

/// Close code and reason for a client that stopped reading.
pub const CLOSE_SLOW_CLIENT: (u16, &str) = (1008, "client does not read its messages");

pub type ConnectionId = u64;

static NEXT_CONNECTION: AtomicU64 = AtomicU64::new(1);

#[derive(Debug)]
pub enum OutFrame {
    Text(Arc<str>),
    /// Frames written together that take one place in the queue: what a
    /// session queued while disconnected, delivered on resume (it is
    /// bounded by the session's own limits).
    Batch(Vec<Arc<str>>),
    Close {
        code: u16,
        reason: String,
    },
}

impl OutFrame {
    /// The text frames this entry carries (none for a close).
    pub fn into_texts(self) -> Vec<Arc<str>> {
        match self {
            OutFrame::Text(t) => vec![t],
            OutFrame::Batch(frames) => frames,
            OutFrame::Close { .. } => Vec::new(),
        }
    }
}

struct Shared {
    /// Set before `cancel` fires so the writer knows what to tell the client.
    close_reason: Mutex<Option<(u16, String)>>,
    cancel: CancellationToken,
}

/// Sending half of a connection; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    id: ConnectionId,
    tx: mpsc::Sender<OutFrame>,
    shared: Arc<Shared>,
    /// Counts connections closed because their queue was full.
    overflows: IntCounter,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Outbox({})", self.id)
    }
}

/// The receiving half, owned by the writer task.
pub struct OutboxReceiver {
    pub rx: mpsc::Receiver<OutFrame>,
    shared: Arc<Shared>,
}

impl OutboxReceiver {
    pub fn close_reason(&self) -> Option<(u16, String)> {
        self.shared.close_reason.lock().clone()
    }

    pub fn token(&self) -> CancellationToken {
        self.shared.cancel.clone()
    }
}

impl Outbox {
    /// A new outbox; `overflows` counts the connections closed because
    /// their queue was full, in the caller's metrics registry.
    pub fn new(cancel: CancellationToken, overflows: IntCounter) -> (Outbox, OutboxReceiver) {
        Self::with_capacity(cancel, overflows, OUTBOX_CAPACITY)
    }

    /// [`Outbox::new`] holding up to `capacity` entries.
    pub fn with_capacity(
        cancel: CancellationToken,
        overflows: IntCounter,
        capacity: usize,
    ) -> (Outbox, OutboxReceiver) {
        let (tx, rx) = mpsc::channel(capacity);
        let shared = Arc::new(Shared {
            close_reason: Mutex::new(None),
            cancel,
        });
        (
            Outbox {
                id: NEXT_CONNECTION.fetch_add(1, Ordering::Relaxed),
                tx,
                shared: shared.clone(),
                overflows,
            },
            OutboxReceiver { rx, shared },
        )
    }

    pub fn id(&self) -> ConnectionId {
        self.id
    }

    pub fn is_closed(&self) -> bool {
        self.shared.cancel.is_cancelled() || self.tx.is_closed()
    }

    /// Resolves once the connection is gone (see [`Outbox::is_closed`]).
    pub async fn closed(&self) {
        tokio::select! {
            _ = self.shared.cancel.cancelled() => {}
            _ = self.tx.closed() => {}
        }
    }

    /// Queues a text frame. Returns false if the connection is gone or was
    /// just closed because its queue is full.
    pub fn send_text(&self, text: Arc<str>) -> bool {
        self.push(OutFrame::Text(text))
    }

    /// Queues `frames` as one entry (see [`OutFrame::Batch`]).
    pub fn send_batch(&self, frames: Vec<Arc<str>>) -> bool {
        self.push(OutFrame::Batch(frames))
    }

    fn push(&self, frame: OutFrame) -> bool {
        match self.tx.try_send(frame) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.overflows.inc();
                self.abort(CLOSE_SLOW_CLIENT.0, CLOSE_SLOW_CLIENT.1);
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }

    /// Queues a close frame after everything already queued.
    pub fn close(&self, code: u16, reason: &str) {
        let frame = OutFrame::Close {
            code,
            reason: reason.to_owned(),
        };
        if self.tx.try_send(frame).is_err() {
            self.abort(code, reason);
        }
    }

    /// Ends the connection now, dropping whatever is queued.
    pub fn abort(&self, code: u16, reason: &str) {
        self.shared
            .close_reason
            .lock()
            .get_or_insert_with(|| (code, reason.to_owned()));
        self.shared.cancel.cancel();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_outbox_closes_with_reason() {
        let overflows = IntCounter::new("overflows", "test").unwrap();
        let (outbox, rx) = Outbox::new(CancellationToken::new(), overflows.clone());
        for _ in 0..OUTBOX_CAPACITY {
            assert!(outbox.send_text(Arc::from("{}")));
        }
        assert!(!outbox.send_text(Arc::from("{}")));
        assert!(outbox.is_closed());
        assert_eq!(overflows.get(), 1);
        assert_eq!(
            rx.close_reason(),
            Some((CLOSE_SLOW_CLIENT.0, CLOSE_SLOW_CLIENT.1.to_string()))
        );
    }

    #[tokio::test]
    async fn closed_resolves_when_the_writer_is_gone_or_cancelled() {
        let overflows = IntCounter::new("overflows", "test").unwrap();
        let (outbox, rx) = Outbox::new(CancellationToken::new(), overflows.clone());
        let open = tokio::time::timeout(std::time::Duration::from_millis(50), outbox.closed());
        assert!(open.await.is_err(), "resolved while open");
        drop(rx);
        outbox.closed().await;

        let cancel = CancellationToken::new();
        let (outbox, _rx) = Outbox::new(cancel.clone(), overflows);
        cancel.cancel();
        outbox.closed().await;
    }
}
