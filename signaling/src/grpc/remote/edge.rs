//! The edge: the node the client is connected to, forwarding its frames
//! to the node that owns its session.

use std::sync::Arc;

use proto::grpc::ClientSessionMessage;
use tokio::sync::mpsc;
use tonic::metadata::MetadataValue;
use tonic::Status;

use super::{receiver_stream, FORWARD_QUEUE, FORWARD_WAIT};
use crate::client::{ClientInfo, Outbox};
use crate::grpc::peers::{count_call, Peer};
use transport::ws::CLOSE_NORMAL;

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

/// Edge: opens the stream to the owner of `public_id`, sends the client's
/// `hello` and relays the owner's messages to `outbox` (a task of
/// `tasks`, until either side ends).
pub async fn open(
    peer: &Peer,
    public_id: &str,
    info: &ClientInfo,
    hello: &[u8],
    outbox: Outbox,
    tasks: &tokio_util::task::TaskTracker,
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
    tasks.spawn(async move {
        let gone = outbox.closed();
        tokio::pin!(gone);
        loop {
            let next = tokio::select! {
                biased;
                m = responses.message() => m,
                // The client went away while the owner has nothing to say.
                _ = &mut gone => break,
            };
            match next {
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
