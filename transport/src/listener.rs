//! TCP listeners for the HTTP side. Every accepted socket gets
//! TCP_NODELAY, as the reference sets it: signaling frames are small and
//! latency-bound, and Nagle's algorithm together with the peer's delayed
//! ACK holds a lone frame back for up to 40 ms at light load.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP listener whose accepted sockets have TCP_NODELAY set.
pub struct NoDelayListener(TcpListener);

/// Wraps a bound listener.
pub fn nodelay(listener: TcpListener) -> NoDelayListener {
    NoDelayListener(listener)
}

impl axum::serve::Listener for NoDelayListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (TcpStream, SocketAddr) {
        loop {
            match self.0.accept().await {
                Ok((stream, addr)) => {
                    if let Err(e) = stream.set_nodelay(true) {
                        tracing::debug!(error = %e, "could not set TCP_NODELAY");
                    }
                    return (stream, addr);
                }
                // The peer gave up before we got to it.
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::ConnectionRefused
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                // Out of descriptors or similar: wait for connections to end.
                Err(e) => {
                    tracing::error!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.0.local_addr()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::serve::Listener;

    #[tokio::test]
    async fn accepted_sockets_have_nodelay() -> io::Result<()> {
        let mut listener = nodelay(TcpListener::bind("127.0.0.1:0").await?);
        let addr = listener.local_addr()?;
        let _client = TcpStream::connect(addr).await?;
        let (accepted, _) = listener.accept().await;
        assert!(accepted.nodelay()?);
        Ok(())
    }
}
