//! The outgoing queue of a connection we dial (Janus, a proxy).

use tokio_util::sync::CancellationToken;
use transport::ws::{Outbox, OutboxReceiver};

/// Requests waiting to be written. Each waits for its reply, so this many
/// in flight means the peer stopped reading: the connection is closed
/// (and dialled again) instead of queueing more.
const CAPACITY: usize = 4096;

/// A bounded outbox whose overflows count in
/// `signaling_mcu_outbox_overflow_total{peer}`.
pub(crate) fn peer_outbox(peer: &str, cancel: CancellationToken) -> (Outbox, OutboxReceiver) {
    let overflows = crate::metrics::METRICS
        .outbox_overflow_total
        .with_label_values(&[peer]);
    Outbox::with_capacity(cancel, overflows, CAPACITY)
}
