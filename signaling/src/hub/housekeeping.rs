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
/// How often a node says it is alive.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);
/// A node not heard of for this long is dead: its sessions leave their
/// rooms on the other nodes.
pub const NODE_TIMEOUT: Duration = Duration::from_secs(15);

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
            if ticks.is_multiple_of(HEARTBEAT_INTERVAL.as_secs()) {
                self.heartbeat();
            }
            self.expire_nodes(Instant::now());
            if ticks.is_multiple_of(super::ping::PING_INTERVAL.as_secs()) {
                self.ping_rooms();
            }
            if ticks.is_multiple_of(60) {
                self.inner.throttler.expire();
            }
        }
    }

    pub(crate) fn heartbeat(&self) {
        let msg = crate::cluster::BusMessage::with_time(
            crate::cluster::bus::now_us(),
            crate::cluster::BusPayload::Heartbeat {
                node: self.inner.node,
                counts: self.inner.sessions.counts(),
            },
        );
        self.publish(&crate::cluster::Subject::Nodes, msg);
    }

    /// Sessions of nodes that stopped sending heartbeats leave the rooms
    /// here: local members get `leave` events.
    pub(crate) fn expire_nodes(&self, now: Instant) {
        let dead: Vec<u64> = {
            let mut nodes = self.inner.nodes.lock();
            let dead: Vec<u64> = nodes
                .iter()
                .filter(|(_, seen)| now.duration_since(**seen) >= NODE_TIMEOUT)
                .map(|(n, _)| *n)
                .collect();
            for n in &dead {
                nodes.remove(n);
                self.inner.remote_counts.lock().remove(n);
            }
            dead
        };
        for node in dead {
            tracing::warn!(
                node,
                "node stopped sending heartbeats, removing its sessions"
            );
            for room in self.inner.rooms.all() {
                let gone = room.take_remote_of(node);
                if gone.is_empty() {
                    continue;
                }
                for id in &gone {
                    self.inner.sessions.forget_room_sessions_of(id);
                }
                let msg = std::sync::Arc::new(crate::cluster::BusMessage::new(
                    proto::server::ServerMessage::new(proto::server::ServerBody::Event {
                        event: proto::event::Event::Room(proto::event::RoomEvent::Leave {
                            leave: gone,
                        }),
                    }),
                ));
                for m in room.members() {
                    m.deliver(&msg);
                }
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
