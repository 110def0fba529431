//! The one task that writes to a connection's socket. It drains the
//! [`Outbox`](super::Outbox) in batches (one flush for everything that
//! is waiting), pings on a timer, bounds every write by a deadline, and
//! ends with the close frame the connection was closed with. The same
//! writer serves accepted connections (axum) and the ones we dial
//! (tungstenite: Janus, other proxies), through [`WsFrame`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{Sink, SinkExt};
use prometheus::IntCounter;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite;

use super::outbox::{OutFrame, OutboxReceiver};
use super::{CLOSE_INTERNAL, PING_PERIOD, WRITE_WAIT};

/// Most frames written with one flush.
const WRITE_BATCH: usize = 64;

/// The frames a writer sends, for either WebSocket library.
pub trait WsFrame: Sized {
    fn text(text: &str) -> Self;
    fn ping(payload: Vec<u8>) -> Self;
    fn close(code: u16, reason: &str) -> Self;
}

impl WsFrame for axum::extract::ws::Message {
    fn text(text: &str) -> Self {
        Self::Text(text.into())
    }
    fn ping(payload: Vec<u8>) -> Self {
        Self::Ping(payload.into())
    }
    fn close(code: u16, reason: &str) -> Self {
        Self::Close(Some(axum::extract::ws::CloseFrame {
            code,
            reason: reason.into(),
        }))
    }
}

impl WsFrame for tungstenite::Message {
    fn text(text: &str) -> Self {
        Self::Text(text.into())
    }
    fn ping(payload: Vec<u8>) -> Self {
        Self::Ping(payload.into())
    }
    fn close(code: u16, reason: &str) -> Self {
        Self::Close(Some(tungstenite::protocol::CloseFrame {
            code: code.into(),
            reason: reason.into(),
        }))
    }
}

/// Counters a writer adds to for each text frame it writes.
#[derive(Clone)]
pub struct WriteCounters {
    pub frames: IntCounter,
    pub bytes: IntCounter,
}

/// How a writer behaves.
#[derive(Clone)]
pub struct Writer {
    /// Ping period; `None` never pings.
    pub ping_period: Option<Duration>,
    /// Longest time for one write or flush.
    pub write_wait: Duration,
    pub counters: Option<WriteCounters>,
}

impl Default for Writer {
    fn default() -> Self {
        Writer {
            ping_period: Some(PING_PERIOD),
            write_wait: WRITE_WAIT,
            counters: None,
        }
    }
}

impl Writer {
    /// Writes until the outbox closes or is cancelled, or a write fails;
    /// then cancels the outbox's token, so the reader stops too. Pings
    /// carry the send time in nanoseconds, for the reader to measure the
    /// round trip from the pong.
    pub async fn run<S, M>(self, mut sink: S, mut rx: OutboxReceiver)
    where
        S: Sink<M> + Unpin,
        M: WsFrame,
    {
        // The first tick fires at once: the reference pings right after
        // connecting. Without a period the timer is never polled.
        let mut ping = tokio::time::interval(self.ping_period.unwrap_or(PING_PERIOD));
        let token = rx.token();
        let cancelled = token.cancelled();
        tokio::pin!(cancelled);
        loop {
            // Frames first: under load one is usually waiting, and a look
            // at the token costs less than polling its future (which
            // registers a waiter each time); a cancelled connection
            // writes nothing more.
            tokio::select! {
                biased;
                frame = rx.rx.recv() => match frame {
                    _ if token.is_cancelled() => {
                        send_close_reason(&mut sink, &rx).await;
                        break;
                    }
                    Some(OutFrame::Close { code, reason }) => {
                        let _ = timeout(self.write_wait, send_close(&mut sink, code, &reason)).await;
                        break;
                    }
                    Some(first) => {
                        let (ok, close) = self.write_batch(&mut sink, &mut rx, first).await;
                        if !ok {
                            let _ = timeout(Duration::from_secs(1), send_close(&mut sink, CLOSE_INTERNAL, "")).await;
                            break;
                        }
                        if let Some((code, reason)) = close {
                            let _ = timeout(self.write_wait, send_close(&mut sink, code, &reason)).await;
                            break;
                        }
                    }
                    None => break,
                },
                _ = &mut cancelled => {
                    send_close_reason(&mut sink, &rx).await;
                    break;
                }
                _ = ping.tick(), if self.ping_period.is_some() => {
                    let payload = now_nanos().to_string();
                    let sent = timeout(self.write_wait, sink.send(M::ping(payload.into_bytes()))).await;
                    if !matches!(sent, Ok(Ok(()))) {
                        break;
                    }
                }
            }
        }
        token.cancel();
    }

    /// Writes `first` and whatever else is waiting (up to [`WRITE_BATCH`]
    /// entries), then flushes once. Returns whether that worked and a
    /// close frame found among the waiting entries.
    async fn write_batch<S, M>(
        &self,
        sink: &mut S,
        rx: &mut OutboxReceiver,
        first: OutFrame,
    ) -> (bool, Option<(u16, String)>)
    where
        S: Sink<M> + Unpin,
        M: WsFrame,
    {
        let mut close = None;
        let mut ok = self.feed_frame(sink, first).await;
        let mut batch = 1;
        while ok && batch < WRITE_BATCH {
            match rx.rx.try_recv() {
                Ok(OutFrame::Close { code, reason }) => {
                    close = Some((code, reason));
                    break;
                }
                Ok(frame) => {
                    ok = self.feed_frame(sink, frame).await;
                    batch += 1;
                }
                Err(_) => break,
            }
        }
        if ok {
            ok = matches!(timeout(self.write_wait, sink.flush()).await, Ok(Ok(())));
        }
        (ok, close)
    }

    /// Queues a text frame or a batch of them without flushing.
    async fn feed_frame<S, M>(&self, sink: &mut S, frame: OutFrame) -> bool
    where
        S: Sink<M> + Unpin,
        M: WsFrame,
    {
        match frame {
            OutFrame::Text(text) => self.feed_text(sink, &text).await,
            OutFrame::Batch(frames) => {
                for text in frames {
                    if !self.feed_text(sink, &text).await {
                        return false;
                    }
                }
                true
            }
            // Handled by the caller.
            OutFrame::Close { .. } => true,
        }
    }

    async fn feed_text<S, M>(&self, sink: &mut S, text: &str) -> bool
    where
        S: Sink<M> + Unpin,
        M: WsFrame,
    {
        let fed = timeout(self.write_wait, sink.feed(M::text(text))).await;
        let ok = matches!(fed, Ok(Ok(())));
        if let (true, Some(c)) = (ok, &self.counters) {
            c.frames.inc();
            c.bytes.inc_by(text.len() as u64);
        }
        ok
    }
}

/// Nanoseconds since the epoch, the payload of our pings.
pub fn now_nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The close frame of an aborted connection, if it has a reason.
async fn send_close_reason<S, M>(sink: &mut S, rx: &OutboxReceiver)
where
    S: Sink<M> + Unpin,
    M: WsFrame,
{
    if let Some((code, reason)) = rx.close_reason() {
        let _ = timeout(Duration::from_secs(1), send_close(sink, code, &reason)).await;
    }
}

async fn send_close<S, M>(sink: &mut S, code: u16, reason: &str) -> Result<(), S::Error>
where
    S: Sink<M> + Unpin,
    M: WsFrame,
{
    sink.send(M::close(code, reason)).await?;
    sink.close().await
}
