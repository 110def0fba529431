//! The two tasks of one `/spreed` connection (facts 1.1): the reader owns
//! the stream, enforces the hello timeout, the read deadline and the frame
//! size limit, and passes each text frame to the hub in order; the writer
//! owns the sink, the outbox and the ping timer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;

use super::outbox::{OutFrame, Outbox, OutboxReceiver};
use super::ping_budget::{PingBudget, CLOSE_PING_FLOOD};
use super::ClientInfo;
use crate::hub::{ConnCtx, Flow, Hub};
use crate::metrics::METRICS;

/// Largest accepted inbound message.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// Largest frame read off the socket. Frames between this and
/// [`MAX_MESSAGE_SIZE`] are read whole and then refused, so the client
/// gets the 1009 close frame: closing with unread data in the socket
/// would reset the connection and lose it.
pub const READ_LIMIT: usize = 1024 * 1024;
/// A client must say hello within this time (and again after a failed one).
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(2);
/// A client that sends neither data nor pongs for this long is dropped.
pub const PONG_WAIT: Duration = Duration::from_secs(60);
/// Ping period: 9/10 of the pong wait.
pub const PING_PERIOD: Duration = Duration::from_secs(54);
/// Maximum time for writing one frame.
pub const WRITE_WAIT: Duration = Duration::from_secs(10);
/// Bytes the WebSocket layer may hold that the socket did not take yet:
/// one large frame (a participants update of a big room) plus the pongs
/// it answers on its own. Beyond that the connection fails instead of
/// growing.
pub const WRITE_BUFFER_LIMIT: usize = 8 * 1024 * 1024;

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL: u16 = 1002;
pub const CLOSE_INVALID_DATA: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;
pub const CLOSE_INTERNAL: u16 = 1011;

/// Serves one upgraded WebSocket until it closes.
pub async fn run(socket: WebSocket, hub: Hub, info: ClientInfo, shutdown: CancellationToken) {
    let (sink, stream) = socket.split();
    // Cancelled when the connection must end now (writer failed, client
    // too slow); a server shutdown instead queues a close frame.
    let token = CancellationToken::new();
    let (outbox, rx) = Outbox::new(token.clone());
    let mut writer = tokio::spawn(write_loop(sink, rx));

    let mut ctx = ConnCtx::new(outbox, info);
    hub.welcome(&ctx);
    let mut stream = stream;
    let end = read_loop(&mut stream, &hub, &mut ctx, &token, &shutdown).await;
    hub.connection_closed(&mut ctx);
    if shutdown.is_cancelled() {
        ctx.outbox.close(CLOSE_GOING_AWAY, "server shutting down");
    }
    drop(ctx);
    // Let the writer flush what is queued (a bye, a close frame), then stop
    // it; meanwhile read what the client still sends, so closing the socket
    // with unread data does not reset the connection and lose the close
    // frame.
    let flush = async {
        if timeout(WRITE_WAIT, &mut writer).await.is_err() {
            token.cancel();
            let _ = writer.await;
        }
    };
    match end {
        ReadEnd::Linger => {
            tokio::join!(flush, linger(&mut stream));
        }
        ReadEnd::Done => flush.await,
    }
}

/// How the read side ended.
enum ReadEnd {
    /// The stream is finished or the server hangs up.
    Done,
    /// A close frame goes out in answer to the client: keep reading until
    /// the client closes its side.
    Linger,
}

/// Longest wait for a client to close its side after our close frame.
const LINGER: Duration = Duration::from_secs(1);
/// Frames or errors read while lingering before giving up early.
const LINGER_FRAMES: usize = 64;

/// Reads what the peer still sends after our close frame, until it
/// closes its side (at most [`LINGER`], [`LINGER_FRAMES`] frames).
pub async fn linger(stream: &mut SplitStream<WebSocket>) {
    let drain = async {
        for _ in 0..LINGER_FRAMES {
            // Reading also writes tungstenite's queued answer to a close.
            if stream.next().await.is_none() {
                return;
            }
        }
    };
    let _ = timeout(LINGER, drain).await;
}

async fn read_loop(
    stream: &mut SplitStream<WebSocket>,
    hub: &Hub,
    ctx: &mut ConnCtx,
    token: &CancellationToken,
    shutdown: &CancellationToken,
) -> ReadEnd {
    let mut hello_deadline = Instant::now() + HELLO_TIMEOUT;
    let mut pings = PingBudget::default();
    let mut last_read = Instant::now();
    // Created once: building these futures per frame showed in profiles.
    let cancelled = token.cancelled();
    let shutting_down = shutdown.cancelled();
    // Every frame moves the read deadline; resetting the timer for each
    // one costs a timer-wheel update per message. It is only moved
    // earlier here, and re-armed when it fires before the real deadline.
    let timer = tokio::time::sleep_until(hello_deadline);
    tokio::pin!(cancelled, shutting_down, timer);
    loop {
        let waiting_for_hello = ctx.session.is_none() && ctx.remote.is_none();
        let read_deadline = last_read + PONG_WAIT;
        let deadline = if waiting_for_hello {
            hello_deadline.min(read_deadline)
        } else {
            read_deadline
        };
        if deadline < timer.deadline() {
            timer.as_mut().reset(deadline);
        }
        let next = tokio::select! {
            _ = &mut cancelled => return ReadEnd::Done,
            _ = &mut shutting_down => return ReadEnd::Done,
            _ = &mut timer => Err(()),
            r = stream.next() => Ok(r),
        };
        let msg = match next {
            Err(_) if Instant::now() < deadline => {
                timer.as_mut().reset(deadline);
                continue;
            }
            Err(_) if waiting_for_hello && Instant::now() >= hello_deadline => {
                hub.hello_timeout(ctx);
                return ReadEnd::Done;
            }
            Err(_) => {
                tracing::debug!(addr = %ctx.info.addr, "read deadline exceeded");
                ctx.outbox.abort(CLOSE_NORMAL, "read timeout");
                return ReadEnd::Done;
            }
            Ok(None) => return ReadEnd::Done,
            Ok(Some(Err(e))) => {
                let Some((code, reason)) = close_for_error(&e) else {
                    return ReadEnd::Done;
                };
                tracing::debug!(addr = %ctx.info.addr, error = %e, code, "closing after a WebSocket error");
                close_for_violation(ctx, code, reason);
                return ReadEnd::Linger;
            }
            Ok(Some(Ok(msg))) => msg,
        };
        last_read = Instant::now();
        let too_big = match &msg {
            Message::Text(t) => t.len() > MAX_MESSAGE_SIZE,
            Message::Binary(b) => b.len() > MAX_MESSAGE_SIZE,
            _ => false,
        };
        if too_big {
            tracing::debug!(addr = %ctx.info.addr, "message too big");
            close_for_violation(ctx, CLOSE_TOO_BIG, "message too big");
            return ReadEnd::Linger;
        }
        match msg {
            Message::Text(text) => {
                METRICS.hot.messages_in.inc();
                METRICS.hot.bytes_in.inc_by(text.len() as u64);
                let had_session = ctx.session.is_some();
                let flow = hub.handle_frame(ctx, text.as_bytes()).await;
                if !had_session && ctx.session.is_none() {
                    // A failed hello restarts the hello timer.
                    hello_deadline = Instant::now() + HELLO_TIMEOUT;
                }
                if flow == Flow::Close {
                    return ReadEnd::Done;
                }
            }
            Message::Binary(_) => hub.binary_frame(ctx),
            Message::Pong(payload) => observe_rtt(&payload),
            Message::Ping(_) => {
                if !pings.take(last_read) {
                    tracing::debug!(addr = %ctx.info.addr, "ping flood");
                    let (code, reason) = CLOSE_PING_FLOOD;
                    close_for_violation(ctx, code, reason);
                    return ReadEnd::Done;
                }
            }
            // tungstenite has queued the answer (the client's code, or 1002
            // for a code the RFC does not allow); the writer flushes it.
            Message::Close(_) => {
                ctx.outbox.abort(CLOSE_NORMAL, "");
                return ReadEnd::Linger;
            }
        }
    }
}

/// Ends the connection for the client's protocol violation `code`,
/// counted by code.
fn close_for_violation(ctx: &ConnCtx, code: u16, reason: &str) {
    METRICS
        .client_protocol_errors_total
        .with_label_values(&[&code.to_string()])
        .inc();
    ctx.outbox.abort(code, reason);
}

/// The close code RFC 6455 names for a read error, if the connection is
/// still there to carry a close frame: 1009 for an oversized message, 1007
/// for text that is not UTF-8, 1002 for any other protocol violation.
fn close_for_error(e: &axum::Error) -> Option<(u16, &'static str)> {
    use tokio_tungstenite::tungstenite::error::ProtocolError;
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<WsError>() {
            return match t {
                WsError::Capacity(_) => Some((CLOSE_TOO_BIG, "message too big")),
                WsError::Utf8(_) => Some((CLOSE_INVALID_DATA, "invalid UTF-8")),
                WsError::Protocol(ProtocolError::ResetWithoutClosingHandshake) => None,
                WsError::Protocol(_) => Some((CLOSE_PROTOCOL, "protocol error")),
                _ => None,
            };
        }
        source = s.source();
    }
    None
}

fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

fn observe_rtt(payload: &[u8]) {
    let sent: Option<u128> = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok());
    if let Some(sent) = sent {
        let rtt_ms = now_nanos().saturating_sub(sent) as f64 / 1e6;
        METRICS.client_rtt.observe(rtt_ms);
    }
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: OutboxReceiver) {
    // The first tick fires at once: upstream pings right after connecting.
    let mut ping = tokio::time::interval(PING_PERIOD);
    let token = rx.token();
    let cancelled = token.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => {
                if let Some((code, reason)) = rx.close_reason() {
                    let _ = timeout(Duration::from_secs(1), send_close(&mut sink, code, &reason)).await;
                }
                break;
            }
            frame = rx.rx.recv() => match frame {
                Some(OutFrame::Close { code, reason }) => {
                    let _ = timeout(WRITE_WAIT, send_close(&mut sink, code, &reason)).await;
                    break;
                }
                Some(first) => {
                    // Queue everything that is waiting, then write once.
                    let mut close = None;
                    let mut ok = feed_frame(&mut sink, first).await;
                    let mut batch = 1;
                    while ok && batch < WRITE_BATCH {
                        match rx.rx.try_recv() {
                            Ok(OutFrame::Close { code, reason }) => {
                                close = Some((code, reason));
                                break;
                            }
                            Ok(frame) => {
                                ok = feed_frame(&mut sink, frame).await;
                                batch += 1;
                            }
                            Err(_) => break,
                        }
                    }
                    if ok {
                        ok = matches!(timeout(WRITE_WAIT, sink.flush()).await, Ok(Ok(())));
                    }
                    if !ok {
                        let _ = timeout(Duration::from_secs(1), send_close(&mut sink, CLOSE_INTERNAL, "")).await;
                        break;
                    }
                    if let Some((code, reason)) = close {
                        let _ = timeout(WRITE_WAIT, send_close(&mut sink, code, &reason)).await;
                        break;
                    }
                }
                None => break,
            },
            _ = ping.tick() => {
                let payload = now_nanos().to_string();
                let sent = timeout(WRITE_WAIT, sink.send(Message::Ping(payload.into_bytes().into()))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
            }
        }
    }
    // Stop the reader too if it is still waiting.
    token.cancel();
}

/// Most frames written with one flush.
const WRITE_BATCH: usize = 64;

/// Queues a text frame or a batch of them without flushing.
async fn feed_frame(sink: &mut SplitSink<WebSocket, Message>, frame: OutFrame) -> bool {
    match frame {
        OutFrame::Text(text) => feed_text(sink, &text).await,
        OutFrame::Batch(frames) => {
            for text in frames {
                if !feed_text(sink, &text).await {
                    return false;
                }
            }
            true
        }
        // Handled by the caller.
        OutFrame::Close { .. } => true,
    }
}

/// Queues one text frame without flushing.
async fn feed_text(sink: &mut SplitSink<WebSocket, Message>, text: &str) -> bool {
    let ok = matches!(
        timeout(WRITE_WAIT, sink.feed(Message::Text(text.into()))).await,
        Ok(Ok(()))
    );
    if ok {
        METRICS.hot.messages_out.inc();
        METRICS.hot.bytes_out.inc_by(text.len() as u64);
    }
    ok
}

async fn send_close(
    sink: &mut SplitSink<WebSocket, Message>,
    code: u16,
    reason: &str,
) -> Result<(), axum::Error> {
    sink.send(Message::Close(Some(CloseFrame {
        code,
        reason: reason.into(),
    })))
    .await?;
    sink.close().await
}
