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

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures_util::Stream;
use proto::grpc::{ClientSessionMessage, ServerSessionMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataValue;
use tonic::{Status, Streaming};

use super::peers::{count_call, Peer};
use crate::client::{ClientInfo, Outbox};
use crate::hub::{ConnCtx, Flow, Hub};
use transport::ws::OutFrame;
use transport::ws::CLOSE_NORMAL;

/// Frames of one client in flight to the owner.
const FORWARD_QUEUE: usize = 16;
/// Longest wait for room in that queue before the client is dropped.
const FORWARD_WAIT: Duration = Duration::from_secs(10);

/// The edge's end of a proxied session; dropping it ends the stream.
pub struct RemoteLink {
    tx: mpsc::Sender<ClientSessionMessage>,
}

impl RemoteLink {
    /// Sends one client frame to the owner; false if the stream is gone.
    pub async fn forward(&self, frame: &[u8]) -> bool {
        let msg = ClientSessionMessage {
            message: frame.to_vec(),
        };
        matches!(
            tokio::time::timeout(FORWARD_WAIT, self.tx.send(msg)).await,
            Ok(Ok(()))
        )
    }
}

fn receiver_stream<T: Send + 'static>(rx: mpsc::Receiver<T>) -> impl Stream<Item = T> + Send {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|m| (m, rx)) })
}

/// Edge: opens the stream to the owner of `public_id`, sends the client's
/// `hello` and relays the owner's messages to `outbox`.
pub async fn open(
    peer: &Peer,
    public_id: &str,
    info: &ClientInfo,
    hello: &[u8],
    outbox: Outbox,
) -> Result<RemoteLink, Status> {
    let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
    let link = RemoteLink { tx };
    if !link.forward(hello).await {
        return Err(Status::internal("stream closed"));
    }
    let mut request = tonic::Request::new(receiver_stream(rx));
    let meta = request.metadata_mut();
    let mut set = |key: &'static str, value: &str| {
        // Values that are not valid header text (odd user agents) are left
        // out rather than failing the resume.
        if let Ok(v) = MetadataValue::try_from(value) {
            meta.insert(key, v);
        }
    };
    set("sessionid", public_id);
    set("remoteaddr", &info.addr.to_string());
    set("useragent", &info.user_agent);
    count_call("ProxySession");
    let mut responses = peer.sessions().proxy_session(request).await?.into_inner();
    let target = peer.target.name.clone();
    tokio::spawn(async move {
        loop {
            match responses.message().await {
                Ok(Some(m)) => match String::from_utf8(m.message) {
                    Ok(text) => {
                        if !outbox.send_text(Arc::from(text)) {
                            break;
                        }
                    }
                    Err(_) => tracing::warn!(target, "non-UTF-8 message from a proxied session"),
                },
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(target, error = %e, "proxied session stream failed");
                    break;
                }
            }
        }
        outbox.close(CLOSE_NORMAL, "");
    });
    Ok(link)
}

type ProxyStream = Pin<Box<dyn Stream<Item = Result<ServerSessionMessage, Status>> + Send>>;

/// Owner: serves one proxied connection through the hub.
pub fn serve_proxied(
    hub: Hub,
    info: ClientInfo,
    mut incoming: Streaming<ClientSessionMessage>,
) -> ProxyStream {
    let (tx, rx) = mpsc::channel::<Result<ServerSessionMessage, Status>>(FORWARD_QUEUE);
    let token = CancellationToken::new();
    let (outbox, mut out) = crate::client::new_outbox(token.clone());
    // Writer: the outbox to the response stream; a close frame ends it.
    let writer_token = token.clone();
    tokio::spawn(async move {
        loop {
            let frame = tokio::select! {
                _ = writer_token.cancelled() => break,
                f = out.rx.recv() => f,
            };
            match frame {
                Some(OutFrame::Close { .. }) | None => break,
                Some(frame) => {
                    let mut ok = true;
                    for text in frame.into_texts() {
                        let msg = ServerSessionMessage {
                            message: text.as_bytes().to_vec(),
                        };
                        ok = ok && tx.send(Ok(msg)).await.is_ok();
                    }
                    if !ok {
                        break;
                    }
                }
            }
        }
        writer_token.cancel();
    });
    // Reader: the request stream into the hub, until either side ends.
    tokio::spawn(async move {
        let mut ctx = ConnCtx::new(outbox, info);
        loop {
            let next = tokio::select! {
                _ = token.cancelled() => break,
                m = incoming.message() => m,
            };
            let Ok(Some(m)) = next else { break };
            if hub.handle_frame(&mut ctx, &m.message).await == Flow::Close {
                break;
            }
        }
        hub.connection_closed(&mut ctx);
    });
    Box::pin(receiver_stream(rx))
}
