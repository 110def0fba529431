//! The owner: the node a session lives on, serving a connection another
//! node forwards to it.

use std::pin::Pin;

use futures_util::Stream;
use proto::grpc::{ClientSessionMessage, ServerSessionMessage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tonic::{Status, Streaming};

use super::{receiver_stream, FORWARD_QUEUE};
use crate::client::ClientInfo;
use crate::hub::{ConnCtx, Flow, Hub};
use transport::ws::OutFrame;

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
    let tasks = hub.tasks().clone();
    tasks.spawn(async move {
        let ended = writer_token.cancelled();
        tokio::pin!(ended);
        loop {
            let frame = tokio::select! {
                biased;
                _ = &mut ended => break,
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
    // Reader: the request stream into the hub, until either side ends or
    // the hub shuts down.
    let stop = hub.inner.shutdown.clone();
    tasks.spawn(async move {
        let mut ctx = ConnCtx::new(outbox, info);
        // Created once and polled only while the stream waits, as in the
        // WebSocket reader.
        let (ended, stopping) = (token.cancelled(), stop.cancelled());
        tokio::pin!(ended, stopping);
        loop {
            let next = tokio::select! {
                biased;
                m = incoming.message() => m,
                _ = &mut ended => break,
                _ = &mut stopping => break,
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
