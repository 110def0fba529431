//! Draining and readiness: what SIGUSR1 (and SIGTERM with a grace) does to
//! the hub, and what `/readyz` reports.
//!
//! A draining node keeps serving the sessions it has, refuses new
//! WebSocket connections and reports not ready, so a load balancer moves
//! new clients elsewhere; it exits once only internal sessions are left
//! (the reference's `ScheduleShutdown`).

use std::sync::atomic::Ordering;

use transport::health::{Check, Readiness};

use super::Hub;

impl Hub {
    /// Starts draining; false if it already was.
    pub fn schedule_shutdown(&self) -> bool {
        let first = !self.inner.draining.swap(true, Ordering::AcqRel);
        if first {
            tracing::info!(
                sessions = self.session_count(),
                "shutdown scheduled: no new clients, exiting when the last one has left"
            );
        }
        first
    }

    pub fn is_draining(&self) -> bool {
        self.inner.draining.load(Ordering::Acquire)
    }

    /// Completes once no session but internal ones is left.
    pub async fn no_clients(&self) {
        self.inner.sessions.no_clients().await;
    }

    /// End of a drain's grace: every client is asked to reconnect (close
    /// 1012) while its session stays, so it resumes on another node, which
    /// takes the session over (`handover`). Returns how many were asked.
    pub fn release_clients(&self) -> usize {
        let released = self
            .inner
            .sessions
            .all()
            .iter()
            .filter(|s| s.client_type == super::session::ClientType::Client)
            .filter(|s| s.release_connection())
            .count();
        tracing::info!(released, "clients asked to reconnect elsewhere");
        released
    }

    /// Whether other nodes could take sessions over.
    pub fn has_peers(&self) -> bool {
        !self.inner.peers.is_empty()
    }

    /// Every dependency the configuration names, and whether it is usable.
    pub fn readiness(&self) -> Readiness {
        let inner = &self.inner;
        let mut checks = Vec::new();
        checks.push(if inner.bus.is_connected() {
            Check::ok("nats", "connected")
        } else {
            Check::failed("nats", "not connected")
        });
        if let Some(etcd) = inner.etcd.snapshot() {
            checks.push(if etcd.connected {
                Check::ok("etcd", "watching")
            } else {
                Check::failed("etcd", "not connected")
            });
        }
        let backends = self.backends();
        checks.push(if backends.compat().is_some() || !backends.is_empty() {
            Check::ok("backends", format!("{} configured", backends.all().len()))
        } else {
            Check::failed("backends", "none configured")
        });
        if let Some(sfu) = self.sfu() {
            let kind = if inner.proxy_sfu.is_some() {
                "proxies"
            } else {
                "janus"
            };
            checks.push(if sfu.is_connected() {
                Check::ok("sfu", format!("{kind} connected"))
            } else {
                Check::failed("sfu", format!("{kind} not connected"))
            });
        }
        Readiness {
            draining: self.is_draining(),
            checks,
        }
    }
}
