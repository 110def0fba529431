//! The two tasks of one `/spreed` connection (facts 1.1): the reader owns
//! the stream, enforces the hello timeout, the read deadline and the frame
//! size limit, and passes each text frame to the hub in order; the writer
//! owns the sink, the outbox and the ping timer.

use std::time::Duration;

use axum::extract::ws::{Message, WebSocket};
use futures_util::stream::SplitStream;
use futures_util::StreamExt;
use tokio::time::{timeout, Instant};
use tokio_util::sync::CancellationToken;
use transport::ws::writer::{now_nanos, WriteCounters, Writer};
use transport::ws::{
    close_for_error, linger, PingBudget, CLOSE_GOING_AWAY, CLOSE_NORMAL, CLOSE_PING_FLOOD,
    CLOSE_TOO_BIG, PONG_WAIT, WRITE_WAIT,
};

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
/// Serves one upgraded WebSocket until it closes.
pub async fn run(socket: WebSocket, hub: Hub, info: ClientInfo, shutdown: CancellationToken) {
    let (sink, stream) = socket.split();
    // Cancelled when the connection must end now (writer failed, client
    // too slow); a server shutdown instead queues a close frame.
    let token = CancellationToken::new();
    let (outbox, rx) = super::new_outbox(token.clone());
    let writer = Writer {
        counters: Some(WriteCounters {
            frames: METRICS.hot.messages_out.clone(),
            bytes: METRICS.hot.bytes_out.clone(),
        }),
        ..Writer::default()
    };
    let mut writer = tokio::spawn(writer.run(sink, rx));

    let mut ctx = ConnCtx::new(outbox, info);
    hub.welcome(&ctx);
    let mut stream = stream;
    let end = read_loop(&mut stream, &hub, &mut ctx, &token, &shutdown).await;
    hub.connection_closed(&mut ctx);
    if let ReadEnd::ClientClosed = end {
        // Answered only now, so a client that has its close answered knows
        // the server is done with the connection (its session waits for a
        // resume, or is gone).
        ctx.outbox.abort(CLOSE_NORMAL, "");
    }
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
        ReadEnd::Linger | ReadEnd::ClientClosed => {
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
    /// The client sent a close frame; it is answered once the hub knows.
    ClientClosed,
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
        // The stream first: under load a frame is usually ready, and then
        // nothing else is polled (the token futures register a waiter on
        // every poll). The others are polled whenever the stream waits,
        // which Tokio's budget makes happen on a busy connection too.
        let next = tokio::select! {
            biased;
            r = stream.next() => Ok(r),
            _ = &mut cancelled => return ReadEnd::Done,
            _ = &mut shutting_down => return ReadEnd::Done,
            _ = &mut timer => Err(()),
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
        if waiting_for_hello && last_read >= hello_deadline {
            // Frames kept coming, so the timer was not looked at.
            hub.hello_timeout(ctx);
            return ReadEnd::Done;
        }
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
            Message::Close(_) => return ReadEnd::ClientClosed,
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

fn observe_rtt(payload: &[u8]) {
    let sent: Option<u128> = std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.parse().ok());
    if let Some(sent) = sent {
        let rtt_ms = now_nanos().saturating_sub(sent) as f64 / 1e6;
        METRICS.client_rtt.observe(rtt_ms);
    }
}
