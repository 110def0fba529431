//! Brute-force protection (facts 7.1): failures per (client address,
//! action); ten failures within 30 minutes block the action, and every
//! failure is answered after an exponentially growing delay.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use crate::metrics::METRICS;

const MAX_ATTEMPTS: usize = 10;
const BLOCK_WINDOW: Duration = Duration::from_secs(30 * 60);
const MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);
const BASE_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(25);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    HelloResume,
    HelloInternal,
    BackendRoomAuth,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::HelloResume => "HelloResume",
            Action::HelloInternal => "HelloInternal",
            Action::BackendRoomAuth => "BackendRoomAuth",
        }
    }
}

/// The key of a client: the full IPv4 address, or the /64 of an IPv6 one.
pub fn client_key(addr: IpAddr) -> String {
    match addr {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let mut seg = v6.segments();
            for s in seg.iter_mut().skip(4) {
                *s = 0;
            }
            format!("{}/64", std::net::Ipv6Addr::from(seg))
        }
    }
}

#[derive(Default)]
pub struct Throttler {
    failures: Mutex<HashMap<(String, Action), Vec<Instant>>>,
}

/// The action is blocked for this client.
#[derive(Debug)]
pub struct Blocked;

/// Permission to go ahead; report a failure through it.
pub struct Attempt<'a> {
    throttler: &'a Throttler,
    key: String,
    action: Action,
    at: Instant,
}

impl Throttler {
    /// Checks before doing the real work.
    pub fn check(&self, addr: IpAddr, action: Action) -> Result<Attempt<'_>, Blocked> {
        let key = client_key(addr);
        let now = Instant::now();
        let mut map = self.failures.lock();
        if let Some(list) = map.get_mut(&(key.clone(), action)) {
            list.retain(|t| now.duration_since(*t) < MAX_AGE);
            if list.len() >= MAX_ATTEMPTS {
                let tenth = list[list.len() - MAX_ATTEMPTS];
                if now.duration_since(tenth) <= BLOCK_WINDOW {
                    METRICS
                        .throttle_bruteforce_total
                        .with_label_values(&[action.as_str()])
                        .inc();
                    return Err(Blocked);
                }
            }
        }
        Ok(Attempt {
            throttler: self,
            key,
            action,
            at: now,
        })
    }

    /// Drops entries older than 12 hours (called from housekeeping).
    pub fn expire(&self) {
        let now = Instant::now();
        self.failures.lock().retain(|_, list| {
            list.retain(|t| now.duration_since(*t) < MAX_AGE);
            !list.is_empty()
        });
    }
}

impl Attempt<'_> {
    /// Records the failure and waits the delay it earns.
    pub async fn failed(self) {
        let n = {
            let mut map = self.throttler.failures.lock();
            let list = map.entry((self.key, self.action)).or_default();
            list.push(self.at);
            list.len()
        };
        let delay = delay_for(n);
        METRICS
            .throttle_delayed_total
            .with_label_values(&[self.action.as_str(), &delay.as_millis().to_string()])
            .inc();
        tokio::time::sleep(delay).await;
    }
}

fn delay_for(n: usize) -> Duration {
    let exp = n.saturating_sub(1).min(16) as u32;
    (BASE_DELAY * 2u32.pow(exp)).min(MAX_DELAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_25s() {
        assert_eq!(delay_for(1), Duration::from_millis(100));
        assert_eq!(delay_for(2), Duration::from_millis(200));
        assert_eq!(delay_for(8), Duration::from_millis(12800));
        assert_eq!(delay_for(9), Duration::from_secs(25));
        assert_eq!(delay_for(50), Duration::from_secs(25));
    }

    #[test]
    fn ipv6_keys_use_the_64() {
        let a: IpAddr = "2001:db8:1:2:3:4:5:6".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        assert_eq!(client_key(a), client_key(b));
        assert_eq!(client_key("10.1.2.3".parse().unwrap()), "10.1.2.3");
    }

    #[tokio::test(start_paused = true)]
    async fn ten_failures_block_for_30_minutes() {
        let t = Throttler::default();
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..10 {
            t.check(ip, Action::HelloResume).unwrap().failed().await;
        }
        assert!(t.check(ip, Action::HelloResume).is_err());
        // Other actions and other clients are unaffected.
        assert!(t.check(ip, Action::HelloInternal).is_ok());
        assert!(t
            .check("192.0.2.2".parse().unwrap(), Action::HelloResume)
            .is_ok());
        tokio::time::advance(BLOCK_WINDOW + Duration::from_secs(1)).await;
        assert!(t.check(ip, Action::HelloResume).is_ok());
    }
}
