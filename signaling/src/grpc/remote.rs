//! A client served by a node other than the one it is connected to
//! (cluster facts 2.3). The node the client reconnected to ("edge")
//! forwards every text frame of the client verbatim over a `ProxySession`
//! stream to the node owning the session ("owner"), starting with the
//! client's resume `hello`; the owner runs those frames through its hub as
//! for a local connection and streams every server message back, which
//! the edge writes to the WebSocket unchanged.
//!
//! Closing either way: the client's WebSocket closes -> the edge ends its
//! request stream -> the owner sees the end and detaches the session (it
//! may be resumed again). The owner closes the connection (bye, takeover)
//! -> its response stream ends -> the edge closes the WebSocket.

mod edge;
mod owner;

pub use edge::{open, RemoteLink};
pub use owner::serve_proxied;

use std::time::Duration;

use futures_util::Stream;
use tokio::sync::mpsc;

/// Frames of one client in flight to the owner.
const FORWARD_QUEUE: usize = 16;
/// Longest wait for room in that queue before the client is dropped.
const FORWARD_WAIT: Duration = Duration::from_secs(10);

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}
