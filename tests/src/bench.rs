//! The load generator behind `signaling-bench`: drives any server that
//! speaks the client protocol (ours or the reference) with its own Talk
//! backend emulator, and reports rates, latencies and the server's CPU and
//! memory.
//!
//! - [`conn`]: one benchmark client (hello, join, reader task).
//! - [`scenario`]: 1:1, room broadcast, join storm, resume storm, idle.
//! - [`report`]: counters, HDR histograms, `/proc` sampling, output.

pub mod conn;
pub mod report;
pub mod scenario;

use std::time::Duration;

/// What to run; built from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `ws://127.0.0.1:port/spreed`, comma separated for several nodes
    /// (clients are spread round-robin); loopback only.
    pub server: String,
    pub clients: usize,
    pub duration: Duration,
    /// Messages per second offered by all clients together; `None` = as
    /// fast as the server takes them with `inflight` per client.
    pub rate: Option<f64>,
    pub inflight: usize,
    pub room_size: usize,
    pub payload: usize,
    /// Connections set up at the same time.
    pub concurrency: usize,
    /// Server process to sample CPU and memory from.
    pub pid: Option<u32>,
    pub secret: String,
    pub progress: bool,
}

impl Settings {
    /// The server client `i` connects to.
    pub fn server_for(&self, i: usize) -> String {
        let list: Vec<&str> = self
            .server
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        list.get(i % list.len().max(1))
            .map(|s| s.to_string())
            .unwrap_or_default()
    }
}

/// Upper bounds so that no invocation runs away.
pub const MAX_CLIENTS: usize = 20_000;
pub const MAX_DURATION: Duration = Duration::from_secs(600);

/// Refuses targets that are not on this machine.
pub fn check_loopback(server: &str) -> Result<(), String> {
    let url = url::Url::parse(server).map_err(|e| format!("invalid server URL {server}: {e}"))?;
    let ok = match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!("{server}: only loopback targets are allowed"))
    }
}

#[cfg(test)]
mod tests {
    use super::check_loopback;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("ws://127.0.0.1:8080/spreed").is_ok());
        assert!(check_loopback("ws://127.1.2.3:8080/spreed").is_ok());
        assert!(check_loopback("ws://localhost:8080/spreed").is_ok());
        assert!(check_loopback("ws://[::1]:8080/spreed").is_ok());
        assert!(check_loopback("ws://10.0.0.1:8080/spreed").is_err());
        assert!(check_loopback("ws://example.com/spreed").is_err());
    }
}
