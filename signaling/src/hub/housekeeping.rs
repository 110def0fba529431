//! Periodic session housekeeping (facts 1.5.8): expire sessions whose
//! connection has been gone for the resume window, end anonymous sessions
//! that did not join a room in time, age throttling entries.

use std::time::Duration;

use proto::server::bye_reason;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::Hub;

/// A disconnected session can be resumed for this long.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);
/// Timers are checked at this period.
pub const TICK: Duration = Duration::from_secs(1);

impl Hub {
    /// Runs until `shutdown` fires.
    pub async fn run_housekeeping(self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        let mut ticks: u64 = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tick.tick() => {}
            }
            self.housekeeping_pass(Instant::now());
            ticks += 1;
            if ticks.is_multiple_of(super::ping::PING_INTERVAL.as_secs()) {
                self.ping_rooms();
            }
            if ticks.is_multiple_of(60) {
                self.inner.throttler.expire();
            }
        }
    }

    pub(crate) fn housekeeping_pass(&self, now: Instant) {
        for session in self.inner.sessions.all() {
            if session
                .disconnected_since()
                .is_some_and(|t| now.duration_since(t) >= RESUME_WINDOW)
            {
                tracing::debug!(session = %session.public_id, "session expired");
                self.close_session(&session, true);
            } else if session.join_deadline_expired(now) {
                tracing::debug!(session = %session.public_id, "anonymous session did not join a room");
                self.bye_and_close(&session, bye_reason::ROOM_JOIN_TIMEOUT, false);
            }
        }
    }
}
