//! Serving HTTP/1.1 on a listener with the reference's `[http]
//! readtimeout` and `writetimeout`: a request's header and body must
//! arrive within the read timeout, and no write may stall longer than the
//! write timeout. Slow or half-open clients are closed instead of holding a
//! connection forever. WebSocket upgrades leave this loop; their
//! connections keep only the write timeout (their reads have the
//! protocol's own deadlines).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use bytes::Bytes;
use hyper::body::{Frame, Incoming, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower_service::Service;

/// `[http] readtimeout` and `writetimeout`.
#[derive(Debug, Clone, Copy)]
pub struct HttpTimeouts {
    pub read: Duration,
    pub write: Duration,
}

/// Serves `app` on `listener` until `stop`; `peer` turns an accepted
/// address into the connection info handlers extract. With `tls` every
/// connection first completes a TLS handshake (within the read timeout).
/// Returns when every plain HTTP connection has finished its request
/// (upgraded connections live on in their own tasks).
pub async fn serve<L, P>(
    mut listener: L,
    app: Router,
    timeouts: HttpTimeouts,
    tls: Option<tokio_rustls::TlsAcceptor>,
    peer: fn(&L::Addr) -> P,
    stop: CancellationToken,
) where
    L: axum::serve::Listener,
    L::Io: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Clone + Send + Sync + 'static,
{
    let connections = TaskTracker::new();
    loop {
        let (io, addr) = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let info = ConnectInfo(peer(&addr));
        let app = app.clone();
        let stop = stop.clone();
        let tls = tls.clone();
        connections.spawn(async move {
            match tls {
                None => serve_connection(io, app, info, timeouts, stop).await,
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(timeouts.read, acceptor.accept(io)).await;
                    match handshake {
                        Ok(Ok(io)) => serve_connection(io, app, info, timeouts, stop).await,
                        Ok(Err(e)) => tracing::debug!(error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!("TLS handshake not done within the read timeout"),
                    }
                }
            }
        });
    }
    connections.close();
    connections.wait().await;
}

/// One HTTP/1.1 connection, with upgrades, until it ends or `stop`.
async fn serve_connection<IO, P>(
    io: IO,
    app: Router,
    info: ConnectInfo<P>,
    timeouts: HttpTimeouts,
    stop: CancellationToken,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    P: Clone + Send + Sync + 'static,
{
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        req.extensions_mut().insert(info.clone());
        let req = req.map(|b| Body::new(ReadDeadline::new(b, timeouts.read)));
        let mut app = app.clone();
        async move { app.call(req).await }
    });
    let io = TokioIo::new(WriteTimeout::new(io, timeouts.write));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.read)
        .serve_connection(io, service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(error = %e, "HTTP connection ended");
            }
        }
        _ = stop.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// A request body that must be complete by a deadline.
struct ReadDeadline {
    inner: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl ReadDeadline {
    fn new(inner: Incoming, timeout: Duration) -> Self {
        ReadDeadline {
            inner,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl hyper::body::Body for ReadDeadline {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(io::Error::other)));
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "request body not complete within the read timeout",
            ))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Fails a write that cannot make progress for `timeout`.
struct WriteTimeout<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> WriteTimeout<T> {
    fn new(inner: T, timeout: Duration) -> Self {
        WriteTimeout {
            inner,
            timeout,
            stalled: None,
        }
    }

    fn check<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        match r {
            Poll::Ready(r) => {
                self.stalled = None;
                Poll::Ready(r)
            }
            Poll::Pending => {
                let timeout = self.timeout;
                let sleep = self
                    .stalled
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                if sleep.as_mut().poll(cx).is_ready() {
                    self.stalled = None;
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "write stalled past the write timeout",
                    )));
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for WriteTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for WriteTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, r)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.check(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
