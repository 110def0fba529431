//! One signaling server's `/proxy` connection: the reader enforces the
//! hello timeout, the read deadline and the ping budget and hands each
//! decoded message to its handler; the shared writer task
//! (`transport::ws::writer`) owns the socket's sink.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::StreamExt;
use proto::error::ErrorCode;
use proto::proxy::{ClientBody, ClientMessage, ServerMessage};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use transport::ws::writer::Writer;
use transport::ws::{Outbox, PingBudget, CLOSE_NORMAL, CLOSE_PING_FLOOD, PONG_WAIT, WRITE_WAIT};

use crate::handle;
use crate::metrics::METRICS;
use crate::reply::{error_message, send, send_bye};
use crate::session::ProxySession;
use crate::state::Proxy;

/// A signaling server must say hello within this time.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves one upgraded WebSocket until it closes.
pub async fn run(socket: WebSocket, proxy: Arc<Proxy>) {
    let (sink, mut stream) = socket.split();
    let token = CancellationToken::new();
    let (outbox, rx) = Outbox::new(token.clone(), METRICS.outbox_overflow_total.clone());
    let writer = tokio::spawn(Writer::default().run(sink, rx));
    let mut session: Option<Arc<ProxySession>> = None;
    let linger = read_loop(&mut stream, &proxy, &outbox, &token, &mut session).await;
    if let Some(s) = session {
        s.detach(outbox.id());
    }
    drop(outbox);
    let flush = tokio::time::timeout(WRITE_WAIT, writer);
    if linger {
        // Unread frames in the socket would turn our close into a reset.
        let _ = tokio::join!(flush, transport::ws::linger(&mut stream));
    } else {
        let _ = flush.await;
    }
}

/// Reads until the connection ends; true when a close frame went out
/// and the peer should get the chance to close its side.
async fn read_loop(
    stream: &mut futures_util::stream::SplitStream<WebSocket>,
    proxy: &Arc<Proxy>,
    outbox: &Outbox,
    token: &CancellationToken,
    session: &mut Option<Arc<ProxySession>>,
) -> bool {
    let hello_deadline = Instant::now() + HELLO_TIMEOUT;
    let mut pings = PingBudget::default();
    loop {
        // Until the hello, the read deadline is the hello timeout.
        let deadline = if session.is_none() {
            hello_deadline.min(Instant::now() + PONG_WAIT)
        } else {
            Instant::now() + PONG_WAIT
        };
        let msg = tokio::select! {
            _ = token.cancelled() => return false,
            _ = proxy.shutdown.cancelled() => {
                // The session ends with the process: its clients close on
                // Janus, the server learns it at once.
                if let Some(s) = session.take() {
                    proxy.end_session(&s);
                }
                send_bye(outbox, "shutdown");
                return true;
            }
            m = tokio::time::timeout_at(deadline, stream.next()) => m,
        };
        if msg.is_err() && session.is_none() {
            tracing::debug!("no hello in time");
            send_bye(outbox, "hello_timeout");
            outbox.close(CLOSE_NORMAL, "hello timeout");
            return true;
        }
        let text = match msg {
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Ping(_)))) if !pings.take(Instant::now()) => {
                tracing::debug!("ping flood");
                let (code, reason) = CLOSE_PING_FLOOD;
                outbox.abort(code, reason);
                return false;
            }
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => {
                if let Some(s) = session {
                    s.touch();
                }
                continue;
            }
            Ok(Some(Ok(Message::Binary(_)))) => {
                send(outbox, &error_message(None, ErrorCode::InvalidFormat, ""));
                continue;
            }
            _ => return false,
        };
        if let Some(s) = session {
            s.touch();
        }
        let request = match ClientMessage::decode(text.as_bytes()) {
            Ok(r) => r,
            Err((id, e)) => {
                let reply = ServerMessage {
                    id,
                    kind: "error".into(),
                    error: Some(e),
                    ..Default::default()
                };
                send(outbox, &reply);
                continue;
            }
        };
        let id = request.id;
        match (session.as_ref(), request.body) {
            (None, ClientBody::Hello(hello)) => {
                *session = handle::hello::hello(proxy, outbox, id, hello).await;
            }
            (None, _) => send(outbox, &error_message(id, ErrorCode::HelloExpected, "")),
            (Some(_), ClientBody::Hello(_)) => {}
            (Some(s), ClientBody::Bye) => {
                proxy.end_session(s);
                send_bye(outbox, "session_closed");
                proxy.exit_if_drained();
                *session = None;
                return false;
            }
            (Some(s), ClientBody::Command(command)) => {
                METRICS
                    .command_messages_total
                    .with_label_values(&[command.name()])
                    .inc();
                let (proxy, s, outbox) = (proxy.clone(), s.clone(), outbox.clone());
                // Commands wait for Janus; the next message must not wait
                // for them.
                proxy.tasks.clone().spawn(async move {
                    let reply = handle::command(&proxy, &s, id, command).await;
                    send(&outbox, &reply);
                    proxy.exit_if_drained();
                });
            }
            (Some(s), ClientBody::Payload(payload)) => {
                let (s, outbox) = (s.clone(), outbox.clone());
                proxy.tasks.spawn(async move {
                    let reply = handle::payload(&s, id, payload).await;
                    send(&outbox, &reply);
                });
            }
        }
    }
}
