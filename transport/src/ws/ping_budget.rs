//! How many WebSocket pings a peer may send. The WebSocket library answers
//! every ping with a pong on its own, outside the outbox; a peer that
//! pings without reading would make those pongs pile up in memory. Peers
//! ping rarely (browsers never, native clients every few seconds), so a
//! small budget that refills once a second is plenty; a peer that
//! overdraws it is closed with 1008, as the reference cuts such a client
//! off within a second.

use std::time::Duration;

use tokio::time::Instant;

/// Pings a peer may send at once.
const BURST: u32 = 10;
/// One more ping allowed per this much time.
const REFILL: Duration = Duration::from_secs(1);

/// Close code and reason for a peer over its budget.
pub const CLOSE_PING_FLOOD: (u16, &str) = (1008, "too many pings");

pub struct PingBudget {
    tokens: u32,
    refilled: Instant,
}

impl Default for PingBudget {
    fn default() -> Self {
        PingBudget {
            tokens: BURST,
            refilled: Instant::now(),
        }
    }
}

impl PingBudget {
    /// Takes one ping from the budget; false if there is none left.
    pub fn take(&mut self, now: Instant) -> bool {
        let earned = now.saturating_duration_since(self.refilled).as_millis() / REFILL.as_millis();
        if earned > 0 {
            self.tokens = (self.tokens + earned.min(u128::from(BURST)) as u32).min(BURST);
            self.refilled = now;
        }
        if self.tokens == 0 {
            return false;
        }
        self.tokens -= 1;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_one_per_second() {
        let start = Instant::now();
        let mut b = PingBudget {
            tokens: BURST,
            refilled: start,
        };
        for _ in 0..BURST {
            assert!(b.take(start));
        }
        assert!(!b.take(start));
        assert!(!b.take(start + Duration::from_millis(900)));
        assert!(b.take(start + Duration::from_millis(1100)));
        assert!(!b.take(start + Duration::from_millis(1200)));
        // A quiet minute refills the burst, no more.
        let later = start + Duration::from_secs(60);
        for _ in 0..BURST {
            assert!(b.take(later));
        }
        assert!(!b.take(later));
    }
}
