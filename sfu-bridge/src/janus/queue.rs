//! What every Janus client needs before it talks to Janus: requests in the
//! order the client sent them, none after the client closed, each counted
//! in `signaling_mcu_messages_total`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::sfu::{Request, SfuError};

#[derive(Default)]
pub(crate) struct RequestQueue {
    closed: AtomicBool,
    /// The client's turn. The one lock in the workspace held across a
    /// network request, on purpose: it only orders this client's own
    /// requests (an answer must not overtake its offer), and tokio's
    /// mutex is fair, so they run in the order they were made. No other
    /// client or shared state waits on it.
    order: tokio::sync::Mutex<()>,
}

impl RequestQueue {
    /// Waits for the client's turn; hold the guard while talking to Janus.
    pub async fn begin(
        &self,
        request: &Request,
    ) -> Result<tokio::sync::MutexGuard<'_, ()>, SfuError> {
        if self.is_closed() {
            return Err(SfuError::Closed);
        }
        let guard = self.order.lock().await;
        crate::metrics::METRICS
            .messages_total
            .with_label_values(&[request.kind()])
            .inc();
        Ok(guard)
    }

    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the client closed; true the first time.
    pub fn close(&self) -> bool {
        !self.closed.swap(true, Ordering::AcqRel)
    }
}
